// Package outdir replaces an output directory safely: built beside it and
// swapped in whole, guarded against clobbering inputs, racers and crashes.
package outdir

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// tempMarker names our temporary directories beside OUT.
const tempMarker = ".gosupermin-tmp-"

// nameMax is NAME_MAX on Linux, for every file system we write to.
const nameMax = 255

// hashLen and randLen are the hex digits of a temporary's two suffixes.
const hashLen, randLen = 8, 8

// maxAttempts bounds the retries against racers: each retry means another
// process changed the directory in between, which cannot go on forever.
const maxAttempts = 100

// renameat2 is unix.Renameat2; tests replace it to take the path of file
// systems without RENAME_EXCHANGE and RENAME_NOREPLACE.
var renameat2 = unix.Renameat2

// Result says what Replace did beyond putting the new output in place.
type Result struct {
	// Replaced is true when a previous output was there and is now gone
	// (or left at Leftover); false when OUT did not exist.
	Replaced bool
	// Leftover is where the previous output still is when it could not be
	// removed, for LeftoverErr; the new output is in place all the same.
	Leftover    string
	LeftoverErr error
	// Removed are abandoned temporaries of earlier, killed runs into the
	// same OUT that were removed first; CleanErr says why some could not be.
	Removed  []string
	CleanErr error
}

// Warnings are the lines a caller prints for what did not go as planned
// although the new output is in place.
func (r Result) Warnings() []string {
	var w []string
	if r.Leftover != "" {
		w = append(w, fmt.Sprintf("the new output is in place, but the previous one could not be removed and is left at %s: %v", r.Leftover, r.LeftoverErr))
	}
	if r.CleanErr != nil {
		w = append(w, fmt.Sprintf("a temporary directory abandoned by an earlier run could not be removed: %v", r.CleanErr))
	}
	return w
}

// Options adjust Replace.
type Options struct {
	// Start is the time the build started: out's mtime becomes it, so
	// that UpToDate sees any input changed since (zero means now).
	Start time.Time
	// RemoveOld, when set, is given the previous output, moved aside to
	// old and locked by lock, to remove after Replace returns (removing
	// a large tree takes a while the caller need not wait for): in
	// another process that inherits lock, and with it the flock, and
	// calls RemoveMoved. Replace closes its own lock afterwards. When
	// RemoveOld fails, or is nil, Replace removes old itself.
	RemoveOld func(old string, lock *os.File) error
}

// Replace builds a new output with fill in a temporary directory beside out
// and swaps it in only when fill succeeded. On any failure or cancellation
// of ctx the previous out is untouched and the temporary is gone.
//
// Abandoned temporaries of killed runs into the same out are removed first.
// Concurrent Replaces into one out all succeed and out is never a partial
// output: each swaps its output in, the last one stays. (Where renameat2's
// flags are unsupported, out is missing for an instant instead.)
func Replace(ctx context.Context, out string, o Options, fill func(tmp string) error) (res Result, err error) {
	start := o.Start
	if start.IsZero() {
		start = Now()
	}
	out, err = outPath(out)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.Removed, res.CleanErr = RemoveAbandoned(out)
	tmp, lock, err := makeTemp(out)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			if rerr := removeTree(tmp); rerr != nil {
				err = fmt.Errorf("%w (and removing %s: %v)", err, tmp, rerr)
			}
		}
		lock.Close()
	}()
	if err := fill(tmp); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := os.Chtimes(tmp, start, start); err != nil {
		return res, fmt.Errorf("set the time of the new output: %w", err)
	}
	old, err := swapIn(tmp, out, lock)
	if err != nil {
		return res, err
	}
	if old == "" {
		return res, nil
	}
	res.Replaced = true
	if err := removeOld(old, o.RemoveOld); err != nil {
		res.Leftover, res.LeftoverErr = old, err
	}
	return res, nil
}

// Now is the time a build starts, to give Replace. It is read from the
// coarse clock that file systems stamp mtimes with: a finer clock can be
// ahead of the stamp of a file written just after it, and that edit would
// look older than the output.
func Now() time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &ts); err != nil {
		return time.Now() // kernels before 2.6.32 only
	}
	return time.Unix(ts.Unix())
}

// outPath is out made absolute, so that its parent and base are real names
// even for "." or "..".
func outPath(out string) (string, error) {
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", fmt.Errorf("the output %s: %w", out, err)
	}
	if abs == "/" {
		return "", fmt.Errorf("the output %s is the root directory: it cannot be replaced", out)
	}
	return abs, nil
}

// tempPrefix is the start of every temporary name for out: a base cut so
// that the whole name fits NAME_MAX, and a hash of the full base so that
// two long names sharing their start still have distinct temporaries.
func tempPrefix(out string) string {
	base := filepath.Base(out)
	h := fnv.New32a()
	h.Write([]byte(base))
	keep := nameMax - len(tempMarker) - hashLen - 1 - randLen
	if len(base) > keep {
		for keep > 0 && !utf8.RuneStart(base[keep]) {
			keep--
		}
		base = base[:keep]
	}
	return fmt.Sprintf("%s%s%0*x-", base, tempMarker, hashLen, h.Sum32())
}

// tempName is a fresh temporary name beside out.
func tempName(out string) string {
	return filepath.Join(filepath.Dir(out), fmt.Sprintf("%s%0*x", tempPrefix(out), randLen, rand.Uint32()))
}

// isTemp tells whether name (a base name) is one of out's temporaries.
func isTemp(out, name string) bool {
	suffix, ok := strings.CutPrefix(name, tempPrefix(out))
	return ok && len(suffix) == randLen && isHex(suffix)
}

// looksTemp tells whether name is a temporary of some output:
// "...<tempMarker><hash>-<random>".
func looksTemp(name string) bool {
	i := strings.LastIndex(name, tempMarker)
	if i < 0 {
		return false
	}
	hash, rnd, ok := strings.Cut(name[i+len(tempMarker):], "-")
	return ok && len(hash) == hashLen && len(rnd) == randLen && isHex(hash) && isHex(rnd)
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// makeTemp creates a temporary directory beside out, mode 0755, and returns
// it with the flock that marks it live. A cleaner of another run may lock
// and remove it between the mkdir and our flock: then we start again.
func makeTemp(out string) (string, *os.File, error) {
	for range maxAttempts {
		tmp := tempName(out)
		// 0700 until locked: nobody else can open it to take the lock first.
		if err := os.Mkdir(tmp, 0o700); errors.Is(err, fs.ErrExist) {
			continue
		} else if err != nil {
			return "", nil, fmt.Errorf("create a temporary directory beside %s: %w", out, err)
		}
		f, ok, err := lockDir(tmp, false)
		if err != nil {
			return "", nil, fmt.Errorf("create a temporary directory beside %s: %w", out, err)
		}
		if !ok {
			continue // a cleaner holds it and removes it
		}
		// An appliance directory is read by others (qemu run by libvirt).
		if err := os.Chmod(tmp, 0o755); err != nil {
			removeTree(tmp)
			f.Close()
			return "", nil, fmt.Errorf("create a temporary directory beside %s: %w", out, err)
		}
		return tmp, f, nil
	}
	return "", nil, fmt.Errorf("create a temporary directory beside %s: other runs kept taking it away", out)
}

// lockDir opens dir and takes an exclusive flock on it, waiting for it when
// wait is set. ok is false when dir is locked by someone else (only without
// wait) or is no longer the directory opened: removed, or not a directory.
func lockDir(dir string, wait bool) (f *os.File, ok bool, err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	f = os.NewFile(uintptr(fd), dir)
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(fd, how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, false, nil
	}
	if err != nil {
		f.Close()
		return nil, false, &os.PathError{Op: "flock", Path: dir, Err: err}
	}
	var held, now unix.Stat_t
	if err := unix.Fstat(fd, &held); err != nil {
		f.Close()
		return nil, false, &os.PathError{Op: "fstat", Path: dir, Err: err}
	}
	if err := unix.Lstat(dir, &now); err != nil || now.Dev != held.Dev || now.Ino != held.Ino {
		f.Close()
		return nil, false, nil
	}
	return f, true, nil
}

// RemoveAbandoned removes out's temporaries left by runs that were killed:
// those whose flock can be taken. A live one, locked by a build in
// progress, is kept. It returns what it removed.
func RemoveAbandoned(out string) ([]string, error) {
	out, err := outPath(out)
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(out)
	d, err := os.Open(parent)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("look for abandoned temporaries: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("look for abandoned temporaries: %w", err)
	}
	var removed []string
	var errs []error
	for _, name := range names {
		if !isTemp(out, name) {
			continue
		}
		p := filepath.Join(parent, name)
		f, ok, err := lockDir(p, false)
		if err != nil {
			errs = append(errs, err)
		}
		if !ok {
			continue
		}
		// Removed while locked, so its owner (if it was only starting)
		// sees it gone and makes another.
		err = removeTree(p)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// swapIn puts tmp (locked by lock, released once swapped) at out and
// returns where the previous output now is, "" when there was none.
// Racers into the same out may change it between our look and our rename:
// then we look again.
func swapIn(tmp, out string, lock *os.File) (string, error) {
	for range maxAttempts {
		fi, err := os.Lstat(out)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			done, err := moveNew(tmp, out)
			if err != nil {
				return "", err
			}
			if done {
				lock.Close()
				return "", nil
			}
		case err != nil:
			return "", fmt.Errorf("the output %s: %w", out, err)
		case !fi.IsDir():
			return "", fmt.Errorf("the output %s exists and is not a directory: not replacing it", out)
		default:
			old, done, err := exchange(tmp, out, lock)
			if err != nil {
				return "", err
			}
			if done {
				return old, nil
			}
		}
	}
	return "", fmt.Errorf("replace %s: other runs kept changing it", out)
}

// moveNew renames tmp to a missing out; done is false when out appeared in
// between (a racer won the first place: ours then replaces it).
func moveNew(tmp, out string) (done bool, err error) {
	err = renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, out, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// A plain rename replaces an empty directory silently: an output
		// that is empty is complete all the same.
		err = os.Rename(tmp, out)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOTEMPTY):
		return false, nil
	}
	return false, fmt.Errorf("put the new output at %s: %w", out, unwrapLink(err))
}

// exchange swaps tmp and an existing out atomically and returns where the
// previous output is now (tmp). done is false when out vanished in between.
func exchange(tmp, out string, lock *os.File) (old string, done bool, err error) {
	err = renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, out, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		lock.Close()
		return tmp, true, nil
	case errors.Is(err, unix.ENOENT):
		return "", false, nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		return replaceByRenames(tmp, out, lock)
	}
	return "", false, fmt.Errorf("replace the output %s: %w", out, err)
}

// replaceByRenames is exchange where the file system has no
// RENAME_EXCHANGE: out is moved aside under a temporary name, locked so
// that no cleaner takes it, then tmp is moved in. If a racer's output
// takes the place in between, it stays and ours is dropped.
func replaceByRenames(tmp, out string, lock *os.File) (old string, done bool, err error) {
	held, ok, err := lockDir(out, true)
	if err != nil {
		return "", false, fmt.Errorf("replace %s: %w", out, err)
	}
	if !ok {
		return "", false, nil
	}
	defer held.Close()
	aside := tempName(out)
	if err := os.Rename(out, aside); errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	} else if err != nil {
		return "", false, fmt.Errorf("rename %s: %w", out, unwrapLink(err))
	}
	err = os.Rename(tmp, out)
	if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
		if rerr := removeTree(tmp); rerr != nil {
			return "", false, fmt.Errorf("drop %s, replaced by another run's output: %w", tmp, rerr)
		}
		lock.Close()
		return aside, true, nil
	}
	if err != nil {
		if rerr := os.Rename(aside, out); rerr != nil {
			return "", false, fmt.Errorf("rename %s to %s: %w; the previous output is left at %s (%v)", tmp, out, unwrapLink(err), aside, unwrapLink(rerr))
		}
		return "", false, fmt.Errorf("rename %s to %s: %w", tmp, out, unwrapLink(err))
	}
	lock.Close()
	return aside, true, nil
}

// removeOld removes a previous output we swapped out, or has detach do
// it, after taking its lock so that a cleaner of another run is not
// removing it at the same time.
func removeOld(old string, detach func(string, *os.File) error) error {
	f, ok, err := lockDir(old, true)
	if err != nil {
		return err
	}
	if !ok {
		return nil // a cleaner of another run removed it
	}
	defer f.Close()
	// Only a tree of our own is sure to go: another user's is removed
	// here, where a failure can still be reported.
	var st unix.Stat_t
	mine := unix.Fstat(int(f.Fd()), &st) == nil && (st.Uid == uint32(os.Geteuid()) || os.Geteuid() == 0)
	if detach != nil && mine && detach(old, f) == nil {
		return nil
	}
	return removeTree(old)
}

// ErrNotMoved is RemoveMoved's error for a directory that is not a
// previous output Replace moved aside, or a lock that is not its.
var ErrNotMoved = errors.New("not a previous output moved aside by a build")

// RemoveMoved removes old, a previous output given to Options.RemoveOld,
// holding lock, the flock Replace took on it (inherited by the process
// that removes it). A build that finds old left over, because this
// process was killed, removes it as an abandoned temporary.
func RemoveMoved(old string, lock *os.File) error {
	var dir, held unix.Stat_t
	if !looksTemp(filepath.Base(old)) {
		return fmt.Errorf("%s: %w", old, ErrNotMoved)
	}
	if err := unix.Lstat(old, &dir); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // a cleaner of another run removed it
		}
		return fmt.Errorf("%s: %w", old, err)
	}
	if err := unix.Fstat(int(lock.Fd()), &held); err != nil || dir.Mode&unix.S_IFMT != unix.S_IFDIR ||
		dir.Dev != held.Dev || dir.Ino != held.Ino {
		return fmt.Errorf("%s: %w", old, ErrNotMoved)
	}
	// The flock is ours only if no one else holds one: a live build's
	// temporary is locked by that build.
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("%s: %w", old, ErrNotMoved)
	}
	return removeTree(old)
}

// unwrapLink drops *os.LinkError's repetition of both names, which our
// messages already give.
func unwrapLink(err error) error {
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
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
