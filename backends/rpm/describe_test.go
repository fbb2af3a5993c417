package rpm

import (
	"reflect"
	"testing"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/internal/hostile"
)

func TestDescribe(t *testing.T) {
	root := writeNDB(t,
		header("curl", "7.50.3", "1.fc25", "i386", tagValue{TagEpoch, uint32(1)}, tagValue{TagVendor, "Fedora Project"},
			tagValue{TagPackager, "Fedora Project"}, tagValue{TagLicense, "MIT"}, tagValue{TagURL, "https://curl.se/"}),
		header("local", "1.0", "1", "noarch", tagValue{TagPackager, "Jane Doe <jane@example.org>"}, tagValue{TagLicense, "GPLv2+ and BSD"}),
		header("bare", "2", "", "x86_64"),
	)
	db, err := Open(hostile.Tree(t, root))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := map[string]backends.Description{
		"curl-1:7.50.3-1.fc25.i386": {Supplier: "Fedora Project", License: "MIT", Homepage: "https://curl.se/",
			PURL: backends.PURL{Type: "rpm", Namespace: "fedora", Name: "curl", Version: "7.50.3-1.fc25", Qualifiers: [][2]string{{"arch", "i386"}, {"epoch", "1"}}}},
		// No Vendor: the Packager supplies it, and the namespace is left to the distribution.
		"local-1.0-1.noarch": {Supplier: "Jane Doe <jane@example.org>", License: "GPLv2+ and BSD",
			PURL: backends.PURL{Type: "rpm", Name: "local", Version: "1.0-1", Qualifiers: [][2]string{{"arch", "noarch"}}}},
		"bare-2.x86_64": {PURL: backends.PURL{Type: "rpm", Name: "bare", Version: "2", Qualifiers: [][2]string{{"arch", "x86_64"}}}},
	}
	if len(db.Packages()) != len(want) {
		t.Fatalf("packages %v", db.Packages())
	}
	for _, p := range db.Packages() {
		d, err := db.Describe(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if w, ok := want[p.ID]; !ok || !reflect.DeepEqual(*d, w) {
			t.Errorf("%s: Describe = %+v, want %+v", p, *d, w)
		}
	}
}
