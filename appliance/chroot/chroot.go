// Package chroot writes a manifest as a directory tree that can be entered
// with chroot(8): modes, links, devices, times and, as root, owners.
package chroot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gosupermin/gosupermin/appliance"
)

// Options for NewWriter.
type Options struct {
	// Owners sets each entry's owner; only root may.
	Owners bool
	// Warn receives entries that could not be made as they are (devices
	// when not root).
	Warn func(string)
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
	var skippedDevs atomic.Int64
	err := parallel(ctx, others, func(e *appliance.Entry) error {
		p := host(e)
		var err error
		switch e.Kind {
		case appliance.Regular:
			err = writeFile(p, e)
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
		return setMeta(p, e, opt.Owners)
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
		if err := setMeta(host(dirs[i]), dirs[i], opt.Owners); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// workers is how many entries are written at once.
const workers = 8

// parallel calls f for each entry from a few goroutines and returns the
// first error; after an error or a cancellation no new entry is started.
func parallel(ctx context.Context, entries []*appliance.Entry, f func(*appliance.Entry) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan *appliance.Entry)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				if err := f(e); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for _, e := range entries {
		select {
		case work <- e:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}

func writeFile(p string, e *appliance.Entry) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	n, err := copyData(f, e)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != e.Size {
		err = fmt.Errorf("size changed while reading: %d bytes, expected %d", n, e.Size)
	}
	return err
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

func setMeta(p string, e *appliance.Entry, owners bool) error {
	if owners {
		if err := os.Lchown(p, int(e.UID), int(e.GID)); err != nil {
			return fmt.Errorf("chroot: chown %s: %w", e.Path, err)
		}
	}
	if e.Kind != appliance.Symlink {
		// After chown, which clears setuid and setgid.
		if err := unix.Chmod(p, e.Mode); err != nil {
			return fmt.Errorf("chroot: chmod %s: %w", e.Path, err)
		}
	}
	if e.ModTime.IsZero() {
		return nil
	}
	ts := unix.NsecToTimespec(e.ModTime.UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chroot: set times of %s: %w", e.Path, err)
	}
	return nil
}
