package supermin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/appliance/cpio"
	"github.com/gosupermin/gosupermin/appliance/kernel"
	"github.com/gosupermin/gosupermin/backends/pacman"
	"github.com/gosupermin/gosupermin/backends/rpm"
	"github.com/klauspost/compress/zstd"
)

var (
	initsMu sync.Mutex
	inits   = map[string]string{}
)

// crossInit cross-builds cmd/gosupermin-init for GOARCH goarch, once per
// test binary, as make build does.
func crossInit(t testing.TB, goarch string) string {
	t.Helper()
	initsMu.Lock()
	defer initsMu.Unlock()
	if p := inits[goarch]; p != "" {
		return p
	}
	dir, err := os.MkdirTemp("", "gosupermin-init-")
	if err != nil {
		t.Fatal(err)
	}
	// Shared by the tests of this binary: removed at its end by TestMain
	// would be neater; the OS temp directory is cleaned instead.
	out := filepath.Join(dir, "init-"+goarch)
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-ldflags=-s -w", "-o", out, "../cmd/gosupermin-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cross-build the %s init: %v\n%s", goarch, err, b)
	}
	inits[goarch] = out
	return out
}

// kernelHeaders are the first bytes of each architecture's kernel image,
// as appliance/arch reads them (its tests check them against Debian's).
var kernelHeaders = map[string]map[int]string{
	"amd64":   {0x202: "HdrS", 0x206: "\x0f\x02", 0x236: "\x7f"},
	"arm64":   {0: "MZ", 0x38: "ARMd"},
	"riscv64": {0x38: "RSC\x05"},
	"ppc64le": {0: "\x7fELF\x02\x01\x01", 0x12: "\x15\x00"},
	"s390x":   {0: "\x00\x08\x00\x00\x80\x00\x02\x00\x02\x00\x00\x18\x60\x00\x00\x50\x02\x00\x00\x68\x60\x00\x00\x50"},
}

// standInKernel puts a stand-in kernel of architecture goarch (its
// header, 64 KiB) and an empty module directory in the tree root, named
// as Debian names them.
func standInKernel(t testing.TB, root, goarch string) string {
	t.Helper()
	a, _ := arch.Lookup(goarch)
	rel := "6.1.0-gs-" + a.Kernels[0]
	img := make([]byte, 64<<10)
	for off, s := range kernelHeaders[goarch] {
		copy(img[off:], s)
	}
	p := filepath.Join(root, "boot", "vmlinuz-"+rel)
	if a.Image == arch.ELFImage {
		p = filepath.Join(root, "boot", "vmlinux-"+rel)
	}
	for _, d := range []string{filepath.Dir(p), filepath.Join(root, "lib/modules", rel)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "lib/modules", rel, "modules.dep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// dpkgTreeFor is the dpkg fixture as if installed on architecture
// debArch (its foreign i386 package becoming foreignArch's).
func dpkgTreeFor(t *testing.T, debArch, foreignArch string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	copyTree(t, edge, root)
	status := filepath.Join(root, "var/lib/dpkg/status")
	data, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	// The foreign one first: debArch may be i386.
	data = bytes.ReplaceAll(data, []byte("Architecture: i386\n"), []byte("Architecture: "+foreignArch+"\n"))
	data = bytes.ReplaceAll(data, []byte("Architecture: amd64\n"), []byte("Architecture: "+debArch+"\n"))
	if err := os.WriteFile(status, data, 0o644); err != nil {
		t.Fatal(err)
	}
	info := filepath.Join(root, "var/lib/dpkg/info")
	for _, mv := range [][2]string{{"libm:i386.list", "libm:" + foreignArch + ".list"}, {"libm:amd64.list", "libm:" + debArch + ".list"}} {
		if err := os.Rename(filepath.Join(info, mv[0]), filepath.Join(info, mv[1])); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestBuildForeignDpkg builds the dpkg fixture installed for arm64 with
// stand-in arm64 and amd64 kernels and real cross-built inits: the init
// and the kernel must be the database's architecture, a disagreement
// names its sources, and a refused build writes nothing.
func TestBuildForeignDpkg(t *testing.T) {
	root := dpkgTreeFor(t, "arm64", "armhf")
	standInKernel(t, root, "arm64")
	amd64Kernel := standInKernel(t, t.TempDir(), "amd64")
	arm64Init, amd64Init := crossInit(t, "arm64"), crossInit(t, "amd64")
	sd := t.TempDir()
	if err := os.WriteFile(filepath.Join(sd, "packages"), []byte("app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var asked []string
	find := func(a *arch.Arch) (string, error) {
		asked = append(asked, a.Name)
		return map[string]string{"arm64": arm64Init, "amd64": amd64Init}[a.Name], nil
	}
	for _, tc := range []struct {
		name   string
		format func(Boot) Format
		boot   Boot
		err    error
		msg    []string
		asked  string
	}{
		{name: "ext2, arm64 init given", boot: Boot{Init: arm64Init}},
		{name: "cpio, arm64 init given", boot: Boot{Init: arm64Init}, format: func(b Boot) Format { return &CPIO{Boot: b} }},
		{name: "init found for arm64", boot: Boot{FindInit: find}, asked: "arm64"},
		{name: "amd64 init refused", boot: Boot{Init: amd64Init}, err: arch.ErrInitArch,
			msg: []string{amd64Init, "it is amd64", "the appliance is arm64", "GOARCH=arm64"}},
		{name: "amd64 kernel", boot: Boot{Init: arm64Init, Kernel: kernel.Options{Kernel: amd64Kernel, Version: "6.1.0-gs-amd64",
			Modules: filepath.Join(root, "lib/modules/6.1.0-gs-arm64")}}, err: arch.ErrMismatch,
			msg: []string{"the package database (debian/dpkg) of " + root + " says arm64", "the kernel " + amd64Kernel + " (bzImage) says amd64"}},
		{name: "host CPU x86_64", boot: Boot{FindInit: find, Kernel: kernel.Options{HostCPU: "x86_64"}}, err: arch.ErrMismatch,
			msg: []string{"says arm64", "the host CPU asked for says x86_64 (amd64)"}},
		{name: "host CPU aarch64", boot: Boot{FindInit: find, Kernel: kernel.Options{HostCPU: "aarch64"}}, asked: "arm64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked = nil
			out := filepath.Join(t.TempDir(), "out")
			var f Format = &Ext2{Boot: tc.boot, Size: 64 << 20}
			if tc.format != nil {
				f = tc.format(tc.boot)
			}
			err := Build(context.Background(), BuildOptions{Options: Options{Root: root, Log: func(_ int, m string) { t.Log(m) }},
				Inputs: []string{sd}, Out: out, Format: f, IncludePackageList: true})
			if strings.Join(asked, " ") != tc.asked {
				t.Errorf("FindInit asked for %v, want %q", asked, tc.asked)
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("build: %v, want %v", err, tc.err)
				}
				for _, m := range tc.msg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("%q does not say %q", err, m)
					}
				}
				if _, err := os.Lstat(out); !os.IsNotExist(err) {
					t.Errorf("a refused build left %s: %v", out, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.format != nil {
				pl := initrdFile(t, filepath.Join(out, "initrd"), "packagelist")
				// libm of the database's architecture, not its armhf one.
				if !strings.Contains(string(pl), "app_1.0-1_arm64\n") || !strings.Contains(string(pl), "libm_1.2_arm64\n") || strings.Contains(string(pl), "armhf") {
					t.Errorf("packagelist:\n%s", pl)
				}
			}
			want, _ := os.ReadFile(arm64Init)
			ents := readInitrd(t, filepath.Join(out, "initrd"))
			if h := ents["init"]; h == nil || h.Size != int64(len(want)) {
				t.Errorf("initrd /init: %+v, want the arm64 init (%d bytes)", h, len(want))
			}
		})
	}
}

// TestBuildForeignRPM: an rpm tree whose packages were built for aarch64
// (rpmbuild --target, rpm -i --ignorearch) is an arm64 appliance.
func TestBuildForeignRPM(t *testing.T) {
	needTools(t, "rpm", "rpmbuild")
	root := rpmTreeFor(t, "aarch64")
	db, err := rpm.Open(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	if db.NativeArch() != "aarch64" {
		t.Errorf("native arch %q, want aarch64", db.NativeArch())
	}
	foreignBuild(t, root, "gs-libfoo-2:1.5-3.aarch64", "gs-app")
}

// TestBuildForeignPacman: a pacman tree of aarch64 packages (makepkg with
// CARCH=aarch64, pacman --arch aarch64) is an arm64 appliance.
func TestBuildForeignPacman(t *testing.T) {
	needTools(t, "pacman", "makepkg", "fakeroot", "bsdtar")
	root := pacmanTreeFor(t, "aarch64")
	db, err := pacman.Open(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	if db.NativeArch() != "aarch64" {
		t.Errorf("native arch %q, want aarch64", db.NativeArch())
	}
	foreignBuild(t, root, "gs-lib-1:1.5-2", "gs-app")
}

// foreignBuild builds root (an aarch64 tree) as cpio with an arm64
// stand-in kernel: the init found is arm64's and the closure holds want;
// an amd64 init is refused.
func foreignBuild(t *testing.T, root, want string, roots ...string) {
	t.Helper()
	standInKernel(t, root, "arm64")
	sd := t.TempDir()
	if err := os.WriteFile(filepath.Join(sd, "packages"), []byte(strings.Join(roots, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var asked *arch.Arch
	boot := Boot{FindInit: func(a *arch.Arch) (string, error) { asked = a; return crossInit(t, a.Name), nil }}
	out := filepath.Join(t.TempDir(), "out")
	o := BuildOptions{Options: Options{Root: root, Log: func(_ int, m string) { t.Log(m) }}, Inputs: []string{sd}, Out: out,
		Format: &CPIO{Boot: boot}, IncludePackageList: true}
	if err := Build(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if asked == nil || asked.Name != "arm64" {
		t.Errorf("FindInit asked for %v, want arm64", asked)
	}
	pl := initrdFile(t, filepath.Join(out, "initrd"), "packagelist")
	if !strings.Contains(string(pl), want+"\n") {
		t.Errorf("packagelist:\n%s\nwant %s in it", pl, want)
	}
	o.Format = &CPIO{Boot: Boot{Init: crossInit(t, "amd64")}}
	if err := Build(context.Background(), o); !errors.Is(err, arch.ErrInitArch) {
		t.Errorf("amd64 init for an aarch64 tree: %v", err)
	}
}

// initrdFile reads the file name of a zstd-compressed newc initrd.
func initrdFile(t *testing.T, p, name string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	cr := cpio.NewReader(zr)
	for {
		h, err := cr.Next()
		if err != nil {
			t.Fatalf("%s: no %s: %v", p, name, err)
		}
		if h.Name == name {
			b, err := io.ReadAll(cr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// TestBuildArchNotInTable: a tree of an architecture the table lacks
// (i386) needs the init given; with it the build goes on, with a warning
// that its architecture is not checked.
func TestBuildArchNotInTable(t *testing.T) {
	root := dpkgTreeFor(t, "i386", "armel")
	mods := filepath.Join(root, "lib/modules/6.1.0-gs-686")
	if err := os.MkdirAll(mods, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(mods, "modules.dep"), nil, 0o644)
	k := filepath.Join(root, "boot/vmlinuz-6.1.0-gs-686")
	os.MkdirAll(filepath.Dir(k), 0o755)
	if err := os.WriteFile(k, make([]byte, 64<<10), 0o644); err != nil { // a header no one knows
		t.Fatal(err)
	}
	sd := t.TempDir()
	os.WriteFile(filepath.Join(sd, "packages"), []byte("app\n"), 0o644)
	var warnings []string
	build := func(b Boot) error {
		return Build(context.Background(), BuildOptions{Inputs: []string{sd}, Out: filepath.Join(t.TempDir(), "out"),
			Options: Options{Root: root, Log: func(level int, m string) {
				if level == 0 {
					warnings = append(warnings, m)
				}
			}},
			Format: &CPIO{Boot: b}})
	}
	find := func(*arch.Arch) (string, error) { t.Error("FindInit called"); return "", nil }
	err := build(Boot{FindInit: find})
	if !errors.Is(err, arch.ErrNotInTable) || !strings.Contains(err.Error(), "says i386") || !strings.Contains(err.Error(), "give an init program built for it") {
		t.Errorf("no init: %v", err)
	}
	if err := build(Boot{Init: crossInit(t, "386")}); err != nil {
		t.Fatalf("i386 init given: %v", err)
	}
	if !strings.Contains(strings.Join(warnings, "\n"), "says i386: not an architecture gosupermin knows") {
		t.Errorf("warnings: %v", warnings)
	}
}
