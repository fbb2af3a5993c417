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
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gosupermin/gosupermin/appliance"
)

// Options for NewTree.
type Options struct {
	// Root is the tree the files come from, absolute ("/" for the host).
	Root string
	// Epoch is the time of the entries the tree makes up (directories
	// missing from the tree). When Clamp is set, no time is later.
	Epoch time.Time
	// Clamp clamps every time to Epoch, as reproducible builds
	// (SOURCE_DATE_EPOCH) want.
	Clamp bool
	// Log receives messages; level 0 are warnings.
	Log func(level int, msg string)
}

// Tree turns paths of a tree into entries of one manifest.
type Tree struct {
	opt   Options
	m     *appliance.Manifest
	canon map[string]string // directory -> canonical directory
	inode map[string]fileID // regular files with several links
	// checkRead is set when the build runs as a user who may not read
	// every file (not root): unreadable files are left out, not fatal.
	checkRead  bool
	unreadable []string // host paths left out because this user cannot read them
}

type fileID struct{ dev, ino uint64 }

// NewTree starts an empty manifest from the tree at opt.Root, holding
// the root directory itself.
func NewTree(opt Options) *Tree {
	t := &Tree{opt: opt, m: appliance.New(), canon: map[string]string{"/": "/"}, inode: map[string]fileID{},
		checkRead: os.Geteuid() != 0}
	t.addDir("/")
	return t
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
		return nil, err
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

// readable says whether this user may read the file at host path p, as
// the kernel decides it (mode bits, ACLs, supplementary groups).
func (t *Tree) readable(p string) bool {
	return !t.checkRead || unix.Faccessat(unix.AT_FDCWD, p, unix.R_OK, unix.AT_EACCESS) == nil
}

func (t *Tree) host(p string) string { return filepath.Join(t.opt.Root, filepath.FromSlash(p)) }

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
	fi, err := os.Lstat(t.host(p))
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.canon[d] = p // missing directories stay as they are; callers check
		return p, nil
	}
	target, err := os.Readlink(t.host(p))
	if err != nil {
		return "", err
	}
	if err := t.addEntry(p, p, fi); err != nil {
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
	if cfi, err := os.Lstat(t.host(c)); err == nil && cfi.IsDir() {
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
	fi, err := os.Lstat(t.host(src))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if t.skipUnreadable(t.host(src), err) {
		return nil // a parent directory this user cannot search
	}
	if err != nil {
		return err
	}
	if fi.Mode().IsRegular() && !t.readable(t.host(src)) {
		t.skipUnreadable(t.host(src), fs.ErrPermission)
		return nil
	}
	if err := t.addEntry(dst, src, fi); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(t.host(src))
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(dst), target)
		}
		if c, err := t.Canon(path.Clean(target)); err == nil {
			if cfi, err := os.Stat(t.host(c)); err == nil && cfi.IsDir() {
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
	if fi, err := os.Lstat(t.host(p)); err == nil && fi.IsDir() {
		_ = t.addEntry(p, p, fi)
	}
}

// addEntry adds the tree's file src, described by fi, at p.
func (t *Tree) addEntry(p, src string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no stat data", t.host(p))
	}
	e := appliance.Entry{
		Path:    p,
		Mode:    uint32(st.Mode) & 07777,
		UID:     st.Uid,
		GID:     st.Gid,
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		e.Kind, e.Size, e.Data = appliance.Regular, st.Size, appliance.HostFile(t.host(src))
		if st.Nlink > 1 && p == src {
			t.inode[p] = fileID{st.Dev, st.Ino}
		}
	case syscall.S_IFDIR:
		e.Kind = appliance.Dir
	case syscall.S_IFLNK:
		target, err := os.Readlink(t.host(src))
		if err != nil {
			return err
		}
		e.Kind, e.Link = appliance.Symlink, target
	case syscall.S_IFCHR, syscall.S_IFBLK:
		e.Kind = appliance.CharDev
		if st.Mode&syscall.S_IFMT == syscall.S_IFBLK {
			e.Kind = appliance.BlockDev
		}
		e.Major, e.Minor = major(st.Rdev), minor(st.Rdev)
	case syscall.S_IFIFO:
		e.Kind = appliance.FIFO
	case syscall.S_IFSOCK:
		e.Kind = appliance.Socket
	}
	if old, ok := t.m.Get(p); ok && old.Kind == appliance.Dir && e.Kind == appliance.Dir {
		return nil
	}
	return t.m.Put(e)
}

func major(dev uint64) uint32 { return uint32((dev>>8)&0xfff | (dev>>32)&^0xfff) }
func minor(dev uint64) uint32 { return uint32(dev&0xff | (dev>>12)&^0xff) }

// linkHardlinks turns files of the tree that share an inode into one
// Regular entry (the first path) and Hardlink entries, so data is stored once.
func (t *Tree) linkHardlinks() {
	groups := map[fileID][]string{}
	for p, id := range t.inode {
		if e, ok := t.m.Get(p); ok && e.Kind == appliance.Regular {
			if h, ok := e.Data.(appliance.HostFile); ok && string(h) == t.host(p) {
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
func (t *Tree) dirEntry(p string) appliance.Entry { return dirMeta(t.host(p), t.opt.Epoch) }

// dirMeta is the metadata of the directory at host path h, or a made-up
// one at epoch.
func dirMeta(h string, epoch time.Time) appliance.Entry {
	if fi, err := os.Lstat(h); err == nil && fi.IsDir() {
		st := fi.Sys().(*syscall.Stat_t)
		return appliance.Entry{Mode: uint32(st.Mode) & 07777, UID: st.Uid, GID: st.Gid, ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec)}
	}
	return appliance.Entry{Mode: 0o755, ModTime: epoch}
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
		ents, err := os.ReadDir(t.host(d))
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
