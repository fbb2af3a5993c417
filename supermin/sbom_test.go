package supermin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"

	"github.com/gosupermin/gosupermin/appliance/kernel"
	"github.com/gosupermin/gosupermin/backends/dpkg"
	"github.com/gosupermin/gosupermin/internal/rootfs"
)

// sbomRoot is a copy of the dpkg fixture with what a Debian system has
// besides: an os-release, a Maintainer and a machine-readable copyright.
func sbomRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	copyTree(t, edge, root)
	status := filepath.Join(root, "var/lib/dpkg/status")
	data, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("Package: app\n"), []byte("Package: app\nMaintainer: Jane Doe <jane@example.org>\n"), 1)
	for name, text := range map[string]string{
		"var/lib/dpkg/status":         string(data),
		"etc/os-release":              "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
		"usr/share/doc/app/copyright": "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func readSBOM(t *testing.T, p string) (*spdx.Document, map[string]*spdx.Package) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := spdxjson.Read(f)
	if err != nil {
		t.Fatalf("%s does not read as SPDX JSON: %v", p, err)
	}
	byID := map[string]*spdx.Package{}
	for _, pkg := range doc.Packages {
		byID[string(pkg.PackageSPDXIdentifier)] = pkg
	}
	return doc, byID
}

// The SBOM of a build lists every package of the closure with what the
// database says of it, and is the same twice with SOURCE_DATE_EPOCH.
func TestBuildSBOM(t *testing.T) {
	root := sbomRoot(t)
	dir := t.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	if err := Prepare(context.Background(), PrepareOptions{Options: Options{Root: root}, Packages: []string{"app"}, Out: sd}); err != nil {
		t.Fatal(err)
	}
	build := func(out, sbomPath string) {
		t.Helper()
		b := BuildOptions{Options: Options{Root: root, Epoch: time.Unix(1700000000, 0)}, Inputs: []string{sd}, Out: out,
			Format: Chroot{}, IncludePackageList: true, SBOM: SBOM{Path: sbomPath, Tool: "gosupermin-test"}}
		if err := Build(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	out, sbomPath := filepath.Join(dir, "appliance.d"), filepath.Join(dir, "appliance.spdx.json")
	build(out, sbomPath)
	doc, byID := readSBOM(t, sbomPath)
	list, err := os.ReadFile(filepath.Join(out, "packagelist"))
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Fields(string(list))
	if len(doc.Packages) != len(names)+1 {
		t.Errorf("%d packages in the SBOM, want the appliance and the %d of /packagelist", len(doc.Packages), len(names))
	}
	contained := map[string]bool{}
	for _, r := range doc.Relationships {
		if r.RefA.ElementRefID == "Appliance" && r.Relationship == "CONTAINS" {
			contained[string(r.RefB.ElementRefID)] = true
		}
	}
	for _, full := range names { // NAME_VERSION_ARCH
		f := strings.Split(full, "_")
		found := false
		for id, p := range byID {
			if p.PackageName == f[0] && p.PackageVersion == f[1] && contained[id] &&
				p.PackageExternalReferences[0].Locator == "pkg:deb/debian/"+f[0]+"@"+f[1]+"?arch="+f[2]+"&distro=debian-12" {
				found = true
			}
		}
		if !found {
			t.Errorf("%s is not in the SBOM as a package of the appliance with its purl", full)
		}
	}
	app := byID["Package-app-amd64"]
	if app == nil || app.PackageLicenseDeclared != "GPL-2.0-or-later" || app.PackageSupplier.Supplier != "Jane Doe (jane@example.org)" {
		t.Errorf("app: %+v", app)
	}
	deps := 0
	for _, r := range doc.Relationships {
		if r.RefA.ElementRefID == "Package-app-amd64" && r.Relationship == "DEPENDS_ON" {
			deps++
		}
	}
	if deps < 6 {
		t.Errorf("app DEPENDS_ON %d packages: the resolver's choices are missing", deps)
	}
	if doc.CreationInfo.Created != "2023-11-14T22:13:20Z" {
		t.Errorf("created %s, want SOURCE_DATE_EPOCH's time", doc.CreationInfo.Created)
	}
	first, _ := os.ReadFile(sbomPath)
	build(out, sbomPath)
	again, _ := os.ReadFile(sbomPath)
	if !bytes.Equal(first, again) {
		t.Error("two builds with the same epoch give different SBOMs")
	}
	if fi, err := os.Stat(sbomPath); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("SBOM mode: %v %v", fi, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*gosupermin-tmp*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

var errFormat = errors.New("the format failed")

// failingFormat writes part of an appliance and fails.
type failingFormat struct{}

func (failingFormat) Write(_ context.Context, _ *Appliance, dir string) error {
	os.WriteFile(filepath.Join(dir, "part"), nil, 0o644)
	return errFormat
}

// An SBOM inside the output is refused before anything is done; a build
// that fails writes none and leaves the one there.
func TestBuildSBOMPlace(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	os.MkdirAll(sd, 0o755)
	os.WriteFile(filepath.Join(sd, "packages"), []byte("alt-present\n"), 0o644)
	out := filepath.Join(dir, "out")
	b := BuildOptions{Options: quiet(t), Inputs: []string{sd}, Out: out, Format: Chroot{}, SBOM: SBOM{Path: filepath.Join(out, "sbom.json")}}
	if err := Build(context.Background(), b); err == nil || !strings.Contains(err.Error(), "inside the output") {
		t.Errorf("an SBOM inside the output: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the refused build made its output: %v", err)
	}
	b.SBOM.Path = filepath.Join(dir, "sbom.json")
	os.WriteFile(b.SBOM.Path, []byte("previous"), 0o644)
	b.Format = failingFormat{}
	if err := Build(context.Background(), b); !errors.Is(err, errFormat) {
		t.Fatalf("failing build: %v", err)
	}
	if data, _ := os.ReadFile(b.SBOM.Path); string(data) != "previous" {
		t.Errorf("a failed build changed the SBOM: %q", data)
	}
	b.Format = Chroot{}
	if err := Build(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if _, byID := readSBOM(t, b.SBOM.Path); byID["Package-alt-present-all"] == nil {
		t.Errorf("SBOM without alt-present: %v", byID)
	}
}

// The kernel's package is found by the image's inode, through a
// directory symlink too; a kernel outside the tree or no package's has
// none.
func TestKernelPackage(t *testing.T) {
	root := t.TempDir()
	for name, text := range map[string]string{
		"var/lib/dpkg/status": "Package: dpkg\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n" +
			"Package: linux-image-1.0\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n\n" +
			"Package: linux-image-2.0\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.0-1\n",
		"var/lib/dpkg/info/dpkg.list":            "/usr/bin/dpkg\n",
		"var/lib/dpkg/info/linux-image-1.0.list": "/boot/vmlinuz-1.0\n",
		"var/lib/dpkg/info/linux-image-2.0.list": "/usr/lib/modules/2.0/vmlinuz\n",
		"boot/vmlinuz-1.0":                       "kernel one",
		"boot/vmlinuz-9.0":                       "a kernel no package has",
		"usr/lib/modules/2.0/vmlinuz":            "kernel two",
	} {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/lib", filepath.Join(root, "lib")); err != nil {
		t.Fatal(err)
	}
	tree, err := rootfs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	db, err := dpkg.Open(tree.FS())
	if err != nil {
		t.Fatal(err)
	}
	a := &Appliance{Root: root, tree: tree, db: db}
	outside := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(outside, []byte("kernel one"), 0o644)
	for image, want := range map[string]string{
		filepath.Join(root, "boot/vmlinuz-1.0"):        "linux-image-1.0:amd64",
		filepath.Join(root, "lib/modules/2.0/vmlinuz"): "linux-image-2.0:amd64",
		filepath.Join(root, "boot/vmlinuz-9.0"):        "",
		filepath.Join(root, "boot/missing"):            "",
		outside:                                        "",
	} {
		got := ""
		if p := a.kernelPackage(&kernel.Kernel{Image: kernel.Ref{Path: image}}); p != nil {
			got = p.ID
		}
		if got != want {
			t.Errorf("kernel %s: package %q, want %q", image, got, want)
		}
	}
}

// checkSBOM checks that the SBOM at p has n packages of the appliance
// besides the kernel (any number when n is 0), each with a package URL,
// and the package URL and declared licence of some by name.
func checkSBOM(t *testing.T, p string, n int, want map[string][2]string) {
	t.Helper()
	doc, _ := readSBOM(t, p)
	contained := 0
	for _, r := range doc.Relationships {
		if r.RefA.ElementRefID == "Appliance" && r.Relationship == "CONTAINS" {
			contained++
		}
	}
	if n > 0 && contained != n {
		t.Errorf("%s: the appliance contains %d packages, want %d", p, contained, n)
	}
	found := map[string]bool{}
	for _, pkg := range doc.Packages {
		if pkg.PackageSPDXIdentifier == "Appliance" {
			continue
		}
		if len(pkg.PackageExternalReferences) != 1 {
			t.Errorf("%s: %s has no package URL", p, pkg.PackageName)
			continue
		}
		if w, ok := want[pkg.PackageName]; ok {
			found[pkg.PackageName] = true
			if got := [2]string{pkg.PackageExternalReferences[0].Locator, pkg.PackageLicenseDeclared}; got != w {
				t.Errorf("%s: %s has %q, want %q", p, pkg.PackageName, got, w)
			}
		}
	}
	for name := range want {
		if !found[name] {
			t.Errorf("%s: no package %s", p, name)
		}
	}
}

// With IfNewer, an output that is up to date is rebuilt when the SBOM
// asked for is missing, and left alone when it is there.
func TestBuildSBOMIfNewer(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	os.MkdirAll(sd, 0o755)
	os.WriteFile(filepath.Join(sd, "packages"), []byte("alt-present\n"), 0o644)
	root := filepath.Join(dir, "root")
	copyTree(t, edge, root)
	old := time.Now().Add(-time.Hour)
	for _, p := range []string{filepath.Join(sd, "packages"), sd, filepath.Join(root, "var/lib/dpkg/status"),
		filepath.Join(root, "var/lib/dpkg/diversions"), filepath.Join(root, "var/lib/dpkg/info")} {
		os.Chtimes(p, old, old)
	}
	out, sbomPath := filepath.Join(dir, "out"), filepath.Join(dir, "sbom.json")
	b := BuildOptions{Options: Options{Root: root}, Inputs: []string{sd}, Out: out, Format: Chroot{}, IfNewer: true, SBOM: SBOM{Path: sbomPath}}
	marker := filepath.Join(out, "marker")
	for i, c := range []struct {
		removeSBOM, rebuilt bool
	}{{false, true}, {false, false}, {true, true}} {
		if c.removeSBOM {
			os.Remove(sbomPath)
		}
		if i > 0 {
			os.WriteFile(marker, nil, 0o644)
			os.Chtimes(out, time.Now(), time.Now())
		}
		if err := Build(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		_, err := os.Stat(marker)
		if rebuilt := os.IsNotExist(err); rebuilt != c.rebuilt {
			t.Errorf("build %d: rebuilt %v, want %v", i, rebuilt, c.rebuilt)
		}
		if _, err := os.Stat(sbomPath); err != nil {
			t.Errorf("build %d: %v", i, err)
		}
	}
}
