// Package initrd lays out what gosupermin's init needs in an initramfs:
// the init program, the kernel modules to load and their load order.
//
// Layout, the same for both formats:
//
//	/init                          our init (appliance/initproc), static, of the appliance's architecture
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
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/appliance/initrd/layout"
)

// The layout's paths and formats, as init reads them (package layout).
const (
	InitPath      = layout.InitPath
	Dir           = layout.Dir
	ConfigFile    = layout.ConfigFile
	ModulesFile   = layout.ModulesFile
	IndexFile     = layout.IndexFile
	KODir         = layout.KODir
	ApplianceInit = layout.ApplianceInit
	FormatExt2    = layout.FormatExt2
	FormatCPIO    = layout.FormatCPIO
)

// Options say what goes into an initrd.
type Options struct {
	Format   string // FormatExt2 or FormatCPIO
	Kernel   string // release of the kernel the modules are for
	Init     appliance.Source
	InitSize int64
	Modules  []LoadedModule // in load order
	Time     time.Time      // of the entries made
	// Drivers are modules the init tries first, in order: those of the
	// machine's disks and ports (arch.Qemu.Drivers).
	Drivers []string
}

// LoadedModule is a module with its decompressed contents.
type LoadedModule struct {
	Module
	Data []byte
	// Needs are the modules (names) that must be loaded before it;
	// Aliases the modalias patterns of the devices it drives.
	Needs, Aliases []string
}

// Manifest is the ext2 format's initrd: our init, the modules and the
// config, with the mount points init uses. It is sealed.
func Manifest(o Options) (*appliance.Manifest, error) {
	m := appliance.New()
	if err := add(m, o); err != nil {
		return nil, err
	}
	return m, m.Seal()
}

// Overlay is the cpio format's initramfs: the appliance app with our
// init, the modules and the config added. The appliance's own /init, if
// any, moves to ApplianceInit (init puts it back at boot). app is not
// changed; the result is sealed.
func Overlay(app *appliance.Manifest, o Options) (*appliance.Manifest, error) {
	m, err := appliance.Merge(app, appliance.New())
	if err != nil {
		return nil, err
	}
	if err := add(m, o); err != nil {
		return nil, err
	}
	return m, m.Seal()
}

// add puts the init, the modules and the config into m: an empty
// manifest for the ext2 format's initrd, the appliance for cpio.
func add(m *appliance.Manifest, o Options) error {
	l := adder{m: m, o: o}
	if _, ok := m.Get("/"); !ok {
		if err := l.dir("/", 0o755); err != nil {
			return err
		}
	}
	cfg := layout.Config{Format: o.Format, Kernel: o.Kernel, Drivers: o.Drivers}
	moved, err := l.moveApplianceInit()
	if err != nil {
		return err
	}
	cfg.ApplianceInit = moved
	for _, step := range []func() error{
		func() error { return l.dir(Dir, 0o700) },
		func() error { return l.dir(KODir, 0o700) },
		func() error {
			return l.put(appliance.Entry{Path: InitPath, Kind: appliance.Regular, Mode: 0o755, Size: o.InitSize, Data: o.Init})
		},
		func() error { return l.file(ConfigFile, cfg.Marshal()) },
		l.modules,
		l.mountPoints,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return m.Check()
}

// adder adds the initrd's entries to one manifest.
type adder struct {
	m *appliance.Manifest
	o Options
}

func (l adder) put(e appliance.Entry) error {
	if e.ModTime.IsZero() {
		e.ModTime = l.o.Time
	}
	return l.m.Put(e)
}

func (l adder) file(p string, data []byte) error {
	return l.put(appliance.Entry{Path: p, Kind: appliance.Regular, Mode: 0o644, Size: int64(len(data)), Data: appliance.Bytes(data)})
}

// dir makes directory p unless the manifest has one there, or (cpio) the
// appliance's own symlink in its stead.
func (l adder) dir(p string, mode uint32) error {
	if old, ok := l.m.Get(p); ok {
		if old.Kind == appliance.Dir {
			return nil
		}
		if l.o.Format == FormatCPIO && old.Kind == appliance.Symlink && p != Dir {
			return nil // the appliance's own layout: leave it
		}
	}
	return l.put(appliance.Entry{Path: p, Kind: appliance.Dir, Mode: mode})
}

// moveApplianceInit moves the appliance's /init aside (cpio): ours takes
// its place. It says whether there was one.
func (l adder) moveApplianceInit() (bool, error) {
	old, ok := l.m.Get(InitPath)
	switch {
	case !ok:
		return false, nil
	case l.o.Format != FormatCPIO:
		return false, errors.New("initrd: /init already present")
	case old.Kind == appliance.Dir:
		return false, errors.New("the appliance's /init is a directory: there is no room for gosupermin's init")
	}
	return true, move(l.m, InitPath, ApplianceInit)
}

// modules saves the modules and their load order.
func (l adder) modules() error {
	var order strings.Builder
	index := make([]layout.IndexEntry, 0, len(l.o.Modules))
	for _, mod := range l.o.Modules {
		order.WriteString(mod.FileName() + "\n")
		index = append(index, layout.IndexEntry{Name: mod.Name, Needs: mod.Needs, Aliases: mod.Aliases})
		if err := l.file(KODir+"/"+mod.FileName(), mod.Data); err != nil {
			return err
		}
	}
	if err := l.file(IndexFile, layout.MarshalIndex(index)); err != nil {
		return err
	}
	return l.file(ModulesFile, []byte(order.String()))
}

// mountPoints makes what init mounts (and /root for ext2), and a console
// for the kernel to open before devtmpfs.
func (l adder) mountPoints() error {
	mounts := []string{"/dev", "/proc", "/sys"}
	if l.o.Format != FormatCPIO {
		mounts = append(mounts, "/root")
	}
	for _, p := range mounts {
		if _, ok := l.m.Get(p); ok {
			continue
		}
		mode := uint32(0o755)
		if p == "/root" {
			mode = 0o700
		} else if p == "/proc" || p == "/sys" {
			mode = 0o555
		}
		if err := l.dir(p, mode); err != nil {
			return err
		}
	}
	if d, ok := l.m.Get("/dev"); ok && d.Kind == appliance.Dir {
		if _, ok := l.m.Get("/dev/console"); !ok {
			return l.put(appliance.Entry{Path: "/dev/console", Kind: appliance.CharDev, Mode: 0o600, Major: 5, Minor: 1})
		}
	}
	return nil
}

// move renames the entry at from to to, keeping hard links whole: the
// names of one file are regrouped so that the first in sort order holds
// the data, as the manifest requires.
func move(m *appliance.Manifest, from, to string) error {
	e, _ := m.Get(from)
	if e.Kind != appliance.Regular && e.Kind != appliance.Hardlink {
		c := *e
		c.Path = to
		if err := m.Remove(from); err != nil {
			return err
		}
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
		if err := m.Remove(n); err != nil {
			return err
		}
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

// InitBinary checks that the file at p can be the /init of an initrd of
// architecture want (nil: any): a static ELF executable of want's machine,
// class and byte order (see arch.CheckInit), and returns it as a manifest
// source with its size.
func InitBinary(p string, want *arch.Arch) (appliance.Source, int64, error) {
	size, err := arch.CheckInit(p, want)
	if err != nil {
		return nil, 0, err
	}
	return appliance.HostFile(p), size, nil
}
