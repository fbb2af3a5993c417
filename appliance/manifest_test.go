package appliance

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func put(t *testing.T, m *Manifest, es ...Entry) {
	t.Helper()
	for _, e := range es {
		if err := m.Put(e); err != nil {
			t.Fatalf("Put(%s): %v", e.Path, err)
		}
	}
}

func TestPutRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Entry
		want string
	}{
		{"dotdot", Entry{Path: "/a/../b", Kind: Regular}, ".. component"},
		{"nul", Entry{Path: "/a\x00b", Kind: Regular}, "NUL"},
		{"root not dir", Entry{Path: "/", Kind: Regular}, "must be a directory"},
		{"unknown kind", Entry{Path: "/x", Kind: Socket + 1}, "unknown entry kind"},
		{"owner -1", Entry{Path: "/x", Kind: Regular, UID: 1<<32 - 1}, "not a valid owner"},
		{"group -1", Entry{Path: "/x", Kind: Regular, GID: 1<<32 - 1}, "not a valid owner"},
		{"sparse without extents", Entry{Path: "/x", Kind: Regular, Size: 1, Data: Bytes("x"), Sparse: true}, "no extents"},
		{"xattrs unsorted", Entry{Path: "/x", Kind: Regular, Xattrs: []Xattr{{Name: "user.b"}, {Name: "user.a"}}}, "not sorted"},
		{"xattrs twice", Entry{Path: "/x", Kind: Regular, Xattrs: []Xattr{{Name: "user.a"}, {Name: "user.a"}}}, "twice"},
		{"hard link dotdot", Entry{Path: "/x", Kind: Hardlink, Link: "/../etc/shadow"}, "hard link target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := New().Put(tc.e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Put(%+v) = %v, want an error containing %q", tc.e, err, tc.want)
			}
		})
	}
	// Paths are made clean and absolute.
	m := New()
	put(t, m, Entry{Path: "usr//bin/./x", Kind: Regular})
	if _, ok := m.Get("/usr/bin/x"); !ok {
		t.Error("relative path not cleaned")
	}
}

func TestReplaceDirectory(t *testing.T) {
	m := New()
	put(t, m, Entry{Path: "/", Kind: Dir}, Entry{Path: "/d", Kind: Dir}, Entry{Path: "/d/f", Kind: Regular})
	if err := m.Put(Entry{Path: "/d", Kind: Symlink, Link: "x"}); err == nil {
		t.Error("a non-empty directory replaced by a symlink")
	}
	if err := m.Remove("/d/f"); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(Entry{Path: "/d", Kind: Symlink, Link: "x"}); err != nil {
		t.Errorf("an empty directory not replaced: %v", err)
	}
}

func TestSeal(t *testing.T) {
	m := New()
	put(t, m, Entry{Path: "/a/b", Kind: Regular})
	if err := m.Seal(); err == nil || !strings.Contains(err.Error(), "parent directory missing") {
		t.Errorf("Seal without parents: %v", err)
	}
	when := time.Unix(100, 0)
	if err := m.AddParents(func(string) Entry { return Entry{Mode: 0o755, ModTime: when} }); err != nil {
		t.Fatal(err)
	}
	if err := m.Seal(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Put":        m.Put(Entry{Path: "/c", Kind: Regular}),
		"Remove":     m.Remove("/a/b"),
		"AddParents": m.AddParents(func(string) Entry { return Entry{} }),
		"ClampTimes": m.ClampTimes(when),
	} {
		if !errors.Is(err, ErrSealed) {
			t.Errorf("%s on a sealed manifest: %v", name, err)
		}
	}
	var paths []string
	for _, e := range m.Entries() {
		paths = append(paths, e.Path)
	}
	if strings.Join(paths, " ") != "/ /a /a/b" {
		t.Errorf("entries %v", paths)
	}
}

func TestCheckHardlinks(t *testing.T) {
	for _, tc := range []struct {
		es   []Entry
		want string
	}{
		{[]Entry{{Path: "/", Kind: Dir}, {Path: "/h", Kind: Hardlink, Link: "/nowhere"}}, "missing"},
		{[]Entry{{Path: "/", Kind: Dir}, {Path: "/d", Kind: Dir}, {Path: "/h", Kind: Hardlink, Link: "/d"}}, "a directory"},
		{[]Entry{{Path: "/", Kind: Dir}, {Path: "/z", Kind: Regular}, {Path: "/a", Kind: Hardlink, Link: "/z"}}, "sort first"},
		{[]Entry{{Path: "/", Kind: Dir}, {Path: "/l", Kind: Symlink, Link: "d"}, {Path: "/l/x", Kind: Regular}}, "not a directory"},
	} {
		m := New()
		put(t, m, tc.es...)
		if err := m.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check: %v, want %q", err, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	m := New()
	put(t, m,
		Entry{Path: "/", Kind: Dir},
		Entry{Path: "/usr", Kind: Dir},
		Entry{Path: "/usr/lib", Kind: Dir},
		Entry{Path: "/lib", Kind: Symlink, Link: "usr/lib"},
		Entry{Path: "/abs", Kind: Symlink, Link: "/usr"},
		Entry{Path: "/loop", Kind: Symlink, Link: "loop"},
		Entry{Path: "/up", Kind: Symlink, Link: "../../.."},
	)
	for in, want := range map[string]struct {
		p  string
		ok bool
	}{
		"/lib/modules/6.1": {"/usr/lib/modules/6.1", false},
		"/lib":             {"/usr/lib", true},
		"/abs/lib":         {"/usr/lib", true},
		"/up/usr":          {"/usr", true},
		"/loop/x":          {"/loop", false},
		"/":                {"/", true},
	} {
		p, ok := m.Resolve(in)
		if p != want.p || ok != want.ok {
			t.Errorf("Resolve(%s) = %s, %v; want %s, %v", in, p, ok, want.p, want.ok)
		}
	}
}

func TestMerge(t *testing.T) {
	base, over := New(), New()
	put(t, base, Entry{Path: "/", Kind: Dir, Mode: 0o755}, Entry{Path: "/d", Kind: Dir, Mode: 0o700}, Entry{Path: "/f", Kind: Regular, Size: 1, Data: Bytes("a")})
	put(t, over, Entry{Path: "/", Kind: Dir, Mode: 0o777}, Entry{Path: "/d", Kind: Dir, Mode: 0o777}, Entry{Path: "/f", Kind: Regular, Size: 1, Data: Bytes("b")}, Entry{Path: "/d/g", Kind: Regular})
	m, err := Merge(base, over)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := m.Get("/d"); d.Mode != 0o700 {
		t.Errorf("base's directory not kept: %o", d.Mode)
	}
	if f, _ := m.Get("/f"); string(f.Data.(Bytes)) != "b" {
		t.Error("over's file does not win")
	}
	if base.Len() != 3 || m.Len() != 4 {
		t.Errorf("base changed or merge lost entries: %d, %d", base.Len(), m.Len())
	}
}
