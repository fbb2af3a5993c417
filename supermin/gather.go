package supermin

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

// tree turns paths of the host (or --root) tree into manifest entries.
// Paths are canonicalised: a directory component that is a symlink (the
// usrmerge /bin -> usr/bin) becomes a symlink entry and the file is stored
// once, under the link's target.
type tree struct {
	root  string // "/" or --root, absolute
	m     *appliance.Manifest
	canon map[string]string // directory -> canonical directory
	inode map[string]fileID // regular files with several links
	epoch time.Time         // time of directories we make up
	// checkRead is set when the build runs as a user who may not read
	// every file (not root): unreadable files are left out, not fatal.
	checkRead  bool
	unreadable []string // host paths left out because this user cannot read them
}

type fileID struct{ dev, ino uint64 }

func newTree(root string, m *appliance.Manifest, epoch time.Time) *tree {
	return &tree{root: root, m: m, canon: map[string]string{"/": "/"}, inode: map[string]fileID{}, epoch: epoch,
		checkRead: os.Geteuid() != 0}
}

// skipUnreadable records host path p as left out when err says this user
// may not read it. Root reads everything, so for root every error stays one.
func (t *tree) skipUnreadable(p string, err error) bool {
	if !t.checkRead || !errors.Is(err, fs.ErrPermission) {
		return false
	}
	t.unreadable = append(t.unreadable, p)
	return true
}

// readable says whether this user may read the file at host path p, as
// the kernel decides it (mode bits, ACLs, supplementary groups).
func (t *tree) readable(p string) bool {
	return !t.checkRead || unix.Faccessat(unix.AT_FDCWD, p, unix.R_OK, unix.AT_EACCESS) == nil
}

func (t *tree) host(p string) string { return filepath.Join(t.root, filepath.FromSlash(p)) }

// maxLinks bounds symlink resolution, as the kernel's ELOOP does.
const maxLinks = 40

// canonDir resolves every symlink in directory d, staying inside the root,
// and records the symlinks it went through as entries.
func (t *tree) canonDir(d string) (string, error) {
	return t.canonDirDepth(d, 0)
}

func (t *tree) canonDirDepth(d string, depth int) (string, error) {
	if c, ok := t.canon[d]; ok {
		return c, nil
	}
	if depth > maxLinks {
		return "", fmt.Errorf("%s: too many levels of symbolic links", d)
	}
	parent, err := t.canonDirDepth(path.Dir(d), depth+1)
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
	c, err := t.canonDirDepth(path.Clean(next), depth+1)
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
func (t *tree) Canon(p string) (string, error) {
	if p == "/" {
		return p, nil
	}
	d, err := t.canonDir(path.Dir(p))
	if err != nil {
		return "", err
	}
	return path.Join(d, path.Base(p)), nil
}

// Add puts host path src (canonical) into the manifest at dst (canonical),
// skipping paths that do not exist. A symlink to a directory brings its
// target directory along.
func (t *tree) Add(dst, src string) (bool, error) {
	fi, err := os.Lstat(t.host(src))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return false, nil
	}
	if t.skipUnreadable(t.host(src), err) {
		return false, nil // a parent directory this user cannot search
	}
	if err != nil {
		return false, err
	}
	if fi.Mode().IsRegular() && !t.readable(t.host(src)) {
		t.skipUnreadable(t.host(src), fs.ErrPermission)
		return false, nil
	}
	if err := t.addEntry(dst, src, fi); err != nil {
		return false, err
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
	return true, nil
}

func (t *tree) addDir(p string) {
	if _, ok := t.m.Get(p); ok {
		return
	}
	if fi, err := os.Lstat(t.host(p)); err == nil && fi.IsDir() {
		_ = t.addEntry(p, p, fi)
	}
}

// addEntry adds host file src, described by fi, at p.
func (t *tree) addEntry(p, src string, fi fs.FileInfo) error {
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

// hasMeta says whether a hostfiles line is a pattern rather than a path.
func hasMeta(pat string) bool { return strings.ContainsAny(pat, `*?[\\`) }

// glob expands a hostfiles pattern in the tree as filepath.Glob does (one
// component at a time, path.Match's syntax, names sorted), giving paths
// of the tree. A directory it cannot list because this user may not read
// it is reported rather than silently matching nothing.
func (t *tree) glob(pat string) ([]string, error) {
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

func major(dev uint64) uint32 { return uint32((dev>>8)&0xfff | (dev>>32)&^0xfff) }
func minor(dev uint64) uint32 { return uint32(dev&0xff | (dev>>12)&^0xff) }

// LinkHardlinks turns host files that share an inode into one Regular entry
// (the first path) and Hardlink entries, so data is stored once.
func (t *tree) LinkHardlinks() {
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

// AddParents gives every entry its ancestors, with the host's metadata
// where the directory exists there.
func (t *tree) AddParents() error {
	return t.m.AddParents(func(p string) appliance.Entry {
		if fi, err := os.Lstat(t.host(p)); err == nil && fi.IsDir() {
			st := fi.Sys().(*syscall.Stat_t)
			return appliance.Entry{Mode: uint32(st.Mode) & 07777, UID: st.Uid, GID: st.Gid, ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec)}
		}
		return appliance.Entry{Mode: 0o755, ModTime: t.epoch}
	})
}
