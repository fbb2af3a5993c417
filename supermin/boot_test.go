package supermin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance/cpio"
	"github.com/gosupermin/gosupermin/appliance/initrd"
	"github.com/gosupermin/gosupermin/appliance/kernel"
	"github.com/klauspost/compress/zstd"
)

// bootInit is the test appliance's /init: it reports where it runs (the
// root's type, whether gosupermin's files are gone, how many mounts: the
// root and its own /proc) and powers off. The kernel gives init no PATH.
const bootInit = `#!/bin/bash
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
echo "APPLIANCE-INIT-RAN fs=$(stat -f -c %T /) leftover=$(test -e /.gosupermin && echo yes || echo no) mounts=$(mapfile -t m </proc/mounts; echo ${#m[@]}) args=$*"
echo o > /proc/sysrq-trigger
sleep 60
`

// bootInit2 is another init, for init=.
const bootInit2 = `#!/bin/bash
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
echo "SECOND-INIT-RAN fs=$(stat -f -c %T /) init-kept=$(test -x /init && echo yes || echo no)"
echo o > /proc/sysrq-trigger
sleep 60
`

// bootFirstboot stands for the first-boot runner: init runs it before
// the appliance's init, with /proc, /sys and /dev mounted.
const bootFirstboot = `#!/bin/sh
echo "FIRSTBOOT-RAN proc=$(test -e /proc/self/stat && echo yes) dev=$(test -c /dev/null && echo yes) sys=$(test -d /sys/class && echo yes) root=$(stat -f -c %T /)"
`

// bootTarGz is a base image of executable files owned by root.
func bootTarGz(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: "./" + n, Mode: 0o755, Size: int64(len(files[n])), Typeflag: tar.TypeReg,
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bootSupermind prepares a small supermin.d from this host's packages,
// with the test inits.
func bootSupermind(t testing.TB, bin, dir string) string {
	t.Helper()
	sd := filepath.Join(dir, "supermin.d")
	// mount (util-linux's mount(8), a package of its own in Debian 12)
	// lets the init mount /proc for sysrq; dash is /bin/sh for the runner.
	gosupermin(t, bin, nil, "--prepare", "bash", "coreutils", "util-linux", "kmod", "mount", "dash", "-o", sd)
	tgz := bootTarGz(t, map[string]string{"init": bootInit, "init2": bootInit2, "usr/lib/gosupermin/firstboot/run": bootFirstboot})
	if err := os.WriteFile(filepath.Join(sd, "zz-boottest.tar.gz"), tgz, 0o644); err != nil {
		t.Fatal(err)
	}
	return sd
}

// ext2UUID reads the UUID of an ext2 image (superblock, 0x468).
func ext2UUID(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var u [16]byte
	if _, err := f.ReadAt(u[:], 0x468); err != nil {
		t.Fatal(err)
	}
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// TestBoot builds an ext2 and two cpio appliances from this host with the
// gosupermin binary and boots them in qemu (TCG): root=/dev/vda on
// virtio-blk, root=UUID= on virtio-scsi as libguestfs does, a root that
// never comes, cpio with zstd and with gzip and init=.
func TestBoot(t *testing.T) {
	qemu := needBoot(t)
	bin := buildGosupermin(t)
	dir := t.TempDir()
	sd := bootSupermind(t, bin, dir)
	start := time.Now()
	ext2Out := filepath.Join(dir, "ext2")
	gosupermin(t, bin, nil, "--build", "-f", "ext2", sd, "-o", ext2Out)
	t.Logf("ext2 build: %.2f s", time.Since(start).Seconds())
	start = time.Now()
	cpioOut := filepath.Join(dir, "cpio")
	gosupermin(t, bin, nil, "--build", "-f", "cpio", sd, "-o", cpioOut)
	t.Logf("cpio build: %.2f s", time.Since(start).Seconds())
	gzOut := filepath.Join(dir, "cpio-gzip")
	gosupermin(t, bin, nil, "--build", "-f", "cpio", "--compress", "gzip", sd, "-o", gzOut)
	uuid := ext2UUID(t, filepath.Join(ext2Out, "root"))

	ext2Boot := func(scsi bool, app string) qemuBoot {
		return qemuBoot{Kernel: filepath.Join(ext2Out, "kernel"), Initrd: filepath.Join(ext2Out, "initrd"),
			Disks: []string{filepath.Join(ext2Out, "root")}, SCSI: scsi, Append: app}
	}
	for _, tc := range []struct {
		name    string
		boot    qemuBoot
		marker  string
		want    []string
		notWant []string
	}{
		{
			name:   "ext2 virtio-blk root=/dev/vda",
			boot:   ext2Boot(false, "root=/dev/vda testarg"),
			marker: "APPLIANCE-INIT-RAN",
			want: []string{
				"gosupermin init: mounted /dev/vda (ext2) on /root",
				"FIRSTBOOT-RAN proc=yes dev=yes sys=yes root=ext2/ext3",
				"APPLIANCE-INIT-RAN fs=ext2/ext3 leftover=no mounts=2 args=testarg",
			},
		},
		{
			// libguestfs's way: the appliance disk on virtio-scsi, root=UUID=.
			name:    "ext2 virtio-scsi root=UUID quiet",
			boot:    ext2Boot(true, "root=UUID="+uuid+" quiet gosupermin.firstboot=0"),
			marker:  "APPLIANCE-INIT-RAN",
			want:    []string{"APPLIANCE-INIT-RAN fs=ext2/ext3 leftover=no mounts=2"},
			notWant: []string{"gosupermin init:", "FIRSTBOOT-RAN"},
		},
		{
			name:   "ext2 root never appears",
			boot:   ext2Boot(false, "root=UUID=00000000-0000-4000-8000-000000000000 gosupermin.rootwait=3"),
			marker: "powering off",
			want: []string{
				"root=UUID=00000000-0000-4000-8000-000000000000 did not appear within 3s",
				"4096 MiB, ext UUID=" + uuid + ")",
				"gosupermin init: powering off",
			},
			notWant: []string{"APPLIANCE-INIT-RAN", "Kernel panic"},
		},
		{
			name:   "cpio zstd",
			boot:   qemuBoot{Kernel: filepath.Join(cpioOut, "kernel"), Initrd: filepath.Join(cpioOut, "initrd")},
			marker: "APPLIANCE-INIT-RAN",
			want: []string{
				"FIRSTBOOT-RAN proc=yes dev=yes sys=yes root=tmpfs",
				"APPLIANCE-INIT-RAN fs=tmpfs leftover=no mounts=2",
			},
		},
		{
			name:    "cpio gzip init=",
			boot:    qemuBoot{Kernel: filepath.Join(gzOut, "kernel"), Initrd: filepath.Join(gzOut, "initrd"), Append: "init=/init2"},
			marker:  "SECOND-INIT-RAN",
			want:    []string{"SECOND-INIT-RAN fs=tmpfs init-kept=yes"},
			notWant: []string{"APPLIANCE-INIT-RAN"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.boot.Marker = tc.marker
			res := bootQemu(t, qemu, tc.boot)
			if res.TimedOut {
				t.Fatalf("qemu did not stop within the time limit:\n%s", res.Console)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.Console, w) {
					t.Errorf("no %q on the console", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(res.Console, w) {
					t.Errorf("%q on the console", w)
				}
			}
			if t.Failed() {
				t.Logf("console:\n%s", res.Console)
			}
			t.Logf("qemu start to %q: %.1f s; qemu exit: %.1f s", tc.marker, res.MarkerAt.Seconds(), res.Total.Seconds())
		})
	}
}

// hostAppliance prepares the boot tests' supermin.d from this dpkg host
// with a static gosupermin, for tests that build bootable formats without
// booting them.
func hostAppliance(t *testing.T) (bin, dir, sd string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds bootable appliances: not in -short mode")
	}
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		bootSkip(t, "not a dpkg host")
	}
	needKernel(t)
	bin = buildGosupermin(t)
	dir = t.TempDir()
	return bin, dir, bootSupermind(t, bin, dir)
}

// TestBuildBootableReproducible builds each bootable format twice with
// SOURCE_DATE_EPOCH: the outputs are byte-identical. It also looks into
// the initrds.
func TestBuildBootableReproducible(t *testing.T) {
	bin, dir, sd := hostAppliance(t)
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	hash := func(p string) string {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	for _, f := range [][]string{{"-f", "ext2", "--size", "1G"}, {"-f", "cpio"}} {
		var sums [2]map[string]string
		for i := range sums {
			out := filepath.Join(dir, f[1]+string(rune('a'+i)))
			gosupermin(t, bin, env, append(append([]string{"--build"}, f...), sd, "-o", out)...)
			sums[i] = map[string]string{}
			files := []string{"initrd"}
			if f[1] == "ext2" {
				files = append(files, "root")
			}
			for _, n := range files {
				sums[i][n] = hash(filepath.Join(out, n))
			}
		}
		for n, s := range sums[0] {
			if sums[1][n] != s {
				t.Errorf("%s: two builds give different %s", f[1], n)
			}
		}
	}

	// The ext2 initrd: our init, the modules in load order, a console.
	ents := readInitrd(t, filepath.Join(dir, "ext2a", "initrd"))
	for _, p := range []string{"init", ".gosupermin/config", ".gosupermin/modules", ".gosupermin/ko/ext4.ko",
		".gosupermin/ko/virtio_blk.ko", ".gosupermin/ko/virtio_scsi.ko", ".gosupermin/ko/sd_mod.ko", "dev/console"} {
		if _, ok := ents[p]; !ok {
			t.Errorf("ext2 initrd: no %s", p)
		}
	}
	if h := ents["dev/console"]; h != nil && (h.RdevMajor != 5 || h.RdevMinor != 1 || h.Mode&cpio.TypeMask != cpio.TypeChar) {
		t.Errorf("ext2 initrd: /dev/console %+v", h)
	}
	if h := ents["init"]; h != nil && h.Mtime != 1700000000 {
		t.Errorf("ext2 initrd: /init time %d, want SOURCE_DATE_EPOCH", h.Mtime)
	}
	// The cpio initrd: the appliance's /init kept aside, bash inside.
	ents = readInitrd(t, filepath.Join(dir, "cpioa", "initrd"))
	for _, p := range []string{"init", strings.TrimPrefix(initrd.ApplianceInit, "/"), "usr/bin/bash", "init2"} {
		if _, ok := ents[p]; !ok {
			t.Errorf("cpio initrd: no %s", p)
		}
	}
}

// needKernel skips (or fails in CI) without a host kernel.
func needKernel(t testing.TB) {
	t.Helper()
	if _, err := kernel.Find(kernel.Options{}); err != nil {
		bootSkip(t, "no usable host kernel (Debian: apt-get install linux-image-amd64): %v", err)
	}
}

// readInitrd lists a (possibly zstd-compressed) newc initrd.
func readInitrd(t testing.TB, p string) map[string]*cpio.Header {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err == nil && magic == [4]byte{0x28, 0xb5, 0x2f, 0xfd} {
		zr, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	cr := cpio.NewReader(r)
	out := map[string]*cpio.Header{}
	for {
		h, err := cr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[h.Name] = h
	}
}

// TestBootLibguestfs is libguestfs's own use, as its users run it: an
// unprivileged user builds libguestfs's supermin.d in each format on a
// host where some package files and a hostfile are not readable by that
// user (polkit keeps its rules.d at 0700; the test adds a root-only
// hostfile), and libguestfs-test-tool, run by the same user, boots the
// ext2 result as a fixed appliance.
func TestBootLibguestfs(t *testing.T) {
	needBoot(t)
	tool, err := exec.LookPath("libguestfs-test-tool")
	sds, _ := filepath.Glob("/usr/lib/*/guestfs/supermin.d")
	if err != nil || len(sds) == 0 {
		bootSkip(t, "libguestfs is not installed (apt-get install libguestfs-tools; .ci/run installs it)")
	}
	prefix := asUser(t)
	dir := userTempDir(t)
	bin := filepath.Join(dir, "gosupermin")
	copyFile(t, buildGosupermin(t), bin, 0o755)
	sd := filepath.Join(dir, "supermin.d")
	if out, err := exec.Command("cp", "-r", sds[0], sd).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		os.Chown(secret, 0, 0)
	}
	if err := os.WriteFile(filepath.Join(sd, "zz-hostfiles"), []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Every package file this user cannot read, as the kernel decides.
	unreadable := []string{secret}
	const rules = "/usr/share/polkit-1/rules.d/systemd-networkd.rules" // of systemd, in the closure
	if fi, err := os.Stat(filepath.Dir(rules)); err == nil && fi.Mode().Perm()&0o001 == 0 && fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
		unreadable = append(unreadable, rules)
	}
	for _, format := range []string{"chroot", "cpio", "ext2"} {
		out := filepath.Join(dir, format)
		cmd := exec.Command(prefix[0], append(prefix[1:], bin, "--build", "-f", format, sd, "-o", out)...)
		o, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s build as an unprivileged user: %v\n%s", format, err, o)
		}
		if !strings.Contains(string(o), "not readable by this user and left out of the appliance") {
			t.Errorf("%s: no warning about unreadable files:\n%s", format, o)
		}
		for _, p := range unreadable {
			if !strings.Contains(string(o), p) {
				t.Errorf("%s: the warning does not name %s:\n%s", format, p, o)
			}
		}
	}
	out := filepath.Join(dir, "ext2")
	if err := os.WriteFile(filepath.Join(out, "README.fixed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	if err := os.Mkdir(cache, 0o755); err != nil || os.Chmod(cache, 0o777) != nil {
		t.Fatal(err)
	}
	env := []string{"LIBGUESTFS_BACKEND=direct", "LIBGUESTFS_PATH=" + out, "LIBGUESTFS_CACHEDIR=" + cache, "TMPDIR=" + dir}
	if accel() == "tcg" {
		env = append(env, "LIBGUESTFS_BACKEND_SETTINGS=force_tcg")
	}
	args := append(append(prefix[1:], "env"), env...)
	cmd := exec.Command(prefix[0], append(args, tool, "-t", "600")...)
	start := time.Now()
	o, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(o), "===== TEST FINISHED OK =====") {
		t.Fatalf("libguestfs-test-tool as an unprivileged user: %v\n%s", err, o)
	}
	if !strings.Contains(string(o), "gosupermin init: mounted") {
		t.Errorf("libguestfs did not boot our init:\n%s", o)
	}
	t.Logf("libguestfs-test-tool, unprivileged, with the gosupermin fixed appliance: %.1f s", time.Since(start).Seconds())
}

// asUser is the command prefix that runs a program as an unprivileged
// user: "env" when the test already runs as one, else runuser or setpriv
// to nobody.
func asUser(t testing.TB) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		return []string{"env"}
	}
	if p, err := exec.LookPath("runuser"); err == nil {
		return []string{p, "-u", "nobody", "--"}
	}
	if p, err := exec.LookPath("setpriv"); err == nil {
		return []string{p, "--reuid=65534", "--regid=65534", "--clear-groups"}
	}
	bootSkip(t, "running as root without runuser or setpriv (util-linux) to drop privileges")
	return nil
}

// userTempDir is a temporary directory an unprivileged user may use.
func userTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
}

// TestBuildExt2TooSmall: an image too small for the appliance is a clear
// error, and nothing is left behind.
func TestBuildExt2TooSmall(t *testing.T) {
	bin, dir, sd := hostAppliance(t)
	cmd := exec.Command(bin, "--build", "-f", "ext2", "--size", "20M", sd, "-o", filepath.Join(dir, "out"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("a 20M image held the appliance and all the kernel's modules")
	}
	if !strings.Contains(string(out), "use a larger --size (it is 20M)") || !strings.Contains(string(out), "MiB") {
		t.Errorf("unclear error: %s", out)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "supermin.d" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}
