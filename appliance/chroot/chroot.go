// Package chroot writes a manifest as a directory tree that can be entered
// with chroot(8): modes, links, devices, holes, extended attributes, times
// and, as root, owners.
package chroot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gosupermin/gosupermin/appliance"
)

// Options for NewWriter.
type Options struct {
	// Owners sets each entry's owner; only root may.
	Owners bool
	// Warn receives what could not be made as it is: devices, and
	// security.* and trusted.* attributes, when not root.
	Warn func(string)
	// Progress, if set, is told the size of each regular file once its
	// data is written, for a progress indicator. Files are written by
	// several goroutines: it may be called from several at once.
	Progress func(bytes int64)
}

// Writer creates a manifest's entries under a directory.
type Writer struct {
	dir string
	opt Options
}

var _ appliance.Writer = (*Writer)(nil)

// NewWriter returns a writer into dir, an existing empty directory that
// stands for "/".
func NewWriter(dir string, opt Options) *Writer { return &Writer{dir: dir, opt: opt} }

// WriteManifest creates the entries of m, a sealed manifest: its checks
// let the writer rely on parents existing as directories, so nothing is
// opened through a symlink.
func (w *Writer) WriteManifest(ctx context.Context, m *appliance.Manifest) error {
	if !m.Sealed() {
		return appliance.ErrNotSealed
	}
	return write(ctx, w.dir, m.Entries(), w.opt)
}

func write(ctx context.Context, dir string, entries []*appliance.Entry, opt Options) error {
	if opt.Warn == nil {
		opt.Warn = func(string) {}
	}
	host := func(e *appliance.Entry) string { return filepath.Join(dir, filepath.FromSlash(e.Path)) }
	// Directories first, in order, so that every parent exists; then the
	// other entries from a few workers, because creating a file costs a
	// filesystem round trip that several can share; hard links last, when
	// their targets exist.
	var dirs, others, links []*appliance.Entry
	for _, e := range entries {
		switch e.Kind {
		case appliance.Dir:
			dirs = append(dirs, e)
		case appliance.Hardlink:
			links = append(links, e)
		default:
			others = append(others, e)
		}
	}
	for _, e := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Path != "/" {
			if err := os.Mkdir(host(e), 0o700); err != nil {
				return fmt.Errorf("chroot: create %s: %w", e.Path, err)
			}
		}
	}
	var skippedDevs, skippedXattrs atomic.Int64
	err := parallel(ctx, byDirectory(others), func(e *appliance.Entry) error {
		p := host(e)
		var err error
		switch e.Kind {
		case appliance.Regular:
			// Its metadata is set through the open file: no path walks.
			skipped, err := writeFile(p, e, opt.Owners)
			skippedXattrs.Add(int64(skipped))
			if err == nil && opt.Progress != nil {
				opt.Progress(e.Size)
			}
			return err
		case appliance.Symlink:
			err = os.Symlink(e.Link, p)
		case appliance.CharDev, appliance.BlockDev:
			mode := uint32(unix.S_IFCHR)
			if e.Kind == appliance.BlockDev {
				mode = unix.S_IFBLK
			}
			err = unix.Mknod(p, mode|0o600, int(unix.Mkdev(e.Major, e.Minor)))
			if errors.Is(err, unix.EPERM) && !opt.Owners {
				skippedDevs.Add(1)
				return nil
			}
		case appliance.FIFO:
			err = unix.Mkfifo(p, 0o600)
		case appliance.Socket:
			return nil // a socket only exists while something listens on it
		}
		if err != nil {
			return fmt.Errorf("chroot: create %s: %w", e.Path, err)
		}
		skipped, err := setMeta(p, e, opt.Owners)
		skippedXattrs.Add(int64(skipped))
		return err
	})
	if err != nil {
		return err
	}
	for _, e := range links {
		if err := os.Link(filepath.Join(dir, filepath.FromSlash(e.Link)), host(e)); err != nil {
			return fmt.Errorf("chroot: create %s: %w", e.Path, err)
		}
	}
	if n := skippedDevs.Load(); n > 0 {
		opt.Warn(fmt.Sprintf("%d device nodes not created: only root can make them", n))
	}
	// Directories get their final modes and times last, deepest first:
	// read-only directories must stay writable while filled, and adding
	// children changes a directory's mtime.
	for i := len(dirs) - 1; i >= 0; i-- {
		skipped, err := setMeta(host(dirs[i]), dirs[i], opt.Owners)
		skippedXattrs.Add(int64(skipped))
		if err != nil {
			return err
		}
	}
	if n := skippedXattrs.Load(); n > 0 {
		opt.Warn(fmt.Sprintf("%d extended attributes (security.*, trusted.*) not set: only root can set them", n))
	}
	return ctx.Err()
}

// workers is how many entries are written at once.
const workers = 8

// byDirectory groups entries by the directory that holds them, in order.
func byDirectory(entries []*appliance.Entry) [][]*appliance.Entry {
	var groups [][]*appliance.Entry
	index := map[string]int{}
	for _, e := range entries {
		d := path.Dir(e.Path)
		i, ok := index[d]
		if !ok {
			i = len(groups)
			index[d] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], e)
	}
	return groups
}

// parallel calls f for each entry from a few goroutines, a directory's
// entries from one of them: creating entries in one directory takes its
// lock, and workers contending for it spin in the kernel rather than
// create. It returns the first error; after an error or a cancellation no
// new entry is started.
func parallel(ctx context.Context, groups [][]*appliance.Entry, f func(*appliance.Entry) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan []*appliance.Entry)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range work {
				for _, e := range g {
					// The feeder's select may still hand out work after
					// the end.
					if ctx.Err() != nil {
						break
					}
					if err := f(e); err != nil {
						cancel(err)
					}
				}
			}
		}()
	}
feed:
	for _, g := range groups {
		select {
		case work <- g:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}

// writeFile creates the regular file p with its data, then its owner,
// mode, attributes and times, through the file descriptor.
func writeFile(p string, e *appliance.Entry, owners bool) (skipped int, err error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, fmt.Errorf("chroot: create %s: %w", e.Path, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("chroot: write %s: %w", e.Path, cerr)
		}
	}()
	if e.Sparse {
		err = writeExtents(f, e)
	} else {
		var n int64
		if n, err = copyData(f, e); err == nil && n != e.Size {
			err = fmt.Errorf("size changed while reading: %d bytes, expected %d", n, e.Size)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("chroot: create %s: %w", e.Path, err)
	}
	return setFileMeta(f, p, e, owners)
}

// setFileMeta is setMeta for an open regular file.
func setFileMeta(f *os.File, p string, e *appliance.Entry, owners bool) (skipped int, err error) {
	fd := int(f.Fd())
	if owners {
		if err := unix.Fchown(fd, int(e.UID), int(e.GID)); err != nil {
			return 0, fmt.Errorf("chroot: chown %s: %w", e.Path, err)
		}
	}
	// After chown, which clears security.capability, and while the file
	// is still writable by its owner (user.* attributes need that).
	for _, x := range e.Xattrs {
		err := unix.Fsetxattr(fd, x.Name, x.Value, 0)
		if errors.Is(err, unix.EPERM) && !owners && rootOnlyXattr(x.Name) {
			skipped++
			continue
		}
		if err != nil {
			return skipped, fmt.Errorf("chroot: set extended attribute %s of %s: %w", x.Name, e.Path, err)
		}
	}
	// After chown, which clears setuid and setgid.
	if err := unix.Fchmod(fd, e.Mode); err != nil {
		return skipped, fmt.Errorf("chroot: chmod %s: %w", e.Path, err)
	}
	if e.ModTime.IsZero() {
		return skipped, nil
	}
	// By name: x/sys has no futimens, and the data is all written.
	ts := unix.NsecToTimespec(e.ModTime.UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return skipped, fmt.Errorf("chroot: set times of %s: %w", e.Path, err)
	}
	return skipped, nil
}

func copyData(f *os.File, e *appliance.Entry) (int64, error) {
	if e.Data == nil {
		return 0, nil
	}
	r, err := e.Data.Open()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	// *os.File to *os.File uses copy_file_range: no bytes pass through us.
	return io.Copy(f, io.LimitReader(r, e.Size+1))
}

// writeExtents copies only the extents of a file marked sparse, each at
// its offset, and sets the size: what lies between stays a hole.
func writeExtents(f *os.File, e *appliance.Entry) error {
	s, ok := e.Data.(appliance.SparseSource)
	if !ok {
		return errors.New("marked sparse, but its data has no extents")
	}
	exts, err := s.Extents()
	if err != nil {
		return fmt.Errorf("extents: %w", err)
	}
	r, err := e.Data.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	var end int64 // of the extent before, and how far r has been read
	for _, x := range exts {
		if x.Off < end || x.Len < 0 || x.Len > e.Size-x.Off {
			return fmt.Errorf("extent %d+%d out of order or past the size, %d", x.Off, x.Len, e.Size)
		}
		if err := copyExtent(f, r, x, end); err != nil {
			return err
		}
		end = x.Off + x.Len
	}
	return f.Truncate(e.Size)
}

// copyExtent copies extent x of r to the same place in f; r has been read
// up to pos. Files go through copy_file_range; other sources are read in
// place when they can be, else read on to x.
func copyExtent(f *os.File, r io.Reader, x appliance.Extent, pos int64) error {
	if src, ok := r.(*os.File); ok {
		n, err := copyFileRange(f, src, x)
		if err != nil {
			return err
		}
		x.Off, x.Len = x.Off+n, x.Len-n
		if x.Len == 0 {
			return nil
		}
	}
	var in io.Reader
	switch s := r.(type) {
	case io.ReaderAt:
		in = io.NewSectionReader(s, x.Off, x.Len)
	case io.Seeker:
		if _, err := s.Seek(x.Off, io.SeekStart); err != nil {
			return err
		}
		in = io.LimitReader(r, x.Len)
	default:
		if n, err := io.CopyN(io.Discard, r, x.Off-pos); err != nil {
			return fmt.Errorf("data ends at byte %d, before its extent %d+%d: %w", pos+n, x.Off, x.Len, err)
		}
		in = io.LimitReader(r, x.Len)
	}
	n, err := io.Copy(io.NewOffsetWriter(f, x.Off), in)
	if err == nil && n < x.Len {
		err = fmt.Errorf("data ends at byte %d, inside its extent %d+%d", x.Off+n, x.Off, x.Len)
	}
	return err
}

// copyFileRange copies what it can of extent x from src to f in the
// kernel, and says how much; the rest is for the caller to copy, as where
// copy_file_range does not work across these filesystems.
func copyFileRange(f, src *os.File, x appliance.Extent) (int64, error) {
	roff, woff := x.Off, x.Off
	for roff < x.Off+x.Len {
		n, err := unix.CopyFileRange(int(src.Fd()), &roff, int(f.Fd()), &woff, int(min(x.Off+x.Len-roff, 1<<30)), 0)
		switch {
		case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
			return roff - x.Off, nil
		case err != nil:
			return roff - x.Off, err
		case n == 0:
			// The end of src, or a file it cannot copy from (procfs):
			// the caller's copy tells which.
			return roff - x.Off, nil
		}
	}
	return x.Len, nil
}

// setMeta gives p the owner, mode, extended attributes and times of e, in
// that order: chown clears setuid, setgid and security.capability. It
// returns how many attributes it left out because only root can set them.
func setMeta(p string, e *appliance.Entry, owners bool) (skipped int, err error) {
	if owners {
		if err := os.Lchown(p, int(e.UID), int(e.GID)); err != nil {
			return 0, fmt.Errorf("chroot: chown %s: %w", e.Path, err)
		}
	}
	// Setting user.* needs write permission, which the owner of a
	// read-only file has only for a while.
	borrow := !owners && e.Kind != appliance.Symlink && e.Mode&0o200 == 0 && hasUserXattr(e.Xattrs)
	if e.Kind != appliance.Symlink {
		mode := e.Mode
		if borrow {
			mode |= 0o200
		}
		if err := unix.Chmod(p, mode); err != nil {
			return 0, fmt.Errorf("chroot: chmod %s: %w", e.Path, err)
		}
	}
	for _, x := range e.Xattrs {
		err := unix.Lsetxattr(p, x.Name, x.Value, 0)
		if errors.Is(err, unix.EPERM) && !owners && rootOnlyXattr(x.Name) {
			skipped++
			continue
		}
		if err != nil {
			return skipped, fmt.Errorf("chroot: set extended attribute %s of %s: %w", x.Name, e.Path, err)
		}
	}
	if borrow {
		if err := unix.Chmod(p, e.Mode); err != nil {
			return skipped, fmt.Errorf("chroot: chmod %s: %w", e.Path, err)
		}
	}
	if e.ModTime.IsZero() {
		return skipped, nil
	}
	ts := unix.NsecToTimespec(e.ModTime.UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return skipped, fmt.Errorf("chroot: set times of %s: %w", e.Path, err)
	}
	return skipped, nil
}

func hasUserXattr(xs []appliance.Xattr) bool {
	for _, x := range xs {
		if strings.HasPrefix(x.Name, "user.") {
			return true
		}
	}
	return false
}

// rootOnlyXattr tells the attributes that need CAP_SYS_ADMIN (or
// CAP_SETFCAP) to set.
func rootOnlyXattr(name string) bool {
	return strings.HasPrefix(name, "security.") || strings.HasPrefix(name, "trusted.")
}
