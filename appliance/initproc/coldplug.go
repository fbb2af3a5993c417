package initproc

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gosupermin/gosupermin/appliance/initrd/layout"
	"golang.org/x/sys/unix"
)

// coldplug loads, of the initrd's modules, those that drive the devices
// this machine has, as udev's coldplug would: it matches the modalias of
// every device in sysfs against the modules' aliases, loads one match
// (with what it needs), and looks again, since a bus driver brings new
// devices (virtio_pci the virtio devices, virtio_scsi the SCSI disks).
// The disks' drivers come first, and once the root device is there the
// rest is left to the appliance (its own udev and module tree): loading
// every module of the initrd takes most of the boot under emulation.
// When matching finds no root device, every module is loaded, as before.
type coldplug struct {
	index  map[string]layout.IndexEntry
	order  []string // load order: each module after what it needs
	loaded map[string]bool
	sysDir string
	load   func(name string) error // one module, its needs loaded
	log    func(format string, args ...any)
	trace  func(format string, args ...any) // with gosupermin.verbose=1
	// matchings counts the (costly) matchings of devices to modules.
	matchings int
}

func newColdplug(entries []layout.IndexEntry, sysDir string) *coldplug {
	c := &coldplug{index: map[string]layout.IndexEntry{}, loaded: map[string]bool{}, sysDir: sysDir,
		trace: func(string, ...any) {}}
	for _, e := range entries {
		c.index[e.Name] = e
		c.order = append(c.order, e.Name)
	}
	return c
}

// done says whether module name is loaded, or not one of the initrd's
// (built into the kernel, or missing: loading more will not bring it).
func (c *coldplug) done(name string) bool {
	_, ok := c.index[name]
	return c.loaded[name] || !ok
}

// need loads name and, first, what it needs; it says whether it worked.
func (c *coldplug) need(name string) bool {
	if c.loaded[name] {
		return true
	}
	e, ok := c.index[name]
	if !ok {
		return false
	}
	c.loaded[name] = true // also breaks dependency cycles
	for _, n := range e.Needs {
		c.need(n)
	}
	if err := c.load(name); err != nil && !errors.Is(err, unix.EEXIST) {
		if !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENXIO) {
			c.log("module %s: %v", name, err)
		}
		return false
	}
	return true
}

// busOf is the sysfs bus whose devices an alias pattern can match, from
// the pattern's prefix ("pci:v0000..." -> pci); "" for the CPU (one file,
// not a bus) and "*" for a prefix no bus is known for.
func busOf(pat string) string {
	p, _, ok := strings.Cut(pat, ":")
	p = strings.TrimRight(p, "*")
	switch {
	case !ok:
		return "*"
	case p == "cpu":
		return ""
	case p == "of":
		return "platform" // device-tree devices, virtio-mmio among them
	}
	return p
}

// modaliases are the modalias strings of the devices on the buses the
// modules of names can drive: listing every bus (ACPI has hundreds of
// devices) is slow under emulation.
func (c *coldplug) modaliases(names []string) []string {
	buses := map[string]bool{}
	for _, n := range names {
		for _, pat := range c.index[n].Aliases {
			buses[busOf(pat)] = true
		}
	}
	var files []string
	if buses["*"] {
		files, _ = filepath.Glob(filepath.Join(c.sysDir, "bus", "*", "devices", "*", "modalias"))
	} else {
		for b := range buses {
			if b != "" {
				m, _ := filepath.Glob(filepath.Join(c.sysDir, "bus", b, "devices", "*", "modalias"))
				files = append(files, m...)
			}
		}
	}
	if buses[""] || buses["*"] {
		files = append(files, filepath.Join(c.sysDir, "devices", "system", "cpu", "modalias"))
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// rank orders the drivers to try: virtio ones first (a virtual machine's
// disks), then other devices', then the CPU's (its crypto helpers).
func (c *coldplug) rank(name string) int {
	switch {
	case strings.HasPrefix(name, "virtio"):
		return 0
	case c.onlyCPU(name):
		return 2
	}
	return 1
}

// candidates are the modules not yet loaded whose aliases match a device,
// of the best rank that has any, in load order. Matching is the costly
// part under emulation: a rank is only matched when the ones before it
// have nothing.
func (c *coldplug) candidates() []string {
	c.matchings++
	for rank := range 3 {
		var names []string
		for _, name := range c.order {
			if !c.loaded[name] && c.rank(name) == rank && len(c.index[name].Aliases) > 0 {
				names = append(names, name)
			}
		}
		aliases := c.modaliases(names)
		var out []string
		for _, name := range names {
			if c.matches(name, aliases) {
				out = append(out, name)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

func (c *coldplug) matches(name string, aliases []string) bool {
	for _, pat := range c.index[name].Aliases {
		// The literal start of a pattern ("pci:v00001AF4d") rules out
		// most devices at the cost of a comparison.
		lit := pat[:strings.IndexAny(pat+"*", "*?[\\")]
		for _, a := range aliases {
			if !strings.HasPrefix(a, lit) {
				continue
			}
			if ok, _ := path.Match(pat, a); ok {
				return true
			}
		}
	}
	return false
}

func (c *coldplug) onlyCPU(name string) bool {
	for _, pat := range c.index[name].Aliases {
		if !strings.HasPrefix(pat, "cpu:") {
			return false
		}
	}
	return true
}

// run loads the root's filesystem drivers, then device drivers one by one
// until done says the root is there (nil: until no device wants one),
// then everything left when done never said so. It returns how many
// modules it loaded.
func (c *coldplug) run(fsModules, drivers []string, done func() bool) int {
	for _, m := range fsModules {
		c.need(m)
	}
	// The machine's own drivers first: when they bring the root, no
	// device is matched at all.
	for _, m := range drivers {
		if done() {
			c.trace("root found with the machine's drivers")
			return len(c.loaded)
		}
		if _, ok := c.index[m]; ok && !c.loaded[m] {
			c.need(m)
		}
	}
	for range len(c.order) {
		t := time.Now()
		if done() {
			c.trace("root found in %.3f s", time.Since(t).Seconds())
			return len(c.loaded)
		}
		t2 := time.Now()
		cands := c.candidates()
		c.trace("root looked for in %.3f s, %d candidates in %.3f s", t2.Sub(t).Seconds(), len(cands), time.Since(t2).Seconds())
		if len(cands) == 0 {
			break
		}
		c.need(cands[0])
	}
	if !done() {
		c.log("the devices' drivers did not bring the root device: loading every module")
		for _, m := range c.order {
			c.need(m)
		}
	}
	return len(c.loaded)
}

// coldplugModules is loadModules with the initrd's index: see coldplug.
// It returns false when the initrd has no index (made by an older build).
func (in *initState) coldplugModules() bool {
	b, err := os.ReadFile(layout.IndexFile)
	if err != nil {
		return false
	}
	t := time.Now()
	c := newColdplug(layout.ParseIndex(b), "/sys")
	failed := 0
	c.load = func(name string) error {
		lt := time.Now()
		err := loadModule(filepath.Join(layout.KODir, name+".ko"))
		if in.p.verbose {
			in.logf("module %s: %.3f s (%v)", name, time.Since(lt).Seconds(), err)
		}
		if err != nil && !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENXIO) {
			failed++
		}
		return err
	}
	c.log = in.logf
	if in.p.verbose {
		c.trace = in.logf
	}
	var done func() bool
	fs := []string{}
	if in.cfg.Format != layout.FormatCPIO {
		// The cpio appliance keeps no module tree: it gets every module.
		fs = in.p.rootfstype
		if len(fs) == 0 {
			fs = []string{"ext4", "ext2"}
		}
		if spec, err := parseRoot(in.p.root); err == nil {
			done = func() bool {
				_, ok := findRoot(spec, "/sys", "/dev")
				// --run also needs its channel's driver (the port's
				// name comes later, from the host: runOpen waits).
				return ok && (!in.p.run || c.done("virtio_console"))
			}
		}
	}
	if done == nil {
		for _, m := range c.order {
			c.need(m)
		}
	} else {
		c.run(fs, in.cfg.Drivers, done)
	}
	in.logf("loaded %d of %d modules in %.2f s (%d failed)", len(c.loaded), len(c.order), time.Since(t).Seconds(), failed)
	in.cp = c
	return true
}

// needModules loads modules that no device asks for (a file system about
// to be mounted) when the coldplug did not load them.
func (in *initState) needModules(names ...string) {
	if in.cp == nil {
		return // all of them were loaded
	}
	for _, n := range names {
		in.cp.need(n)
	}
}
