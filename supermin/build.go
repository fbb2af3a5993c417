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
	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/internal/baseimage"
	"github.com/gosupermin/gosupermin/internal/gather"
	"github.com/gosupermin/gosupermin/internal/outdir"
	"github.com/gosupermin/gosupermin/internal/rootfs"
	"github.com/gosupermin/gosupermin/internal/supermind"
	"github.com/gosupermin/gosupermin/resolver"
)

// BuildOptions for Build.
type BuildOptions struct {
	Options
	// Inputs are supermin.d directories and files.
	Inputs []string
	// Out is the output directory, replaced only when the build succeeds.
	Out string
	// Format writes the appliance: Chroot{}, &Ext2{...}, &CPIO{...}.
	Format Format
	// IncludePackageList writes /packagelist: the closure's full names.
	IncludePackageList bool
	// IfNewer does nothing when Out is newer than every input and the
	// package database.
	IfNewer bool
	// Firstboot saves the maintainer scripts, run on the first boot.
	Firstboot bool
}

// Build resolves the inputs' roots against the database under Root,
// gathers their files and has the Format write the appliance at Out.
func Build(ctx context.Context, o BuildOptions) error {
	// Before any input is read: an input changed from now on is newer
	// than the output (IfNewer).
	start := outdir.Now()
	if o.Format == nil {
		return errors.New("no output format")
	}
	root, err := o.root()
	if err != nil {
		return err
	}
	if err := outdir.CheckDisjoint(o.Out, o.Inputs, root); err != nil {
		return err
	}
	in, err := supermind.Read(o.Inputs)
	if err != nil {
		return err
	}
	tree, err := rootfs.Open(root)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	defer tree.Close()
	db, driver, err := OpenDB(tree.FS())
	if err != nil {
		return err
	}
	defer closeDB(db)
	o.logf(1, "package database: %s under %s", driver, root)
	var dbFiles []string
	for _, f := range db.DBFiles() {
		dbFiles = append(dbFiles, filepath.Join(root, f))
	}
	if o.IfNewer {
		up, err := outdir.UpToDate(o.Out, o.Inputs, dbFiles)
		if err != nil {
			return err
		}
		if up {
			o.logf(1, "%s is newer than its inputs: nothing to do", o.Out)
			return nil
		}
	}
	cl, err := o.resolve(db, in.Packages)
	if err != nil {
		return err
	}
	a := &Appliance{Packages: cl.Packages, Root: root, Epoch: o.Epoch, Clamp: !o.Epoch.IsZero(), opt: &o.Options, tree: tree}
	defer func() {
		for _, c := range a.closers {
			c()
		}
	}()
	if a.Epoch.IsZero() {
		// The same database gives the same made-up times.
		a.Epoch = newest(dbFiles)
	}
	// Large files of base images wait here, unnamed, beside the output.
	spool, err := baseimage.NewSpool(filepath.Dir(filepath.Clean(o.Out)))
	if err != nil {
		return err
	}
	a.closers = append(a.closers, spool.Close)
	if err := o.gather(ctx, a, db, in, spool); err != nil {
		return err
	}
	res, err := outdir.Replace(ctx, o.Out, start, func(tmp string) error {
		if err := o.Format.Write(ctx, a, tmp); err != nil {
			return err
		}
		a.ReportUnreadable(nil)
		return nil
	})
	for _, p := range res.Removed {
		o.logf(1, "removed %s, left by a build that was killed", p)
	}
	for _, w := range res.Warnings() {
		o.warnf("%s", w)
	}
	return err
}

// resolve computes the closure of roots; maintainer scripts take the
// Essential packages (a shell, coreutils, sed, base-passwd) for granted,
// so with Firstboot they come along.
func (o *BuildOptions) resolve(db backends.DB, roots []string) (*resolver.Closure, error) {
	n := len(roots)
	if o.Firstboot {
		roots = append(roots[:len(roots):len(roots)], essentials(db)...)
	}
	cl, err := resolver.Resolve(db, roots, func(msg string) { o.warnf("%s", msg) })
	if err != nil {
		return nil, err
	}
	for _, name := range cl.Missing {
		o.warnf("package %s is not installed: skipped", name)
	}
	o.logf(1, "%d roots, %d packages in the closure", n, len(cl.Packages))
	for _, p := range cl.Packages {
		o.logf(2, "  %s", p.FullName)
	}
	return cl, nil
}

// gather makes the appliance's manifest: the closure's files, hostfiles,
// the base images over them, the package list, the first-boot scripts.
func (o *BuildOptions) gather(ctx context.Context, a *Appliance, db backends.DB, in *supermind.Inputs, spool *baseimage.Spool) error {
	t := gather.NewTree(a.tree, gather.Options{Epoch: a.Epoch, Clamp: a.Clamp, Log: o.log})
	if err := t.AddPackages(ctx, db, a.Packages, in.Excludes); err != nil {
		return err
	}
	if err := t.AddHostFiles(in.HostFiles); err != nil {
		return err
	}
	for _, img := range in.BaseImages {
		if err := baseimage.Unpack(ctx, t.Manifest(), img, spool); err != nil {
			return err
		}
	}
	if o.IncludePackageList {
		var names []string
		for _, p := range a.Packages {
			names = append(names, p.FullName)
		}
		sort.Strings(names)
		data := []byte(strings.Join(names, "\n") + "\n")
		if err := t.Manifest().Put(appliance.Entry{Path: "/packagelist", Kind: appliance.Regular, Mode: 0o644,
			ModTime: a.Epoch, Size: int64(len(data)), Data: appliance.Bytes(data)}); err != nil {
			return err
		}
	}
	if o.Firstboot {
		if err := t.AddFirstboot(db, a.Packages); err != nil {
			return err
		}
	}
	m, err := t.Finish()
	if err != nil {
		return err
	}
	a.Manifest, a.unreadable = m, t.Unreadable()
	o.logf(1, "%d entries in the appliance", m.Len())
	return nil
}

// newest is the latest mtime of paths: the default time of entries we make
// up, so that the same database gives the same output.
func newest(paths []string) time.Time {
	var t time.Time
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t.Truncate(time.Second)
}

// essentials names the installed Essential packages of the native
// architecture (or all).
func essentials(db backends.DB) []string {
	var out []string
	for _, p := range db.Packages() {
		if p.Essential && (p.Arch == db.NativeArch() || p.Arch == "all" || p.Arch == "") {
			out = append(out, p.Name)
		}
	}
	return out
}

var errNoPackages = fmt.Errorf("no packages given")
