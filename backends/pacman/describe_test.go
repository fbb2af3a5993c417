package pacman

import (
	"reflect"
	"testing"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/internal/hostile"
)

func TestDescribe(t *testing.T) {
	root := writeTree(t, map[string]map[string]string{
		"app-1:1.5-2": {"desc": "%NAME%\napp\n\n%VERSION%\n1:1.5-2\n\n%URL%\nhttps://example.org/app\n\n%ARCH%\nx86_64\n\n" +
			"%PACKAGER%\nJane Doe <jane@example.org>\n\n%LICENSE%\nGPL-2.0-or-later OR MIT\nBSD-3-Clause\n\n", "files": ""},
		"one-1-1":  {"desc": "%NAME%\none\n\n%VERSION%\n1-1\n\n%PACKAGER%\nUnknown Packager\n\n%LICENSE%\nGPL-2.0-or-later OR MIT\n\n", "files": ""},
		"none-1-1": {"desc": "%NAME%\nnone\n\n%VERSION%\n1-1\n\n", "files": ""},
	})
	db, err := Open(hostile.Tree(t, root))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]backends.Description{
		"app-1:1.5-2": {Supplier: "Jane Doe <jane@example.org>", License: "(GPL-2.0-or-later OR MIT) AND BSD-3-Clause", Homepage: "https://example.org/app",
			PURL: backends.PURL{Type: "alpm", Namespace: "arch", Name: "app", Version: "1:1.5-2", Qualifiers: [][2]string{{"arch", "x86_64"}}}},
		// makepkg's "Unknown Packager" is no one; one licence needs no parentheses.
		"one-1-1":  {License: "GPL-2.0-or-later OR MIT", PURL: backends.PURL{Type: "alpm", Namespace: "arch", Name: "one", Version: "1-1"}},
		"none-1-1": {PURL: backends.PURL{Type: "alpm", Namespace: "arch", Name: "none", Version: "1-1"}},
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
}
