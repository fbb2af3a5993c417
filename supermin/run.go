package supermin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/gosupermin/gosupermin/appliance/vm"
)

// RunOptions for Run.
type RunOptions struct {
	// Options: Verbose > 0 shows the serial console (kernel and init
	// messages) on Console; Log gets the messages.
	Options
	// Out is an output of Build in the ext2 or cpio format.
	Out string
	// Args is the command; empty runs a shell (see vm.Command).
	Args []string
	// Dir is the command's working directory in the guest.
	Dir string
	// Env is added to the guest's environment.
	Env []string
	// Shares are host directories mounted in the guest; a later share at
	// the same guest directory replaces an earlier one.
	Shares []vm.Share
	// Stdin, Stdout and Stderr are the command's streams.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Console receives the serial console when Verbose > 0.
	Console io.Writer
	// Terminal runs the command (a shell if Args is empty) on the
	// console, put on TerminalIn and TerminalOut, sized Rows x Cols.
	Terminal                bool
	TerminalIn, TerminalOut *os.File
	Rows, Cols              uint16
	MemoryMiB, SMP          int
	// Timeout, when positive, stops the machine after that long: Run
	// then returns an error wrapping ErrTimeout.
	Timeout time.Duration
	// Accel is "auto" (or ""), "kvm" or "tcg".
	Accel string
	// Persist keeps what the command changes in the ext2 root.
	Persist bool
	// Qemu is the qemu-system binary; empty: the architecture's, on PATH.
	Qemu string
}

// ErrTimeout is wrapped by Run's error when RunOptions.Timeout expired.
var ErrTimeout = errors.New("the command did not finish in time; the virtual machine was stopped")

// Run boots the appliance at Out in qemu, runs the command in it as
// root, and returns its exit status. An error means the command's status
// is unknown: the appliance did not boot (*vm.BootError), the time ran
// out (ErrTimeout), ctx was cancelled.
func Run(ctx context.Context, o RunOptions) (int, error) {
	a, err := vm.Open(o.Out)
	if err != nil {
		return 0, err
	}
	if o.Persist && a.Root == "" {
		o.warnf("%s is a cpio appliance: it has no root image to keep changes in", o.Out)
	}
	shares, err := dedupShares(o.Shares)
	if err != nil {
		return 0, err
	}
	vo := vm.Options{Shares: shares, MemoryMiB: o.MemoryMiB, SMP: o.SMP, Accel: o.Accel, Persist: o.Persist, Qemu: o.Qemu,
		Log: func(msg string) { o.log(0, msg) }, Detail: func(msg string) { o.log(1, msg) }}
	if o.Verbose > 0 {
		vo.Console = o.Console
		o.logf(1, "%s appliance for %s: %s", a.Format(), a.Arch.Name, a.Dir)
	}
	runCtx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	m, err := vm.Start(runCtx, a, vo, vm.Command{Args: o.Args, Dir: o.Dir, Env: o.Env, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr,
		Terminal: o.Terminal, TerminalIn: o.TerminalIn, TerminalOut: o.TerminalOut, Rows: o.Rows, Cols: o.Cols})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	status, err := m.Wait()
	if err != nil && ctx.Err() == nil && errors.Is(runCtx.Err(), context.DeadlineExceeded) {
		return 0, fmt.Errorf("%w (after %s)", ErrTimeout, o.Timeout)
	}
	if err == nil {
		o.logf(1, "the command exited with status %d, %.2f s after the appliance was started", status, time.Since(start).Seconds())
	}
	return status, err
}

// dedupShares keeps the last share of each guest directory, sorted by
// guest directory: a share inside another is mounted after it.
func dedupShares(in []vm.Share) ([]vm.Share, error) {
	var out []vm.Share
	at := map[string]int{}
	for _, s := range in {
		if !filepath.IsAbs(s.GuestDir) || filepath.Clean(s.GuestDir) == "/" {
			return nil, fmt.Errorf("shared directory %s: its place in the appliance, %q, must be an absolute path other than /", s.HostDir, s.GuestDir)
		}
		s.GuestDir = filepath.Clean(s.GuestDir)
		if i, ok := at[s.GuestDir]; ok {
			out[i] = s
			continue
		}
		at[s.GuestDir] = len(out)
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].GuestDir < out[j].GuestDir })
	return out, nil
}
