package pacman

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/backends/internal/hostile"
)

const xDesc = "%NAME%\nx\n\n%VERSION%\n1-1\n\n%ARCH%\nany\n\n"

// canaries are host files that look like the database files the tree's
// symlinks stand for.
var canaries = map[string]string{
	"desc":        xDesc + "%DESC%\n" + hostile.Secret + "\n",
	"files":       "%FILES%\n" + hostile.Secret + "\n",
	"install":     "post_install() {\n\techo " + hostile.Secret + "\n}\n",
	"y-1-1/desc":  "%NAME%\ny\n\n%VERSION%\n1-1\n\n%DESC%\n" + hostile.Secret + "\n",
	"y-1-1/files": "%FILES%\n" + hostile.Secret + "\n",
}

// A package's files and install file, a package's directory and its
// desc are symlinks to host files (issue 1): through the tree they lead
// to the tree's own files or nowhere.
func TestSymlinksStayInTree(t *testing.T) {
	host := hostile.Canary(t, canaries)
	hostile.EachLink(t, func(t *testing.T, kind string, own bool) {
		root := writeTree(t, map[string]map[string]string{"x-1-1": {"desc": xDesc}})
		for link, canary := range map[string]string{"x-1-1/files": "files", "x-1-1/install": "install", "y-1-1": "y-1-1"} {
			link = LocalDir + "/" + link
			target := filepath.Join(host, canary)
			hostile.Link(t, root, link, hostile.Targets(link, target)[kind])
			if own && canary == "y-1-1" {
				hostile.Write(t, root, target+"/desc", strings.ReplaceAll(canaries["y-1-1/desc"], hostile.Secret, "tree-own"))
				hostile.Write(t, root, target+"/files", "%FILES%\ntree-own\n")
			} else if own {
				hostile.Write(t, root, target, strings.ReplaceAll(canaries[canary], hostile.Secret, "tree-own"))
			}
		}
		if _, err := os.Stat(filepath.Join(root, LocalDir, "y-1-1/desc")); kind == "absolute" && err != nil {
			t.Fatalf("setup: the link does not lead to the canary: %v", err)
		}
		db, err := Open(hostile.Tree(t, root))
		if err != nil {
			t.Fatal(err)
		}
		x := db.Packages()[0]
		files, ferr := db.Files(x)
		scripts, serr := db.Scripts(x)
		hostile.NoSecret(t, "pacman", db.Packages(), files, ferr, scripts, serr)
		if !own {
			if len(db.Packages()) != 1 {
				t.Errorf("packages %v: the linked directory was read", db.Packages())
			}
			hostile.Corrupt(t, ferr, filepath.Join(root, LocalDir, "x-1-1/files"), "x-1-1", "missing")
			if serr != nil || len(scripts.List) != 0 {
				t.Errorf("Scripts: %+v, %v: want none", scripts, serr)
			}
			return
		}
		if len(db.Packages()) != 2 || db.Packages()[1].ID != "y-1-1" {
			t.Errorf("packages %v: want the tree's own y", db.Packages())
		}
		if ferr != nil || len(files) != 1 || files[0].Path != "/tree-own" {
			t.Errorf("Files: %+v, %v: want the tree's own", files, ferr)
		}
		if serr != nil || len(scripts.List) != 1 || !strings.Contains(string(scripts.List[0].Body), "tree-own") {
			t.Errorf("Scripts: %+v, %v: want the tree's own", scripts, serr)
		}
	})
}

func TestDescSymlink(t *testing.T) {
	host := hostile.Canary(t, canaries)
	desc := LocalDir + "/x-1-1/desc"
	for kind, target := range hostile.Targets(desc, filepath.Join(host, "desc")) {
		t.Run(kind, func(t *testing.T) {
			root := writeTree(t, map[string]map[string]string{"x-1-1": {"desc": xDesc}})
			hostile.Link(t, root, desc, target)
			db, err := Open(hostile.Tree(t, root))
			hostile.NoSecret(t, "Open", db, err)
			if want := filepath.Join(root, desc); err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open: %v, want an error naming %s", err, want)
			}
		})
	}
}

// A FIFO in place of a database file is an error, not a read that
// blocks forever.
func TestFIFO(t *testing.T) {
	for _, name := range []string{"desc", "files", "install"} {
		t.Run(name, func(t *testing.T) {
			root := writeTree(t, map[string]map[string]string{"x-1-1": {"desc": xDesc, "files": "%FILES%\nx\n"}})
			hostile.Fifo(t, root, LocalDir+"/x-1-1/"+name)
			hostile.FailsNaming(t, filepath.Join(root, LocalDir, "x-1-1", name), func() error {
				db, err := Open(hostile.Tree(t, root))
				if err != nil {
					return err
				}
				if _, err = db.Files(db.Packages()[0]); err != nil {
					return err
				}
				_, err = db.Scripts(db.Packages()[0])
				return err
			})
		})
	}
}

// Names, versions and architectures become directory names and fields
// of the appliance's text files: pacman's rules are checked at Open
// (issue 2).
func TestEvilFields(t *testing.T) {
	for _, tc := range []struct {
		name, desc string
		want       []string
	}{
		{"name climbs", "%NAME%\n../../x\n\n%VERSION%\n1-1\n", []string{"bad package name", `"../../x"`}},
		{"name with a slash", "%NAME%\nx/y\n\n%VERSION%\n1-1\n", []string{"bad package name"}},
		{"name with a control character", "%NAME%\nx\x01\n\n%VERSION%\n1-1\n", []string{"bad package name"}},
		{"version with a slash", "%NAME%\nx\n\n%VERSION%\n1/../../../y-1\n", []string{"package x", "bad version"}},
		{"version with a colon", "%NAME%\nx\n\n%VERSION%\n1:2:3-1\n", []string{"package x", "pkgver"}},
		{"version with a tab", "%NAME%\nx\n\n%VERSION%\n1\t2-1\n", []string{"package x", "pkgver"}},
		{"version with DEL", "%NAME%\nx\n\n%VERSION%\n1\x7f-1\n", []string{"package x", "pkgver"}},
		{"bad pkgrel", "%NAME%\nx\n\n%VERSION%\n1-x\n", []string{"package x", "pkgrel"}},
		{"bad epoch", "%NAME%\nx\n\n%VERSION%\ne:1-1\n", []string{"package x", "epoch"}},
		{"arch climbs", "%NAME%\nx\n\n%VERSION%\n1-1\n\n%ARCH%\n../../x\n", []string{"package x", "ARCH"}},
		{"NUL", "%NAME%\nx\n\n%VERSION%\n1-1\x00\n", []string{"not a text file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeTree(t, map[string]map[string]string{"x-1-1": {"desc": tc.desc}})
			_, err := Open(hostile.Tree(t, root))
			hostile.Corrupt(t, err, filepath.Join(root, LocalDir, "x-1-1/desc"), append(tc.want, "x-1-1")...)
		})
	}
}

// %FILES% and %BACKUP% name paths of the tree: ".." cannot leave it.
func TestEvilPaths(t *testing.T) {
	root := writeTree(t, map[string]map[string]string{"x-1-1": {"desc": xDesc,
		"files": "%FILES%\n../../../etc/shadow\nusr/../../../../etc/\n./\n\n%BACKUP%\n../../etc/shadow\tabc\n"}})
	db, err := Open(hostile.Tree(t, root))
	if err != nil {
		t.Fatal(err)
	}
	files, err := db.Files(db.Packages()[0])
	if err != nil || len(files) != 2 || files[0].Path != "/etc/shadow" || !files[0].Config || files[1].Path != "/etc" {
		t.Errorf("files %+v, %v: want /etc/shadow (config) and /etc, in the tree", files, err)
	}
}

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"1-1", "1:1.5-2", "1.0a_b+c-1.1", "20240101.r5.gabc-3", "0:1-1"} {
		if err := checkVersion(v); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	for _, v := range []string{"", "1", "-1", "1-", ":1-1", "a:1-1", "1-1.", "1-.1", "1-1a", "1 2-1", "1/2-1", "1:2:3-1", "é-1"} {
		if err := checkVersion(v); err == nil {
			t.Errorf("%q: no error", v)
		}
	}
}
