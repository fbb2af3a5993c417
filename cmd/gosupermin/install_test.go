package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runMake runs the top Makefile with args.
func runMake(t *testing.T, args ...string) string {
	t.Helper()
	_, err := exec.LookPath("make")
	need(t, err == nil, "make is not installed")
	cmd := exec.Command("make", append([]string{"-C", "../..", "--no-print-directory"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// make install puts the binary, the man page, the completion and the
// inits of other architectures under DESTDIR/PREFIX; make uninstall
// takes them away.
func TestMakeInstall(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "dest")
	init := filepath.Join(dir, "init-riscv64")
	os.WriteFile(init, []byte("an init"), 0o755)
	vars := []string{"DESTDIR=" + dest, "PREFIX=/opt/gs", "BIN=" + filepath.Join(dir, "bin", "gosupermin"), "INITS=" + init}
	runMake(t, append([]string{"install"}, vars...)...)
	for file, want := range map[string]string{
		"opt/gs/share/man/man1/gosupermin.1":                  "../../docs/gosupermin.1",
		"opt/gs/share/bash-completion/completions/gosupermin": "../../docs/gosupermin.bash",
		"opt/gs/lib/gosupermin/init-riscv64":                  init,
	} {
		got, err := os.ReadFile(filepath.Join(dest, file))
		if err != nil {
			t.Errorf("make install: %v", err)
			continue
		}
		if w, _ := os.ReadFile(want); !bytes.Equal(got, w) {
			t.Errorf("%s is not %s", file, want)
		}
	}
	if r := runCmd(t, filepath.Join(dest, "opt/gs/bin/gosupermin"), "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "gosupermin "+Version) {
		t.Errorf("installed binary: %+v", r)
	}
	runMake(t, append([]string{"uninstall"}, vars...)...)
	var left []string
	filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("make uninstall left %v", left)
	}
	// The defaults: /usr/local, and no DESTDIR.
	if out := runMake(t, "-n", "install", "BIN=/nonexistent/gosupermin"); !strings.Contains(out, " /usr/local/bin/gosupermin") ||
		!strings.Contains(out, " /usr/local/share/man/man1/gosupermin.1") {
		t.Errorf("make -n install:\n%s", out)
	}
}

// The Debian package's version is the program's.
func TestDebianVersion(t *testing.T) {
	data, err := os.ReadFile("../../debian/changelog")
	if err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(string(data), "\n"); !strings.HasPrefix(first, "gosupermin ("+Version+") ") {
		t.Errorf("debian/changelog starts %q; the version is %s", first, Version)
	}
}

// make deb builds a package that lintian passes (make deb checks), with
// the inits of other architectures when there are, that installs into an
// empty root, and whose binary runs from there.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Debian package: not in -short mode")
	}
	for _, tool := range []string{"dpkg-buildpackage", "dh", "lintian", "dpkg", "fakeroot"} {
		_, err := exec.LookPath(tool)
		need(t, err == nil, tool+" is not installed (make deb-deps installs it)")
	}
	dir := t.TempDir()
	// An init of another architecture, as make build makes them: a
	// static arm64 program this machine's strip cannot read.
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o755)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module stand/in\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	init := filepath.Join(dir, "init-arm64")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", init, ".")
	cmd.Dir, cmd.Env = src, append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build an arm64 init: %v\n%s", err, out)
	}
	runMake(t, "deb", "DEBDIR="+dir, "DEBBUILD="+filepath.Join(dir, "build"), "INITS="+init)
	arch, err := exec.Command("dpkg", "--print-architecture").Output()
	if err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(dir, "gosupermin_"+Version+"_"+strings.TrimSpace(string(arch))+".deb")
	root := filepath.Join(dir, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644)
	if r := runCmd(t, "dpkg", "--root="+root, "--force-depends", "--force-not-root", "--log=/dev/null", "-i", deb); r.code != 0 {
		t.Fatalf("dpkg -i: %+v", r)
	}
	if r := runCmd(t, filepath.Join(root, "usr/bin/gosupermin"), "--version"); r.code != 0 || r.stdout != "gosupermin "+Version+" (supermin 5 compatible)\n" {
		t.Errorf("gosupermin --version from the package: %+v", r)
	}
	for _, f := range []string{"usr/share/man/man1/gosupermin.1.gz", "usr/share/bash-completion/completions/gosupermin",
		"usr/share/doc/gosupermin/copyright", "usr/lib/gosupermin/init-arm64"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("the package does not install %s: %v", f, err)
		}
	}
	if r := runCmd(t, "dpkg", "--root="+root, "-s", "gosupermin"); !strings.Contains(r.stdout, "Status: install ok installed") {
		t.Errorf("dpkg -s: %+v", r)
	}
}
