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
	// SBOM, when its Path is set, asks for a software bill of materials
	// of the appliance.
	SBOM SBOM
	// RemoveOld, when set, is given the previous output, moved aside to
	// old and locked by lock (an flock), to remove in the background:
	// Build then returns as soon as the new output is in place. It hands
	// both to another process, which calls RemoveMoved; on an error Build
	// removes old itself. Nil: Build removes it before returning.
	RemoveOld func(old string, lock *os.File) error
}

// RemoveMoved removes the previous output given to BuildOptions.RemoveOld,
// in the process it was handed to, lock inherited. A previous output left
// over because that process was killed is removed by the next build into
// the same output.
func RemoveMoved(old string, lock *os.File) error { return outdir.RemoveMoved(old, lock) }

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
	if o.SBOM.Path != "" {
		if err := outdir.CheckBeside(o.Out, o.SBOM.Path); err != nil {
			return fmt.Errorf("the bill of materials %w", err)
		}
	}
	tree, err := rootfs.Open(root)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	defer tree.Close()
	if o.IfNewer {
		// Stat calls only: libguestfs asks at every launch.
		if up, err := o.upToDate(tree); err != nil || up {
			return err
		}
	}
	a, err := o.gather(ctx, tree, root)
	if err != nil {
		return err
	}
	defer a.close()
	if fi, err := os.Lstat(o.Out); err == nil && fi.IsDir() {
		a.Previous = o.Out
	}
	var sbom *staged
	defer func() { sbom.abort() }()
	res, err := outdir.Replace(ctx, o.Out, outdir.Options{Start: start, RemoveOld: o.RemoveOld}, func(tmp string) error {
		if err := o.Format.Write(ctx, a, tmp); err != nil {
			return err
		}
		a.ReportUnreadable(nil)
		// Written now, renamed into place once the output is: an SBOM
		// exists only for an output that does.
		staged, err := o.stageSBOM(a)
		sbom = staged
		return err
	})
	for _, p := range res.Removed {
		o.logf(1, "removed %s, left by a build that was killed", p)
	}
	for _, w := range res.Warnings() {
		o.warnf("%s", w)
	}
	if err != nil {
		return err
	}
	return sbom.commit()
}

// upToDate says whether Out is newer than every input file and every
// file of the package database, looking at their times only.
func (o *BuildOptions) upToDate(tree *rootfs.FS) (bool, error) {
	d, err := detect(tree.FS())
	if err != nil {
		return false, err
	}
	fi, err := os.Stat(o.Out)
	if err != nil || !dbTime(tree, d.Files(tree.FS())).Before(fi.ModTime()) {
		return false, nil
	}
	if o.SBOM.Path != "" {
		// An SBOM asked for now is written, even of an appliance that is
		// up to date.
		if _, err := os.Stat(o.SBOM.Path); err != nil {
			return false, nil
		}
	}
	up, err := outdir.UpToDate(o.Out, o.Inputs, nil)
	if up {
		o.logf(1, "%s is newer than its inputs: nothing to do", o.Out)
	}
	return up, err
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

// gather reads the inputs and the database, resolves the closure and
// makes the appliance's manifest: the closure's files, hostfiles, the
// base images over them, the package list, the first-boot scripts.
func (o *BuildOptions) gather(ctx context.Context, tree *rootfs.FS, root string) (a *Appliance, err error) {
	in, err := supermind.Read(o.Inputs)
	if err != nil {
		return nil, err
	}
	db, driver, err := OpenDB(tree.FS())
	if err != nil {
		return nil, err
	}
	o.logf(1, "package database: %s under %s", driver, root)
	cl, err := o.resolve(db, in.Packages)
	if err != nil {
		closeDB(db)
		return nil, err
	}
	made := &Appliance{Packages: cl.Packages, Root: root, Epoch: o.Epoch, Clamp: !o.Epoch.IsZero(), opt: &o.Options, tree: tree,
		db: db, deps: cl.Deps,
		dbArch: arch.Source{What: fmt.Sprintf("the package database (%s) of %s", driver, root), Name: db.NativeArch()}}
	// Open until the build ends: the SBOM describes the packages once the
	// format has written the appliance.
	made.closers = append(made.closers, func() error { closeDB(db); return nil })
	defer func() {
		if err != nil {
			made.close() // the spool
		}
	}()
	a = made
	if a.Epoch.IsZero() {
		// The same database gives the same made-up times.
		a.Epoch = dbTime(tree, db.DBFiles()).Truncate(time.Second)
	}
	// Large files of base images wait here, unnamed, beside the output.
	spool, err := baseimage.NewSpool(filepath.Dir(filepath.Clean(o.Out)))
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, spool.Close)
	t := gather.NewTree(tree, gather.Options{Epoch: a.Epoch, Clamp: a.Clamp, Log: o.log, Progress: o.gatherProgress()})
	if err := t.AddPackages(ctx, db, a.Packages, in.Excludes); err != nil {
		return nil, err
	}
	if err := t.AddHostFiles(in.HostFiles); err != nil {
		return nil, err
	}
	for _, img := range in.BaseImages {
		if err := baseimage.Unpack(ctx, t.Manifest(), img, spool); err != nil {
			return nil, err
		}
	}
	if o.IncludePackageList {
		if err := t.Manifest().Put(packageList(a.Packages, a.Epoch)); err != nil {
			return nil, err
		}
	}
	if o.Firstboot {
		if err := t.AddFirstboot(db, a.Packages); err != nil {
			return nil, err
		}
	}
	if a.Manifest, err = t.Finish(); err != nil {
		return nil, err
	}
	a.unreadable = t.Unreadable()
	o.logf(1, "%d entries in the appliance", a.Manifest.Len())
	return a, nil
}

// packageList is /packagelist: the closure's full names, sorted.
func packageList(pkgs []*backends.Package, epoch time.Time) appliance.Entry {
	var names []string
	for _, p := range pkgs {
		names = append(names, p.FullName)
	}
	sort.Strings(names)
	data := []byte(strings.Join(names, "\n") + "\n")
	return appliance.Entry{Path: "/packagelist", Kind: appliance.Regular, Mode: 0o644, ModTime: epoch,
		Size: int64(len(data)), Data: appliance.Bytes(data)}
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
