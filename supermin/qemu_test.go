package supermin

// A small qemu harness for boot tests: build the gosupermin binary, check
// that qemu and a host kernel are there (skip, or fail under CI), boot an
// OUT directory and collect the serial console.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/appliance/kernel"
)

// bootSkip skips the test for why, or fails it when env CI is set: in CI
// boot tests must run.
func bootSkip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("boot test cannot run in CI: %s", msg)
	}
	t.Skip(msg)
}

// needBoot checks what booting an appliance needs: qemu-system-x86_64 on
// an amd64 host and a host kernel with modules. It returns qemu's path.
func needBoot(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("boot test: not in -short mode")
	}
	if runtime.GOARCH != "amd64" || runtime.GOOS != "linux" {
		bootSkip(t, "boot tests run on linux/amd64 only (this is %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	amd64, _ := arch.Lookup("amd64")
	qemu, err := exec.LookPath(amd64.Qemu.Binary)
	if err != nil {
		bootSkip(t, "%s is not installed (Debian: apt-get install qemu-system-x86)", amd64.Qemu.Binary)
	}
	if _, err := kernel.Find(kernel.Options{}); err != nil {
		bootSkip(t, "no usable host kernel (Debian: apt-get install linux-image-amd64): %v", err)
	}
	return qemu
}

// buildGosupermin builds the gosupermin command, static (it is also the
// appliance's init), into the test's temporary directory.
func buildGosupermin(t testing.TB) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "gosupermin")
	cmd := exec.Command(goTool, "build", "-o", bin, "../cmd/gosupermin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// gosupermin runs bin with args and fails the test on error.
func gosupermin(t testing.TB, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gosupermin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// qemuBoot describes one qemu run.
type qemuBoot struct {
	Arch           *arch.Arch // the appliance's architecture; nil is amd64
	Kernel, Initrd string
	Disks          []string // raw images, attached read-write as snapshots (the file is not changed)
	SCSI           bool     // attach Disks with virtio-scsi (as libguestfs does) instead of virtio-blk
	Append         string   // kernel command line (the architecture's console= and panic=1 are added)
	Marker         string   // console text that means success; Run notes when it appeared
	Timeout        time.Duration
	MemoryMiB      int
}

// BootResult is what a run gave.
type BootResult struct {
	Console  string        // the serial console, \r removed
	MarkerAt time.Duration // from qemu start to Marker, 0 if it never came
	Total    time.Duration // from qemu start to qemu's exit
	TimedOut bool
}

// accel is TCG unless GOSUPERMIN_QEMU_ACCEL says otherwise (e.g. kvm).
func accel() string {
	if a := os.Getenv("GOSUPERMIN_QEMU_ACCEL"); a != "" {
		return a
	}
	return "tcg"
}

// bootQemu boots b with qemu and returns the console. It fails the test
// only if qemu cannot run; timeouts are reported in the result.
func bootQemu(t testing.TB, qemu string, b qemuBoot) BootResult {
	t.Helper()
	if b.Timeout == 0 {
		b.Timeout = 180 * time.Second
	}
	a := b.Arch
	if a == nil {
		a, _ = arch.Lookup("amd64")
	}
	args := a.Args(arch.QemuArgs{Kernel: b.Kernel, Initrd: b.Initrd, Disks: b.Disks, Snapshot: true, SCSI: b.SCSI,
		Append: "panic=1 " + b.Append, MemoryMiB: b.MemoryMiB, Accel: accel()})
	ctx, cancel := context.WithTimeout(context.Background(), b.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var res BootResult
	var console bytes.Buffer
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			if b.Marker != "" && res.MarkerAt == 0 && strings.Contains(line, b.Marker) {
				res.MarkerAt = time.Since(start)
			}
			console.WriteString(line + "\n")
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	err := cmd.Wait()
	res.Total = time.Since(start)
	pw.Close()
	<-done
	res.Console = console.String()
	if ctx.Err() != nil {
		res.TimedOut = true
	} else if err != nil && !strings.Contains(res.Console, "reboot: ") {
		t.Logf("qemu: %v", err)
	}
	return res
}
