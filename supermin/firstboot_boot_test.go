package supermin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance/arch"
)

// fbInit is the appliance's /init for the boot test: it reports what the
// first boot left and powers off.
const fbInit = `#!/bin/sh
n=0
while IFS= read -r line; do
	case $line in "gosupermin-firstboot: done:"*) n=$((n + 1)) ;; esac
done </var/log/gosupermin-firstboot.log
echo "FBTEST passwd: $(head -n 1 /etc/passwd 2>&1)"
echo "FBTEST ldcache: $(test -s /etc/ld.so.cache && echo yes || echo no)"
echo "FBTEST runs: $n"
echo "FBTEST stamp: $(cat /var/lib/gosupermin/firstboot.done 2>&1)"
sync
echo o >/proc/sysrq-trigger
sleep 60
`

// TestFirstbootBoot boots an ext2 appliance built with --firstboot twice in
// qemu (TCG): the first boot runs the scripts (base-passwd's make
// /etc/passwd, libc-bin's ldconfig trigger /etc/ld.so.cache), the second
// runs none.
func TestFirstbootBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots qemu twice: not in -short")
	}
	fbRequireRoot(t) // the host's kernel (/boot/vmlinuz-*) may be readable by root only
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil || runtime.GOARCH != "amd64" {
		fbRequire(t, "qemu-system-x86_64 is not installed (or this is not amd64)")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := t.TempDir()

	// The initrd's init is gosupermin itself, built static.
	initBin := filepath.Join(dir, "gosupermin")
	cmd := exec.Command(goTool, "build", "-o", initBin, "../cmd/gosupermin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build gosupermin: %v\n%s", err, out)
	}

	sd := filepath.Join(dir, "supermin.d")
	if err := os.Mkdir(sd, 0o755); err != nil {
		t.Fatal(err)
	}
	roots := "base-passwd\nlibc-bin\ndash\ncoreutils\nsed\n"
	if err := os.WriteFile(filepath.Join(sd, "packages"), []byte(roots), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sd, "init.tar.gz"), fbTarGz(t, "init", fbInit), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "appliance")
	l := &fbLog{}
	if err := Build(context.Background(), BuildOptions{Options: Options{Log: l.log, Verbose: 1}, Inputs: []string{sd},
		Out: out, Format: &Ext2{Boot: Boot{Init: initBin}, Size: 512 << 20}, Firstboot: true}); err != nil {
		t.Fatalf("build: %v\n%s", err, l)
	}

	boot := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// Not a snapshot: the second boot sees what the first one wrote.
		amd64, _ := arch.Lookup("amd64")
		cmd := exec.CommandContext(ctx, qemu, amd64.Args(arch.QemuArgs{Kernel: filepath.Join(out, "kernel"),
			Initrd: filepath.Join(out, "initrd"), Disks: []string{filepath.Join(out, "root")}, Append: "root=/dev/vda panic=-1"})...)
		var o bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &o
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("qemu did not power off within 5 minutes:\n%s", o.String())
		}
		if err != nil {
			t.Fatalf("qemu: %v\n%s", err, o.String())
		}
		return strings.ReplaceAll(o.String(), "\r\n", "\n")
	}

	first := boot()
	for _, want := range []string{
		"gosupermin-firstboot: running ",
		"gosupermin-firstboot: done: ",
		"FBTEST passwd: root:",
		"FBTEST ldcache: yes\n",
		"FBTEST runs: 1\n",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("first boot: no %q in the console:\n%s", want, first)
		}
	}
	if strings.Contains(first, ": failed") {
		t.Errorf("first boot: a script failed:\n%s", first)
	}
	if t.Failed() {
		return
	}
	second := boot()
	if strings.Contains(second, "gosupermin-firstboot:") {
		t.Errorf("second boot ran the runner again:\n%s", second)
	}
	for _, want := range []string{"FBTEST passwd: root:", "FBTEST runs: 1\n"} {
		if !strings.Contains(second, want) {
			t.Errorf("second boot: no %q in the console:\n%s", want, second)
		}
	}
}

// fbTarGz is a base image holding one executable file owned by root.
func fbTarGz(t *testing.T, name, data string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "./" + name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg,
		ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
