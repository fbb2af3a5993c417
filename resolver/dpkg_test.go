package resolver

import (
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/backends/dpkg"
	"github.com/gosupermin/gosupermin/internal/rootfs"
)

// tree is the view of the tree root that builds read databases through.
func tree(t *testing.T, root string) fs.FS {
	t.Helper()
	r, err := rootfs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r.FS()
}

func TestDpkgEdgeCases(t *testing.T) {
	db, err := dpkg.Open(tree(t, "../fixtures/dpkg/edge"))
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	cl, err := Resolve(db, []string{"app", "not-installed", "app"}, func(m string) { warnings = append(warnings, m) })
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range cl.Packages {
		ids = append(ids, p.ID)
	}
	// Dependency order: each package after its dependencies, Pre-Depends
	// first, relations in declaration order.
	want := []string{
		"libm:amd64",      // Pre-Depends (>= 1.0), the dependent's arch, not libm:i386
		"alt-present:all", // alt-missing | alt-present: the first installed alternative
		"mta-a:amd64",     // virtual mail-transport-agent
		"vp-new:amd64",    // vprov (>= 2): only the versioned Provides satisfies it
		"interp:amd64",    // interp:any, Multi-Arch: allowed
		"brokenver:amd64", // (>= 9) unsatisfied: warned, used
		"natlib:amd64",    // :native
		"tooler:amd64",
		"app:amd64",
	}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("closure\n got %v\nwant %v", ids, want)
	}
	if !reflect.DeepEqual(cl.Missing, []string{"not-installed"}) {
		t.Errorf("missing %v", cl.Missing)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "app:amd64") || !strings.Contains(warnings[0], "brokenver 1.0") {
		t.Errorf("warnings %q: want one naming app and brokenver 1.0", warnings)
	}
	// Same inputs, same closure, same order.
	for i := 0; i < 5; i++ {
		cl2, _ := Resolve(db, []string{"app", "not-installed"}, nil)
		var ids2 []string
		for _, p := range cl2.Packages {
			ids2 = append(ids2, p.ID)
		}
		if !reflect.DeepEqual(ids, ids2) {
			t.Fatalf("run %d: %v", i, ids2)
		}
	}
}

func TestDpkgRootsWithArch(t *testing.T) {
	db, err := dpkg.Open(tree(t, "../fixtures/dpkg/edge"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		root, want string
	}{
		{"libm:i386", "libm:i386"},
		{"libm:amd64", "libm:amd64"},
		{"libm", "libm:amd64"}, // native first
		{"mail-transport-agent", "mta-a:amd64"},
	} {
		cl, err := Resolve(db, []string{tc.root}, nil)
		if err != nil || len(cl.Packages) != 1 || cl.Packages[0].ID != tc.want {
			t.Errorf("root %s: %v %v, want %s", tc.root, cl.Packages, err, tc.want)
		}
	}
}

// TestDpkgHostAny checks on this machine that perl:any pulls in perl,
// which supermin 5 drops.
func TestDpkgHostAny(t *testing.T) {
	host := tree(t, "/")
	if !dpkg.Detect(host) {
		t.Skip("not a dpkg host")
	}
	db, err := dpkg.Open(host)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := Resolve(db, []string{"libalgorithm-diff-perl"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Missing) > 0 {
		requireCI(t, "libalgorithm-diff-perl is not installed (.ci/run installs it)")
	}
	found := false
	for _, p := range cl.Packages {
		found = found || p.Name == "perl"
	}
	if !found {
		t.Errorf("closure of libalgorithm-diff-perl %v lacks perl", cl.Packages)
	}
}
