package supermin

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"github.com/gosupermin/gosupermin/appliance/kernel"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/rpm"
)

// needTools skips a test whose package tools are missing, except in CI
// (CI set), where they must be installed.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed: CI must install it", tool)
			}
			t.Skipf("%s is not installed (set CI to make this a failure)", tool)
		}
	}
}

// run runs a command and returns its standard output.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

const rpmDBPath = "/usr/lib/sysimage/rpm"

// rpmTree builds the fixture specs with rpmbuild and installs the
// packages into a new root with rpm --root, as Debian's rpm does it
// (sqlite backend).
func rpmTree(t *testing.T) string { return rpmTreeFor(t, "") }

// rpmTreeFor is rpmTree for a machine of rpm architecture target: its
// arch-specific package is built for it (rpmbuild --target), and not for
// i686 too. "" is this machine, with the i686 package.
func rpmTreeFor(t *testing.T, target string) string {
	t.Helper()
	specs, err := filepath.Abs("../fixtures/rpm")
	if err != nil {
		t.Fatal(err)
	}
	top := t.TempDir()
	build := func(spec string, extra ...string) {
		args := append([]string{"--define", "_topdir " + top, "--nodeps", "--quiet"}, extra...)
		run(t, top, nil, "rpmbuild", append(args, "-bb", filepath.Join(specs, spec))...)
	}
	for _, s := range []string{"gs-app", "gs-sh", "gs-tools", "gs-mta", "gs-plugin", "gs-unused"} {
		build(s + ".spec")
	}
	want := 11
	if target == "" {
		build("gs-libfoo.spec")
		build("gs-libfoo.spec", "--target", "i686")
	} else {
		build("gs-libfoo.spec", "--target", target)
		want--
	}
	build("gs-kmod.spec", "--define", "kver 1.0")
	build("gs-kmod.spec", "--define", "kver 2.0")
	var rpms []string
	filepath.WalkDir(filepath.Join(top, "RPMS"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".rpm") {
			rpms = append(rpms, p)
		}
		return nil
	})
	if len(rpms) != want {
		t.Fatalf("rpmbuild made %d packages, want %d: %v", len(rpms), want, rpms)
	}
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, root, nil, "rpm", append([]string{"--root", root, "--dbpath", rpmDBPath, "-i", "--nodeps", "--noscripts", "--ignorearch"}, rpms...)...)
	return root
}

// rpmQuery lists, per NEVRA, the files rpm itself reports with their flags.
func rpmQuery(t *testing.T, root string) map[string][]rpmFile {
	out := run(t, root, nil, "rpm", "--root", root, "--dbpath", rpmDBPath, "-qa", "--qf", `[%{=NEVRA}\t%{FILEFLAGS}\t%{FILENAMES}\n]`)
	files := map[string][]rpmFile{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			t.Fatalf("rpm -qa line %q", line)
		}
		flags, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatal(err)
		}
		files[f[0]] = append(files[f[0]], rpmFile{path: f[2], flags: flags})
	}
	return files
}

type rpmFile struct {
	path  string
	flags int
}

var rpmClosure = []string{
	"gs-app-3.0-1.noarch",
	"gs-kmod-2.0-1.noarch",     // the newest of two versions
	"gs-libfoo-2:1.5-3.x86_64", // the host arch of two
	"gs-mta-b-1.0-1.noarch",    // the provider already in the closure
	"gs-plugin-1.0-1.noarch",   // (gs-plugin if gs-libfoo)
	"gs-sh-1.0-1.noarch",       // Requires: /usr/bin/gs-sh, /bin/sh
	"gs-tools-0.9-1.noarch",    // (gs-tools or gs-missing)
}

func TestRPMTree(t *testing.T) {
	needTools(t, "rpm", "rpmbuild")
	root := rpmTree(t)
	var warnings []string
	opts := Options{Root: root, Log: func(level int, msg string) {
		if level == 0 {
			warnings = append(warnings, msg)
		}
		t.Log(msg)
	}}

	if _, driver, err := OpenDB(os.DirFS(root)); err != nil || driver != "fedora/rpm" {
		t.Fatalf("OpenDB: %q, %v", driver, err)
	}
	db, err := rpm.Open(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	if db.NativeArch() != "x86_64" {
		t.Errorf("native arch %q", db.NativeArch())
	}
	if got := db.DBFiles(); len(got) != 2 || got[0] != "usr/lib/sysimage/rpm/rpmdb.sqlite" {
		t.Errorf("DBFiles %v", got)
	}
	var app *backends.Package
	for _, p := range db.Packages() {
		if p.Name == "gs-app" {
			app = p
		}
	}
	if app == nil {
		t.Fatal("gs-app not read")
	}
	sc, err := db.Scripts(app)
	if err != nil {
		t.Fatal(err)
	}
	var scripts []string
	for _, s := range sc.List {
		scripts = append(scripts, s.Name+" "+s.Interpreter+" "+strings.Join(s.Args, ",")+" "+strings.TrimSpace(string(s.Body)))
	}
	want := []string{
		`%pre /bin/sh 1 echo pre "$1"`,
		`%post /bin/sh 1 echo post "$1" > /var/lib/gs-app.post`,
		`%posttrans <lua> 1 print("posttrans")`,
	}
	if strings.Join(scripts, "\n") != strings.Join(want, "\n") {
		t.Errorf("scripts:\n%s\nwant:\n%s", strings.Join(scripts, "\n"), strings.Join(want, "\n"))
	}

	sd, baseNames := prepareBase(t, opts, "gs-app")
	if strings.Join(baseNames, " ") != "./etc/gs-app.conf ./etc/gs-sh.conf" {
		t.Errorf("base.tar.gz holds %v, want the closure's %%config files", baseNames)
	}

	out := filepath.Join(t.TempDir(), "appliance")
	start := time.Now()
	sbomPath := filepath.Join(t.TempDir(), "sbom.json")
	err = Build(context.Background(), BuildOptions{Options: opts, Inputs: []string{sd}, Out: out, Format: Chroot{}, IncludePackageList: true,
		SBOM: SBOM{Path: sbomPath}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rpm chroot build: %v", time.Since(start))
	checkSBOM(t, sbomPath, len(rpmClosure), map[string][2]string{
		"gs-app":    {"pkg:rpm/gs-app@3.0-1?arch=noarch", "MIT"},
		"gs-libfoo": {"pkg:rpm/gs-libfoo@1.5-3?arch=x86_64&epoch=2", "MIT"},
	})
	for _, w := range warnings {
		if strings.Contains(w, "require") || strings.Contains(w, "not installed") {
			t.Errorf("unexpected warning: %s", w)
		}
	}
	pl, _ := os.ReadFile(filepath.Join(out, "packagelist"))
	if got := strings.Fields(string(pl)); strings.Join(got, " ") != strings.Join(rpmClosure, " ") {
		t.Errorf("packagelist:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(rpmClosure, "\n"))
	}

	// The appliance's files are what rpm lists for the closure, minus
	// %config files (which come back from base.tar.gz) and %ghosts
	// (not on disk), plus the parent directories.
	q := rpmQuery(t, root)
	wantFiles := map[string]bool{"/packagelist": true, "/etc/gs-app.conf": true, "/etc/gs-sh.conf": true}
	var wantDirs []string
	nfiles := 0
	for _, nevra := range rpmClosure {
		if len(q[nevra]) == 0 {
			t.Fatalf("rpm lists no files for %s", nevra)
		}
		for _, f := range q[nevra] {
			nfiles++
			if f.flags&(rpm.FileConfig|rpm.FileGhost) != 0 {
				continue
			}
			fi, err := os.Lstat(filepath.Join(root, f.path))
			if err != nil {
				t.Fatalf("rpm lists %s, missing under the root: %v", f.path, err)
			}
			if fi.IsDir() {
				wantDirs = append(wantDirs, f.path)
			} else {
				wantFiles[f.path] = true
			}
		}
	}
	got := treeFiles(t, out)
	compareSets(t, "rpm chroot", got, wantFiles)
	for _, d := range wantDirs {
		if fi, err := os.Lstat(filepath.Join(out, d)); err != nil || !fi.IsDir() {
			t.Errorf("directory %s missing from the appliance", d)
		}
	}
	for _, ghost := range []string{"var/log/gs-app.log", "run/gs-app"} {
		if _, err := os.Lstat(filepath.Join(out, ghost)); err == nil {
			t.Errorf("%%ghost %s is in the appliance", ghost)
		}
	}
	if l, err := os.Readlink(filepath.Join(out, "usr/bin/gs-sh-link")); err != nil || l != "gs-sh" {
		t.Errorf("symlink gs-sh-link: %q, %v", l, err)
	}
	t.Logf("rpm fixture tree: %d packages installed, %d in the closure, %d files listed by rpm for it, %d files in the appliance",
		len(db.Packages()), len(rpmClosure), nfiles, len(got))

	buildExt2(t, opts, sd, got)
}

// buildExt2 builds the ext2 format and compares its files with the
// chroot's when debugfs can read them back.
func buildExt2(t *testing.T, opts Options, sd string, want map[string]bool) {
	t.Helper()
	// The fixture trees have no kernel: give the ext2 writer a stand-in
	// under the root (it copies the modules directory into the image).
	modules := filepath.Join(opts.Root, "lib/modules/6.1.0-gs")
	kernelFile := filepath.Join(modules, "vmlinuz")
	if err := os.MkdirAll(modules, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join(opts.Root, "lib")) })
	if err := os.WriteFile(kernelFile, make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(modules, "modules.dep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	boot := Boot{Kernel: kernel.Options{Kernel: kernelFile, Version: "6.1.0-gs", Modules: modules}, Init: staticInit(t)}
	out := filepath.Join(t.TempDir(), "appliance.d")
	start := time.Now()
	sbomPath := filepath.Join(t.TempDir(), "sbom.json")
	ended := map[string]bool{}
	opts.Progress = func(p Progress) { ended[p.Phase] = p.Done == p.Total && p.Total > 0 }
	err := Build(context.Background(), BuildOptions{Options: opts, Inputs: []string{sd}, Out: out,
		Format: &Ext2{Boot: boot, Size: 64 << 20}, IncludePackageList: true, SBOM: SBOM{Path: sbomPath}})
	if err != nil {
		t.Fatalf("ext2 build: %v", err)
	}
	t.Logf("ext2 build: %v", time.Since(start))
	// The stand-in kernel is no package's.
	checkSBOM(t, sbomPath, 0, map[string][2]string{"linux": {"pkg:generic/linux@6.1.0-gs", "NOASSERTION"}})
	err = Build(context.Background(), BuildOptions{Options: opts, Inputs: []string{sd}, Out: filepath.Join(t.TempDir(), "cpio.d"),
		Format: &CPIO{Boot: boot}})
	if err != nil {
		t.Fatalf("cpio build: %v", err)
	}
	if !ended[PhaseImage] || !ended[PhaseInitramfs] {
		t.Errorf("progress of the bootable formats: %v", ended)
	}
	if _, err := exec.LookPath("debugfs"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("debugfs (e2fsprogs) is not installed: CI must install it")
		}
		t.Log("debugfs not installed: ext2 contents not checked")
		return
	}
	dump := t.TempDir()
	run(t, dump, nil, "debugfs", "-R", "rdump / "+dump, filepath.Join(out, "root"))
	got := treeFiles(t, dump)
	for p := range got {
		if strings.HasPrefix(p, "/lib/modules/") || strings.HasPrefix(p, "/usr/lib/modules/") {
			delete(got, p) // the stand-in kernel's modules
		}
	}
	compareSets(t, "ext2", got, want)
}

// staticInit builds a do-nothing static program for the initrd's init
// (the test binary itself may be dynamically linked).
func staticInit(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module stand/in\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	run(t, dir, []string{"CGO_ENABLED=0", "GOFLAGS="}, goTool, "build", "-o", "init", ".")
	return filepath.Join(dir, "init")
}

// treeFiles lists the non-directory paths under dir, as absolute paths
// of the appliance.
func treeFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			got["/"+filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func compareSets(t *testing.T, what string, got, want map[string]bool) {
	t.Helper()
	var extra, missing []string
	for p := range got {
		if !want[p] {
			extra = append(extra, p)
		}
	}
	for p := range want {
		if !got[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	if len(extra)+len(missing) > 0 {
		t.Errorf("%s: files not expected: %v; files missing: %v", what, extra, missing)
	}
}

// TestRPMCorruptHeader damages one header blob in place in the sqlite
// database rpm wrote: opening the tree fails with one error naming it.
func TestRPMCorruptHeader(t *testing.T) {
	needTools(t, "rpm", "rpmbuild")
	root := rpmTree(t)
	file := filepath.Join(root, rpmDBPath, "rpmdb.sqlite")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	db, err := rpm.Open(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	// The header of gs-tools starts with its index count and data size;
	// find its first bytes in the file and make the data size too large.
	var h *rpm.Header
	for _, p := range db.Packages() {
		if p.Name == "gs-tools" {
			if h, err = db.Header(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	blob := h.Blob()
	i := bytes.Index(data, blob[:64])
	if i < 0 || bytes.Index(data[i+1:], blob[:64]) >= 0 {
		t.Fatal("header prefix not found once in the database file")
	}
	binary.BigEndian.PutUint32(data[i+4:], binary.BigEndian.Uint32(blob[4:8])+4096)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = rpm.Open(os.DirFS(root))
	var ce *backends.CorruptError
	if !errors.As(err, &ce) || !strings.HasPrefix(ce.Record, "hnum ") || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("Open of a database with a truncated header: %v", err)
	}
	t.Logf("corrupt header: %v", err)
	if err := Build(context.Background(), BuildOptions{Options: Options{Root: root}, Inputs: []string{t.TempDir()}, Out: filepath.Join(t.TempDir(), "a"), Format: Chroot{}}); err == nil || !strings.Contains(err.Error(), "rpmdb.sqlite") {
		t.Errorf("build on a corrupt database: %v", err)
	}
}
