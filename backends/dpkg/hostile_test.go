package dpkg

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

const barStatus = `Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21

Package: bar
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 1.0-1
`

// canaries are host files that look like the database files the tree's
// symlinks stand for: read through a link, they would be accepted.
var canaries = map[string]string{
	"status":     "Package: " + hostile.Secret + "\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n",
	"list":       "/" + hostile.Secret + "\n",
	"script":     "#!/bin/sh\necho " + hostile.Secret + "\n",
	"conffiles":  "/etc/" + hostile.Secret + "\n",
	"triggers":   "interest " + hostile.Secret + "\n",
	"diversions": "/usr/bin/dpkg\n/usr/bin/" + hostile.Secret + "\n:\n",
	"arch":       hostile.Secret + "\n",
}

// linked are the database files the hostile tree makes symlinks, and
// the canary each leads to.
var linked = map[string]string{
	"var/lib/dpkg/info/bar:amd64.list": "list",
	"var/lib/dpkg/info/bar.postinst":   "script",
	"var/lib/dpkg/info/bar.preinst":    "script",
	"var/lib/dpkg/info/bar.config":     "script",
	"var/lib/dpkg/info/bar.templates":  "script",
	"var/lib/dpkg/info/bar.conffiles":  "conffiles",
	"var/lib/dpkg/info/bar.triggers":   "triggers",
	"var/lib/dpkg/diversions":          "diversions",
}

// The tree's database files are symlinks to host files (issue 1: a
// build as root copied the host's /etc/shadow). Read through the tree,
// the links lead to the tree's own files, never to the host's: without
// such files in the tree, reading gives nothing or an error naming the
// file in the tree; with them, their content.
func TestSymlinksStayInTree(t *testing.T) {
	host := hostile.Canary(t, canaries)
	hostile.EachLink(t, func(t *testing.T, kind string, own bool) {
		root := writeDB(t, barStatus, map[string]string{})
		for link, canary := range linked {
			hostile.Link(t, root, link, hostile.Targets(link, filepath.Join(host, canary))[kind])
			if own {
				hostile.Write(t, root, filepath.Join(host, canary), strings.ReplaceAll(canaries[canary], hostile.Secret, "tree-own"))
			}
		}
		// The tree is hostile indeed: a plain view of it reads the host's
		// files.
		if data, err := fs.ReadFile(os.DirFS(root), "var/lib/dpkg/info/bar:amd64.list"); kind == "absolute" && !strings.Contains(string(data), hostile.Secret) {
			t.Fatalf("setup: the link does not lead to the canary: %q %v", data, err)
		}
		checkBar(t, root, own)
	})
}

func checkBar(t *testing.T, root string, own bool) {
	tree := hostile.Tree(t, root)
	db, err := Open(tree)
	if err != nil {
		t.Fatal(err)
	}
	var bar *backends.Package
	for _, p := range db.Packages() {
		if p.Name == "bar" {
			bar = p
		}
	}
	files, ferr := db.Files(bar)
	scripts, serr := db.Scripts(bar)
	in, ierr := db.Install(db.Packages(), nil)
	adb, aerr := db.ApplianceFiles(db.Packages())
	hostile.NoSecret(t, "dpkg", db.Packages(), files, ferr, scripts, serr, in, ierr, adb, aerr, db.diversions)
	if !own {
		listHost := filepath.Join(root, "var/lib/dpkg/info/bar.list")
		if ferr == nil || !strings.Contains(ferr.Error(), listHost) {
			t.Errorf("Files: %v, %v: want an error naming %s", files, ferr, listHost)
		}
		if serr != nil || len(scripts.List) != 0 {
			t.Errorf("Scripts: %+v, %v: want none", scripts, serr)
		}
		return
	}
	if ferr != nil || len(files) != 1 || files[0].Path != "/tree-own" {
		t.Errorf("Files: %+v, %v: want the tree's own list", files, ferr)
	}
	if serr != nil || len(scripts.List) != 2 || !strings.Contains(string(scripts.List[1].Body), "tree-own") {
		t.Errorf("Scripts: %+v, %v: want the tree's own", scripts, serr)
	}
	if d := db.diversions["/usr/bin/dpkg"]; d.to != "/usr/bin/tree-own" {
		t.Errorf("diversions %+v: want the tree's own", db.diversions)
	}
}

// The status file itself is a symlink to the host's.
func TestStatusSymlink(t *testing.T) {
	host := hostile.Canary(t, canaries)
	for kind, target := range hostile.Targets(statusFile, filepath.Join(host, "status")) {
		t.Run(kind, func(t *testing.T) {
			root := writeDB(t, barStatus, map[string]string{})
			hostile.Link(t, root, statusFile, target)
			db, err := Open(hostile.Tree(t, root))
			hostile.NoSecret(t, "Open", db, err)
			if want := filepath.Join(root, statusFile); err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open: %v, want an error naming %s", err, want)
			}
		})
	}
}

// A FIFO in place of a database file is an error, not a read that
// blocks forever.
func TestFIFO(t *testing.T) {
	for _, name := range []string{statusFile, "var/lib/dpkg/info/bar.list", "var/lib/dpkg/info/bar.postinst", diversionsFile} {
		t.Run(filepath.Base(name), func(t *testing.T) {
			root := writeDB(t, barStatus, map[string]string{"var/lib/dpkg/info/bar.list": "/x\n"})
			hostile.Fifo(t, root, name)
			hostile.FailsNaming(t, filepath.Join(root, name), func() error {
				db, err := Open(hostile.Tree(t, root))
				if err != nil {
					return err
				}
				bar := db.Packages()[0]
				if _, err = db.Files(bar); err != nil {
					return err
				}
				_, err = db.Scripts(bar)
				return err
			})
		})
	}
}

// Fields that become file names or lines of the appliance's files are
// checked when the database is opened (issue 2: an Architecture of
// "/../../../../tmp/x/evil" made the build read /tmp/x/evil.list).
func TestEvilFields(t *testing.T) {
	outside := t.TempDir()
	hostile.Write(t, outside, "evil.list", "/"+hostile.Secret+"\n")
	climb := strings.Repeat("/..", 16) + outside + "/evil"
	for _, tc := range []struct {
		name, para string
		want       []string
	}{
		{"arch climbs", "Package: evil\nMulti-Arch: same\nArchitecture: " + climb + "\nVersion: 1\n", []string{"package evil (line 6)", "Architecture"}},
		{"arch with a slash", "Package: evil\nArchitecture: amd64/x\nVersion: 1\n", []string{"package evil", "Architecture"}},
		{"arch with a NUL", "Package: evil\nArchitecture: amd64\x00\nVersion: 1\n", []string{"package evil", "NUL"}},
		{"arch uppercase", "Package: evil\nArchitecture: AMD64\nVersion: 1\n", []string{"package evil", "Architecture"}},
		{"name climbs", "Package: ../../../../evil\nArchitecture: all\nVersion: 1\n", []string{"paragraph at line 6", `"../../../../evil"`}},
		{"name with a slash", "Package: ev/il\nArchitecture: all\nVersion: 1\n", []string{"line 6", `"ev/il"`}},
		{"name uppercase", "Package: Evil\nArchitecture: all\nVersion: 1\n", []string{"line 6", `"Evil"`}},
		{"version with a NUL", "Package: evil\nArchitecture: all\nVersion: 1\x00\n", []string{"package evil", "NUL"}},
		{"version with a newline", "Package: evil\nArchitecture: all\nVersion: 1\n 2\n", []string{"package evil", "version"}},
		{"version with a slash", "Package: evil\nArchitecture: all\nVersion: 1/../../x\n", []string{"package evil", "version"}},
		{"version with a space", "Package: evil\nArchitecture: all\nVersion: 1 2\n", []string{"package evil", "space"}},
		{"version with a tab", "Package: evil\nArchitecture: all\nVersion: 1\t2\n", []string{"package evil", "control"}},
		{"bad epoch", "Package: evil\nArchitecture: all\nVersion: x:1\n", []string{"package evil", "epoch"}},
		{"empty revision", "Package: evil\nArchitecture: all\nVersion: 1-\n", []string{"package evil", "revision"}},
		{"multi-arch", "Package: evil\nArchitecture: all\nVersion: 1\nMulti-Arch: ../x\n", []string{"package evil", "Multi-Arch"}},
		{"relative conffile", "Package: evil\nArchitecture: all\nVersion: 1\nConffiles:\n ../../etc/shadow 0123\n", []string{"package evil", "Conffiles"}},
		{"NUL in another field", "Package: evil\nArchitecture: all\nVersion: 1\nDescription: x\n y\x00\n", []string{"package evil", "line 11: NUL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeDB(t, "Package: dpkg\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n"+
				strings.Replace(tc.para, "\n", "\nStatus: install ok installed\n", 1), map[string]string{})
			db, err := Open(hostile.Tree(t, root))
			if err == nil {
				files, err := db.Files(db.Packages()[1])
				hostile.NoSecret(t, "Files", files, err)
				t.Fatalf("opened: %+v", db.Packages()[1])
			}
			hostile.Corrupt(t, err, filepath.Join(root, statusFile), tc.want...)
		})
	}
}

// Versions as deb-version(5) has them; what dpkg only warns about is
// accepted.
func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"1", "1.0-1", "1:2.0~rc1+dfsg-1ubuntu1", "0:1", "2.36-9+deb12u4", "a1.0", "1.0-1-2", "1:2:3", "1_2"} {
		if err := checkVersion(v); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	for _, v := range []string{"", ":1", "1:", "x:1", "-1", "1-", "1:-1", "1 2", "1/2", "1\x00", "1\n2", "1\x7f", "99999999999:1"} {
		if err := checkVersion(v); err == nil {
			t.Errorf("%q: no error", v)
		}
	}
}

// The diversions file and file lists name paths of the tree: they stay
// in it, however many ".." they hold.
func TestEvilPaths(t *testing.T) {
	status := "Package: bar\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		file  string
		want  []string
	}{
		{"diverted by a path", map[string]string{diversionsFile: "/a\n/b\n../../x\n"}, diversionsFile, []string{"line 1", "../../x"}},
		{"relative diversion", map[string]string{diversionsFile: "a\n/b\nbar\n"}, diversionsFile, []string{"line 1"}},
		{"NUL in a diversion", map[string]string{diversionsFile: "/a\n/b\x00\nbar\n"}, diversionsFile, []string{"line 1"}},
		{"NUL in a list", map[string]string{"var/lib/dpkg/info/bar.list": "/a\n/b\x00c\n"}, "var/lib/dpkg/info/bar.list", []string{"line 2"}},
		{"arch file", map[string]string{archFile: "../../evil\n"}, archFile, []string{"../../evil"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := status
			if tc.file == archFile {
				st = strings.Replace(status, "bar", "not-dpkg", 1)
				tc.files["var/lib/dpkg/info/not-dpkg.list"] = "/x\n"
			}
			root := writeDB(t, st, tc.files)
			db, err := Open(hostile.Tree(t, root))
			if err == nil {
				_, err = db.Files(db.Packages()[0])
			}
			hostile.Corrupt(t, err, filepath.Join(root, tc.file), tc.want...)
		})
	}
	root := writeDB(t, status, map[string]string{
		"var/lib/dpkg/info/bar.list": "/.\n/..\n/usr/../../../etc/shadow\n//usr//bin/../lib/./x\n",
		diversionsFile:               "/usr/lib/x\n/../../../tmp/x\n:\n",
	})
	db, err := Open(hostile.Tree(t, root))
	if err != nil {
		t.Fatal(err)
	}
	files, err := db.Files(db.Packages()[0])
	if err != nil || len(files) != 2 || files[0].Path != "/etc/shadow" || files[1] != (backends.File{Path: "/usr/lib/x", Source: "/tmp/x", DivertedBy: ":"}) {
		t.Errorf("files %+v, %v: want /etc/shadow and /usr/lib/x diverted to /tmp/x, in the tree", files, err)
	}
}
