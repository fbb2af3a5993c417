package outdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// fileID is what makes two names the same file, whatever symlinks or bind
// mounts lead to it.
type fileID struct{ dev, ino uint64 }

func idOf(st *unix.Stat_t) fileID { return fileID{uint64(st.Dev), st.Ino} }

// maxDepth bounds a walk up "..", which ends at "/" on any sane system.
const maxDepth = 4096

// CheckDisjoint refuses an output that is, contains or lies inside one of
// the inputs or the root: replacing it would destroy them. Files are
// compared by device and inode, so no symlink or bind mount hides an
// overlap. A root that is "/" (building from the host) naturally contains
// the output; only an output that is "/" itself is refused then. Inputs
// that do not exist are left to whoever reads them.
func CheckDisjoint(out string, inputs []string, root string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("the output %s: %w", out, err)
	}
	var outID *fileID
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err == nil {
		id := idOf(&st)
		outID = &id
	} else if !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("the output %s: %w", out, err)
	}
	// The directories above out as the kernel reaches them when it renames
	// into out: those of its parent, not of where a symlink out leads.
	above, err := existingAncestors(filepath.Dir(abs))
	if err != nil {
		return fmt.Errorf("the output %s: %w", out, err)
	}
	type named struct{ what, path string }
	var all []named
	for _, in := range inputs {
		all = append(all, named{"input", in})
	}
	hostRoot := false
	if root != "" {
		all = append(all, named{"root", root})
		var r, slash unix.Stat_t
		if unix.Stat(root, &r) == nil && unix.Stat("/", &slash) == nil {
			hostRoot = idOf(&r) == idOf(&slash)
		}
	}
	for _, in := range all {
		chain, err := inputChain(in.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("the %s %s: %w", in.what, in.path, err)
		}
		switch {
		case outID != nil && *outID == chain[0]:
			return fmt.Errorf("the output %s is the %s %s: building there would destroy it", out, in.what, in.path)
		case outID != nil && slices.Contains(chain[1:], *outID):
			return fmt.Errorf("the output %s contains the %s %s: building there would destroy it", out, in.what, in.path)
		case slices.Contains(above, chain[0]) && !(in.what == "root" && hostRoot):
			return fmt.Errorf("the output %s lies inside the %s %s: building there would change it", out, in.what, in.path)
		}
	}
	return nil
}

// inputChain is the identity of path (symlinks followed) and then of every
// directory above where it really is.
func inputChain(path string) ([]fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return ancestors(path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	up, err := ancestors(filepath.Dir(real))
	if err != nil {
		return nil, err
	}
	return append([]fileID{idOf(&st)}, up...), nil
}

// existingAncestors is ancestors of the deepest existing directory of the
// lexical path dir: an output in a directory still to be made lies inside
// whatever holds that directory.
func existingAncestors(dir string) ([]fileID, error) {
	for {
		ids, err := ancestors(dir)
		if !errors.Is(err, fs.ErrNotExist) || dir == filepath.Dir(dir) {
			return ids, err
		}
		dir = filepath.Dir(dir)
	}
}

// ancestors is the identity of the directory dir and of each directory
// above it, following ".." as the kernel does: across bind mounts and
// symlinks to the real parent, not the one in the name.
func ancestors(dir string) ([]fileID, error) {
	// O_PATH needs only search permission, as a build does.
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	var ids []fileID
	for len(ids) < maxDepth {
		var st unix.Stat_t
		err := unix.Fstat(fd, &st)
		if err != nil {
			unix.Close(fd)
			return nil, &os.PathError{Op: "stat", Path: dir, Err: err}
		}
		id := idOf(&st)
		if len(ids) > 0 && ids[len(ids)-1] == id {
			unix.Close(fd)
			return ids, nil
		}
		ids = append(ids, id)
		parent, err := unix.Openat(fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: dir + " (a directory above)", Err: err}
		}
		fd = parent
	}
	unix.Close(fd)
	return nil, fmt.Errorf("%s: more than %d directories above it", dir, maxDepth)
}
