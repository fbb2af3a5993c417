package ext2

import (
	"os"
	"syscall"
)

// allocatedBytes is the disk space a file takes, to check that holes stay
// holes in the image.
func allocatedBytes(p string) (int64, bool) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Blocks * 512, true
}
