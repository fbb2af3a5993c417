package arch

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func writeFile(t *testing.T, p string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckInit: for each pair of architectures, an init's ELF header is
// accepted only for its own; dynamic executables, scripts and missing
// files are refused.
func TestCheckInit(t *testing.T) {
	dir := t.TempDir()
	for _, a := range All() {
		p := writeFile(t, filepath.Join(dir, a.InitName()), elfHeader(a.Machine, a.Class, a.Data, false))
		for _, want := range All() {
			_, err := CheckInit(p, want)
			if want == a {
				if err != nil {
					t.Errorf("%s init for %s: %v", a.Name, want.Name, err)
				}
				continue
			}
			if !errors.Is(err, ErrInitArch) {
				t.Errorf("%s init for %s: %v", a.Name, want.Name, err)
				continue
			}
			for _, s := range []string{p, "it is " + a.Name + " (" + a.ELFString() + ")", "the appliance is " + want.Name, "GOARCH=" + want.Name + " go build"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
		}
		if _, err := CheckInit(p, nil); err != nil {
			t.Errorf("%s init, no architecture: %v", a.Name, err)
		}
	}
	dyn := writeFile(t, filepath.Join(dir, "dynamic"), elfHeader(elf.EM_AARCH64, elf.ELFCLASS64, elf.ELFDATA2LSB, true))
	a64, _ := Lookup("arm64")
	if _, err := CheckInit(dyn, a64); err == nil || !strings.Contains(err.Error(), "dynamically linked") || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("dynamic init: %v", err)
	}
	i386 := writeFile(t, filepath.Join(dir, "i386"), elfHeader(elf.EM_386, elf.ELFCLASS32, elf.ELFDATA2LSB, false))
	if _, err := CheckInit(i386, Native()); !errors.Is(err, ErrInitArch) || !strings.Contains(err.Error(), "it is EM_386, 32-bit, little-endian") {
		t.Errorf("i386 init: %v", err)
	}
	script := writeFile(t, filepath.Join(dir, "script"), []byte("#!/bin/sh\n"))
	for _, p := range []string{script, filepath.Join(dir, "missing"), dir} {
		if _, err := CheckInit(p, a64); err == nil || !strings.Contains(err.Error(), filepath.Base(p)) {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestFindInit: the search order, the error that tells how to make an
// init, the refusal of a wrong one in a searched place, and the running
// program as its own architecture's last resort.
func TestFindInit(t *testing.T) {
	saved := SystemInitDirs
	t.Cleanup(func() { SystemInitDirs = saved })
	arm64, _ := Lookup("arm64")
	s390x, _ := Lookup("s390x")
	initFor := func(a *Arch) []byte { return elfHeader(a.Machine, a.Class, a.Data, false) }

	root := t.TempDir()
	SystemInitDirs = []string{filepath.Join(root, "usr/local/lib/gosupermin"), filepath.Join(root, "usr/lib/gosupermin")}
	exe := filepath.Join(root, "opt/bin/gosupermin")
	writeFile(t, exe, []byte("not used"))
	cands := InitCandidates(arm64, exe)
	want := []string{
		filepath.Join(root, "opt/bin/init-arm64"),
		filepath.Join(root, "opt/lib/gosupermin/init-arm64"),
		filepath.Join(root, "opt/bin/linux_arm64/gosupermin-init"),
		filepath.Join(root, "usr/local/lib/gosupermin/init-arm64"),
		filepath.Join(root, "usr/lib/gosupermin/init-arm64"),
	}
	if strings.Join(cands, "\n") != strings.Join(want, "\n") {
		t.Fatalf("candidates:\n%s\nwant:\n%s", strings.Join(cands, "\n"), strings.Join(want, "\n"))
	}

	_, err := FindInit(arm64, exe)
	var nf *InitNotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, ErrNoInit) {
		t.Fatalf("nothing installed: %v", err)
	}
	for _, s := range append(want, "no init program for arm64",
		"CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go install github.com/gosupermin/gosupermin/cmd/gosupermin-init@latest",
		"CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -ldflags='-s -w' -o init-arm64 ./cmd/gosupermin-init",
		"bin/init-arm64") {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not say %q", err, s)
		}
	}

	// Each place, from the last to the first: the first present wins.
	for i := len(want) - 1; i >= 0; i-- {
		writeFile(t, want[i], initFor(arm64))
		got, err := FindInit(arm64, exe)
		if err != nil || got != want[i] {
			t.Errorf("with %s: %q, %v", want[i], got, err)
		}
	}
	// No executable known: only the system directories.
	if got, err := FindInit(arm64, ""); err != nil || got != want[3] {
		t.Errorf("no executable: %q, %v", got, err)
	}
	// A wrong init where one is looked for is an error naming it.
	writeFile(t, filepath.Join(root, "opt/bin/init-s390x"), initFor(arm64))
	if _, err := FindInit(s390x, exe); !errors.Is(err, ErrInitArch) || !strings.Contains(err.Error(), "init-s390x") {
		t.Errorf("arm64 init named init-s390x: %v", err)
	}

	// The running program, for its own architecture, when static.
	native := Native()
	if native == nil {
		t.Skipf("%s is not in the table", runtime.GOARCH)
	}
	self := writeFile(t, filepath.Join(root, "self/gosupermin"), initFor(native))
	if got, err := FindInit(native, self); err != nil || got != self {
		t.Errorf("native: %q, %v", got, err)
	}
	writeFile(t, self, elfHeader(native.Machine, native.Class, native.Data, true))
	if _, err := FindInit(native, self); !errors.As(err, &nf) || !strings.Contains(err.Error(), "this program cannot be it") ||
		!strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("dynamic native: %v", err)
	}
	// (No init-s390x in the system directories, nor beside self.)
	other := s390x
	if native == s390x {
		other, _ = Lookup("riscv64")
	}
	writeFile(t, self, initFor(other))
	if _, err := FindInit(other, self); !errors.As(err, &nf) || nf.Self != "" {
		t.Errorf("a program of %s is not the init of another: %v", other.Name, err)
	}
}

// TestCrossBuiltInits builds cmd/gosupermin-init for every architecture
// of the table, as make build does: each is accepted for its own and
// refused for every other.
func TestCrossBuiltInits(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds the init for every architecture: not in -short mode")
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	dir := t.TempDir()
	for _, a := range All() {
		out := filepath.Join(dir, a.InitName())
		cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "../../cmd/gosupermin-init")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+a.Name)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", a.BuildInitCommand(out), err, b)
		}
		fi, _ := os.Stat(out)
		t.Logf("%s: %d KiB", a.InitName(), fi.Size()>>10)
	}
	for _, a := range All() {
		p := filepath.Join(dir, a.InitName())
		for _, want := range All() {
			_, err := CheckInit(p, want)
			if (want == a) != (err == nil) {
				t.Errorf("%s for %s: %v", a.InitName(), want.Name, err)
			}
			if want != a && !errors.Is(err, ErrInitArch) {
				t.Errorf("%s for %s: %v, want ErrInitArch", a.InitName(), want.Name, err)
			}
		}
	}
}
