package rpm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/internal/hostile"
)

const ndbPath = "usr/lib/sysimage/rpm/Packages.db"

func header(name, version, release, arch string, more ...tagValue) []byte {
	return buildHeader(append([]tagValue{{TagName, name}, {TagVersion, version}, {TagRelease, release}, {TagArch, arch}}, more...)...)
}

// writeNDB makes a tree whose database is an ndb file of blobs.
func writeNDB(t *testing.T, blobs ...[]byte) string {
	root := t.TempDir()
	hostile.Write(t, root, ndbPath, string(makeNDB(blobs)))
	return root
}

// The database file is a symlink to a host file (issue 1): through the
// tree it leads to the tree's own file or nowhere.
func TestSymlinksStayInTree(t *testing.T) {
	secret := string(makeNDB([][]byte{header(hostile.Secret, "1", "1", "noarch", tagValue{TagOldFilenames, []string{"/" + hostile.Secret}})}))
	host := hostile.Canary(t, map[string]string{"Packages.db": secret})
	hostile.EachLink(t, func(t *testing.T, kind string, own bool) {
		root := t.TempDir()
		target := filepath.Join(host, "Packages.db")
		hostile.Link(t, root, ndbPath, hostile.Targets(ndbPath, target)[kind])
		if own {
			hostile.Write(t, root, target, string(makeNDB([][]byte{header("tree-own", "1", "1", "noarch", tagValue{TagOldFilenames, []string{"/tree-own"}})})))
		}
		if _, err := os.Stat(filepath.Join(root, ndbPath)); kind == "absolute" && err != nil {
			t.Fatalf("setup: the link does not lead to the canary: %v", err)
		}
		tree := hostile.Tree(t, root)
		db, err := Open(tree)
		hostile.NoSecret(t, "Open", db, err)
		if !own {
			if Detect(tree) || err == nil || !strings.Contains(err.Error(), root) {
				t.Errorf("Open: %v: want no database under %s", err, root)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		files, err := db.Files(db.Packages()[0])
		hostile.NoSecret(t, "Files", files, err)
		if err != nil || len(files) != 1 || files[0].Path != "/tree-own" {
			t.Errorf("Files: %+v, %v: want the tree's own", files, err)
		}
	})
}

// A FIFO in place of the database file or of sqlite's log is an error,
// not a read that blocks forever.
func TestFIFO(t *testing.T) {
	for _, c := range []struct{ db, fifo string }{
		{"", ndbPath},
		{"var/lib/rpm/rpmdb.sqlite", "var/lib/rpm/rpmdb.sqlite-wal"},
	} {
		t.Run(filepath.Base(c.fifo), func(t *testing.T) {
			root := t.TempDir()
			if c.db != "" {
				hostile.Write(t, root, c.db, string(makeSQLite(sampleBlobs(), 2)))
			}
			hostile.Fifo(t, root, c.fifo)
			want := root
			if c.db != "" {
				want = filepath.Join(root, c.fifo)
			}
			hostile.FailsNaming(t, want, func() error {
				_, err := Open(hostile.Tree(t, root))
				return err
			})
		})
	}
}

// Names, versions, releases and architectures become file names and
// fields of the appliance's text files: checked at Open (issue 2).
func TestEvilFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		blob []byte
		want string
	}{
		{"name climbs", header("../../x", "1", "1", "noarch"), `NAME "../../x"`},
		{"name with a space", header("x y", "1", "1", "noarch"), "bad package name"},
		{"version with a slash", header("x", "1/../../y", "1", "noarch"), "VERSION"},
		{"release with a newline", header("x", "1", "1\n2", "noarch"), "RELEASE"},
		{"release with a tab", header("x", "1", "1\t2", "noarch"), "RELEASE"},
		{"arch with a control character", header("x", "1", "1", "x86_64\x01"), "ARCH"},
		{"arch with a C1 control character", header("x", "1", "1", "x86_64\u0085"), "ARCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeNDB(t, header("good", "1", "1", "noarch"), tc.blob)
			_, err := Open(hostile.Tree(t, root))
			hostile.Corrupt(t, err, filepath.Join(root, ndbPath), "package index 2", tc.want)
		})
	}
}

// File lists name paths of the tree: ".." cannot leave it; a newline
// has no place in one; scriptlet interpreters cannot break their line.
func TestEvilPaths(t *testing.T) {
	files := func(dirs, bases []string) []byte {
		idx := make([]uint32, len(bases))
		return header("x", "1", "1", "noarch", tagValue{TagDirNames, dirs}, tagValue{TagBaseNames, bases}, tagValue{TagDirIndexes, idx})
	}
	root := writeNDB(t, files([]string{"/usr/"}, []string{"../../../etc/shadow", "./bin//sh"}))
	db, err := Open(hostile.Tree(t, root))
	if err != nil {
		t.Fatal(err)
	}
	fl, err := db.Files(db.Packages()[0])
	if err != nil || len(fl) != 2 || fl[0].Path != "/etc/shadow" || fl[1].Path != "/usr/bin/sh" {
		t.Errorf("files %+v, %v: want /etc/shadow and /usr/bin/sh, in the tree", fl, err)
	}
	for name, blob := range map[string][]byte{
		"relative dir": files([]string{"usr/"}, []string{"x"}),
		"newline":      files([]string{"/usr/"}, []string{"a\nb"}),
		"interpreter":  header("x", "1", "1", "noarch", tagValue{TagPostIn, "x"}, tagValue{TagPostInProg, []string{"/bin/sh\nrm -rf /"}}),
	} {
		t.Run(name, func(t *testing.T) {
			root := writeNDB(t, blob)
			db, err := Open(hostile.Tree(t, root))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			_, err = db.Files(db.Packages()[0])
			if err == nil {
				_, err = db.Scripts(db.Packages()[0])
			}
			hostile.Corrupt(t, err, filepath.Join(root, ndbPath), "package index 1 (x-1-1.noarch)")
		})
	}
}

// A header is read again when its files are asked for: a database
// rewritten meanwhile is reported, not mixed up.
func TestChangedWhileRead(t *testing.T) {
	root := writeNDB(t, header("a", "1", "1", "noarch"))
	db, err := Open(hostile.Tree(t, root))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := os.WriteFile(filepath.Join(root, ndbPath), makeNDB([][]byte{header("b", "1", "1", "noarch")}), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = db.Files(db.Packages()[0])
	hostile.Corrupt(t, err, filepath.Join(root, ndbPath), "a-1-1.noarch", "holds b-1-1.noarch now")
}

// Owners finds the owners of required paths in one pass, and of any
// other path when asked.
func TestOwners(t *testing.T) {
	root := writeNDB(t,
		header("app", "1", "1", "noarch", tagValue{TagRequireName, []string{"/usr/bin/sh", "/usr/bin/none"}}),
		header("sh", "1", "1", "noarch", tagValue{TagOldFilenames, []string{"/usr/bin/sh", "/usr/bin/other"}}),
		header("sh2", "1", "1", "noarch", tagValue{TagOldFilenames, []string{"/usr/bin/../bin/sh"}}),
	)
	db, err := Open(hostile.Tree(t, root))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := func(ps []*backends.Package) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.ID)
		}
		return strings.Join(s, " ")
	}
	for p, want := range map[string]string{"/usr/bin/sh": "sh-1-1.noarch sh2-1-1.noarch", "/usr/bin/none": "", "/usr/bin/other": "sh-1-1.noarch", "/usr//bin/other": "sh-1-1.noarch", "/nowhere": ""} {
		if got := ids(db.Owners(p)); got != want {
			t.Errorf("Owners(%s) = %q, want %q", p, got, want)
		}
	}
}

// A tree without a database, or whose file cannot be opened, names it.
func TestOpenErrors(t *testing.T) {
	root := t.TempDir()
	if _, err := Open(hostile.Tree(t, root)); err == nil || !strings.Contains(err.Error(), root) {
		t.Errorf("empty tree: %v", err)
	}
	root = writeNDB(t, header("a", "1", "1", "noarch"))
	if err := os.Chmod(filepath.Join(root, ndbPath), 0); err != nil {
		t.Fatal(err)
	}
	if f, err := os.Open(filepath.Join(root, ndbPath)); err == nil {
		f.Close()
		t.Skip("running as root: the file is readable anyway")
	}
	_, err := Open(hostile.Tree(t, root))
	var ce *backends.CorruptError
	if !errors.Is(err, fs.ErrPermission) || errors.As(err, &ce) || !strings.Contains(err.Error(), filepath.Join(root, ndbPath)) {
		t.Errorf("unreadable database: %v", err)
	}
}
