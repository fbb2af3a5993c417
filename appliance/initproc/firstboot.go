package initproc

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// firstboot runs the first-boot runner, if the appliance has one, in the
// appliance's root (init has switched to it), with /proc, /sys and /dev
// mounted for the time it runs. A failure is reported and boot goes on.
func (in *initState) firstboot() {
	if !in.p.firstboot {
		if _, err := os.Stat(FirstbootRunner); err == nil {
			in.logf("first-boot scripts skipped (gosupermin.firstboot=0)")
		}
		return
	}
	if _, err := os.Stat(FirstbootRunner); err != nil {
		return
	}
	in.logf("running first-boot scripts (%s)", FirstbootRunner)
	var out io.Writer = in.out
	if in.p.quiet {
		out = io.Discard
	}
	for _, m := range earlyMounts {
		if fi, err := os.Stat(m.dir); err != nil || !fi.IsDir() {
			_ = os.Mkdir(m.dir, 0o755)
		}
		if err := unix.Mount(m.fs, m.dir, m.fs, m.flags, ""); err != nil {
			in.warnf("first boot: mount %s on %s: %v", m.fs, m.dir, err)
			continue
		}
		defer unix.Unmount(m.dir, unix.MNT_DETACH)
	}
	t := time.Now()
	err := runFirstboot(FirstbootRunner, out, in.p.fbTimeout, in.p.quiet)
	if err != nil {
		in.warnf("first-boot scripts: %v (see /var/log/gosupermin-firstboot.log)", err)
		return
	}
	in.logf("first-boot scripts done in %.1f s", time.Since(t).Seconds())
}

// runFirstboot runs "/bin/sh runner" with a time limit; on timeout the
// whole process group is killed.
func runFirstboot(runner string, out io.Writer, timeout time.Duration, quiet bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", runner)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"TERM=" + envOr("TERM", "linux"),
		"LANG=C.UTF-8",
	}
	if quiet {
		cmd.Env = append(cmd.Env, "GOSUPERMIN_QUIET=1")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errors.New("killed after " + timeout.String() + " (gosupermin.firstboot.timeout=SECONDS allows more)")
	}
	return err
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
