package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gosupermin/gosupermin/supermin"
)

// The line is drawn at a phase's start, redrawn at most every
// redrawEvery, erased at the phase's end and around messages, which come
// out whole; it never outgrows the terminal.
func TestProgressLine(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(0, 0)
	l := &progressLine{w: &out, width: 40, now: func() time.Time { return clock }}
	steps := []struct {
		do   func()
		want string
	}{
		{func() { l.update(supermin.Progress{Phase: "gathering package files", Total: 40}) },
			"\rgosupermin: gathering package files 0/4\x1b[K"},
		{func() { l.update(supermin.Progress{Phase: "gathering package files", Done: 1, Total: 40}) }, ""}, // too soon
		{func() { l.print("gosupermin: warning: a message\n") },
			"\r\x1b[Kgosupermin: warning: a message\n\rgosupermin: gathering package files 1/4\x1b[K"},
		{func() {
			clock = clock.Add(redrawEvery)
			l.update(supermin.Progress{Phase: "gathering package files", Done: 2, Total: 40})
		}, "\rgosupermin: gathering package files 2/4\x1b[K"},
		{func() { l.update(supermin.Progress{Phase: "gathering package files", Done: 40, Total: 40}) }, "\r\x1b[K"},
		{func() { l.print("gosupermin: between phases\n") }, "gosupermin: between phases\n"},
		{func() {
			l.update(supermin.Progress{Phase: "copying files", Done: 3 << 20, Total: 12 << 20, Bytes: true})
		},
			"\rgosupermin: copying files 25% (3.0 MiB \x1b[K"},
		{func() { l.clear() }, "\r\x1b[K"},
		{func() { l.clear() }, ""},
	}
	for i, s := range steps {
		out.Reset()
		s.do()
		if out.String() != s.want {
			t.Errorf("step %d wrote %q, want %q", i, out.String(), s.want)
		}
	}
}

// openPTY opens a pseudo-terminal: its master, and the terminal a
// program writes to.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	need(t, err == nil, "no pseudo-terminals (/dev/ptmx)")
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(filepath.Join("/dev/pts", strconv.Itoa(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// runOn runs gosupermin with stderr on w and returns what reached r.
func runOn(t *testing.T, w *os.File, r *os.File, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = w
	cmd.Env = append(os.Environ(), env...)
	var got bytes.Buffer
	done := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		close(done)
	}()
	if err := cmd.Run(); err != nil {
		t.Fatalf("gosupermin %v: %v\n%q", args, err, got.String())
	}
	w.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal's output never ended")
	}
	return got.String()
}

// A build whose stderr is a terminal shows its phases on one line, and
// -v messages whole; one whose stderr is a pipe has no trace of it.
func TestProgressTerminal(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	if r := gosupermin(t, "--prepare", "app", "--root", "../../fixtures/dpkg/edge", "-o", sd); r.code != 0 {
		t.Fatalf("prepare: %+v", r)
	}
	args := []string{"--build", "-v", "-f", "chroot", "--root", "../../fixtures/dpkg/edge", sd, "-o", filepath.Join(dir, "out")}

	master, tty := openPTY(t)
	got := runOn(t, tty, master, []string{"TERM=xterm"}, args...)
	got = strings.ReplaceAll(got, "\r\n", "\n") // the terminal's own newline translation
	for _, want := range []string{"\rgosupermin: gathering package files 0/9 packages\x1b[K", "\rgosupermin: copying files 0% (",
		"\r\x1b[Kgosupermin: ", "\ngosupermin: 1 roots, 9 packages in the closure\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal output has no %q:\n%q", want, got)
		}
	}
	if !strings.HasSuffix(got, "\r\x1b[K") && !strings.HasSuffix(got, "\n") {
		t.Errorf("the line is left on the terminal: %q", got[max(0, len(got)-80):])
	}

	master, tty = openPTY(t)
	if got := strings.ReplaceAll(runOn(t, tty, master, []string{"TERM=dumb"}, args...), "\r\n", "\n"); strings.ContainsAny(got, "\r\x1b") {
		t.Errorf("TERM=dumb has a progress line: %q", got)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got = runOn(t, w, r, []string{"TERM=xterm"}, args...)
	if strings.ContainsAny(got, "\r\x1b") || !strings.Contains(got, "\ngosupermin: 1 roots, 9 packages in the closure\n") {
		t.Errorf("a pipe gets a progress line, or not the messages: %q", got)
	}
}
