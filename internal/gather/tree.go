// Package gather turns the files of a package tree into appliance manifest
// entries: the step from a resolved closure to a manifest.
//
// Paths are canonicalised through the tree's own directory symlinks: a
// directory component that is a symlink (the usrmerge /bin -> usr/bin)
// becomes a symlink entry, and the file is stored once, under the link's
// target. Files that share an inode stay hard links. A file the building
// user cannot read is left out and reported, not fatal (root reads
// everything).
package gather

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/internal/rootfs"
)

// Options for NewTree.
type Options struct {
	// Epoch is the time of the entries the tree makes up (directories
	// missing from the tree). When Clamp is set, no time is later.
	Epoch time.Time
	// Clamp clamps every time to Epoch, as reproducible builds
	// (SOURCE_DATE_EPOCH) want.
	Clamp bool
	// Log receives messages; level 0 are warnings.
	Log func(level int, msg string)
	// Progress, if set, is told how many of the packages a long step
	// (PhaseFiles, PhaseFirstboot) has done: 0 at its start, then after
	// each package.
	Progress func(phase string, done, total int64)
}

// Phases that Options.Progress is told of.
const (
	PhaseFiles     = "gathering package files"
	PhaseFirstboot = "saving first-boot scripts"
)

func (t *Tree) progress(phase string, done, total int) {
	if t.opt.Progress != nil {
		t.opt.Progress(phase, int64(done), int64(total))
	}
}

// Tree turns paths of a tree into entries of one manifest.
type Tree struct {
	opt   Options
	fs    *rootfs.FS
	m     *appliance.Manifest
	canon map[string]string // directory -> canonical directory
	inode map[string]fileID // regular files with several links
	// checkRead is set when the build runs as a user who may not read
	// every file (not root): unreadable files are left out, not fatal.
	checkRead  bool
	unreadable []string // host paths left out because this user cannot read them
}

type fileID struct{ dev, ino uint64 }

// NewTree starts an empty manifest from the tree fsys, holding the root
// directory itself.
func NewTree(fsys *rootfs.FS, opt Options) *Tree {
	t := newTree(fsys, opt)
	t.addDir("/")
	return t
}

func newTree(fsys *rootfs.FS, opt Options) *Tree {
	return &Tree{opt: opt, fs: fsys, m: appliance.New(), canon: map[string]string{"/": "/"}, inode: map[string]fileID{},
		checkRead: os.Geteuid() != 0}
}

// Manifest is the manifest being built, for what other layers add
// (base images, generated files).
func (t *Tree) Manifest() *appliance.Manifest { return t.m }

// Unreadable are the host paths left out because the building user may
// not read them, in the order met.
func (t *Tree) Unreadable() []string { return t.unreadable }

func (t *Tree) logf(level int, format string, args ...any) {
	if t.opt.Log != nil {
		t.opt.Log(level, fmt.Sprintf(format, args...))
	}
}

// Finish links the files that share an inode, adds every missing parent
// directory (with the tree's metadata where the tree has it), clamps the
// times and seals the manifest.
func (t *Tree) Finish() (*appliance.Manifest, error) {
	t.linkHardlinks()
	if err := t.addParents(); err != nil {
		return nil, err
	}
	if t.opt.Clamp {
		if err := t.m.ClampTimes(t.opt.Epoch); err != nil {
			return nil, err
		}
	}
	if err := t.m.Seal(); err != nil {
		// Each entry was checked as it came: the tree moved under us.
		return nil, fmt.Errorf("%s: %w (did the tree change while it was read?)", t.fs.Dir(), err)
	}
	return t.m, nil
}

// skipUnreadable records host path p as left out when err says this user
// may not read it. Root reads everything, so for root every error stays one.
func (t *Tree) skipUnreadable(p string, err error) bool {
	if !t.checkRead || !errors.Is(err, fs.ErrPermission) {
		return false
	}
	t.unreadable = append(t.unreadable, p)
	return true
}

// readable says whether this user may read the file p, as the kernel
// decides it (mode bits, ACLs, supplementary groups).
func (t *Tree) readable(p string) bool { return !t.checkRead || t.fs.Readable(p) }

func (t *Tree) host(p string) string { return t.fs.HostPath(p) }

// maxLinks bounds symlink resolution, as the kernel's ELOOP does.
const maxLinks = 40

// canonDir resolves every symlink in directory d, staying inside the root,
// and records the symlinks it went through as entries.
func (t *Tree) canonDir(d string, depth int) (string, error) {
	if c, ok := t.canon[d]; ok {
		return c, nil
	}
	if depth > maxLinks {
		return "", fmt.Errorf("%s: too many levels of symbolic links", d)
	}
	parent, err := t.canonDir(path.Dir(d), depth+1)
	if err != nil {
		return "", err
	}
	p := path.Join(parent, path.Base(d))
	st, err := t.fs.LstatSys(p)
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.canon[d] = p // missing directories stay as they are; callers check
		return p, nil
	}
	target, err := t.fs.ReadLink(p)
	if err != nil {
		return "", err
	}
	if err := t.addEntry(p, p, st); err != nil {
		return "", err
	}
	next := target
	if !path.IsAbs(next) {
		next = path.Join(parent, next)
	}
	c, err := t.canonDir(path.Clean(next), depth+1)
	if err != nil {
		return "", err
	}
	if cst, err := t.fs.LstatSys(c); err == nil && cst.Mode&unix.S_IFMT == unix.S_IFDIR {
		t.addDir(c)
	}
	t.canon[d] = c
	return c, nil
}

// Canon returns p with its directory canonicalised.
func (t *Tree) Canon(p string) (string, error) {
	if p == "/" {
		return p, nil
	}
	d, err := t.canonDir(path.Dir(p), 0)
	if err != nil {
		return "", err
	}
	return path.Join(d, path.Base(p)), nil
}

// Add puts the tree's file src at dst, both canonicalised first. A path
// that does not exist is skipped, as one this user cannot read is (and
// recorded); a symlink to a directory brings its target directory along.
func (t *Tree) Add(dst, src string) error {
	cdst, err := t.Canon(dst)
	if err != nil {
		return fmt.Errorf("%s: %w", t.host(dst), err)
	}
	csrc := cdst
	if src != dst {
		if csrc, err = t.Canon(src); err != nil {
			return fmt.Errorf("%s: %w", t.host(src), err)
		}
	}
	if err := t.addCanonical(cdst, csrc); err != nil {
		return fmt.Errorf("%s: %w", t.host(src), err)
	}
	return nil
}

// Put adds a generated entry at e.Path, canonicalised, unless the tree
// has a directory there (or a symlink to one): the appliance's own.
func (t *Tree) Put(e appliance.Entry) error {
	p, err := t.Canon(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	if old, ok := t.m.Get(p); ok && (e.Kind == appliance.Dir || old.Kind == appliance.Dir) {
		return nil
	}
	return t.m.Put(e)
}

func (t *Tree) addCanonical(dst, src string) error {
	st, err := t.fs.LstatSys(src)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if t.skipUnreadable(t.host(src), err) {
		return nil // a parent directory this user cannot search
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG && !t.readable(src) {
		t.skipUnreadable(t.host(src), fs.ErrPermission)
		return nil
	}
	if err := t.addEntry(dst, src, st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		target, _ := t.fs.ReadLink(src)
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(dst), target)
		}
		if c, err := t.Canon(path.Clean(target)); err == nil {
			if fi, err := t.fs.Stat(c); err == nil && fi.IsDir() {
				t.addDir(c)
			}
		}
	}
	return nil
}

func (t *Tree) addDir(p string) {
	if _, ok := t.m.Get(p); ok {
		return
	}
	if st, err := t.fs.LstatSys(p); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		_ = t.addEntry(p, p, st)
	}
}

// addEntry adds the tree's file src, described by st, at p.
func (t *Tree) addEntry(p, src string, st *unix.Stat_t) error {
	e := appliance.Entry{
		Path:    p,
		Mode:    uint32(st.Mode) & 07777,
		UID:     st.Uid,
		GID:     st.Gid,
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		f := &file{fs: t.fs, name: src, dev: st.Dev, ino: st.Ino}
		e.Kind, e.Size, e.Data = appliance.Regular, st.Size, f
		// Fewer blocks than the size needs: the file has holes worth keeping.
		e.Sparse = st.Blocks*512 < st.Size
		if st.Nlink > 1 && p == src {
			t.inode[p] = fileID{st.Dev, st.Ino}
		}
	case unix.S_IFDIR:
		e.Kind = appliance.Dir
	case unix.S_IFLNK:
		target, err := t.fs.ReadLink(src)
		if err != nil {
			return err
		}
		e.Kind, e.Link = appliance.Symlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		e.Kind = appliance.CharDev
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			e.Kind = appliance.BlockDev
		}
		e.Major, e.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	case unix.S_IFIFO:
		e.Kind = appliance.FIFO
	case unix.S_IFSOCK:
		e.Kind = appliance.Socket
	}
	if old, ok := t.m.Get(p); ok && old.Kind == appliance.Dir && e.Kind == appliance.Dir {
		return nil
	}
	xs, err := t.fs.Xattrs(src)
	if err != nil {
		return err
	}
	for _, x := range xs {
		e.Xattrs = append(e.Xattrs, appliance.Xattr{Name: x.Name, Value: x.Value})
	}
	return t.m.Put(e)
}

// file is a regular file of the tree, read when a writer needs its data:
// opened without following a symlink, and refused when it is no longer
// the file gathered (swapped during the build).
type file struct {
	fs       *rootfs.FS
	name     string
	dev, ino uint64
}

var _ appliance.SparseSource = (*file)(nil)

func (f *file) String() string { return f.fs.HostPath(f.name) }

func (f *file) Open() (io.ReadCloser, error) { return f.open() }

func (f *file) open() (*os.File, error) {
	r, err := f.fs.OpenFile(f.name)
	if err != nil {
		return nil, err
	}
	if err := f.same(r); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (f *file) same(r *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(r.Fd()), &st); err != nil {
		return err
	}
	if st.Dev != f.dev || st.Ino != f.ino {
		return fmt.Errorf("%s: replaced by another file during the build", f)
	}
	return nil
}

// Extents finds the file's data with SEEK_DATA and SEEK_HOLE.
func (f *file) Extents() ([]appliance.Extent, error) {
	r, err := f.open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	fi, err := r.Stat()
	if err != nil {
		return nil, err
	}
	var out []appliance.Extent
	for off := int64(0); off < fi.Size(); {
		data, err := unix.Seek(int(r.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole from here
		}
		if err != nil {
			return []appliance.Extent{{Off: 0, Len: fi.Size()}}, nil // no SEEK_DATA here: all data
		}
		hole, err := unix.Seek(int(r.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, appliance.Extent{Off: data, Len: hole - data})
		off = hole
	}
	return out, nil
}

// linkHardlinks turns files of the tree that share an inode into one
// Regular entry (the first path) and Hardlink entries, so data is stored once.
func (t *Tree) linkHardlinks() {
	groups := map[fileID][]string{}
	for p, id := range t.inode {
		if e, ok := t.m.Get(p); ok && e.Kind == appliance.Regular {
			if f, ok := e.Data.(*file); ok && f.name == p {
				groups[id] = append(groups[id], p)
			}
		}
	}
	for _, ps := range groups {
		if len(ps) < 2 {
			continue
		}
		sort.Strings(ps)
		for _, p := range ps[1:] {
			e, _ := t.m.Get(p)
			e.Kind, e.Link, e.Size, e.Data = appliance.Hardlink, ps[0], 0, nil
		}
	}
}

// addParents gives every entry its ancestors, with the tree's metadata
// where the directory exists there.
func (t *Tree) addParents() error {
	return t.m.AddParents(t.dirEntry)
}

// dirEntry is the metadata of directory p of the tree, or a made-up one.
func (t *Tree) dirEntry(p string) appliance.Entry {
	if st, err := t.fs.LstatSys(p); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return appliance.Entry{Mode: uint32(st.Mode) & 07777, UID: st.Uid, GID: st.Gid, ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec)}
	}
	return appliance.Entry{Mode: 0o755, ModTime: t.opt.Epoch}
}

// hasMeta says whether a hostfiles line is a pattern rather than a path.
func hasMeta(pat string) bool { return strings.ContainsAny(pat, `*?[\`) }

// glob expands a hostfiles pattern in the tree as filepath.Glob does (one
// component at a time, path.Match's syntax, names sorted), giving paths
// of the tree. A directory it cannot list because this user may not read
// it is reported rather than silently matching nothing.
func (t *Tree) glob(pat string) ([]string, error) {
	pat = path.Clean("/" + pat)
	if !hasMeta(pat) {
		return []string{pat}, nil
	}
	dir, file := path.Split(pat)
	if _, err := path.Match(file, ""); err != nil {
		return nil, err
	}
	dirs := []string{path.Clean(dir)}
	if hasMeta(dir) {
		var err error
		if dirs, err = t.glob(path.Clean(dir)); err != nil {
			return nil, err
		}
	}
	var out []string
	for _, d := range dirs {
		ents, err := t.fs.ReadDir(d)
		if err != nil {
			t.skipUnreadable(t.host(d), err) // else missing or not a directory: no match
			continue
		}
		for _, e := range ents {
			if ok, _ := path.Match(file, e.Name()); ok {
				out = append(out, path.Join(d, e.Name()))
			}
		}
	}
	return out, nil
}

// AddHostFiles adds the files that hostfiles patterns (glob(3) syntax,
// paths of the tree) name; a directory adds itself, not its contents.
func (t *Tree) AddHostFiles(patterns []string) error {
	for _, pat := range patterns {
		matches, err := t.glob(pat)
		if err != nil {
			return fmt.Errorf("hostfiles pattern %q: %w", pat, err)
		}
		for _, p := range matches {
			if err := t.Add(p, p); err != nil {
				return err
			}
		}
	}
	return nil
}
