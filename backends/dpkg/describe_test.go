package dpkg

import (
	"reflect"
	"testing"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/internal/hostile"
)

func TestCopyrightLicense(t *testing.T) {
	const format = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
	for _, c := range []struct {
		name, text, want string
	}{
		{"one Files paragraph", format + "Upstream-Name: x\n\nFiles: *\nCopyright: 2020 A\nLicense: GPL-2+\n\nLicense: GPL-2+\n This program is free software...\n", "GPL-2+"},
		{"several, each once, compound ones grouped",
			format + "\nFiles: *\nLicense: GPL-1+ or Artistic\n\nFiles: lib/*\nLicense: Expat\n\nFiles: debian/*\nLicense: GPL-1+ or Artistic\n", "(GPL-1+ or Artistic) AND Expat"},
		{"the header's licence is the whole package's", format + "License: MIT\n\nFiles: *\nLicense: Expat\n", "MIT"},
		{"dep5 draft format", "Format-Specification: http://svn.debian.org/wsvn/dep/web/deps/dep5.mdwn?op=file&rev=135\nFormat: http://dep.debian.net/deps/dep5\n\nFiles: *\nLicense: BSD-3-clause\n", "BSD-3-clause"},
		{"a repeated field: the first wins", format + "\nFiles: *\nComment: a\nComment: b\nLicense: Zlib\nLicense: MIT\n", "Zlib"},
		{"a licence text as the first line is no short name", format + "\nFiles: *\nLicense:\n Permission is granted...\n", ""},
		{"not machine-readable", "This package was debianized by someone.\n\nIt is GPL.\nLicense: GPL\n", ""},
		{"empty", "", ""},
	} {
		if got := CopyrightLicense([]byte(c.text)); got != c.want {
			t.Errorf("%s: CopyrightLicense = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	root := writeDB(t, `Package: app
Status: install ok installed
Architecture: amd64
Maintainer: Jane Doe <jane@example.org>
Homepage: https://example.org/app
Version: 1:2.0-3

Package: plain
Status: install ok installed
Architecture: all
Version: 1.0
`, map[string]string{
		"var/lib/dpkg/info/app:amd64.list": "/usr/bin/app\n",
		"var/lib/dpkg/info/plain.list":     "/usr/share/plain\n",
		"usr/share/doc/app/copyright":      "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n",
		"usr/share/doc/plain/copyright":    "Plain text, not machine-readable.\n",
	})
	db, err := Open(hostile.Tree(t, root))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]backends.Description{
		"app:amd64": {Supplier: "Jane Doe <jane@example.org>", License: "GPL-2+", Homepage: "https://example.org/app",
			PURL: backends.PURL{Type: "deb", Namespace: "debian", Name: "app", Version: "1:2.0-3", Qualifiers: [][2]string{{"arch", "amd64"}}}},
		"plain:all": {PURL: backends.PURL{Type: "deb", Namespace: "debian", Name: "plain", Version: "1.0", Qualifiers: [][2]string{{"arch", "all"}}}},
	}
	for _, p := range db.Packages() {
		d, err := db.Describe(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if w := want[p.ID]; !reflect.DeepEqual(*d, w) {
			t.Errorf("%s: Describe = %+v, want %+v", p, *d, w)
		}
	}
	if _, err := db.Describe(&backends.Package{ID: "other:amd64"}); err == nil {
		t.Error("a package of another database is described")
	}
}
