package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/appliance/arch"
)

// arm64Tree is a small dpkg tree installed for arm64 with a stand-in
// arm64 kernel (its Image header) and module directory, and a supermin.d
// naming its one package.
func arm64Tree(t *testing.T) (root, sd string) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "root")
	files := map[string]string{
		"var/lib/dpkg/status": "Package: dpkg\nStatus: install ok installed\nVersion: 1.21\nArchitecture: arm64\n\n" +
			"Package: app\nStatus: install ok installed\nVersion: 1\nArchitecture: arm64\n",
		"var/lib/dpkg/info/dpkg.list":           "",
		"var/lib/dpkg/info/app.list":            "/usr\n/usr/bin\n/usr/bin/app\n",
		"usr/bin/app":                           "#!/bin/sh\n",
		"lib/modules/6.1.0-9-arm64/modules.dep": "",
	}
	img := make([]byte, 64<<10)
	copy(img, "MZ")
	copy(img[0x38:], "ARMd")
	files["boot/vmlinuz-6.1.0-9-arm64"] = string(img)
	for p, data := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sd = filepath.Join(dir, "supermin.d")
	os.Mkdir(sd, 0o755)
	if err := os.WriteFile(filepath.Join(sd, "packages"), []byte("app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, sd
}

// crossInit cross-builds cmd/gosupermin-init for goarch, as make build does.
func crossInit(t *testing.T, goarch string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "init-"+goarch)
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-ldflags=-s -w", "-o", out, "../gosupermin-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cross-build the %s init: %v\n%s", goarch, err, b)
	}
	return out
}

// TestForeignInit: gosupermin finds the arm64 init beside itself for an
// arm64 tree; without one it says where it looked and how to make one;
// --init wins over GOSUPERMIN_INIT; an init or a --host-cpu of another
// architecture is an error that names it.
func TestForeignInit(t *testing.T) {
	root, sd := arm64Tree(t)
	arm64Init, amd64Init := crossInit(t, "arm64"), crossInit(t, "amd64")
	beside := filepath.Join(filepath.Dir(bin), "init-arm64")
	installed := ""
	for _, d := range arch.SystemInitDirs {
		if _, err := os.Stat(filepath.Join(d, "init-arm64")); err == nil {
			installed = filepath.Join(d, "init-arm64")
		}
	}
	build := func(env []string, args ...string) result {
		t.Helper()
		out := filepath.Join(t.TempDir(), "out")
		cmd := exec.Command(bin, append([]string{"--build", "-f", "cpio", "--root", root, sd, "-o", out}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		var so, se strings.Builder
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		r := result{stdout: so.String(), stderr: se.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return r
	}
	check := func(name string, r result, code int, says ...string) {
		t.Helper()
		if r.code != code {
			t.Errorf("%s: exit %d, want %d: %s", name, r.code, code, r.stderr)
			return
		}
		for _, s := range says {
			if !strings.Contains(r.stderr, s) {
				t.Errorf("%s: %q does not say %q", name, r.stderr, s)
			}
		}
	}

	if installed == "" {
		check("no arm64 init", build(nil), 1, "no init program for arm64", beside,
			"CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go install github.com/gosupermin/gosupermin/cmd/gosupermin-init@latest",
			"--init FILE (or GOSUPERMIN_INIT=FILE)")
	} else {
		t.Logf("%s is installed: not testing the error without an init", installed)
	}
	check("--init arm64", build(nil, "--init", arm64Init), 0)
	check("GOSUPERMIN_INIT arm64", build([]string{"GOSUPERMIN_INIT=" + arm64Init}), 0)
	check("--init amd64", build([]string{"GOSUPERMIN_INIT=" + arm64Init}, "--init", amd64Init), 1,
		"init program "+amd64Init, "it is amd64", "the appliance is arm64", "GOARCH=arm64", "--init FILE")
	check("--host-cpu x86_64", build(nil, "--init", arm64Init, "--host-cpu", "x86_64"), 1,
		"the package database (debian/dpkg) of "+root+" says arm64", "the kernel "+root+"/boot/vmlinuz-6.1.0-9-arm64 (arm64 Image) says arm64",
		"the host CPU asked for says x86_64 (amd64)", "--host-cpu")
	check("--init empty", build(nil, "--init="), 2, "--init needs a file")

	copyFile(t, arm64Init, beside)
	defer os.Remove(beside)
	check("init-arm64 beside gosupermin", build(nil, "-v"), 0, "init "+beside)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}
