package sbom

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"

	"github.com/gosupermin/gosupermin/backends"
)

// fakeDB is a database that describes its packages from a table.
type fakeDB struct {
	pkgs  []*backends.Package
	descs map[string]*backends.Description
}

func (db *fakeDB) Family() backends.Family                          { return backends.Dpkg }
func (db *fakeDB) Packages() []*backends.Package                    { return db.pkgs }
func (db *fakeDB) NativeArch() string                               { return "amd64" }
func (db *fakeDB) CompareVersions(a, b string) int                  { return strings.Compare(a, b) }
func (db *fakeDB) Files(*backends.Package) ([]backends.File, error) { return nil, nil }
func (db *fakeDB) DBFiles() []string                                { return nil }
func (db *fakeDB) Describe(p *backends.Package) (*backends.Description, error) {
	if d, ok := db.descs[p.Name]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("no description of %s", p.Name)
}

func pkg(name, version, arch string) *backends.Package {
	return &backends.Package{Name: name, Version: version, Arch: arch, ID: name + ":" + arch}
}

func debPURL(name, version, arch string) backends.PURL {
	return backends.PURL{Type: "deb", Namespace: "debian", Name: name, Version: version, Qualifiers: [][2]string{{"arch", arch}}}
}

// sample is a small closure: app depends on libc and tzdata, libc on tzdata.
func sample() (Options, *fakeDB) {
	app, libc, tz, kern := pkg("app", "1:2.0-1", "amd64"), pkg("libc6", "2.36-9", "amd64"), pkg("tzdata", "2024a-0", "all"),
		pkg("linux-image-6.1.0-18-amd64", "6.1.76-1", "amd64")
	db := &fakeDB{pkgs: []*backends.Package{app, libc, tz, kern}, descs: map[string]*backends.Description{
		"app": {Supplier: "Jane Doe <jane@example.org>", License: "GPL-2+ with Autoconf-data exception", Homepage: "https://example.org/app",
			PURL: debPURL("app", "1:2.0-1", "amd64")},
		"libc6":  {Supplier: "GNU Libc Maintainers <debian-glibc@lists.debian.org>", License: "LGPL-2.1+", PURL: debPURL("libc6", "2.36-9", "amd64")},
		"tzdata": {Homepage: "not a url", PURL: debPURL("tzdata", "2024a-0", "all")},
		"linux-image-6.1.0-18-amd64": {Supplier: "Debian Kernel Team <debian-kernel@lists.debian.org>", License: "GPL-2",
			PURL: debPURL("linux-image-6.1.0-18-amd64", "6.1.76-1", "amd64")},
	}}
	return Options{
		Name: "appliance.d", Packages: []*backends.Package{tz, libc, app}, DB: db,
		Deps: map[*backends.Package][]*backends.Package{app: {libc, tz}, libc: {tz}},
		OS:   OSRelease{ID: "debian", VersionID: "12"}, Created: time.Unix(1700000000, 0),
		Kernel: &Kernel{Release: "6.1.0-18-amd64", Path: "/boot/vmlinuz-6.1.0-18-amd64", Package: kern}, Tool: "gosupermin-test",
	}, db
}

func write(t *testing.T, o Options) []byte {
	t.Helper()
	doc, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, doc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDocument(t *testing.T) {
	o, _ := sample()
	data := write(t, o)
	doc, err := spdxjson.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the document does not read back: %v\n%s", err, data)
	}
	if !bytes.Contains(data, []byte("?arch=amd64&distro=debian-12")) {
		t.Error("package URLs are escaped for HTML")
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.CreationInfo.Created != "2023-11-14T22:13:20Z" ||
		doc.CreationInfo.Creators[0].Creator != "gosupermin-test" || !strings.HasPrefix(doc.DocumentNamespace, Namespace+"appliance.d-") {
		t.Errorf("document header: %+v %+v", doc, doc.CreationInfo)
	}
	byName := map[string]*spdx.Package{}
	for _, p := range doc.Packages {
		byName[p.PackageName] = p
	}
	type want struct{ version, supplier, license, purl, homepage string }
	for name, w := range map[string]want{
		"app": {"1:2.0-1", "Person: Jane Doe (jane@example.org)", "LicenseRef-GPL-2-plus-with-Autoconf-data-exception",
			"pkg:deb/debian/app@1:2.0-1?arch=amd64&distro=debian-12", "https://example.org/app"},
		"libc6": {"2.36-9", "Person: GNU Libc Maintainers (debian-glibc@lists.debian.org)", "LGPL-2.1-or-later",
			"pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12", ""},
		"tzdata": {"2024a-0", "NOASSERTION", "NOASSERTION", "pkg:deb/debian/tzdata@2024a-0?arch=all&distro=debian-12", ""},
		"linux-image-6.1.0-18-amd64": {"6.1.76-1", "Person: Debian Kernel Team (debian-kernel@lists.debian.org)", "GPL-2.0-only",
			"pkg:deb/debian/linux-image-6.1.0-18-amd64@6.1.76-1?arch=amd64&distro=debian-12", ""},
	} {
		p := byName[name]
		if p == nil {
			t.Errorf("no package %s", name)
			continue
		}
		sup := "NOASSERTION"
		if p.PackageSupplier.SupplierType != "" {
			sup = p.PackageSupplier.SupplierType + ": " + p.PackageSupplier.Supplier
		}
		got := want{p.PackageVersion, sup, p.PackageLicenseDeclared, "", p.PackageHomePage}
		if len(p.PackageExternalReferences) == 1 && p.PackageExternalReferences[0].RefType == "purl" {
			got.purl = p.PackageExternalReferences[0].Locator
		}
		if got != w {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, w)
		}
	}
	if len(doc.Packages) != 5 || byName["appliance.d"] == nil || byName["appliance.d"].PrimaryPackagePurpose != "OPERATING-SYSTEM" {
		t.Errorf("want the appliance, its 3 packages and the kernel: %d packages", len(doc.Packages))
	}
	if len(doc.OtherLicenses) != 1 || doc.OtherLicenses[0].ExtractedText != "GPL-2+ with Autoconf-data exception" {
		t.Errorf("other licences %+v", doc.OtherLicenses)
	}
	var rels []string
	for _, r := range doc.Relationships {
		rels = append(rels, fmt.Sprintf("%s %s %s", r.RefA.ElementRefID, r.Relationship, r.RefB.ElementRefID))
	}
	sort.Strings(rels)
	wantRels := []string{
		"Appliance CONTAINS Package-app-amd64", "Appliance CONTAINS Package-libc6-amd64",
		"Appliance CONTAINS Package-linux-image-6.1.0-18-amd64-amd64", "Appliance CONTAINS Package-tzdata-all",
		"DOCUMENT DESCRIBES Appliance",
		"Package-app-amd64 DEPENDS_ON Package-libc6-amd64", "Package-app-amd64 DEPENDS_ON Package-tzdata-all",
		"Package-libc6-amd64 DEPENDS_ON Package-tzdata-all",
	}
	if strings.Join(rels, "\n") != strings.Join(wantRels, "\n") {
		t.Errorf("relationships:\n%s\nwant:\n%s", strings.Join(rels, "\n"), strings.Join(wantRels, "\n"))
	}
}

// The same inputs give the same bytes; another input another namespace.
func TestReproducible(t *testing.T) {
	o, _ := sample()
	a, b := write(t, o), write(t, o)
	if !bytes.Equal(a, b) {
		t.Fatal("two documents of the same inputs differ")
	}
	o.Created = o.Created.Add(time.Second)
	c := write(t, o)
	nsOf := func(data []byte) string {
		doc, err := spdxjson.Read(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return doc.DocumentNamespace
	}
	if nsOf(a) == nsOf(c) {
		t.Error("two different documents share a namespace")
	}
}

// A kernel no package installed is a package of its own, with a generic
// package URL; without an os-release, the family's namespace stays and
// there is no distro qualifier.
func TestKernelWithoutPackage(t *testing.T) {
	o, _ := sample()
	o.Kernel.Package = nil
	o.OS = OSRelease{}
	data := write(t, o)
	doc, err := spdxjson.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var kernel *spdx.Package
	for _, p := range doc.Packages {
		if p.PackageName == "linux" {
			kernel = p
		}
		if p.PackageName == "app" && p.PackageExternalReferences[0].Locator != "pkg:deb/debian/app@1:2.0-1?arch=amd64" {
			t.Errorf("without os-release: %s", p.PackageExternalReferences[0].Locator)
		}
	}
	if kernel == nil || kernel.PackageVersion != "6.1.0-18-amd64" || kernel.PackageExternalReferences[0].Locator != "pkg:generic/linux@6.1.0-18-amd64" {
		t.Fatalf("kernel %+v", kernel)
	}
}

func TestDescribeError(t *testing.T) {
	o, db := sample()
	delete(db.descs, "libc6")
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "libc6") {
		t.Errorf("a package the database cannot describe: %v", err)
	}
}

func TestReadOSRelease(t *testing.T) {
	for _, c := range []struct {
		files fstest.MapFS
		want  OSRelease
	}{
		{fstest.MapFS{"etc/os-release": {Data: []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n")}},
			OSRelease{ID: "debian", VersionID: "12", Name: "Debian GNU/Linux"}},
		{fstest.MapFS{"usr/lib/os-release": {Data: []byte("# comment\nNAME='Arch Linux'\nID=arch\nBUILD_ID=rolling\n")}},
			OSRelease{ID: "arch", Name: "Arch Linux"}},
		{fstest.MapFS{"etc/os-release": {Data: []byte("ID=\"fedora\"\nVERSION_ID=40\n")}, "usr/lib/os-release": {Data: []byte("ID=other\n")}},
			OSRelease{ID: "fedora", VersionID: "40"}},
		{fstest.MapFS{}, OSRelease{}},
	} {
		got, err := ReadOSRelease(c.files)
		if err != nil || got != c.want {
			t.Errorf("ReadOSRelease = %+v, %v; want %+v", got, err, c.want)
		}
	}
}
