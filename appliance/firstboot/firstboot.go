// Package firstboot saves the maintainer scripts of an appliance's packages
// in the appliance, with a POSIX-sh runner that runs them once, on its first
// boot (or by hand: chroot OUT /usr/lib/gosupermin/firstboot/run).
//
// The build never runs a script: it has no root, no chroot and no fakeroot.
// What the scripts make (/etc/passwd, /etc/ld.so.cache, alternatives links,
// users) is made inside the appliance, where the scripts' own tools are.
//
// # Order
//
// Packages come in dependency order (resolver.Closure.Packages: each package
// after its Pre-Depends and Depends, cycles broken by a deterministic
// depth-first walk). Each package is installed in turn, as apt installs a
// set with immediate configuration: its pre-install scripts ("preinst
// install", rpm %pre), then its post-install scripts ("postinst configure"
// with an empty second argument, rpm %post). Running every preinst first and every postinst after, as
// "dpkg -i" of the whole set would, breaks Pre-Depends: a preinst may need
// its pre-dependency configured (adduser in a preinst needs base-passwd's
// /etc/passwd), and the closure does not tell Pre-Depends from Depends. All
// files are on disk before the first script runs, as after an unpack of the
// whole set, so a script never misses a file of a later package.
//
// After every package: the post-transaction scripts (rpm %posttrans), in
// the same order; then, once, the dpkg triggers the packages are interested
// in: "postinst triggered 'NAME...'" for each interested package (libc-bin's
// ldconfig, for instance), with the names activated in the appliance.
//
// # Layout
//
// Each package with scripts has a directory, numbered in dependency order,
// holding its scripts under the names dpkg gives them in its info
// directory: /usr/lib/gosupermin/firstboot/003-iproute2/iproute2.postinst.
// debconf's confmodule derives a script's package, templates and config
// script from the script's path, so dpkg's PKG.config and PKG.templates
// are saved beside it. The manifest lists every step with its order,
// package, version, arch, script, arguments and file, or why it is skipped
// (rpm's <lua> scripts run only inside rpm).
//
// # Runner
//
// The runner exits at once when its stamp exists. Otherwise it runs every
// step with stdin empty, in /, umask 022, a plain PATH, LC_ALL=C, dpkg's
// environment (DPKG_MAINTSCRIPT_PACKAGE, _ARCH, _NAME, DPKG_ROOT empty,
// DPKG_RUNNING_VERSION, DEBIAN_FRONTEND=noninteractive) and a time limit
// (timeout(1) when the appliance has it). Output goes to the log, and to
// the console unless the kernel command line says quiet. A failing script
// is logged with its exit code and the others still run; a script whose
// interpreter is missing fails without running, except that without
// /bin/sh, scripts for /bin/sh run with the runner's own shell. While the
// scripts run, /usr/sbin/policy-rc.d forbids starting services (dpkg
// family). At the end the runner writes the status list and the stamp
// (also after failures: a failed script is not retried at every boot),
// syncs, and exits 1 if a script failed.
package firstboot

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/backends"
)

// Paths inside the appliance.
const (
	Dir          = "/usr/lib/gosupermin/firstboot"
	Runner       = Dir + "/run"
	ManifestFile = Dir + "/manifest"
	PolicyRCD    = Dir + "/policy-rc.d"
	StateDir     = "/var/lib/gosupermin"
	Stamp        = StateDir + "/firstboot.done"
	StatusFile   = StateDir + "/firstboot.status"
	LogFile      = "/var/log/gosupermin-firstboot.log"
)

// DefaultTimeout is the time limit of one script, in seconds. The runner
// takes another from GOSUPERMIN_FIRSTBOOT_SCRIPT_TIMEOUT or the kernel command
// line's gosupermin.firstboot.script_timeout=SECONDS (0: no limit).
const DefaultTimeout = 300

// Package is one package of the appliance, with its scripts.
type Package struct {
	Name    string
	Version string
	Arch    string
	Scripts *backends.Scripts // nil: none
}

// Options for New.
type Options struct {
	// Shell is the runner's interpreter ("#!" line); "/bin/sh" when empty.
	Shell string
	// Timeout is the default time limit of one script in seconds;
	// 0 means DefaultTimeout.
	Timeout int
	// Env are variables set for every script (backends.Install.Env).
	Env [][2]string
	// NoServices puts a policy-rc.d in place while the scripts run, so
	// that they start no service (backends.Install.NoServices).
	NoServices bool
	// Triggers run after every package's scripts (backends.Install.Triggers).
	Triggers []Trigger
}

// Trigger runs one of a package's saved scripts again, with Args.
type Trigger struct {
	Package Package
	Script  string
	Args    []string
	Env     [][2]string
}

// Step is one line of the manifest: one script run (or skipped).
type Step struct {
	Order   int
	Package Package
	Script  string   // the script's name: "preinst", "%post", "post_install"
	Args    []string // as the package manager would give them
	// File is the saved script, an absolute path in the appliance; ""
	// for an rpm "-p PROGRAM" script without a body.
	File string
	// Command is what the runner executes.
	Command []string
	// Env are the variables set for the script (name, value).
	Env [][2]string
	// Skipped says why the step is not run ("" when it is).
	Skipped string
	Trigger bool
}

// Label is the script and its arguments, each quoted for sh when needed
// (an empty argument as two single quotes).
func (s *Step) Label() string {
	parts := []string{s.Script}
	for _, a := range s.Args {
		parts = append(parts, Quote(a))
	}
	return strings.Join(parts, " ")
}

// Plan is the first-boot content of one appliance.
type Plan struct {
	Steps []Step
	opt   Options
	files []file // saved scripts
	dirs  map[int]string
	saved map[string]string // package name:arch and script name -> saved file
}

type file struct {
	path string
	mode uint32
	data []byte
}

// pending is a script waiting for its place in the order.
type pending struct {
	index int // in pkgs
	pkg   Package
	sc    backends.Script
}

// New orders the scripts of pkgs, given in installation order.
func New(pkgs []Package, opt Options) (*Plan, error) {
	if strings.TrimSpace(opt.Shell) == "" {
		opt.Shell = "/bin/sh"
	}
	if opt.Timeout == 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Timeout < 0 {
		return nil, fmt.Errorf("firstboot: negative timeout %d", opt.Timeout)
	}
	pl := &Plan{opt: opt, saved: map[string]string{}}
	pl.placeFiles(pkgs)
	for _, st := range order(pkgs) {
		pl.Steps = append(pl.Steps, pl.step(len(pl.Steps)+1, st))
	}
	for _, t := range opt.Triggers {
		pl.Steps = append(pl.Steps, pl.trigger(len(pl.Steps)+1, t))
	}
	return pl, nil
}

// order lists the scripts as they run: each package's pre-install then
// post-install scripts, in package order, then every post-transaction one.
func order(pkgs []Package) []pending {
	var steps, posttrans []pending
	for i, p := range pkgs {
		if p.Scripts == nil {
			continue
		}
		for _, phase := range []backends.ScriptPhase{backends.PreInstall, backends.PostInstall} {
			for _, sc := range p.Scripts.List {
				if sc.Phase == phase {
					steps = append(steps, pending{i, p, sc})
				}
			}
		}
		for _, sc := range p.Scripts.List {
			if sc.Phase == backends.PostTransaction {
				posttrans = append(posttrans, pending{i, p, sc})
			}
		}
	}
	return append(steps, posttrans...)
}

// placeFiles gives each package with something to save a directory of its
// own, numbered in installation order, and saves its extra files there
// under the names dpkg gives them in its info directory: debconf finds a
// postinst's package, templates and config script from the postinst's
// path (.../PKG.postinst, PKG.templates).
func (pl *Plan) placeFiles(pkgs []Package) {
	pl.dirs = map[int]string{}
	n := 0
	for _, p := range pkgs {
		if hasFiles(p) {
			n++
		}
	}
	width := max(len(strconv.Itoa(n)), 3)
	n = 0
	for i, p := range pkgs {
		if !hasFiles(p) {
			continue
		}
		n++
		pl.dirs[i] = fmt.Sprintf("%s/%0*d-%s", Dir, width, n, safeName(p.Name))
		for _, x := range p.Scripts.Extra {
			pl.files = append(pl.files, file{pl.dirs[i] + "/" + safeName(p.Name) + "." + safeName(x.Suffix), x.Mode, x.Data})
		}
	}
}

// step saves one script and says how the runner runs it.
func (pl *Plan) step(n int, st pending) Step {
	sc := st.sc
	s := Step{Order: n, Package: st.pkg, Script: sc.Name, Args: append([]string(nil), sc.Args...), Env: sc.Env}
	base := pl.dirs[st.index] + "/" + safeName(st.pkg.Name) + "." + safeName(strings.TrimLeft(sc.Name, "%"))
	mode := uint32(0o755)
	interp := strings.Fields(sc.Interpreter)
	switch {
	case strings.HasPrefix(sc.Interpreter, "<"):
		s.Skipped = sc.Interpreter + " scripts run only inside the package manager itself"
		base += ".skipped"
		mode = 0o644
	case len(sc.Body) == 0 && (len(interp) == 0 || sc.Function != ""):
		s.Skipped = "empty script"
	}
	if len(sc.Body) > 0 {
		s.File = base
		pl.files = append(pl.files, file{s.File, mode, sc.Body})
		pl.saved[st.pkg.Name+":"+st.pkg.Arch+" "+sc.Name] = s.File
	}
	if s.Skipped != "" {
		return s
	}
	switch {
	case sc.Function != "":
		if len(interp) == 0 {
			interp = []string{"/bin/sh"}
		}
		// As pacman does: the shell sources the file and calls the function.
		s.Command = append(interp, "-c", `. "$0" && `+sc.Function+` "$@"`, s.File)
	case len(interp) > 0 && s.File == "":
		s.Command = interp // rpm "%post -p PROGRAM" without a body
	case len(interp) > 0:
		s.Command = append(interp, s.File)
	default:
		s.Command = []string{s.File} // executed through its "#!" line, as dpkg does
	}
	s.Command = append(s.Command, s.Args...)
	return s
}

// trigger runs a package's saved script again for its triggers.
func (pl *Plan) trigger(n int, t Trigger) Step {
	f := pl.saved[t.Package.Name+":"+t.Package.Arch+" "+t.Script]
	s := Step{Order: n, Package: t.Package, Script: t.Script, Trigger: true, Args: t.Args, File: f, Env: t.Env}
	if f == "" {
		s.Skipped = t.Script + " not saved"
	} else {
		s.Command = append([]string{f}, s.Args...)
	}
	return s
}

// hasFiles says whether the package has anything to save.
func hasFiles(p Package) bool {
	if p.Scripts == nil {
		return false
	}
	if len(p.Scripts.Extra) > 0 {
		return true
	}
	for _, sc := range p.Scripts.List {
		if len(sc.Body) > 0 {
			return true
		}
	}
	return false
}

// safeName keeps a file name to letters, digits and ".+_-".
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '+' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// Skipped returns the steps that will not run.
func (pl *Plan) Skipped() []Step {
	var out []Step
	for _, s := range pl.Steps {
		if s.Skipped != "" {
			out = append(out, s)
		}
	}
	return out
}

// Manifest is the plain-text list of steps, tab-separated: order, package,
// version, arch, script, arguments (quoted for sh), file or why skipped.
func (pl *Plan) Manifest() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Maintainer scripts that %s runs once, on the first boot, in this order.\n", Runner)
	fmt.Fprintf(&b, "# Results: %s and %s.\n", StatusFile, LogFile)
	b.WriteString("# order\tpackage\tversion\tarch\tscript\targuments\tfile\n")
	for _, s := range pl.Steps {
		args := make([]string, len(s.Args))
		for i, a := range s.Args {
			args[i] = Quote(a)
		}
		last := strings.TrimPrefix(s.File, Dir+"/")
		if s.File == "" && len(s.Command) > 0 {
			last = strings.Join(s.Command, " ")
		}
		if s.Skipped != "" {
			last = "skipped: " + s.Skipped
		}
		fmt.Fprintf(&b, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Order, s.Package.Name, s.Package.Version,
			s.Package.Arch, s.Script, strings.Join(args, " "), last)
	}
	return []byte(b.String())
}

// Entries are the manifest entries of the plan: directories (with /tmp),
// saved scripts, the manifest and the runner. Entries whose path exists in the
// appliance already (directories) should be left as they are.
func (pl *Plan) Entries(mtime time.Time) []appliance.Entry {
	var out []appliance.Entry
	for _, d := range []string{"/usr/lib/gosupermin", Dir, StateDir, "/var/log"} {
		out = append(out, appliance.Entry{Path: d, Kind: appliance.Dir, Mode: 0o755, ModTime: mtime})
	}
	// Scripts use mktemp: /tmp comes from base-files, which nothing
	// depends on (it is Essential).
	out = append(out, appliance.Entry{Path: "/tmp", Kind: appliance.Dir, Mode: 0o1777, ModTime: mtime})
	add := func(p string, mode uint32, data []byte) {
		out = append(out, appliance.Entry{Path: p, Kind: appliance.Regular, Mode: mode, ModTime: mtime,
			Size: int64(len(data)), Data: appliance.Bytes(data)})
	}
	for _, f := range pl.files {
		add(f.path, f.mode, f.data)
	}
	add(ManifestFile, 0o644, pl.Manifest())
	if pl.opt.NoServices {
		add(PolicyRCD, 0o755, []byte("#!/bin/sh\n# Installed as /usr/sbin/policy-rc.d while the first-boot scripts run:\n# they must not start services.\nexit 101\n"))
	}
	add(Runner, 0o755, pl.Runner())
	return out
}

// Quote returns s quoted for sh when it needs quoting.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=+,@%-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
