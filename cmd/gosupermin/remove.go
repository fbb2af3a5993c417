package main

import (
	"os"
	"syscall"

	"github.com/gosupermin/gosupermin/supermin"
)

// removeEnv marks the process a build starts to remove the output it
// replaced: the build exits as soon as the new output is in place, and
// libguestfs boots it while the old one goes (a 4 GiB image or a tree of
// thousands of files takes 0.1-0.3 s to remove).
const removeEnv = "GOSUPERMIN_REMOVE_MOVED"

// removeInBackground is BuildOptions.RemoveOld: this program again, in a
// session of its own (so that the terminal's Ctrl+C does not reach it),
// holding the directory's flock through fd 3. If it is killed before it
// is done, the next build into the same output removes what is left.
func removeInBackground(old string, lock *os.File) error {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	p, err := os.StartProcess("/proc/self/exe", []string{"gosupermin", old}, &os.ProcAttr{
		Env:   []string{removeEnv + "=1"},
		Files: []*os.File{null, null, null, lock},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return err
	}
	return p.Release()
}

// removeMoved is the background process's whole work.
func removeMoved(args []string) int {
	if len(args) != 1 {
		return exitError
	}
	if err := supermin.RemoveMoved(args[0], os.NewFile(3, "lock")); err != nil {
		return exitError
	}
	return exitOK
}
