package outdir

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// helperEnv selects what the test binary does when a test runs it as a
// separate process: another build, a killed one, another user.
const helperEnv = "OUTDIR_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helperResult is what the "replace" helper prints.
type helperResult struct {
	Replaced    bool
	Leftover    string
	LeftoverErr string
	Warnings    []string
	Err         string
}

func helper(mode string, args []string) int {
	switch mode {
	case "hang": // hang OUT: stop for good in the middle of fill
		_, err := Replace(context.Background(), args[0], Options{Start: Now()}, func(tmp string) error {
			if err := os.WriteFile(filepath.Join(tmp, "partial"), []byte("x"), 0o644); err != nil {
				return err
			}
			fmt.Println("ready")
			select {}
		})
		fmt.Fprintln(os.Stderr, err)
		return 1
	case "race": // race PREFIX ROUNDS ID: once stdin closes, fill PREFIX-0...
		io.Copy(io.Discard, os.Stdin)
		rounds, _ := strconv.Atoi(args[1])
		for r := range rounds {
			out := fmt.Sprintf("%s-%d", args[0], r)
			if _, err := Replace(context.Background(), out, Options{Start: Now()}, completeFill(args[2])); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return 0
	case "removemoved": // removemoved OLD [hold]: RemoveMoved with fd 3 as the lock
		if len(args) > 1 { // hold the lock, killed before removing
			fmt.Println("holding")
			select {}
		}
		if err := RemoveMoved(args[0], os.NewFile(3, "lock")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "replace": // replace OUT: one Replace, its outcome as JSON
		res, err := Replace(context.Background(), args[0], Options{Start: Now()}, completeFill("new"))
		hr := helperResult{Replaced: res.Replaced, Leftover: res.Leftover, Warnings: res.Warnings()}
		if res.LeftoverErr != nil {
			hr.LeftoverErr = res.LeftoverErr.Error()
		}
		if err != nil {
			hr.Err = err.Error()
		}
		json.NewEncoder(os.Stdout).Encode(hr)
		return 0
	case "trylock": // trylock FILE: is an fcntl lock on FILE held elsewhere?
		f, err := os.OpenFile(args[0], os.O_RDWR, 0)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK}
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EACCES):
			fmt.Println("held")
		case err == nil:
			fmt.Println("free")
		default:
			fmt.Println(err)
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

// markerFiles is how many files completeFill writes before its marker.
const markerFiles = 5

// completeFill writes files saying id and then, last, the marker: an
// output with a marker whose files all say the marker's id is complete.
func completeFill(id string) func(string) error {
	return func(tmp string) error {
		for i := range markerFiles {
			if err := os.WriteFile(filepath.Join(tmp, fmt.Sprintf("f%d", i)), []byte(id), 0o644); err != nil {
				return err
			}
		}
		return os.WriteFile(filepath.Join(tmp, "marker"), []byte(id), 0o644)
	}
}

// checkComplete fails unless out is one whole output of completeFill.
func checkComplete(t *testing.T, out string) {
	t.Helper()
	id, err := os.ReadFile(filepath.Join(out, "marker"))
	if err != nil {
		t.Fatalf("%s has no marker: %v", out, err)
	}
	for i := range markerFiles {
		got, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("f%d", i)))
		if err != nil || string(got) != string(id) {
			t.Fatalf("%s/f%d = %q %v, want %q: a mix of outputs", out, i, got, err, id)
		}
	}
}

// temps lists the temporaries beside out, its own and of any other name.
func temps(t *testing.T, out string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(filepath.Dir(out), "*"+tempMarker+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// helperCmd runs the test binary in a helper mode.
func helperCmd(t *testing.T, mode string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	return cmd
}

// startHang starts a helper that stops in the middle of filling out, and
// returns once its temporary exists.
func startHang(t *testing.T, out string) *exec.Cmd {
	t.Helper()
	cmd := helperCmd(t, "hang", out)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("helper: %q %v", line, err)
	}
	return cmd
}

// nobody is who the tests that need an unprivileged user run as; root
// runs them through runuser or setpriv.
type nobody struct {
	uid, gid int
	prefix   []string // the command that runs the rest as nobody
	exe      string   // a copy of the test binary that nobody can run
	dir      string   // where the test's files go
}

// asNobody prepares running helpers as nobody in a directory of its own,
// n.dir, which nobody can reach. Not root: skip, it cannot make root's files.
func asNobody(t *testing.T) *nobody {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it sets up files owned by root and runs as nobody")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	n := &nobody{}
	n.uid, _ = strconv.Atoi(u.Uid)
	n.gid, _ = strconv.Atoi(u.Gid)
	if p, err := exec.LookPath("runuser"); err == nil {
		n.prefix = []string{p, "-u", "nobody", "--"}
	} else if p, err := exec.LookPath("setpriv"); err == nil {
		n.prefix = []string{p, "--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups", "--"}
	} else if os.Getenv("CI") != "" {
		t.Fatal("neither runuser nor setpriv is installed: CI must have one (util-linux)")
	} else {
		t.Skip("neither runuser nor setpriv is installed (set CI to make this a failure)")
	}
	// Not t.TempDir: its directories are 0700, closed to nobody.
	n.dir, err = os.MkdirTemp("", "outdir-nobody-")
	if err == nil {
		err = os.Chmod(n.dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(n.dir) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	n.exe = filepath.Join(n.dir, "outdir.test")
	if err := os.WriteFile(n.exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return n
}

// replace runs the "replace" helper as nobody on out.
func (n *nobody) replace(t *testing.T, out string) helperResult {
	t.Helper()
	args := append(append([]string(nil), n.prefix...), n.exe, out)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"=replace")
	cmd.Dir = n.dir
	cmd.Stderr = os.Stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v (%s)", args, err, stdout)
	}
	var hr helperResult
	if err := json.Unmarshal(stdout, &hr); err != nil {
		t.Fatalf("helper said %q: %v", stdout, err)
	}
	return hr
}

// mkTree makes the files (contents) and directories (ending in "/") of
// spec under dir, owned by uid.
func mkTree(t testing.TB, dir string, uid int, spec ...string) {
	t.Helper()
	for _, s := range append([]string{"/"}, spec...) {
		p := filepath.Join(dir, s)
		var err error
		if strings.HasSuffix(s, "/") {
			err = os.MkdirAll(p, 0o755)
		} else {
			err = os.WriteFile(p, []byte(s), 0o644)
		}
		if err == nil && uid >= 0 {
			err = os.Lchown(p, uid, -1)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
