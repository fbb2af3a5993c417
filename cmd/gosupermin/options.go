package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/gosupermin/gosupermin/supermin"
)

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

type cli struct {
	mode               string // "prepare", "build", or "" for --list-drivers/--version
	listDrivers        bool
	version            bool
	help               bool
	verbose            int
	out                string
	format             string
	root               string
	lock               string
	size               int64
	copyKernel         bool
	kernelFormat       supermin.KernelFormat
	hostCPU            string
	ifNewer            bool
	includePackageList bool
	compress           string
	firstboot          bool
	sbom               string
	init               string
	args               []string

	// --run's (run.go): the command after "--", and the options given.
	command []string
	shares  []shareArg
	memory  int // MiB
	smp     int
	timeout float64 // seconds
	accel   string
	persist bool
	runUsed []string // the --run options given, for check
}

type option struct {
	names []string
	arg   bool
	set   func(c *cli, v string) error
}

func flag(f func(c *cli)) func(*cli, string) error {
	return func(c *cli, _ string) error { f(c); return nil }
}

// options are supermin 5's, with gosupermin's own additions (--root,
// --compress, --kernel-format, --firstboot, --init, --sbom). Each is documented in
// optionDocs (docs.go), from which --help, the man page and the
// completion are made.
var options = []option{
	{[]string{"--build"}, false, func(c *cli, _ string) error { return c.setMode("build") }},
	{[]string{"--prepare"}, false, func(c *cli, _ string) error { return c.setMode("prepare") }},
	{[]string{"--copy-kernel"}, false, flag(func(c *cli) { c.copyKernel = true })},
	{[]string{"--dtb"}, true, func(*cli, string) error { return nil }}, // obsolete in supermin 5 too
	{[]string{"-f", "--format"}, true, func(c *cli, v string) error {
		switch v {
		case "chroot", "fs", "filesystem":
			c.format = "chroot"
		case "ext2", "cpio":
			c.format = v
		default:
			return usageError{fmt.Sprintf("unknown output format %q (chroot, ext2 or cpio)", v)}
		}
		return nil
	}},
	{[]string{"--host-cpu"}, true, func(c *cli, v string) error { c.hostCPU = v; return nil }},
	{[]string{"--if-newer"}, false, flag(func(c *cli) { c.ifNewer = true })},
	{[]string{"--include-packagelist"}, false, flag(func(c *cli) { c.includePackageList = true })},
	{[]string{"--list-drivers"}, false, flag(func(c *cli) { c.listDrivers = true })},
	{[]string{"--lock"}, true, func(c *cli, v string) error { c.lock = v; return nil }},
	{[]string{"--names"}, false, func(*cli, string) error {
		return usageError{"--names is a supermin 4 option; supermin 5 and gosupermin do not have it"}
	}},
	{[]string{"-o"}, true, func(c *cli, v string) error {
		if len(v) > 1 {
			v = strings.TrimSuffix(v, "/")
		}
		c.out = v
		return nil
	}},
	{[]string{"--packager-config"}, true, func(*cli, string) error { return nil }},
	{[]string{"--size"}, true, func(c *cli, v string) error {
		n, err := parseSize(v)
		c.size = n
		return err
	}},
	{[]string{"--use-installed"}, false, func(*cli, string) error { return nil }}, // always: we never download
	{[]string{"-v", "--verbose"}, false, flag(func(c *cli) { c.verbose++ })},
	{[]string{"-V", "--version"}, false, flag(func(c *cli) { c.version = true })},
	{[]string{"-h", "--help", "-help"}, false, flag(func(c *cli) { c.help = true })},
	{[]string{"--root"}, true, func(c *cli, v string) error { c.root = v; return nil }},
	{[]string{"--compress"}, true, func(c *cli, v string) error {
		switch v {
		case "zstd", "gzip", "none":
			c.compress = v
			return nil
		}
		return usageError{fmt.Sprintf("--compress %q: use zstd, gzip or none", v)}
	}},
	{[]string{"--firstboot"}, false, flag(func(c *cli) { c.firstboot = true })},
	{[]string{"--kernel-format"}, true, func(c *cli, v string) error {
		f, err := supermin.ParseKernelFormat(v)
		if err != nil {
			return usageError{fmt.Sprintf("--kernel-format %q: use auto, elf or image", v)}
		}
		c.kernelFormat = f
		return nil
	}},
	{[]string{"--init"}, true, func(c *cli, v string) error {
		if v == "" {
			return usageError{"--init needs a file"}
		}
		c.init = v
		return nil
	}},

	// Ecosystem: a bill of materials beside the output.
	{[]string{"--sbom"}, true, func(c *cli, v string) error { c.sbom = v; return nil }},

	// Boot an appliance and run a command in it (run.go).
	{[]string{"--run"}, false, func(c *cli, _ string) error { return c.setMode("run") }},
	{[]string{"--share"}, true, runOpt("--share", func(c *cli, v string) error { return c.addShare("--share", v, false) })},
	{[]string{"--share-ro"}, true, runOpt("--share-ro", func(c *cli, v string) error { return c.addShare("--share-ro", v, true) })},
	{[]string{"--memory"}, true, runOpt("--memory", func(c *cli, v string) error {
		n, err := parseMemory(v)
		c.memory = n
		return err
	})},
	{[]string{"--smp"}, true, runOpt("--smp", func(c *cli, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1024 {
			return usageError{fmt.Sprintf("--smp %q: a number of CPUs, 1 to 1024", v)}
		}
		c.smp = n
		return nil
	})},
	{[]string{"--timeout"}, true, runOpt("--timeout", func(c *cli, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1e7 || f != f {
			return usageError{fmt.Sprintf("--timeout %q: a number of seconds (0: none)", v)}
		}
		c.timeout = f
		return nil
	})},
	{[]string{"--accel"}, true, runOpt("--accel", func(c *cli, v string) error {
		switch v {
		case "auto", "kvm", "tcg":
			c.accel = v
			return nil
		}
		return usageError{fmt.Sprintf("--accel %q: use auto, kvm or tcg", v)}
	})},
	{[]string{"--persist"}, false, runOpt("--persist", func(c *cli, _ string) error { c.persist = true; return nil })},
}

// runOpt notes that a --run option was given.
func runOpt(name string, set func(*cli, string) error) func(*cli, string) error {
	return func(c *cli, v string) error {
		c.runUsed = append(c.runUsed, name)
		return set(c, v)
	}
}

var memoryRE = regexp.MustCompile(`^([0-9]+)([MG]?)$`)

// parseMemory reads --memory: MiB, or a number and M or G.
func parseMemory(s string) (int, error) {
	m := memoryRE.FindStringSubmatch(s)
	bad := usageError{fmt.Sprintf("--memory %q: a size in MiB, or a number and M or G (e.g. 2G)", s)}
	if m == nil {
		return 0, bad
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 || n > 1<<22 {
		return 0, bad
	}
	if m[2] == "G" {
		n *= 1024
	}
	if n > 1<<22 {
		return 0, bad
	}
	return n, nil
}

func (c *cli) setMode(m string) error {
	if c.mode != "" && c.mode != m {
		return usageError{"use one of --prepare, --build and --run"}
	}
	c.mode = m
	return nil
}

var sizeRE = regexp.MustCompile(`^([.0-9]+)([bKMGT])$`)

// parseSize reads supermin's size syntax: a number and a suffix b, K, M, G
// (powers of 1024).
func parseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, usageError{fmt.Sprintf("--size %q: expected a number and a unit (b, K, M, G), e.g. 4G", s)}
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil || f <= 0 {
		return 0, usageError{fmt.Sprintf("--size %q: bad number", s)}
	}
	mult := map[string]float64{"b": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m[2]]
	if f*mult > 1<<50 {
		return 0, usageError{fmt.Sprintf("--size %q: too large", s)}
	}
	return int64(f * mult), nil
}

// parseArgs accepts options anywhere among the arguments (supermin is
// called as "--build -f ext2 supermin.d -o appliance.d"), "--opt=value",
// "-vv", and "--" to end options.
func parseArgs(args []string) (*cli, error) {
	c := &cli{size: 4 << 30}
	byName := map[string]*option{}
	for i := range options {
		for _, n := range options[i].names {
			byName[n] = &options[i]
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if c.mode == "run" {
				// What follows is the command, whatever it looks like.
				c.command = append([]string{}, args[i+1:]...)
			} else {
				c.args = append(c.args, args[i+1:]...)
			}
			break
		}
		if len(a) < 2 || a[0] != '-' {
			c.args = append(c.args, a)
			continue
		}
		name, val, hasVal := a, "", false
		if strings.HasPrefix(a, "--") {
			if j := strings.IndexByte(a, '='); j > 0 {
				name, val, hasVal = a[:j], a[j+1:], true
			}
		} else if len(a) > 2 && byName[a] == nil {
			// -vv, -ofoo, -fext2
			if o := byName[a[:2]]; o != nil {
				if o.arg {
					name, val, hasVal = a[:2], a[2:], true
				} else if strings.Trim(a[1:], a[1:2]) == "" {
					for range a[1:] {
						if err := o.set(c, ""); err != nil {
							return nil, err
						}
					}
					continue
				}
			}
		}
		o := byName[name]
		if o == nil {
			return nil, usageError{fmt.Sprintf("unknown option %s", name)}
		}
		if o.arg && !hasVal {
			if i+1 >= len(args) {
				return nil, usageError{fmt.Sprintf("option %s needs an argument", name)}
			}
			i++
			val = args[i]
		} else if !o.arg && hasVal {
			return nil, usageError{fmt.Sprintf("option %s takes no argument", name)}
		}
		if err := o.set(c, val); err != nil {
			return nil, err
		}
	}
	return c, nil
}
