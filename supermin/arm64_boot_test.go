package supermin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/appliance/kernel"
)

// arm64Init is the arm64 appliance's /init: it says where it runs and
// powers off.
const arm64Init = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
echo "ARM64-APPLIANCE-INIT-RAN machine=$(uname -m) fs=$(stat -f -c %T /)"
echo o > /proc/sysrq-trigger
sleep 60
`

// needForeignTree checks what making a Debian tree of architecture a
// under qemu-user takes: root (mmdebstrap's root mode, binfmt_misc),
// mmdebstrap, arch-test, qemu-user-static's binfmt entry; it mounts
// binfmt_misc and enables the entry when they are not.
func needForeignTree(t *testing.T, a *arch.Arch) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Debian tree under emulation: not in -short mode")
	}
	if os.Geteuid() != 0 {
		bootSkip(t, "needs root: mmdebstrap builds the %s tree as root and binfmt_misc must be set up", a.Name)
	}
	mmdebstrap, err := exec.LookPath("mmdebstrap")
	if err != nil {
		bootSkip(t, "mmdebstrap is not installed (apt-get install mmdebstrap arch-test qemu-user-static binfmt-support)")
	}
	for _, tool := range []string{"arch-test", "update-binfmts"} {
		if _, err := exec.LookPath(tool); err != nil {
			bootSkip(t, "%s is not installed (apt-get install arch-test binfmt-support qemu-user-static)", tool)
		}
	}
	const misc = "/proc/sys/fs/binfmt_misc"
	if _, err := os.Stat(misc + "/status"); err != nil {
		if out, err := exec.Command("mount", "-t", "binfmt_misc", "binfmt_misc", misc).CombinedOutput(); err != nil {
			bootSkip(t, "cannot mount binfmt_misc: %v %s", err, out)
		}
	}
	entry := "qemu-" + a.Uname
	if _, err := os.Stat(filepath.Join(misc, entry)); err != nil {
		if out, err := exec.Command("update-binfmts", "--enable", entry).CombinedOutput(); err != nil {
			bootSkip(t, "update-binfmts --enable %s: %v %s (apt-get install qemu-user-static)", entry, err, out)
		}
	}
	if out, err := exec.Command("arch-test", a.Debian).CombinedOutput(); err != nil {
		bootSkip(t, "this machine cannot run %s programs: %v %s", a.Debian, err, out)
	}
	return mmdebstrap
}

// debianTree makes a Debian 12 tree of architecture a with mmdebstrap,
// in the test's temporary directory, with a kernel and what the test
// appliance needs. The kernel's initramfs hook is kept out (dpkg's
// path-exclude): generating an initramfs under emulation is most of the
// time such a build takes, and the appliance has its own initrd. Docs,
// man pages, locales and the kernel modules no appliance loads (graphics,
// sound, wireless, media) are left out too.
func debianTree(t *testing.T, mmdebstrap string, a *arch.Arch, pkgs ...string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root-"+a.Debian)
	args := []string{"--arch=" + a.Debian, "--variant=essential", "--include=" + strings.Join(pkgs, ","),
		"--dpkgopt=path-exclude=/etc/kernel/postinst.d/initramfs-tools"}
	for _, p := range []string{"/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*",
		"/usr/lib/modules/*/kernel/drivers/gpu/*", "/usr/lib/modules/*/kernel/sound/*",
		"/usr/lib/modules/*/kernel/drivers/net/wireless/*", "/usr/lib/modules/*/kernel/drivers/media/*",
		"/lib/modules/*/kernel/drivers/gpu/*", "/lib/modules/*/kernel/sound/*",
		"/lib/modules/*/kernel/drivers/net/wireless/*", "/lib/modules/*/kernel/drivers/media/*"} {
		args = append(args, "--dpkgopt=path-exclude="+p)
	}
	args = append(args, "bookworm", root)
	start := time.Now()
	cmd := exec.Command(mmdebstrap, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mmdebstrap %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("mmdebstrap %s tree: %.0f s", a.Debian, time.Since(start).Seconds())
	return root
}

// TestBootArm64Debian makes an arm64 Debian tree with mmdebstrap, builds
// an ext2 and a cpio appliance from it with gosupermin, which finds the
// arm64 init beside itself, and boots both under qemu-system-aarch64
// (TCG) to the appliance's own init.
func TestBootArm64Debian(t *testing.T) {
	a, _ := arch.Lookup("arm64")
	mmdebstrap := needForeignTree(t, a)
	qemu, err := exec.LookPath(a.Qemu.Binary)
	if err != nil {
		bootSkip(t, "%s is not installed (apt-get install qemu-system-arm)", a.Qemu.Binary)
	}
	bin := buildGosupermin(t)
	// Where make build puts it: bin/init-arm64 beside bin/gosupermin.
	copyFile(t, crossInit(t, a.Name), filepath.Join(filepath.Dir(bin), a.InitName()), 0o755)
	root := debianTree(t, mmdebstrap, a, a.DebianKernelPackage(), "bash", "dash", "coreutils", "util-linux", "kmod", "mount")

	k, err := kernel.Find(kernel.Options{Root: root, HostCPU: a.Uname})
	if err != nil {
		t.Fatal(err)
	}
	if name, format, err := k.Arch(); name != a.Name || format != a.Image || err != nil {
		t.Errorf("kernel %s: %q, %v, %v; want %s, %v", k.Image.Path, name, format, err, a.Name, a.Image)
	}

	dir := t.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	gosupermin(t, bin, nil, "--prepare", "--root", root, "bash", "dash", "coreutils", "util-linux", "kmod", "mount", "-o", sd)
	if err := os.WriteFile(filepath.Join(sd, "zz-init.tar.gz"), bootTarGz(t, map[string]string{"init": arm64Init}), 0o644); err != nil {
		t.Fatal(err)
	}
	outs := map[string]string{}
	for _, f := range []string{"ext2", "cpio"} {
		outs[f] = filepath.Join(dir, f)
		start := time.Now()
		log := gosupermin(t, bin, nil, "--build", "-v", "-f", f, "--size", "2G", "--root", root, sd, "-o", outs[f])
		t.Logf("%s build: %.1f s", f, time.Since(start).Seconds())
		for _, want := range []string{"architecture arm64: console ttyAMA0", "init " + filepath.Join(filepath.Dir(bin), a.InitName())} {
			if !strings.Contains(log, want) {
				t.Errorf("%s build: no %q in\n%s", f, want, log)
			}
		}
	}
	for _, tc := range []struct {
		name string
		boot qemuBoot
		want string
	}{
		{"ext2", qemuBoot{Kernel: filepath.Join(outs["ext2"], "kernel"), Initrd: filepath.Join(outs["ext2"], "initrd"),
			Disks: []string{filepath.Join(outs["ext2"], "root")}, Append: "root=/dev/" + a.Qemu.DiskName}, "fs=ext2/ext3"},
		{"cpio", qemuBoot{Kernel: filepath.Join(outs["cpio"], "kernel"), Initrd: filepath.Join(outs["cpio"], "initrd")}, "fs=tmpfs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.boot.Arch, tc.boot.Marker, tc.boot.Timeout = a, "ARM64-APPLIANCE-INIT-RAN", 5*time.Minute
			res := bootQemu(t, qemu, tc.boot)
			want := "ARM64-APPLIANCE-INIT-RAN machine=aarch64 " + tc.want
			if res.TimedOut || !strings.Contains(res.Console, want) {
				t.Fatalf("no %q on the console (timed out: %v):\n%s", want, res.TimedOut, res.Console)
			}
			t.Logf("%s: qemu start to the appliance's init: %.1f s; qemu exit: %.1f s", tc.name, res.MarkerAt.Seconds(), res.Total.Seconds())
		})
	}
}
