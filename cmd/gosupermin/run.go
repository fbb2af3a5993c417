package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gosupermin/gosupermin/appliance/vm"
	"github.com/gosupermin/gosupermin/supermin"
	"golang.org/x/sys/unix"
)

// Exit statuses of --run besides the command's own.
const (
	exitTimeout     = 124 // --timeout expired, as timeout(1)
	exitInterrupted = 130 // Ctrl+C, as a shell's 128 + SIGINT
)

func (c *cli) checkRun() error {
	switch {
	case len(c.args) != 1:
		return usageError{"--run needs one appliance directory (an output of --build -f ext2 or cpio), then -- and the command"}
	case c.out != "":
		return usageError{"-o is not used with --run"}
	case c.format != "" || c.sbom != "" || c.firstboot || c.ifNewer || c.includePackageList:
		return usageError{"--run boots an appliance that --build made: the build options do not apply"}
	}
	return nil
}

// systemDirs would hide the appliance's own files if the current
// directory were shared at the same place.
var systemDirs = []string{"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin", "/sys", "/usr"}

// runAppliance is --run: it returns the command's exit status.
func (c *cli) runAppliance(ctx context.Context, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "gosupermin: %v\n", err)
		return exitError
	}
	env, err := readEnv(os.LookupEnv)
	if err != nil {
		return fail(err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return fail(fmt.Errorf("the current directory: %w", err))
	}
	o := supermin.RunOptions{
		Options: supermin.Options{Verbose: c.verbose, Log: func(_ int, msg string) { fmt.Fprintf(stderr, "gosupermin: %s\n", msg) }},
		Out:     c.args[0], Args: c.command, Dir: cwd,
		Stdin: os.Stdin, Stdout: stdout, Stderr: stderr, Console: stderr,
		MemoryMiB: c.memory, SMP: c.smp, Accel: c.accel, Persist: c.persist,
		Timeout: time.Duration(c.timeout * float64(time.Second)),
	}
	if hidesSystem(cwd) {
		o.Dir = "/"
		o.Options.Log(0, fmt.Sprintf("warning: the current directory %s is not shared (it would hide the appliance's own); the command runs in /", cwd))
	} else {
		o.Shares = append(o.Shares, vm.Share{HostDir: cwd, GuestDir: cwd})
	}
	for _, s := range c.shares {
		sh, err := parseShare(s.flag, s.spec, s.readOnly)
		if err != nil {
			fmt.Fprintf(stderr, "gosupermin: %v\n", err)
			return exitUsage
		}
		o.Shares = append(o.Shares, sh)
	}
	// No command and a person at a terminal: a shell on the console.
	if out, ok := stdout.(*os.File); ok && len(c.command) == 0 && isTerminal(os.Stdin) && isTerminal(out) {
		o.Terminal, o.TerminalIn, o.TerminalOut = true, os.Stdin, out
		if ws, err := unix.IoctlGetWinsize(int(o.TerminalOut.Fd()), unix.TIOCGWINSZ); err == nil {
			o.Rows, o.Cols = ws.Row, ws.Col
		}
		if env.term != "" {
			o.Env = append(o.Env, "TERM="+env.term)
		}
		fmt.Fprintln(stderr, "gosupermin: a shell in the appliance; exit it, or Ctrl+A X, to stop the machine")
	}
	status, err := supermin.Run(ctx, o)
	switch {
	case err == nil:
		return status
	case errors.Is(err, supermin.ErrTimeout):
		fmt.Fprintf(stderr, "gosupermin: %v\n", err)
		return exitTimeout
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "gosupermin: interrupted: the virtual machine was stopped")
		return exitInterrupted
	case errors.Is(err, vm.ErrNotAppliance):
		return fail(fmt.Errorf("%w; make one with --build -f ext2 or -f cpio", err))
	}
	return fail(err)
}

// hidesSystem says whether dir is /, or in a system directory.
func hidesSystem(dir string) bool {
	if dir == "/" {
		return true
	}
	for _, s := range systemDirs {
		if dir == s || strings.HasPrefix(dir, s+"/") {
			return true
		}
	}
	return false
}

// shareArg is one --share or --share-ro, read once the command line is.
type shareArg struct {
	flag, spec string
	readOnly   bool
}

func (c *cli) addShare(flag, v string, readOnly bool) error {
	if v == "" {
		return usageError{flag + " needs a directory"}
	}
	c.shares = append(c.shares, shareArg{flag, v, readOnly})
	return nil
}

// parseShare reads --share DIR[:GUESTDIR] (flag names which): GUESTDIR is
// what follows the last ':' when it is an absolute path (a DIR may hold
// ':'), and DIR's absolute path when not given.
func parseShare(flag, s string, readOnly bool) (vm.Share, error) {
	dir, guest := s, ""
	if i := strings.LastIndex(s, ":"); i > 0 && strings.HasPrefix(s[i+1:], "/") {
		dir, guest = s[:i], s[i+1:]
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return vm.Share{}, usageError{fmt.Sprintf("%s %q: %v", flag, s, err)}
	}
	if guest == "" {
		guest = abs
	}
	if filepath.Clean(guest) == "/" {
		return vm.Share{}, usageError{fmt.Sprintf("%s %q: it cannot replace the appliance's root", flag, s)}
	}
	return vm.Share{HostDir: abs, GuestDir: filepath.Clean(guest), ReadOnly: readOnly}, nil
}
