package outdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// UpToDate reports whether out is newer than every input: the files and
// directories of walk, walked recursively so that an edit inside a
// supermin.d counts, and the paths of stat (the package database's files).
// An input as new as out counts as newer: out's mtime is the time its
// build started, so an input changed in that same clock tick may have been
// read before the change. A missing out or walk path is not up to date; a
// missing stat path is skipped, as package databases have optional files.
// It costs only stat(2) calls and the reading of walk's directories.
func UpToDate(out string, walk, stat []string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(out, &st); errors.Is(err, unix.ENOENT) {
		return false, nil
	} else if err != nil {
		return false, &os.PathError{Op: "stat", Path: out, Err: err}
	}
	built := st.Mtim
	for _, p := range walk {
		if err := unix.Stat(p, &st); errors.Is(err, unix.ENOENT) {
			return false, nil
		} else if err != nil {
			return false, &os.PathError{Op: "stat", Path: p, Err: err}
		}
		newer, err := treeNewer(p, &st, built)
		if newer || err != nil {
			return false, err
		}
	}
	for _, p := range stat {
		if err := unix.Stat(p, &st); errors.Is(err, unix.ENOENT) {
			continue
		} else if err != nil {
			return false, &os.PathError{Op: "stat", Path: p, Err: err}
		}
		if notOlder(st.Mtim, built) {
			return false, nil
		}
	}
	return true, nil
}

func notOlder(t, than unix.Timespec) bool {
	return t.Sec > than.Sec || t.Sec == than.Sec && t.Nsec >= than.Nsec
}

// treeNewer tells whether path (whose stat is st) or anything below it is
// not older than built. Entries are stat'ed through the directory's file
// descriptor, a cheaper lookup than by full path.
func treeNewer(path string, st *unix.Stat_t, built unix.Timespec) (bool, error) {
	if notOlder(st.Mtim, built) {
		return true, nil
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false, nil
	}
	d, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil // removed since its stat: changed
	}
	if err != nil {
		return false, err
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	fd := int(d.Fd())
	for _, e := range entries {
		var est unix.Stat_t
		err := unix.Fstatat(fd, e.Name(), &est, 0)
		if errors.Is(err, unix.ENOENT) {
			// A dangling symlink: its own time says when it changed.
			err = unix.Fstatat(fd, e.Name(), &est, unix.AT_SYMLINK_NOFOLLOW)
		}
		if errors.Is(err, unix.ENOENT) {
			return true, nil // removed while we looked: changed
		}
		if err != nil {
			return false, &os.PathError{Op: "stat", Path: filepath.Join(path, e.Name()), Err: err}
		}
		if !e.IsDir() { // a symlink to a directory is not walked into
			if notOlder(est.Mtim, built) {
				return true, nil
			}
			continue
		}
		newer, err := treeNewer(filepath.Join(path, e.Name()), &est, built)
		if newer || err != nil {
			return newer, err
		}
	}
	return false, nil
}
