package outdir

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// CheckBeside refuses a file that a build writes besides its output (a
// bill of materials) when the file is the output or lies inside it: the
// output is replaced by a new directory, which would take the file away.
// Names are compared, and so are files by device and inode, so that no
// symlink or bind mount hides an overlap.
func CheckBeside(out, file string) error {
	absOut, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("the output %s: %w", out, err)
	}
	absFile, err := filepath.Abs(file)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	inside := fmt.Errorf("%s is inside the output %s, which the build replaces: write it beside the output", file, out)
	if absFile == absOut || strings.HasPrefix(absFile, absOut+string(filepath.Separator)) {
		return inside
	}
	var st unix.Stat_t
	if err := unix.Stat(absOut, &st); errors.Is(err, unix.ENOENT) {
		return nil
	} else if err != nil {
		return fmt.Errorf("the output %s: %w", out, err)
	}
	above, err := existingAncestors(filepath.Dir(absFile))
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var fst unix.Stat_t
	if slices.Contains(above, idOf(&st)) || unix.Stat(absFile, &fst) == nil && idOf(&fst) == idOf(&st) {
		return inside
	}
	return nil
}
