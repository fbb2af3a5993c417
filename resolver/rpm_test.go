package resolver

import (
	"sort"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/pacman"
	"github.com/gosupermin/gosupermin/backends/rpm"
)

// memDB is an in-memory database of the rpm or pacman family.
type memDB struct {
	family backends.Family
	native string
	pkgs   []*backends.Package
	files  map[string][]*backends.Package
}

func (m *memDB) Family() backends.Family       { return m.family }
func (m *memDB) Packages() []*backends.Package { return m.pkgs }
func (m *memDB) NativeArch() string            { return m.native }
func (m *memDB) CompareVersions(a, b string) int {
	if m.family == backends.Pacman {
		return pacman.Vercmp(a, b)
	}
	return rpm.CompareEVR(a, b)
}
func (m *memDB) Files(*backends.Package) ([]backends.File, error) { return nil, nil }
func (m *memDB) DBFiles() []string                                { return nil }
func (m *memDB) Owners(p string) []*backends.Package              { return m.files[p] }

// pkg makes a package: "name version arch", relations as rpm strings
// ("foo >= 1", "(a or b)") and provides as "name [= version]".
func (m *memDB) pkg(nva string, requires []string, provides ...string) *backends.Package {
	f := strings.Fields(nva)
	p := &backends.Package{Name: f[0], Version: f[1]}
	if len(f) > 2 {
		p.Arch = f[2]
	}
	p.ID = p.Name + "-" + p.Version + "." + p.Arch
	p.FullName = p.ID
	for _, r := range requires {
		if strings.HasPrefix(r, "(") {
			d, err := rpm.ParseRich(r)
			if err != nil {
				panic(err)
			}
			p.Depends = append(p.Depends, d)
			continue
		}
		rf := strings.Fields(r)
		d := backends.Dep{Op: backends.Atom, Name: rf[0]}
		if len(rf) == 3 {
			d.Rel, d.Version = rf[1], rf[2]
		}
		p.Depends = append(p.Depends, d)
	}
	for _, pr := range provides {
		pf := strings.Fields(pr)
		prov := backends.Provide{Name: pf[0]}
		if len(pf) == 3 {
			prov.Rel, prov.Version = pf[1], pf[2]
		}
		p.Provides = append(p.Provides, prov)
	}
	m.pkgs = append(m.pkgs, p)
	sort.Slice(m.pkgs, func(i, j int) bool { return m.pkgs[i].ID < m.pkgs[j].ID })
	return p
}

func closureIDs(t *testing.T, db backends.DB, roots ...string) ([]string, []string) {
	t.Helper()
	var warnings []string
	cl, err := Resolve(db, roots, func(m string) { warnings = append(warnings, m) })
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range cl.Packages {
		ids = append(ids, p.ID)
	}
	sort.Strings(ids)
	return ids, warnings
}

func TestRPMOverlap(t *testing.T) {
	for _, c := range []struct {
		relA, verA, relB, verB string
		want                   bool
	}{
		{"=", "1.0-1", ">=", "1.0", true},
		{"=", "1.0-1", ">", "1.0", false},
		{"=", "2:1.0", ">=", "1:5", true},
		{"", "", ">=", "9", true}, // unversioned Provides: any
		{"<", "2", ">", "1", true},
		{"<", "2", ">=", "2", false},
		{"<=", "2", ">=", "2", true},
		{">", "3", "<", "3", false},
		{">", "3", "<", "4", true},
		{"=", "1.0~rc1", ">=", "1.0", false},
		{"=", "1.0^git1", ">", "1.0", true},
	} {
		if got := rpmOverlap(rpm.CompareEVR, c.relA, c.verA, c.relB, c.verB); got != c.want {
			t.Errorf("%s %s overlaps %s %s: %v, want %v", c.relA, c.verA, c.relB, c.verB, got, c.want)
		}
	}
}

func TestRPMResolve(t *testing.T) {
	db := &memDB{family: backends.RPM, native: "x86_64", files: map[string][]*backends.Package{}}
	db.pkg("app 1.0-1 noarch", []string{
		"glibc", "libfoo >= 2:1", "virt >= 5", "/usr/bin/python3", "kernel-core",
		"(tools or nothere)", "(plug if glibc)", "(never if nothere)", "(alt unless glibc else alt2)",
		"(lib with lib(x86-64))", "(mail without mail-legacy)", "rpmlib(RichDependencies) <= 4.12.0-1",
	})
	db.pkg("glibc 2.39-1 x86_64", nil)
	db.pkg("glibc 2.39-1 i686", nil)
	db.pkg("old32 1-1 i686", []string{"glibc"})
	db.pkg("libfoo 2:1.5-3 x86_64", nil)
	db.pkg("libfoo-compat 1.0-1 x86_64", nil, "libfoo = 1:9")
	db.pkg("virt-provider 1-1 noarch", nil, "virt") // unversioned: satisfies "virt >= 5"
	py := db.pkg("python3 3.12-1 x86_64", nil)
	db.files["/usr/bin/python3"] = []*backends.Package{py}
	db.pkg("kernel-core 6.9.0-1 x86_64", nil)
	db.pkg("kernel-core 6.10.0-1 x86_64", nil) // newer, though "6.10" < "6.9" as strings
	db.pkg("tools 1-1 noarch", nil)
	db.pkg("plug 1-1 noarch", nil)
	db.pkg("never 1-1 noarch", nil)
	db.pkg("alt 1-1 noarch", nil)
	db.pkg("alt2 1-1 noarch", nil)
	db.pkg("lib 1-1 i686", nil, "lib(x86-32)")
	db.pkg("lib 1-1 x86_64", nil, "lib(x86-64)")
	db.pkg("mail-a 1-1 noarch", nil, "mail", "mail-legacy")
	db.pkg("mail-b 1-1 noarch", nil, "mail")
	ids, warnings := closureIDs(t, db, "app")
	want := []string{
		"alt2-1-1.noarch", "app-1.0-1.noarch", "glibc-2.39-1.x86_64",
		"kernel-core-6.10.0-1.x86_64", "lib-1-1.x86_64", "libfoo-2:1.5-3.x86_64", "mail-b-1-1.noarch",
		"plug-1-1.noarch", "python3-3.12-1.x86_64", "tools-1-1.noarch", "virt-provider-1-1.noarch",
	}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("closure\n got %v\nwant %v", ids, want)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings %v", warnings)
	}
	// An i686 package's plain-name Requires: the i686 provider first.
	if ids, _ := closureIDs(t, db, "old32"); strings.Join(ids, " ") != "glibc-2.39-1.i686 old32-1-1.i686" {
		t.Errorf("multilib dependency: %v", ids)
	}
	// A root installed for two arches: the native one.
	if ids, _ := closureIDs(t, db, "glibc"); strings.Join(ids, " ") != "glibc-2.39-1.x86_64" {
		t.Errorf("multilib root: %v", ids)
	}
}
