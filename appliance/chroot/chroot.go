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

	"golang.org/x/sys/unix"

	"github.com/gosupermin/gosupermin/appliance"
)

// Options for Write.
type Options struct {
	// Owners sets each entry's owner; only root may.
	Owners bool
	// Warn receives entries that could not be made as they are (devices
	// when not root).
	Warn func(string)
}

// Write creates entries under dir, an existing empty directory that stands
// for "/". Entries must be sorted (Manifest.Entries) and checked
// (Manifest.Check): the writer relies on parents existing as directories,
// and opens nothing through a symlink.
func Write(ctx context.Context, dir string, entries []*appliance.Entry, opt Options) error {
	if opt.Warn == nil {
		opt.Warn = func(string) {}
	}
	var dirs []*appliance.Entry
	skippedDevs := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		var err error
		switch e.Kind {
		case appliance.Dir:
			dirs = append(dirs, e)
			if e.Path != "/" {
				err = os.Mkdir(p, 0o700)
			}
		case appliance.Regular:
			err = writeFile(p, e)
		case appliance.Symlink:
			err = os.Symlink(e.Link, p)
		case appliance.Hardlink:
			err = os.Link(filepath.Join(dir, filepath.FromSlash(e.Link)), p)
		case appliance.CharDev, appliance.BlockDev:
			mode := uint32(unix.S_IFCHR)
			if e.Kind == appliance.BlockDev {
				mode = unix.S_IFBLK
			}
			err = unix.Mknod(p, mode|0o600, int(unix.Mkdev(e.Major, e.Minor)))
			if errors.Is(err, unix.EPERM) && !opt.Owners {
				skippedDevs++
				continue
			}
		case appliance.FIFO:
			err = unix.Mkfifo(p, 0o600)
		case appliance.Socket:
			continue // a socket only exists while something listens on it
		}
		if err != nil {
			return fmt.Errorf("chroot: create %s: %w", e.Path, err)
		}
		if e.Kind != appliance.Dir && e.Kind != appliance.Hardlink {
			if err := setMeta(p, e, opt.Owners); err != nil {
				return err
			}
		}
	}
	if skippedDevs > 0 {
		opt.Warn(fmt.Sprintf("%d device nodes not created: only root can make them", skippedDevs))
	}
	// Directories get their final modes and times last, deepest first:
	// read-only directories must stay writable while filled, and adding
	// children changes a directory's mtime.
	for i := len(dirs) - 1; i >= 0; i-- {
		e := dirs[i]
		if err := setMeta(filepath.Join(dir, filepath.FromSlash(e.Path)), e, opt.Owners); err != nil {
			return err
		}
	}
	return nil
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
