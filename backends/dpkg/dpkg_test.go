package dpkg

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/internal/hostile"
)

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.10", "1.9", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0", "1.0+b1", -1},
		{"1:0.1", "2.0", 1},
		{"0:1.0", "1.0", 0},
		{"1.0-1", "1.0-2", -1},
		{"1.0-10", "1.0-9", 1},
		{"1.0a", "1.0", 1},
		{"1.0a", "1.0+", -1},
		{"6.1.0-10", "6.1.0-56", -1},
		{"2.36-9+deb12u4", "2.36-9+deb12u10", -1},
		{"000123", "123", 0},
		{"99999999999999999999999", "99999999999999999999998", 1},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestParseRelations(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"libc6 (>= 2.34), perl:any", "libc6 (>= 2.34);perl:any"},
		{"a | b (<< 2) | c:native", "a | b (< 2) | c:native"},
		{"debconf (>= 0.5) | debconf-2.0", "debconf (>= 0.5) | debconf-2.0"},
		{"x (= 1:2.0-1)", "x (= 1:2.0-1)"},
		{"x (>=1.0)", "x (>= 1.0)"},
		{"foo [amd64]", "foo"},
		{"  ", ""},
	} {
		deps, err := ParseRelations(tc.in)
		if err != nil {
			t.Errorf("ParseRelations(%q): %v", tc.in, err)
			continue
		}
		var parts []string
		for _, d := range deps {
			parts = append(parts, d.String())
		}
		if got := strings.Join(parts, ";"); got != tc.want {
			t.Errorf("ParseRelations(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"a (>= 1", "a (~ 1)", "a:", "a (>=)", "b@d"} {
		if _, err := ParseRelations(bad); err == nil {
			t.Errorf("ParseRelations(%q): no error", bad)
		}
	}
}

func TestParseParagraphs(t *testing.T) {
	ps, err := ParseParagraphs([]byte("Package: a\nDescription: x\n more\n\n\nPackage: b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Get("description") != "x\nmore" || ps[1].Get("Package") != "b" || ps[1].Line != 6 {
		t.Fatalf("got %+v", ps)
	}
	for _, bad := range []string{" leading continuation\n", "Package: a\nno colon here\n", "Package: a\nPackage: b\n"} {
		if _, err := ParseParagraphs([]byte(bad)); err == nil {
			t.Errorf("ParseParagraphs(%q): no error", bad)
		}
	}
}

func FuzzParseParagraphs(f *testing.F) {
	f.Add([]byte("Package: a\nStatus: install ok installed\nDepends: b (>= 1) | c\n"))
	f.Add([]byte("P: x\n y\n\n#c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParseParagraphs(data)
		if err == nil {
			for _, p := range ps {
				_, _ = ParseRelations(p.Get("Depends"))
			}
		}
	})
}

func FuzzParseRelations(f *testing.F) {
	f.Add("libc6 (>= 2.34), perl:any | b (<< 1~)")
	f.Fuzz(func(t *testing.T, s string) {
		deps, err := ParseRelations(s)
		if err != nil {
			return
		}
		for _, d := range deps {
			_ = d.String()
		}
	})
}

func FuzzCompareVersions(f *testing.F) {
	f.Add("1:2.0~rc1-1", "2.0")
	f.Fuzz(func(t *testing.T, a, b string) {
		if CompareVersions(a, b) != -CompareVersions(b, a) {
			t.Fatalf("not antisymmetric: %q %q", a, b)
		}
		if CompareVersions(a, a) != 0 {
			t.Fatalf("not reflexive: %q", a)
		}
	})
}

// writeDB makes a minimal dpkg database under a temporary root.
func writeDB(t *testing.T, status string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	files["var/lib/dpkg/status"] = status
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestOpen(t *testing.T) {
	root := writeDB(t, `Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21
Conffiles:
 /etc/dpkg/dpkg.cfg abc
 /etc/old.cfg def obsolete

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1

Package: libx
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 2
Provides: x-virtual (= 2)
`, map[string]string{
		"var/lib/dpkg/info/dpkg.list":          "/.\n/etc\n/etc/dpkg/dpkg.cfg\n/etc/old.cfg\n/usr/bin/dpkg\n",
		"var/lib/dpkg/info/libx:i386.list":     "/usr/lib/i386/libx.so\n",
		"var/lib/dpkg/info/dpkg.postinst":      "#!/bin/sh\n",
		"var/lib/dpkg/info/libx:i386.triggers": "interest-noawait ldconfig\nactivate-noawait foo\n",
		"var/lib/dpkg/info/libx:i386.postinst": "#!/bin/sh\n",
		"var/lib/dpkg/diversions":              "/usr/bin/dpkg\n/usr/bin/dpkg.real\nlibx\n",
	})
	db, err := Open(hostile.Tree(t, root))
	if err != nil {
		t.Fatal(err)
	}
	if db.NativeArch() != "amd64" || len(db.Packages()) != 2 {
		t.Fatalf("native %q, packages %v", db.NativeArch(), db.Packages())
	}
	dpkgPkg, libx := db.Packages()[0], db.Packages()[1]
	if dpkgPkg.ID != "dpkg:amd64" || libx.ID != "libx:i386" || libx.Provides[0] != (backends.Provide{Name: "x-virtual", Rel: "=", Version: "2"}) {
		t.Fatalf("got %+v %+v", dpkgPkg, libx)
	}
	files, err := db.Files(dpkgPkg)
	if err != nil {
		t.Fatal(err)
	}
	want := []backends.File{
		{Path: "/etc", Source: "/etc"},
		{Path: "/etc/dpkg/dpkg.cfg", Source: "/etc/dpkg/dpkg.cfg", Config: true},
		{Path: "/etc/old.cfg", Source: "/etc/old.cfg"},
		{Path: "/usr/bin/dpkg", Source: "/usr/bin/dpkg.real", DivertedBy: "libx"},
	}
	if len(files) != len(want) {
		t.Fatalf("files %+v", files)
	}
	for i := range want {
		if files[i] != want[i] {
			t.Errorf("file %d = %+v, want %+v", i, files[i], want[i])
		}
	}
	if fs, err := db.Files(libx); err != nil || len(fs) != 1 {
		t.Errorf("multi-arch list: %v %v", fs, err)
	}
	s, err := db.Scripts(dpkgPkg)
	if err != nil || len(s.List) != 1 || s.List[0].Name != "postinst" || s.List[0].Args[0] != "configure" {
		t.Errorf("scripts %+v %v", s, err)
	}
	in, err := db.Install([]*backends.Package{dpkgPkg, libx}, nil)
	if err != nil || len(in.Triggers) != 1 || in.Triggers[0].Package != libx || strings.Join(in.Triggers[0].Args, " ") != "triggered ldconfig" {
		t.Errorf("triggers %+v %v", in, err)
	}
	in, err = db.Install([]*backends.Package{dpkgPkg, libx}, func(string) bool { return false })
	if err != nil || len(in.Triggers) != 0 {
		t.Errorf("inactive triggers run: %+v %v", in, err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name, status string
		files        map[string]string
		open, want   string
	}{
		{"broken paragraph", "Package: a\nStatus: install ok installed\nthis is no field\n", nil, "open", "status: line 3"},
		{"bad status", "Package: a\nStatus: installed\nVersion: 1\n", nil, "open", "package a (line 1): bad Status"},
		{"bad depends", "Package: a\nStatus: install ok installed\nVersion: 1\nDepends: b (>= \n", nil, "open", "Depends: relation"},
		{"diversions", "Package: a\nStatus: install ok installed\nVersion: 1\n", map[string]string{"var/lib/dpkg/diversions": "/a\n/b\n"}, "open", "diversions: 2 lines"},
		{"missing list", "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n", nil, "files", "info/a.list: missing file list"},
		{"relative list entry", "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n", map[string]string{"var/lib/dpkg/info/a.list": "usr/bin/x\n"}, "files", "a.list: line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.files == nil {
				tc.files = map[string]string{}
			}
			root := writeDB(t, tc.status, tc.files)
			db, err := Open(hostile.Tree(t, root))
			if tc.open == "files" {
				if err != nil {
					t.Fatal(err)
				}
				_, err = db.Files(db.Packages()[0])
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

// TestHost reads this machine's real database, when it is a dpkg system.
func TestHost(t *testing.T) {
	host := hostile.Tree(t, "/")
	if !Detect(host) {
		t.Skip("not a dpkg host")
	}
	db, err := Open(host)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range db.Packages() {
		if _, err := db.Files(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if _, err := db.Scripts(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		n++
	}
	if n < 50 {
		t.Fatalf("only %d installed packages on a Debian host", n)
	}
}

// Diversions written back as dpkg writes them read the same.
func FuzzDiversions(f *testing.F) {
	f.Add([]byte("/usr/bin/dpkg\n/usr/bin/dpkg.real\nlibx\n/a\n/../b\n:\n"))
	f.Add([]byte("/a\n/b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		divs, order, err := parseDiversions(data)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, d := range divs {
			if !inTree(d.From) || !inTree(d.To) {
				t.Fatalf("%+v: not a clean absolute path", d)
			}
			b.WriteString(d.From + "\n" + d.To + "\n" + d.By + "\n")
		}
		divs2, order2, err := parseDiversions([]byte(b.String()))
		if err != nil || !slices.Equal(divs, divs2) || !slices.Equal(order, order2) {
			t.Fatalf("written back %q: %+v %v, %v", b.String(), divs2, order2, err)
		}
	})
}

// A list's paths written back read the same, and never leave the tree.
func FuzzParseList(f *testing.F) {
	f.Add([]byte("/.\n/usr\n/usr/../../etc/x\n\n//a/./b/\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		paths, err := parseList(data)
		if err != nil {
			return
		}
		for _, p := range paths {
			if !inTree(p) || p == "/" {
				t.Fatalf("%q: not a clean path inside the tree", p)
			}
		}
		again, err := parseList([]byte(strings.Join(paths, "\n")))
		if err != nil || !slices.Equal(paths, again) {
			t.Fatalf("written back: %q, %v", again, err)
		}
	})
}

// inTree says whether p is a clean absolute path: no ".." can leave the
// tree.
func inTree(p string) bool { return strings.HasPrefix(p, "/") && path.Clean(p) == p }

// A status file that opens, written back as the appliance's status file,
// opens to the same packages.
func FuzzOpenStatus(f *testing.F) {
	f.Add([]byte("Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:2.0-1\nDepends: b (>= 1) | c:any\nProvides: v (= 1)\nConffiles:\n /etc/a 0123\n"))
	f.Add([]byte("Package: dpkg\nStatus: install ok installed\nArchitecture: all\nMulti-Arch: same\nVersion: 1\n\nPackage: x\nStatus: deinstall ok config-files\nVersion: 2\n"))
	f.Fuzz(func(t *testing.T, status []byte) {
		db, err := Open(fstest.MapFS{statusFile: {Data: status}})
		if err != nil {
			return
		}
		files, err := db.ApplianceFiles(db.Packages())
		if err != nil {
			t.Fatal(err)
		}
		db2, err := Open(fstest.MapFS{statusFile: {Data: files[0].Data}})
		if err != nil {
			t.Fatalf("written back %q: %v", files[0].Data, err)
		}
		if a, b := fmt.Sprintf("%+v", db.Packages()), fmt.Sprintf("%+v", db2.Packages()); a != b {
			t.Fatalf("written back:\n%s\nread:\n%s", b, a)
		}
	})
}
