package supermin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/backends/pacman"
)

// pacmanTree builds fixtures/pacman/PKGBUILD with makepkg (as nobody when
// run as root: makepkg refuses root) and installs the packages into a new
// root with pacman -U.
func pacmanTree(t *testing.T) string { return pacmanTreeFor(t, "") }

// pacmanTreeFor is pacmanTree with packages built for machine carch
// (arch=(CARCH) in the PKGBUILD, CARCH in makepkg's configuration,
// pacman --arch), not "any"; "" keeps them "any".
func pacmanTreeFor(t *testing.T, carch string) string {
	t.Helper()
	src, err := filepath.Abs("../fixtures/pacman")
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its parent is private to root, and nobody must
	// reach this one.
	work, err := os.MkdirTemp("", "gosupermin-makepkg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	for _, d := range []string{"build", "pkg", "src", "home", "bd"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"PKGBUILD", "gs-app.install"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "PKGBUILD" && carch != "" {
			data = bytes.Replace(data, []byte("\narch=(any)\n"), []byte("\narch=("+carch+")\n"), 1)
		}
		if err := os.WriteFile(filepath.Join(work, "build", f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var makepkgConf, pacmanArch []string
	if carch != "" {
		conf, err := os.ReadFile("/etc/makepkg.conf")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(work, "makepkg.conf")
		if err := os.WriteFile(p, append(conf, "\nCARCH=\""+carch+"\"\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		makepkgConf, pacmanArch = []string{"--config", p}, []string{"--arch", carch}
	}
	args := []string{"env", "HOME=" + filepath.Join(work, "home"), "PKGDEST=" + filepath.Join(work, "pkg"),
		"SRCDEST=" + filepath.Join(work, "src"), "BUILDDIR=" + filepath.Join(work, "bd"), "PKGEXT=.pkg.tar.gz",
		"makepkg", "--nodeps", "--noconfirm", "--skipinteg", "--nocolor"}
	args = append(args, makepkgConf...)
	if os.Geteuid() == 0 {
		needTools(t, "runuser")
		if err := filepath.Walk(work, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, 65534, 65534)
		}); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"runuser", "-u", "nobody", "--"}, args...)
	}
	run(t, filepath.Join(work, "build"), nil, args[0], args[1:]...)
	pkgs, _ := filepath.Glob(filepath.Join(work, "pkg", "*.pkg.tar.gz"))
	if len(pkgs) != 6 {
		t.Fatalf("makepkg made %d packages, want 6: %v", len(pkgs), pkgs)
	}
	root := filepath.Join(t.TempDir(), "root")
	dbpath := filepath.Join(root, "var/lib/pacman")
	if err := os.MkdirAll(dbpath, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(work, "pacman.conf")
	if err := os.WriteFile(conf, []byte("[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, root, nil, "pacman", append([]string{"-U", "--root", root, "--dbpath", dbpath, "--config", conf,
		"--cachedir", filepath.Join(work, "cache"), "--logfile", filepath.Join(work, "pacman.log"),
		"--gpgdir", filepath.Join(work, "gnupg"), "--hookdir", filepath.Join(work, "hooks"),
		"--noscriptlet", "--nodeps", "--nodeps", "--noconfirm", "--noprogressbar"}, append(pacmanArch, pkgs...)...)...)
	return root
}

var pacmanClosure = []string{
	"gs-app-1:1.5-2",
	"gs-base-1:1.5-2",
	"gs-lib-1:1.5-2",   // gs-virt>=1.5: the versioned provision, not gs-unused's
	"gs-mta-b-1:1.5-2", // gs-mta: the provider gs-base brought in
}

func TestPacmanTree(t *testing.T) {
	needTools(t, "pacman", "makepkg", "fakeroot", "bsdtar")
	root := pacmanTree(t)
	var warnings []string
	opts := Options{Root: root, Log: func(level int, msg string) {
		if level == 0 {
			warnings = append(warnings, msg)
		}
		t.Log(msg)
	}}
	if _, driver, err := OpenDB(os.DirFS(root)); err != nil || driver != "arch/pacman" {
		t.Fatalf("OpenDB: %q, %v", driver, err)
	}
	db, err := pacman.Open(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range db.Packages() {
		if p.Name != "gs-app" {
			continue
		}
		sc, err := db.Scripts(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(sc.List) != 1 || sc.List[0].Name != "post_install" || sc.List[0].Interpreter != "/bin/bash" ||
			strings.Join(sc.List[0].Args, " ") != "1:1.5-2" || !strings.Contains(string(sc.List[0].Body), "post_install() {") {
			t.Errorf("gs-app scripts: %+v", sc.List)
		}
	}

	sd, baseNames := prepareBase(t, opts, "gs-app")
	if strings.Join(baseNames, " ") != "./etc/gs-app.conf ./etc/gs-base.conf" {
		t.Errorf("base.tar.gz holds %v, want the closure's backup files", baseNames)
	}
	out := filepath.Join(t.TempDir(), "appliance")
	start := time.Now()
	sbomPath := filepath.Join(t.TempDir(), "sbom.json")
	if err := Build(context.Background(), BuildOptions{Options: opts, Inputs: []string{sd}, Out: out, Format: Chroot{}, IncludePackageList: true,
		SBOM: SBOM{Path: sbomPath}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("pacman chroot build: %v", time.Since(start))
	checkSBOM(t, sbomPath, len(pacmanClosure), map[string][2]string{
		"gs-app": {"pkg:alpm/arch/gs-app@1:1.5-2?arch=any", "MIT"},
	})
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
	pl, _ := os.ReadFile(filepath.Join(out, "packagelist"))
	if got := strings.Fields(string(pl)); strings.Join(got, " ") != strings.Join(pacmanClosure, " ") {
		t.Errorf("packagelist: %v, want %v", got, pacmanClosure)
	}

	// Files: what pacman -Ql lists for the closure, backup files coming
	// from base.tar.gz.
	var names []string
	for _, id := range pacmanClosure {
		names = append(names, id[:strings.LastIndex(id[:strings.LastIndexByte(id, '-')], "-")])
	}
	ql := run(t, root, nil, "pacman", append([]string{"-Ql", "--root", root, "--dbpath", filepath.Join(root, "var/lib/pacman")}, names...)...)
	want := map[string]bool{"/packagelist": true}
	var dirs []string
	nfiles := 0
	for _, line := range strings.Split(strings.TrimSpace(ql), "\n") {
		_, p, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("pacman -Ql line %q", line)
		}
		p = "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		nfiles++
		if strings.HasSuffix(p, "/") {
			dirs = append(dirs, p)
		} else {
			want[p] = true
		}
	}
	got := treeFiles(t, out)
	compareSets(t, "pacman chroot", got, want)
	for _, d := range dirs {
		if fi, err := os.Stat(filepath.Join(out, d)); err != nil || !fi.IsDir() {
			t.Errorf("directory %s missing", d)
		}
	}
	if l, err := os.Readlink(filepath.Join(out, "usr/bin/gs-sh-link")); err != nil || l != "gs-sh" {
		t.Errorf("symlink gs-sh-link: %q, %v", l, err)
	}
	t.Logf("pacman fixture tree: %d packages installed, %d in the closure, %d paths listed by pacman for it, %d files in the appliance",
		len(db.Packages()), len(pacmanClosure), nfiles, len(got))
	buildExt2(t, opts, sd, got)

	// A garbage desc: one error naming the package's directory.
	desc := filepath.Join(root, "var/lib/pacman/local/gs-lib-1:1.5-2/desc")
	if err := os.WriteFile(desc, []byte("this is not\na desc file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = Build(context.Background(), BuildOptions{Options: Options{Root: root}, Inputs: []string{sd}, Out: filepath.Join(t.TempDir(), "a"), Format: Chroot{}})
	if err == nil || !strings.Contains(err.Error(), "gs-lib-1:1.5-2") {
		t.Errorf("build on a garbage desc: %v", err)
	}
	t.Logf("garbage desc: %v", err)
}
