package supermin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/chroot"
	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/resolver"
)

// BuildOptions for Build.
type BuildOptions struct {
	Options
	Inputs             []string
	Out                string
	Format             string // "chroot", "ext2" or "cpio"
	Size               int64  // ext2 image size in bytes
	CopyKernel         bool
	HostCPU            string
	IncludePackageList bool
	IfNewer            bool
	Compress           string // cpio: "zstd", "gzip" or "none"
	Firstboot          bool   // save maintainer scripts, run them on first boot
}

// Formats are the output formats Build knows.
var Formats = map[string]func(ctx context.Context, b *build, tmp string) error{
	"chroot": writeChroot,
}

// build is the state of one Build, shared by the format writers.
type build struct {
	*BuildOptions
	root     string
	db       backends.DB
	closure  *resolver.Closure
	manifest *appliance.Manifest
	tree     *tree // host files into manifest, canonicalised
	epoch    time.Time
	reported int // unreadable files already reported
}

// Build resolves the inputs' roots against the database under Root,
// gathers their files and writes the appliance at Out.
func Build(ctx context.Context, o BuildOptions) error {
	write, ok := Formats[o.Format]
	if !ok {
		return fmt.Errorf("unknown output format %q", o.Format)
	}
	root, err := o.root()
	if err != nil {
		return err
	}
	in, err := ReadInputs(o.Inputs)
	if err != nil {
		return err
	}
	db, driver, err := OpenDB(root)
	if err != nil {
		return err
	}
	o.logf(1, "package database: %s under %s", driver, root)
	var dbFiles []string
	for _, f := range db.DBFiles() {
		dbFiles = append(dbFiles, filepath.Join(root, f))
	}
	if o.IfNewer {
		up, err := upToDate(o.Out, o.Inputs, dbFiles)
		if err != nil {
			return err
		}
		if up {
			o.logf(1, "%s is newer than its inputs: nothing to do", o.Out)
			return nil
		}
	}
	b := &build{BuildOptions: &o, root: root, db: db, epoch: o.Epoch}
	if b.epoch.IsZero() {
		b.epoch = newest(dbFiles)
	}
	if err := b.gather(ctx, in); err != nil {
		return err
	}
	return replaceOutput(ctx, o.Out, func(tmp string) error { return write(ctx, b, tmp) })
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

func (b *build) gather(ctx context.Context, in *Inputs) error {
	roots := in.Packages
	if b.Firstboot {
		// Maintainer scripts take the Essential packages (a shell, coreutils,
		// sed, base-passwd) for granted: they are everyone's dependency.
		roots = append(roots[:len(roots):len(roots)], essentials(b.db)...)
	}
	cl, err := resolver.Resolve(b.db, roots, func(msg string) { b.warnf("%s", msg) })
	if err != nil {
		return err
	}
	for _, name := range cl.Missing {
		b.warnf("package %s is not installed: skipped", name)
	}
	b.closure = cl
	b.logf(1, "%d roots, %d packages in the closure", len(in.Packages), len(cl.Packages))
	if b.Verbose >= 2 {
		for _, p := range cl.Packages {
			b.logf(2, "  %s", p.FullName)
		}
	}
	inClosure := map[string]bool{}
	for _, p := range cl.Packages {
		inClosure[p.Name] = true
	}
	m := appliance.New()
	t := newTree(b.root, m, b.epoch)
	b.tree = t
	t.addDir("/")
	nfiles, nexcl := 0, 0
	for _, p := range cl.Packages {
		if err := ctx.Err(); err != nil {
			return err
		}
		files, err := b.db.Files(p)
		if err != nil {
			return err
		}
		for _, f := range files {
			if f.Config {
				continue // from the base image
			}
			dst := f.Path
			if f.DivertedBy == ":" || inClosure[f.DivertedBy] {
				dst = f.Source // the diverter is in the appliance too: keep the host's layout
			}
			if excluded(in.Excludes, f.Path) || dst != f.Path && excluded(in.Excludes, dst) {
				nexcl++
				continue
			}
			if err := b.add(t, dst, f.Source); err != nil {
				return err
			}
			nfiles++
		}
	}
	b.logf(1, "%d package files, %d after excludefiles", nfiles+nexcl, nfiles)
	for _, pat := range in.HostFiles {
		matches, err := t.glob(pat)
		if err != nil {
			return fmt.Errorf("hostfiles pattern %q: %w", pat, err)
		}
		for _, p := range matches {
			if err := b.add(t, p, p); err != nil {
				return err
			}
		}
	}
	for _, img := range in.BaseImages {
		if err := unpackBase(m, img); err != nil {
			return err
		}
	}
	if b.IncludePackageList {
		var names []string
		for _, p := range cl.Packages {
			names = append(names, p.FullName)
		}
		sort.Strings(names)
		data := []byte(strings.Join(names, "\n") + "\n")
		if err := m.Put(appliance.Entry{Path: "/packagelist", Kind: appliance.Regular, Mode: 0o644,
			ModTime: b.epoch, Size: int64(len(data)), Data: appliance.Bytes(data)}); err != nil {
			return err
		}
	}
	if b.Firstboot {
		if err := b.addFirstboot(); err != nil {
			return err
		}
	}
	t.LinkHardlinks()
	t.AddParents()
	b.clampTimes(m)
	b.manifest = m
	b.logf(1, "%d entries in the appliance", m.Len())
	return m.Check()
}

// clampTimes applies SOURCE_DATE_EPOCH, when set, to every entry.
func (b *build) clampTimes(m *appliance.Manifest) {
	if !b.Epoch.IsZero() {
		m.ClampTimes(b.Epoch)
	}
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

// add puts the host file src at dst, both canonicalised through the host's
// directory symlinks.
func (b *build) add(t *tree, dst, src string) error {
	cdst, err := t.Canon(dst)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(b.root, dst), err)
	}
	csrc := cdst
	if src != dst {
		if csrc, err = t.Canon(src); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(b.root, src), err)
		}
	}
	if _, err := t.Add(cdst, csrc); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(b.root, src), err)
	}
	return nil
}

// reportUnreadable tells, once, which files this user could not read and
// so left out: a count and the first few, every one with -v.
func (b *build) reportUnreadable() {
	t := b.tree
	if t == nil || len(t.unreadable) == b.reported {
		return
	}
	paths := t.unreadable[b.reported:]
	b.reported = len(t.unreadable)
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
	b.warnf("%d %s not readable by this user and left out of the appliance (building as root includes them): %s", len(paths), files, list)
	if len(paths) > show {
		for _, p := range paths {
			b.logf(1, "  not readable, left out: %s", p)
		}
	}
}

func excluded(patterns []string, p string) bool {
	for _, pat := range patterns {
		if fnmatch(pat, p) {
			return true
		}
	}
	return false
}

func writeChroot(ctx context.Context, b *build, tmp string) error {
	b.reportUnreadable()
	if err := b.manifest.Seal(); err != nil {
		return err
	}
	return chroot.NewWriter(tmp, chroot.Options{
		Owners: os.Geteuid() == 0,
		Warn:   func(s string) { b.warnf("%s", s) },
	}).WriteManifest(ctx, b.manifest)
}
