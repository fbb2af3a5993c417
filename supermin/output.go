package supermin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// tempMarker names our temporary directories beside OUT.
const tempMarker = ".gosupermin-tmp-"

// replaceOutput builds into a temporary directory beside out and swaps it
// in only when fill succeeded. On any failure or cancellation the previous
// out is untouched and the temporary directory is gone.
func replaceOutput(ctx context.Context, out string, fill func(tmp string) error) (err error) {
	out = filepath.Clean(out)
	parent := filepath.Dir(out)
	tmp, err := os.MkdirTemp(parent, filepath.Base(out)+tempMarker)
	if err != nil {
		return fmt.Errorf("create temporary output in %s: %w", parent, err)
	}
	// MkdirTemp makes 0700; an appliance directory is read by others (qemu
	// run by libvirt as another user).
	if err := os.Chmod(tmp, 0o755); err != nil {
		removeTree(tmp)
		return fmt.Errorf("%s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			if rerr := removeTree(tmp); rerr != nil {
				err = fmt.Errorf("%w (and removing %s: %v)", err, tmp, rerr)
			}
		}
	}()
	if err := fill(tmp); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// The directory's own mtime is when the build finished: --if-newer
	// compares inputs against it.
	now := time.Now()
	if err := os.Chtimes(tmp, now, now); err != nil {
		return fmt.Errorf("%s: %w", tmp, err)
	}
	return swapIn(tmp, out)
}

// swapIn puts tmp at out. An existing out is exchanged atomically
// (renameat2 RENAME_EXCHANGE) and then removed, so at no moment is there
// no out; filesystems without the exchange fall back to two renames.
func swapIn(tmp, out string) error {
	fi, err := os.Lstat(out)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(tmp, out); err != nil {
			return fmt.Errorf("rename %s to %s: %w", tmp, out, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a directory: not replacing it", out)
	}
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, out, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		old := tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("rename %s: %w", out, err)
		}
		if err := os.Rename(tmp, out); err != nil {
			_ = os.Rename(old, out)
			return fmt.Errorf("rename %s to %s: %w", tmp, out, err)
		}
		return removeTree(old)
	}
	if err != nil {
		return fmt.Errorf("exchange %s and %s: %w", tmp, out, err)
	}
	return removeTree(tmp) // now the previous output
}

// removeTree removes a tree we made, including read-only directories that a
// non-root user cannot otherwise empty.
func removeTree(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// Lock takes an exclusive lockf-style lock on file, shared with supermin 5
// (fcntl locks), held until the returned function is called.
func Lock(file, out string) (func(), error) {
	if out != "" {
		absF, _ := filepath.Abs(file)
		absO, _ := filepath.Abs(out)
		if absF == absO || strings.HasPrefix(absF, absO+string(filepath.Separator)) {
			return nil, fmt.Errorf("lock file %s: it must not be inside the output %s", file, out)
		}
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", file, err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	for {
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLKW, &lk)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", file, err)
	}
	return func() { f.Close() }, nil
}

// upToDate reports whether out is newer than every input: the files and
// directories of walk (walked, so an edit inside supermin.d counts) and the
// paths of stat (the package database's files and directories).
func upToDate(out string, walk, stat []string) (bool, error) {
	fi, err := os.Stat(out)
	if err != nil {
		return false, nil
	}
	outTime := fi.ModTime()
	newer := errors.New("newer")
	for _, in := range walk {
		err := filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			info, err := os.Stat(p)
			if err != nil {
				return nil
			}
			if !info.ModTime().Before(outTime) {
				return newer
			}
			return nil
		})
		if errors.Is(err, newer) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	for _, p := range stat {
		if info, err := os.Stat(p); err == nil && !info.ModTime().Before(outTime) {
			return false, nil
		}
	}
	return true, nil
}
