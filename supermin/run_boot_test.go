package supermin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runScript is the command of the boots that check several things at
// once: it records its arguments and stdin in the shared directory, as
// bytes, writes one line to stdout and one to stderr, says where it runs
// and what is mounted, and exits with $STATUS.
const runScript = `for a in "$@"; do printf '%s\0' "$a"; done > args.bin
cat > stdin.bin
echo "to stdout"
echo "to stderr" >&2
echo "cwd=$(pwd) uid=$(id -u) path=$PATH firstboot=$(cat /firstboot-ran)"
for m in /proc /sys /dev /tmp; do mountpoint -q $m || echo "$m not mounted"; done
test -c /dev/null || echo "no /dev/null"
exit $STATUS`

// runArgs are arguments that a kernel command line could not carry.
var runArgs = []string{"a b", `single ' and double " quotes`, "new\nline", "not UTF-8 \xff\xfe", "", "--", "-v"}

// runOut is what one gosupermin --run gave.
type runOut struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// runGosupermin runs argv (gosupermin --run ...) in dir with stdin; a
// deadline only turns a hang into a failure.
func runGosupermin(t *testing.T, dir string, stdin []byte, argv ...string) runOut {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	r := runOut{stdout: so.String(), stderr: se.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%q: %v", argv, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%q did not end:\n%s", argv, se.String())
	}
	return r
}

// TestRunBoot boots real appliances under TCG with gosupermin --run,
// ext2 as root and cpio as an unprivileged user: exit statuses 0, 1, 7
// and 255, arguments and stdin byte for byte, stdout and stderr apart
// and free of console messages, files written in the shared current
// directory, first-boot scripts before the command, the root image left
// alone unless --persist, --timeout, Ctrl+C, and a broken appliance.
func TestRunBoot(t *testing.T) {
	needBoot(t)
	bin := buildGosupermin(t)
	dir := userTempDir(t)
	sd := bootSupermind(t, bin, dir)
	// A first-boot runner that leaves a mark: it runs before the command.
	tgz := bootTarGz(t, map[string]string{"usr/lib/gosupermin/firstboot/run": "#!/bin/sh\necho yes > /firstboot-ran\n"})
	if err := os.WriteFile(filepath.Join(sd, "zzz-run.tar.gz"), tgz, 0o644); err != nil {
		t.Fatal(err)
	}
	ext2Out, cpioOut := filepath.Join(dir, "ext2"), filepath.Join(dir, "cpio")
	gosupermin(t, bin, nil, "--build", "-f", "ext2", "--size", "1G", sd, "-o", ext2Out)
	gosupermin(t, bin, nil, "--build", "-f", "cpio", sd, "-o", cpioOut)
	userBin := filepath.Join(dir, "gosupermin")
	copyFile(t, bin, userBin, 0o755)
	stdin := []byte("stdin\x00bytes\xff\nand more")

	// checkScript checks a boot of runScript in work.
	checkScript := func(t *testing.T, r runOut, work string, status int) {
		t.Helper()
		if r.code != status {
			t.Fatalf("exit status %d, want %d; stderr:\n%s", r.code, status, r.stderr)
		}
		wantOut := "to stdout\ncwd=" + work + " uid=0 path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin firstboot=yes\n"
		if r.stdout != wantOut {
			t.Errorf("stdout %q, want %q", r.stdout, wantOut)
		}
		if r.stderr != "to stderr\n" {
			t.Errorf("stderr %q, want only the command's", r.stderr)
		}
		var args bytes.Buffer
		for _, a := range runArgs {
			args.WriteString(a + "\x00")
		}
		for name, want := range map[string][]byte{"args.bin": args.Bytes(), "stdin.bin": stdin} {
			got, err := os.ReadFile(filepath.Join(work, name))
			if err != nil {
				t.Errorf("the file the command wrote in the shared directory: %v", err)
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s: %q, want %q", name, got, want)
			}
		}
	}
	mtime := func(p string) time.Time {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	acc := "--accel=" + accel()

	t.Run("ext2", func(t *testing.T) {
		t.Parallel()
		work := filepath.Join(dir, "ext2 work")
		os.Mkdir(work, 0o755)
		root := filepath.Join(ext2Out, "root")
		before := mtime(root)
		// The guest's environment is its own: STATUS comes by env(1).
		r := runGosupermin(t, work, stdin, append([]string{bin, "--run", ext2Out, acc},
			append([]string{"--", "env", "STATUS=7", "sh", "-c", runScript, "script"}, runArgs...)...)...)
		checkScript(t, r, work, 7)
		t.Logf("ext2, status 7: %.1f s", r.took.Seconds())
		if !mtime(root).Equal(before) {
			t.Errorf("the root image changed without --persist")
		}
		r = runGosupermin(t, work, nil, bin, "--run", ext2Out, acc, "--persist", "--", "sh", "-c", "echo kept > /persisted; exit 1")
		if r.code != 1 || r.stdout != "" || r.stderr != "" {
			t.Errorf("--persist, exit 1: %+v", r)
		}
		r = runGosupermin(t, work, nil, bin, "--run", ext2Out, acc, "--", "cat", "/persisted")
		if r.code != 0 || r.stdout != "kept\n" {
			t.Errorf("after --persist: %+v", r)
		}
		r = runGosupermin(t, work, nil, bin, "--run", ext2Out, acc, "--timeout", "3", "--", "sleep", "1000")
		if r.code != 124 || !strings.Contains(r.stderr, "did not finish in time") {
			t.Errorf("--timeout: %+v", r)
		}
		t.Logf("--timeout 3: %.1f s", r.took.Seconds())
	})

	t.Run("cpio as a user", func(t *testing.T) {
		t.Parallel()
		user := asUser(t)
		work := filepath.Join(dir, "cpio work")
		os.Mkdir(work, 0o755)
		os.Chmod(work, 0o777) // the user writes there
		r := runGosupermin(t, work, stdin, append(append(append([]string{}, user...), userBin, "--run", cpioOut, acc),
			append([]string{"--", "env", "STATUS=0", "sh", "-c", runScript, "script"}, runArgs...)...)...)
		checkScript(t, r, work, 0)
		t.Logf("cpio, status 0: %.1f s", r.took.Seconds())
		if fi, err := os.Stat(filepath.Join(work, "args.bin")); err == nil {
			if uid := fi.Sys().(*syscall.Stat_t).Uid; os.Geteuid() == 0 && uid != 65534 {
				t.Errorf("the shared file belongs to uid %d, not the user who ran gosupermin", uid)
			}
		}
		// A read-only share: read, not written, even by the guest's root;
		// then exit 255.
		ro := filepath.Join(dir, "ro share")
		os.Mkdir(ro, 0o755)
		os.Chmod(ro, 0o777) // writable for the user: only --share-ro stops the write
		os.WriteFile(filepath.Join(ro, "in.txt"), []byte("shared read-only\n"), 0o644)
		r = runGosupermin(t, work, nil, append(append([]string{}, user...), userBin, "--run", cpioOut, acc, "--share-ro", ro+":/ro",
			"--", "sh", "-c", "cat /ro/in.txt && if echo x > /ro/new; then exit 1; fi; exit 255")...)
		if r.code != 255 || r.stdout != "shared read-only\n" {
			t.Errorf("--share-ro, exit 255: %+v", r)
		}
		if _, err := os.Stat(filepath.Join(ro, "new")); err == nil {
			t.Errorf("the appliance wrote into a --share-ro directory")
		}
	})

	t.Run("broken appliance", func(t *testing.T) {
		t.Parallel()
		// The kernel without an init: an empty initramfs.
		broken := filepath.Join(dir, "broken")
		os.Mkdir(broken, 0o755)
		k, err := filepath.EvalSymlinks(filepath.Join(cpioOut, "kernel"))
		if err != nil {
			t.Fatal(err)
		}
		os.Symlink(k, filepath.Join(broken, "kernel"))
		// newc: a TRAILER!!! entry alone.
		trailer := "070701" + strings.Repeat("0", 8*11) + "0000000B" + "00000000" + "TRAILER!!!\x00"
		os.WriteFile(filepath.Join(broken, "initrd"), []byte(trailer+strings.Repeat("\x00", 4-len(trailer)%4)), 0o644)
		r := runGosupermin(t, dir, nil, bin, "--run", broken, acc, "--", "true")
		if r.code != 1 || !strings.Contains(r.stderr, "the appliance did not run the command") ||
			!strings.Contains(r.stderr, "Kernel panic") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("broken appliance: %+v", r)
		}
	})
}

// TestRunBootInterrupt: Ctrl+C (SIGINT) stops the machine: exit status
// 130, no qemu left.
func TestRunBootInterrupt(t *testing.T) {
	needBoot(t)
	bin := buildGosupermin(t)
	dir := t.TempDir()
	sd := bootSupermind(t, bin, dir)
	out := filepath.Join(dir, "cpio")
	gosupermin(t, bin, nil, "--build", "-f", "cpio", sd, "-o", out)
	cmd := exec.Command(bin, "--run", out, "--accel="+accel(), "--", "sh", "-c", "touch started; sleep 1000")
	cmd.Dir = dir
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute) // turns a hang into a failure
	for {
		if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the command never started:\n%s", se.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(se.String(), "interrupted") {
		t.Errorf("after Ctrl+C: %v, stderr %q", err, se.String())
	}
	// qemu is gone: no process has the appliance's initrd open.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(out)) {
			t.Errorf("still running after Ctrl+C: %s", bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
}
