// Package initrd lays out what gosupermin's init needs in an initramfs:
// the init program, the kernel modules to load and their load order.
//
// Layout, the same for both formats:
//
//	/init                          our init: the static gosupermin binary
//	/.gosupermin/config            "key=value" lines: format, kernel release
//	/.gosupermin/modules           load order: one file name of ko/ a line
//	/.gosupermin/ko/NAME.ko        the modules, decompressed at build time
//	/dev/console, /proc, /sys      added when missing (and /root for ext2)
//
// ext2 format: the initrd holds only the above; init mounts root= on /root
// and switches to it. cpio format: the initrd is the whole appliance plus
// the above. The appliance's own /init, if it has one, is stored as
// /.gosupermin/appliance-init (with its hard links kept), and init puts it
// back at /init before running it, so the appliance sees its tree as it
// was built; init removes /.gosupermin before handing over. This keeps
// the kernel's default rdinit=/init working with no extra boot parameter.
package initrd

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
)

// Paths of the layout.
const (
	InitPath      = "/init"
	Dir           = "/.gosupermin"
	ConfigFile    = Dir + "/config"
	ModulesFile   = Dir + "/modules"
	KODir         = Dir + "/ko"
	ApplianceInit = Dir + "/appliance-init"
)

// Formats of Config.Format.
const (
	FormatExt2 = "ext2" // the initrd mounts root= and switches to it
	FormatCPIO = "cpio" // the initrd is the appliance
)

// Config is what the builder tells init.
type Config struct {
	Format        string
	Kernel        string // release of the kernel the modules are for
	ApplianceInit bool   // cpio: the appliance's /init is at ApplianceInit
}

// Marshal writes the config file.
func (c Config) Marshal() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "format=%s\nkernel=%s\n", c.Format, c.Kernel)
	if c.ApplianceInit {
		fmt.Fprintf(&b, "appliance-init=%s\n", ApplianceInit)
	}
	return []byte(b.String())
}

// ParseConfig reads the config file; unknown keys are ignored.
func ParseConfig(b []byte) Config {
	var c Config
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "format":
			c.Format = v
		case "kernel":
			c.Kernel = v
		case "appliance-init":
			c.ApplianceInit = v != ""
		}
	}
	return c
}

// Options for Add.
type Options struct {
	Format   string // FormatExt2 or FormatCPIO
	Kernel   string
	Init     appliance.Source // the init program
	InitSize int64
	Modules  []Module
	Data     [][]byte // decompressed contents of Modules
	Time     time.Time
}

// Add puts the init, the modules and the config into m: an empty
// manifest for the ext2 format's initrd, the appliance for cpio.
func Add(m *appliance.Manifest, o Options) error {
	if len(o.Data) != len(o.Modules) {
		return errors.New("initrd: module data does not match the modules")
	}
	cfg := Config{Format: o.Format, Kernel: o.Kernel}
	put := func(e appliance.Entry) error {
		if e.ModTime.IsZero() {
			e.ModTime = o.Time
		}
		return m.Put(e)
	}
	dir := func(p string, mode uint32) error {
		if old, ok := m.Get(p); ok {
			if old.Kind == appliance.Dir {
				return nil
			}
			if o.Format == FormatCPIO && old.Kind == appliance.Symlink && p != Dir {
				return nil // the appliance's own layout: leave it
			}
		}
		return put(appliance.Entry{Path: p, Kind: appliance.Dir, Mode: mode})
	}
	if _, ok := m.Get("/"); !ok {
		if err := dir("/", 0o755); err != nil {
			return err
		}
	}
	if old, ok := m.Get(InitPath); ok {
		if o.Format != FormatCPIO {
			return errors.New("initrd: /init already present")
		}
		if old.Kind == appliance.Dir {
			return errors.New("the appliance's /init is a directory: there is no room for gosupermin's init")
		}
		if err := move(m, InitPath, ApplianceInit); err != nil {
			return err
		}
		cfg.ApplianceInit = true
	}
	if err := dir(Dir, 0o700); err != nil {
		return err
	}
	if err := dir(KODir, 0o700); err != nil {
		return err
	}
	if err := put(appliance.Entry{Path: InitPath, Kind: appliance.Regular, Mode: 0o755, Size: o.InitSize, Data: o.Init}); err != nil {
		return err
	}
	cb := cfg.Marshal()
	if err := put(appliance.Entry{Path: ConfigFile, Kind: appliance.Regular, Mode: 0o644, Size: int64(len(cb)), Data: appliance.Bytes(cb)}); err != nil {
		return err
	}
	var order strings.Builder
	for i, mod := range o.Modules {
		order.WriteString(mod.FileName() + "\n")
		if err := put(appliance.Entry{Path: KODir + "/" + mod.FileName(), Kind: appliance.Regular, Mode: 0o644,
			Size: int64(len(o.Data[i])), Data: appliance.Bytes(o.Data[i])}); err != nil {
			return err
		}
	}
	ob := []byte(order.String())
	if err := put(appliance.Entry{Path: ModulesFile, Kind: appliance.Regular, Mode: 0o644, Size: int64(len(ob)), Data: appliance.Bytes(ob)}); err != nil {
		return err
	}
	// Mount points, and a console for the kernel to open before devtmpfs.
	mounts := []string{"/dev", "/proc", "/sys"}
	if o.Format != FormatCPIO {
		mounts = append(mounts, "/root")
	}
	for _, p := range mounts {
		if _, ok := m.Get(p); !ok {
			mode := uint32(0o755)
			if p == "/root" {
				mode = 0o700
			} else if p == "/proc" || p == "/sys" {
				mode = 0o555
			}
			if err := dir(p, mode); err != nil {
				return err
			}
		}
	}
	if d, ok := m.Get("/dev"); ok && d.Kind == appliance.Dir {
		if _, ok := m.Get("/dev/console"); !ok {
			if err := put(appliance.Entry{Path: "/dev/console", Kind: appliance.CharDev, Mode: 0o600, Major: 5, Minor: 1}); err != nil {
				return err
			}
		}
	}
	return m.Check()
}

// move renames the entry at from to to, keeping hard links whole: the
// names of one file are regrouped so that the first in sort order holds
// the data, as the manifest requires.
func move(m *appliance.Manifest, from, to string) error {
	e, _ := m.Get(from)
	if e.Kind != appliance.Regular && e.Kind != appliance.Hardlink {
		c := *e
		c.Path = to
		m.Remove(from)
		return m.Put(c)
	}
	head := from
	if e.Kind == appliance.Hardlink {
		head = e.Link
	}
	data, ok := m.Get(head)
	if !ok {
		return fmt.Errorf("%s: hard link to missing %s", from, head)
	}
	names := []string{head}
	for _, x := range m.Entries() {
		if x.Kind == appliance.Hardlink && x.Link == head {
			names = append(names, x.Path)
		}
	}
	proto := *data
	for i, n := range names {
		m.Remove(n)
		if n == from {
			names[i] = to
		}
	}
	sort.Strings(names)
	for i, n := range names {
		c := proto
		c.Path = n
		if i > 0 {
			c.Kind, c.Link, c.Size, c.Data = appliance.Hardlink, names[0], 0, nil
		}
		if err := m.Put(c); err != nil {
			return err
		}
	}
	return nil
}

// InitBinary checks that the file at p can be an initramfs's /init: a
// static ELF executable (gosupermin built with CGO_ENABLED=0), and returns
// it as a manifest source with its size.
func InitBinary(p string) (appliance.Source, int64, error) {
	f, err := elf.Open(p)
	if err != nil {
		return nil, 0, fmt.Errorf("init program %s: %w", p, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, 0, fmt.Errorf("init program %s is not an executable", p)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return nil, 0, fmt.Errorf("init program %s is dynamically linked; the initrd needs a static binary: build gosupermin with CGO_ENABLED=0", p)
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, 0, err
	}
	return appliance.HostFile(p), fi.Size(), nil
}
