package supermin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/appliance/chroot"
	"github.com/gosupermin/gosupermin/appliance/kernel"
	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/internal/rootfs"
)

// A Format writes an appliance into the output directory: Chroot, Ext2
// and CPIO are supermin's; a program may bring its own.
type Format interface {
	// Write fills dir, a new empty directory, with the appliance a.
	Write(ctx context.Context, a *Appliance, dir string) error
}

var (
	_ Format = Chroot{}
	_ Format = (*Ext2)(nil)
	_ Format = (*CPIO)(nil)
)

// Appliance is what Build gives a Format: the sealed manifest of the
// appliance's files and what it was made from.
type Appliance struct {
	Manifest *appliance.Manifest
	// Packages are the closure, in dependency order.
	Packages []*backends.Package
	// Root is the tree the files come from, absolute.
	Root string
	// Epoch is the time of made-up entries; with Clamp, no time is later
	// (SOURCE_DATE_EPOCH).
	Epoch time.Time
	Clamp bool
	// Kernel is the kernel a bootable format chose for the appliance; it
	// sets it, for the bill of materials. Nil for the chroot format.
	Kernel *kernel.Kernel
	// Previous is the output this build replaces, if there is one: a
	// format may take over what it checks there is what it would write
	// (the ELF kernel), and must not change it.
	Previous string

	opt        *Options
	db         backends.DB                               // open until the build ends
	deps       map[*backends.Package][]*backends.Package // the resolver's choices
	tree       *rootfs.FS
	dbArch     arch.Source    // the package database's architecture
	closers    []func() error // what the build closes when it ends
	unreadable []string
	reported   bool
}

// close releases what the appliance's data is read from.
func (a *Appliance) close() {
	for _, c := range a.closers {
		c()
	}
	a.closers = nil
}

// Logf passes a message of the given -v level to the build's log.
func (a *Appliance) Logf(level int, format string, args ...any) { a.opt.logf(level, format, args...) }

// Warnf passes a warning to the build's log.
func (a *Appliance) Warnf(format string, args ...any) { a.opt.warnf(format, args...) }

// ReportUnreadable tells, once, which files this user could not read and
// so left out, more being what the format itself left out: a count and
// the first few, every one with -v. Formats call it before their long
// write; Build calls it after the format in case it did not.
func (a *Appliance) ReportUnreadable(more []string) {
	if a.reported {
		return
	}
	a.reported = true
	paths := append(append([]string(nil), a.unreadable...), more...)
	if len(paths) == 0 {
		return
	}
	sort.Strings(paths)
	const show = 3
	list := strings.Join(paths[:min(show, len(paths))], ", ")
	if len(paths) > show {
		list += fmt.Sprintf(" and %d more (-v lists them all)", len(paths)-show)
	}
	files := "files are"
	if len(paths) == 1 {
		files = "file is"
	}
	a.Warnf("%d %s not readable by this user and left out of the appliance (building as root includes them): %s", len(paths), files, list)
	if len(paths) > show {
		for _, p := range paths {
			a.Logf(1, "  not readable, left out: %s", p)
		}
	}
}

// Chroot is the chroot format: the appliance as a directory tree (as
// root, with its owners; devices only as root).
type Chroot struct{}

func (Chroot) Write(ctx context.Context, a *Appliance, dir string) error {
	a.ReportUnreadable(nil)
	m := a.meter(PhaseChroot, a.Manifest)
	err := chroot.NewWriter(dir, chroot.Options{
		Owners:   os.Geteuid() == 0,
		Warn:     func(s string) { a.Warnf("%s", s) },
		Progress: m.addFunc(),
	}).WriteManifest(ctx, a.Manifest)
	if err == nil {
		m.end()
	}
	return err
}

// writeFile creates p and fills it with write; on failure p is removed
// with the rest of the temporary output.
func writeFile(p string, write func(*os.File) error) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", filepath.Base(p), err)
	}
	return f.Close()
}

// errNoInit is returned by the bootable formats without an init program.
var errNoInit = errors.New("no init program given for the initrd (Boot.Init or Boot.FindInit)")
