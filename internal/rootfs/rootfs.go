// Package rootfs opens the files of a directory tree (a --root, or the
// host's /) so that nothing outside it is ever reached, whatever its
// symlinks say or change to while it is read.
//
// Names are paths inside the tree, absolute ("/usr/bin/bash") or not
// ("usr/bin/bash"). Symlinks met on the way are the tree's own: an
// absolute target starts at the tree's root, and ".." stops there, as
// chroot(2) would have it. The kernel does the resolution with
// openat2(2)'s RESOLVE_IN_ROOT where it has it (Linux 5.6); elsewhere
// this package walks the path one component at a time with O_NOFOLLOW,
// which the same checks cover. Each operation on a file itself
// (Lstat, ReadLink, OpenFile, Access, Xattrs) resolves the directory that
// holds it and then acts on the last component without following it, so a
// symlink swapped in at any moment is never followed out of the tree.
package rootfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTooLarge is wrapped by ReadFile's error for a file over its limit.
var ErrTooLarge = errors.New("file too large")

// ErrNotRegular is wrapped by the errors of ReadFile and OpenFile for a
// name that is not a regular file (a FIFO would block, a device would
// read forever).
var ErrNotRegular = errors.New("not a regular file")

// MaxReadFile bounds what ReadFile reads into memory.
const MaxReadFile = 256 << 20

// maxLinks bounds symlink resolution, as the kernel's ELOOP does.
const maxLinks = 40

// useOpenat2 is false where the kernel lacks openat2; tests clear it to
// exercise the component walk.
var useOpenat2 = probeOpenat2()

func probeOpenat2() bool {
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// FS is an opened tree. Its methods are safe for concurrent use.
type FS struct {
	dir     string // absolute host path, for messages
	real    string // dir with the host's symlinks resolved, when /proc says it
	root    int    // O_PATH directory file descriptor
	openat2 bool

	mu   sync.Mutex
	dirs dirCache
}

// Open opens the tree at dir, a directory the caller names: symlinks in
// dir itself are followed.
func Open(dir string) (*FS, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(abs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: abs, Err: err}
	}
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		real = abs
	}
	return &FS{dir: abs, real: real, root: fd, openat2: useOpenat2, dirs: dirCache{max: 32}}, nil
}

// Close releases the tree's file descriptors.
func (f *FS) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dirs.clear()
	return unix.Close(f.root)
}

// Dir is the tree's path on the host.
func (f *FS) Dir() string { return f.dir }

// HostPath is where name is on the host, for messages.
func (f *FS) HostPath(name string) string {
	return filepath.Join(f.dir, filepath.FromSlash(clean(name)))
}

// clean makes name a clean absolute path of the tree: ".." cannot climb
// above its root.
func clean(name string) string {
	if isClean(name) {
		return name // most names are: no allocation for them
	}
	return path.Clean("/" + name)
}

// isClean says whether name is what clean would make of it: absolute,
// without empty, "." or ".." components or a trailing slash.
func isClean(name string) bool {
	if name == "/" {
		return true
	}
	if name == "" || name[0] != '/' || name[len(name)-1] == '/' {
		return false
	}
	start := 1
	for i := 1; i <= len(name); i++ {
		if i == len(name) || name[i] == '/' {
			switch name[start:i] {
			case "", ".", "..":
				return false
			}
			start = i + 1
		}
	}
	return true
}

func (f *FS) pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: f.HostPath(name), Err: err}
}

// resolve opens name, following symlinks inside the tree, with flags
// (O_PATH, O_RDONLY, O_DIRECTORY, O_NOFOLLOW for the last component...).
func (f *FS) resolve(name string, flags int) (int, error) {
	p := strings.TrimPrefix(clean(name), "/")
	if p == "" {
		p = "."
	}
	flags |= unix.O_CLOEXEC
	if f.openat2 {
		for {
			fd, err := unix.Openat2(f.root, p, &unix.OpenHow{Flags: uint64(flags),
				Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue // a rename raced the lookup: the kernel asks to try again
			}
			return fd, err
		}
	}
	return f.walk(p, flags)
}

// walk resolves p (relative to the root) one component at a time, as
// RESOLVE_IN_ROOT does: every component is opened with O_NOFOLLOW and
// examined through its own descriptor, so nothing changes between the
// look and the use.
func (f *FS) walk(p string, flags int) (int, error) {
	stack := []int{} // directories below the root, innermost last
	cur := func() int {
		if len(stack) == 0 {
			return f.root
		}
		return stack[len(stack)-1]
	}
	defer func() {
		for _, fd := range stack {
			unix.Close(fd)
		}
	}()
	parts := strings.Split(p, "/")
	links := 0
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		last := len(parts) == 0
		switch c {
		case "", ".":
			if last {
				return unix.Openat(cur(), ".", flags&^unix.O_NOFOLLOW, 0)
			}
			continue
		case "..":
			if len(stack) > 0 {
				unix.Close(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
			}
			if last {
				return unix.Openat(cur(), ".", flags&^unix.O_NOFOLLOW, 0)
			}
			continue
		}
		fd, err := unix.Openat(cur(), c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFLNK && !(last && flags&unix.O_NOFOLLOW != 0):
			target, err := readlinkFD(fd)
			unix.Close(fd)
			if err != nil {
				return -1, err
			}
			if links++; links > maxLinks {
				return -1, unix.ELOOP
			}
			if strings.HasPrefix(target, "/") {
				for _, d := range stack {
					unix.Close(d)
				}
				stack = stack[:0]
			}
			parts = append(strings.Split(target, "/"), parts...)
			if len(parts) == 1 && parts[0] == "" {
				parts = []string{"."} // a link to "/"
			}
		case last:
			if flags&unix.O_PATH != 0 {
				if flags&unix.O_DIRECTORY != 0 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
					unix.Close(fd)
					return -1, unix.ENOTDIR
				}
				return fd, nil
			}
			defer unix.Close(fd)
			return reopen(fd, &st, flags, func() (int, error) { return unix.Openat(cur(), c, flags|unix.O_NOFOLLOW, 0) })
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			stack = append(stack, fd)
		default:
			unix.Close(fd)
			return -1, unix.ENOTDIR
		}
	}
	return unix.Openat(cur(), ".", flags&^unix.O_NOFOLLOW, 0)
}

// readlinkFD reads the target of the symlink an O_PATH descriptor holds.
func readlinkFD(fd int) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > 1<<16 {
			return "", unix.ENAMETOOLONG
		}
	}
}

// parent opens (or finds cached) the directory that holds name, and
// returns it with name's last component. The root itself has no parent:
// base is "." then.
func (f *FS) parent(name string) (fd int, base string, release func(), err error) {
	p := clean(name)
	if p == "/" {
		return f.root, ".", func() {}, nil
	}
	dir, base := path.Split(p)
	f.mu.Lock()
	d, ok := f.dirs.get(dir)
	f.mu.Unlock()
	if !ok {
		fd, err := f.resolve(dir, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return -1, "", nil, err
		}
		f.mu.Lock()
		d = f.dirs.put(dir, fd)
		f.mu.Unlock()
	}
	return d.fd, base, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		d.users--
		if d.evicted && d.users == 0 {
			unix.Close(d.fd)
		}
	}, nil
}

// Lstat describes name itself: a symlink is not followed.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	st, err := f.LstatSys(name)
	if err != nil {
		return nil, err
	}
	return fileInfo(path.Base(clean(name)), st), nil
}

// LstatSys is Lstat with the raw stat data.
func (f *FS) LstatSys(name string) (*unix.Stat_t, error) {
	dfd, base, release, err := f.parent(name)
	if err != nil {
		return nil, f.pathErr("lstat", name, err)
	}
	defer release()
	var st unix.Stat_t
	if base == "." {
		err = unix.Fstat(dfd, &st)
	} else {
		err = unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return nil, f.pathErr("lstat", name, err)
	}
	return &st, nil
}

// Stat describes what name leads to, following symlinks inside the tree.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	fd, err := f.resolve(name, unix.O_PATH)
	if err != nil {
		return nil, f.pathErr("stat", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, f.pathErr("stat", name, err)
	}
	return fileInfo(path.Base(clean(name)), &st), nil
}

// ReadLink returns the target of the symlink name, as written.
func (f *FS) ReadLink(name string) (string, error) {
	dfd, base, release, err := f.parent(name)
	if err != nil {
		return "", f.pathErr("readlink", name, err)
	}
	defer release()
	fd, err := unix.Openat(dfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", f.pathErr("readlink", name, err)
	}
	defer unix.Close(fd)
	t, err := readlinkFD(fd)
	if err != nil {
		return "", f.pathErr("readlink", name, err)
	}
	return t, nil
}

// OpenFile opens the regular file name for reading. Its last component is
// not followed: a symlink there is an error, not a way out. Nothing but a
// regular file is opened for reading: a FIFO would block, a device could
// act on being opened.
func (f *FS) OpenFile(name string) (*os.File, error) {
	dfd, base, release, err := f.parent(name)
	if err != nil {
		return nil, f.pathErr("open", name, err)
	}
	defer release()
	fd, err := unix.Openat(dfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, f.pathErr("open", name, err)
	}
	defer unix.Close(fd)
	return f.openAs(fd, name, false, func() (int, error) {
		return unix.Openat(dfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	})
}

// openAs opens for reading what the O_PATH descriptor fd holds, when it is
// a regular file (or, with dirOK, a directory).
func (f *FS) openAs(fd int, name string, dirOK bool, again func() (int, error)) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, f.pathErr("open", name, err)
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if st.Mode&unix.S_IFMT != unix.S_IFREG && !(dirOK && isDir) {
		return nil, f.pathErr("open", name, ErrNotRegular)
	}
	nfd, err := reopen(fd, &st, unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, again)
	if err != nil {
		return nil, f.pathErr("open", name, err)
	}
	return os.NewFile(uintptr(nfd), f.HostPath(name)), nil
}

// errChanged is reopen's error when the name no longer leads to the file
// examined and /proc cannot reopen that very file.
var errChanged = errors.New("changed while it was opened")

// reopen opens, with flags, the file that the O_PATH descriptor fd holds
// (st is its stat): through /proc/self/fd, which reaches that very file,
// or where /proc is missing by opening its name again (again) and
// checking that it is the same file.
func reopen(fd int, st *unix.Stat_t, flags int, again func() (int, error)) (int, error) {
	nfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), flags|unix.O_CLOEXEC, 0)
	if err == nil || !errors.Is(err, unix.ENOENT) || procMounted() {
		return nfd, err
	}
	nfd, err = again()
	if err != nil {
		return -1, err
	}
	var now unix.Stat_t
	if err := unix.Fstat(nfd, &now); err != nil || now.Dev != st.Dev || now.Ino != st.Ino {
		unix.Close(nfd)
		return -1, errChanged
	}
	return nfd, nil
}

// Open opens name: a regular file or a directory, following symlinks
// inside the tree; anything else is refused before it is opened for
// reading.
func (f *FS) Open(name string) (fs.File, error) {
	file, isDir, err := f.openFollow(name, true)
	if err != nil {
		return nil, err
	}
	if isDir {
		return &dirFile{File: file, fs: f, name: name}, nil
	}
	return file, nil
}

// openFollow opens name for reading, following symlinks inside the tree.
func (f *FS) openFollow(name string, dirOK bool) (*os.File, bool, error) {
	fd, err := f.resolve(name, unix.O_PATH)
	if err != nil {
		return nil, false, f.pathErr("open", name, err)
	}
	defer unix.Close(fd)
	file, err := f.openAs(fd, name, dirOK, func() (int, error) {
		return f.resolve(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	})
	if err != nil {
		return nil, false, err
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, false, err
	}
	return file, fi.IsDir(), nil
}

// ReadFile reads the regular file name (following symlinks inside the
// tree), up to MaxReadFile bytes.
func (f *FS) ReadFile(name string) ([]byte, error) {
	file, _, err := f.openFollow(name, false)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxReadFile {
		return nil, f.pathErr("read", name, fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, fi.Size(), MaxReadFile))
	}
	data := make([]byte, 0, fi.Size()+1)
	for {
		n, err := file.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return nil, f.pathErr("read", name, err)
		}
		if len(data) == cap(data) {
			if len(data) > MaxReadFile {
				return nil, f.pathErr("read", name, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxReadFile))
			}
			data = slices.Grow(data, 64<<10)
		}
	}
}

// ReadDir lists the directory name (following symlinks inside the tree),
// sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	fd, err := f.resolve(name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, f.pathErr("open", name, err)
	}
	d := os.NewFile(uintptr(fd), f.HostPath(name))
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, f.pathErr("readdir", name, err)
	}
	slices.Sort(names)
	out := make([]fs.DirEntry, 0, len(names))
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed meanwhile
			}
			return nil, f.pathErr("lstat", path.Join(clean(name), n), err)
		}
		out = append(out, fs.FileInfoToDirEntry(fileInfo(n, &st)))
	}
	return out, nil
}

// Readable says whether this process may read name (for a directory: list
// and search it), as the kernel decides: mode bits, ACLs, capabilities.
func (f *FS) Readable(name string) bool {
	dfd, base, release, err := f.parent(name)
	if err != nil {
		return false
	}
	defer release()
	mode := uint32(unix.R_OK)
	var st unix.Stat_t
	if unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		mode |= unix.X_OK
	}
	return unix.Faccessat(dfd, base, mode, unix.AT_EACCESS|unix.AT_SYMLINK_NOFOLLOW) == nil
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Xattrs returns name's extended attributes, sorted by name; a symlink's
// own. Attributes this process may not read are not listed by the kernel.
func (f *FS) Xattrs(name string) ([]Xattr, error) {
	dfd, base, release, err := f.parent(name)
	if err != nil {
		return nil, f.pathErr("listxattr", name, err)
	}
	defer release()
	// The directory's descriptor reached through /proc, and the last
	// component not followed: the same file Lstat saw.
	p := fmt.Sprintf("/proc/self/fd/%d/%s", dfd, base)
	if base == "." {
		p = fmt.Sprintf("/proc/self/fd/%d", dfd)
	}
	names, err := listxattr(p)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENOENT) && !procMounted() {
		return nil, nil // no xattrs here, or no /proc to read them safely
	}
	if err != nil {
		return nil, f.pathErr("listxattr", name, err)
	}
	var out []Xattr
	for _, n := range names {
		v, err := getxattr(p, n)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, f.pathErr("getxattr "+n, name, err)
		}
		out = append(out, Xattr{n, v})
	}
	slices.SortFunc(out, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func procMounted() bool {
	var st unix.Statfs_t
	return unix.Statfs("/proc/self", &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
}

func listxattr(p string) ([]string, error) {
	for size := 1024; size <= 1<<20; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
	return nil, unix.E2BIG
}

func getxattr(p, name string) ([]byte, error) {
	for size := 256; size <= 1<<20; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, unix.E2BIG
}

// dirFile is a directory opened through Open, for fs.ReadDirFile.
type dirFile struct {
	*os.File
	fs   *FS
	name string
	ents []fs.DirEntry
	read bool
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		ents, err := d.fs.ReadDir(d.name)
		if err != nil {
			return nil, err
		}
		d.ents, d.read = ents, true
	}
	if n <= 0 {
		out := d.ents
		d.ents = nil
		return out, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	k := min(n, len(d.ents))
	out := d.ents[:k]
	d.ents = d.ents[k:]
	return out, nil
}

// fileInfo is an fs.FileInfo from stat data; Sys is the *syscall.Stat_t.
type fileInfoT struct {
	name string
	st   syscall.Stat_t
}

func fileInfo(name string, st *unix.Stat_t) fs.FileInfo {
	fi := &fileInfoT{name: name}
	fi.st = syscall.Stat_t{Dev: st.Dev, Ino: st.Ino, Nlink: st.Nlink, Mode: st.Mode, Uid: st.Uid, Gid: st.Gid,
		Rdev: st.Rdev, Size: st.Size, Blksize: st.Blksize, Blocks: st.Blocks,
		Atim: syscall.Timespec(st.Atim), Mtim: syscall.Timespec(st.Mtim), Ctim: syscall.Timespec(st.Ctim)}
	return fi
}

func (fi *fileInfoT) Name() string       { return fi.name }
func (fi *fileInfoT) Size() int64        { return fi.st.Size }
func (fi *fileInfoT) ModTime() time.Time { return time.Unix(fi.st.Mtim.Sec, fi.st.Mtim.Nsec) }
func (fi *fileInfoT) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *fileInfoT) Sys() any           { return &fi.st }
func (fi *fileInfoT) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o777)
	switch fi.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	if fi.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if fi.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if fi.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// dirCache keeps a few directory descriptors, so that files listed one
// after another in the same directory cost one lookup. A descriptor in use
// is closed only after its last user releases it.
type dirCache struct {
	max   int
	order []string
	m     map[string]*dirFD
}

type dirFD struct {
	fd      int
	users   int
	evicted bool
}

func (c *dirCache) get(dir string) (*dirFD, bool) {
	d, ok := c.m[dir]
	if ok {
		d.users++
	}
	return d, ok
}

func (c *dirCache) put(dir string, fd int) *dirFD {
	if c.m == nil {
		c.m = map[string]*dirFD{}
	}
	if old, ok := c.m[dir]; ok { // another goroutine was faster
		unix.Close(fd)
		old.users++
		return old
	}
	d := &dirFD{fd: fd, users: 1}
	c.m[dir] = d
	c.order = append(c.order, dir)
	for len(c.order) > c.max {
		victim := c.m[c.order[0]]
		delete(c.m, c.order[0])
		c.order = c.order[1:]
		victim.evicted = true
		if victim.users == 0 {
			unix.Close(victim.fd)
		}
	}
	return d
}

func (c *dirCache) clear() {
	for _, d := range c.m {
		d.evicted = true
		if d.users == 0 {
			unix.Close(d.fd)
		}
	}
	c.m, c.order = nil, nil
}

// FS is the tree as an io/fs file system, whose names follow fs.ValidPath
// (unrooted, no "." or ".." components): what the package-database
// readers take.
func (f *FS) FS() fs.FS { return ioFS{f} }

type ioFS struct{ f *FS }

var (
	_ fs.FS         = ioFS{}
	_ fs.ReadFileFS = ioFS{}
	_ fs.ReadDirFS  = ioFS{}
	_ fs.StatFS     = ioFS{}
	_ fs.ReadLinkFS = ioFS{}
)

func check(op, name string) error {
	if !fs.ValidPath(name) {
		return &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	return nil
}

func (i ioFS) Open(name string) (fs.File, error) {
	if err := check("open", name); err != nil {
		return nil, err
	}
	return i.f.Open(name)
}

func (i ioFS) ReadFile(name string) ([]byte, error) {
	if err := check("read", name); err != nil {
		return nil, err
	}
	return i.f.ReadFile(name)
}

func (i ioFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if err := check("readdir", name); err != nil {
		return nil, err
	}
	return i.f.ReadDir(name)
}

func (i ioFS) Stat(name string) (fs.FileInfo, error) {
	if err := check("stat", name); err != nil {
		return nil, err
	}
	return i.f.Stat(name)
}

func (i ioFS) ReadLink(name string) (string, error) {
	if err := check("readlink", name); err != nil {
		return "", err
	}
	return i.f.ReadLink(name)
}

func (i ioFS) Lstat(name string) (fs.FileInfo, error) {
	if err := check("lstat", name); err != nil {
		return nil, err
	}
	return i.f.Lstat(name)
}

// HostPath is where name is on the host, for messages.
func (i ioFS) HostPath(name string) string { return i.f.HostPath(name) }

// RealPath is the host path of what name leads to, with every symlink of
// the tree resolved: a path the host reads as the tree does (as long as
// the tree does not change).
func (f *FS) RealPath(name string) (string, error) {
	fd, err := f.resolve(name, unix.O_PATH)
	if err != nil {
		return "", f.pathErr("realpath", name, err)
	}
	defer unix.Close(fd)
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", f.pathErr("realpath", name, err)
	}
	if p != f.real && !strings.HasPrefix(p, strings.TrimSuffix(f.real, "/")+"/") {
		// The root itself was moved meanwhile.
		return "", f.pathErr("realpath", name, fmt.Errorf("resolves to %s, outside %s", p, f.real))
	}
	return p, nil
}

// RealPath is FS.RealPath for the io/fs view.
func (i ioFS) RealPath(name string) (string, error) {
	if err := check("realpath", name); err != nil {
		return "", err
	}
	return i.f.RealPath(name)
}
