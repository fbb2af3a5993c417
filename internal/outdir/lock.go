package outdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Lock takes an exclusive lock on file, created if missing, and waits for
// it: an fcntl F_SETLKW write lock on the whole file, as supermin 5's, so
// that both serialise on the same file. fcntl locks belong to the process:
// two Locks of one file in one process do not exclude each other. The lock
// is held until unlock is called. A lock file inside out is refused: the
// build would replace it, and with it the lock.
func Lock(file, out string) (unlock func(), err error) {
	if out != "" {
		inside, err := lockInside(file, out)
		if err != nil {
			return nil, err
		}
		if inside {
			return nil, fmt.Errorf("the lock file %s must not be inside the output %s", file, out)
		}
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("the lock file: %w", err)
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

// lockInside tells whether file is out or below it: by name, for an out
// still to be made, and by inode for an existing one.
func lockInside(file, out string) (bool, error) {
	absF, err := filepath.Abs(file)
	if err != nil {
		return false, fmt.Errorf("the lock file %s: %w", file, err)
	}
	absO, err := filepath.Abs(out)
	if err != nil {
		return false, fmt.Errorf("the output %s: %w", out, err)
	}
	if absF == absO || strings.HasPrefix(absF, strings.TrimSuffix(absO, "/")+"/") {
		return true, nil
	}
	var st unix.Stat_t
	if err := unix.Stat(absO, &st); err != nil {
		return false, nil // nothing there to be inside of
	}
	outID := idOf(&st)
	if unix.Stat(absF, &st) == nil && idOf(&st) == outID {
		return true, nil
	}
	above, err := existingAncestors(filepath.Dir(absF))
	if err != nil {
		return false, fmt.Errorf("the lock file %s: %w", file, err)
	}
	return slices.Contains(above, outID), nil
}
