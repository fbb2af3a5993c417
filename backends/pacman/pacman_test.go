package pacman

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/internal/hostile"
)

func TestVercmp(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.5.0", "1.5.0", 0}, {"1.5.1", "1.5.0", 1}, {"1.5.1", "1.5", 1},
		{"1.5.0-1", "1.5.0-1", 0}, {"1.5.0-1", "1.5.0-2", -1}, {"1.5.0-1", "1.5.1-1", -1}, {"1.5.0-2", "1.5.1-1", -1},
		{"1.5-1", "1.5.1-1", -1}, {"1.5-2", "1.5.1-1", -1}, {"1.5-2", "1.5.1-2", -1},
		{"1.5", "1.5-1", 0}, {"1.5-1", "1.5", 0}, {"1.1-1", "1.1", 0}, {"1.0-1", "1.1", -1}, {"1.1-1", "1.0", 1},
		{"1.5b-1", "1.5-1", -1}, {"1.5b", "1.5", -1}, {"1.5b-1", "1.5", -1}, {"1.5b", "1.5.1", -1},
		{"1.0a", "1.0alpha", -1}, {"1.0alpha", "1.0b", -1}, {"1.0b", "1.0beta", -1}, {"1.0beta", "1.0rc", -1}, {"1.0rc", "1.0", -1},
		{"1.5.a", "1.5", 1}, {"1.5.b", "1.5.a", 1}, {"1.5.1", "1.5.b", 1},
		{"1.5.b-1", "1.5.b", 0}, {"1.5-1", "1.5.b", -1},
		{"2.0", "2_0", 0}, {"2.0_a", "2_0.a", 0}, {"2.0a", "2.0.a", -1}, {"2___a", "2_a", 1},
		{"0:1.0", "0:1.0", 0}, {"0:1.0", "0:1.1", -1}, {"1:1.0", "0:1.0", 1}, {"1:1.0", "0:1.1", 1}, {"1:1.0", "2:1.1", -1},
		{"1:1.0", "0:1.0-1", 1}, {"1:1.0-1", "0:1.1-1", 1},
		{"0:1.0", "1.0", 0}, {"0:1.0", "1.1", -1}, {"0:1.1", "1.0", 1}, {"1:1.0", "1.0", 1}, {"1:1.0", "1.1", 1}, {"1:1.1", "1.1", 1},
	} {
		if got := Vercmp(c.a, c.b); got != c.want {
			t.Errorf("Vercmp(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := Vercmp(c.b, c.a); got != -c.want {
			t.Errorf("Vercmp(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

const sampleDesc = `%NAME%
gs-app

%VERSION%
1:1.5-2

%URL%


%ARCH%
any

%DEPENDS%
gs-lib>=1:1.0
libgs.so=1-64
sh

%PROVIDES%
gs-virt=2.0
gs-other

`

func TestParseDesc(t *testing.T) {
	d, err := ParseDesc([]byte(sampleDesc))
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Package()
	if err != nil {
		t.Fatal(err)
	}
	var deps []string
	for _, dep := range p.Depends {
		deps = append(deps, dep.String())
	}
	if p.ID != "gs-app-1:1.5-2" || p.FullName != p.ID || p.Arch != "any" ||
		strings.Join(deps, ", ") != "gs-lib (>= 1:1.0), libgs.so (= 1-64), sh" ||
		len(p.Provides) != 2 || p.Provides[0] != (backends.Provide{Name: "gs-virt", Rel: "=", Version: "2.0"}) || p.Provides[1].Rel != "" {
		t.Errorf("package %+v, depends %v", p, deps)
	}
	for _, bad := range []string{
		"garbage\n", "%NAME%\nx\n\n%NAME%\ny\n", "%NAME%\nx\n", "%NAME%\nx\n\n%VERSION%\n1\n",
		"%NAME%\nx y\n\n%VERSION%\n1-1\n", "%NAME%\nx\n\n%VERSION%\n1-1\n\n%DEPENDS%\nfoo>=\n",
		"%NAME%\nx\n\n%VERSION%\n1-1\n\n%PROVIDES%\nfoo>=1\n", "%NAME%\nx\x00\n",
	} {
		d, err := ParseDesc([]byte(bad))
		if err == nil {
			_, err = d.Package()
		}
		if err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func writeTree(t *testing.T, pkgs map[string]map[string]string) string {
	root := t.TempDir()
	for dir, files := range pkgs {
		for name, content := range files {
			f := filepath.Join(root, LocalDir, dir, name)
			os.MkdirAll(filepath.Dir(f), 0o755)
			if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	os.WriteFile(filepath.Join(root, LocalDir, "ALPM_DB_VERSION"), []byte("9\n"), 0o644)
	return root
}

func TestDB(t *testing.T) {
	root := writeTree(t, map[string]map[string]string{
		"gs-app-1:1.5-2": {
			"desc":    sampleDesc,
			"files":   "%FILES%\netc/\netc/app.conf\nusr/\nusr/bin/\nusr/bin/app\n\n%BACKUP%\netc/app.conf\t0123abcd\n\n",
			"install": "pre_install() {\n\t:\n}\n\npost_install() {\n\techo $1\n}\n",
		},
		"meta-1-1": {"desc": "%NAME%\nmeta\n\n%VERSION%\n1-1\n\n%INSTALL%\n", "files": "", "install": "post_upgrade() { :; }\n"},
	})
	if !Detect(hostile.Tree(t, root)) || Detect(hostile.Tree(t, t.TempDir())) {
		t.Fatal("Detect")
	}
	db, err := Open(hostile.Tree(t, root))
	if err != nil {
		t.Fatal(err)
	}
	if len(db.Packages()) != 2 || db.Family() != backends.Pacman || db.NativeArch() != "" {
		t.Fatalf("packages %v", db.Packages())
	}
	app := db.Packages()[0]
	files, err := db.Files(app)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		s := f.Path
		if f.Config {
			s += " (config)"
		}
		got = append(got, s)
	}
	if strings.Join(got, ", ") != "/etc, /etc/app.conf (config), /usr, /usr/bin, /usr/bin/app" {
		t.Errorf("files: %v", got)
	}
	sc, err := db.Scripts(app)
	if err != nil || len(sc.List) != 1 || sc.List[0].Phase != backends.PostInstall || sc.List[0].Args[0] != "1:1.5-2" ||
		sc.List[0].Interpreter != "/bin/bash" || !strings.HasPrefix(string(sc.List[0].Body), "pre_install") {
		t.Errorf("scripts %+v, %v", sc, err)
	}
	if sc, err := db.Scripts(db.Packages()[1]); err != nil || len(sc.List) != 0 {
		t.Errorf("an install file without post_install: %+v, %v", sc, err)
	}
	if files, err := db.Files(db.Packages()[1]); err != nil || len(files) != 0 {
		t.Errorf("meta package files %v, %v", files, err)
	}
	if db.CompareVersions("1:1.0-1", "2.0-1") != 1 || db.DBFiles()[0] != "var/lib/pacman/local" {
		t.Error("CompareVersions or DBFiles")
	}
}

func TestCorrupt(t *testing.T) {
	for name, pkgs := range map[string]map[string]map[string]string{
		"garbage desc":  {"x-1-1": {"desc": "\x7fELF garbage"}},
		"wrong dir":     {"y-1-1": {"desc": "%NAME%\nx\n\n%VERSION%\n1-1\n"}},
		"missing desc":  {"x-1-1": {"files": "%FILES%\n"}},
		"twice":         {"x-1-1": {"desc": "%NAME%\nx\n\n%VERSION%\n1-1\n"}, "x-2-1": {"desc": "%NAME%\nx\n\n%VERSION%\n2-1\n"}},
		"absolute file": {"x-1-1": {"desc": "%NAME%\nx\n\n%VERSION%\n1-1\n", "files": "%FILES%\n/etc/passwd\n"}},
		"missing files": {"x-1-1": {"desc": "%NAME%\nx\n\n%VERSION%\n1-1\n"}},
	} {
		root := writeTree(t, pkgs)
		db, err := Open(hostile.Tree(t, root))
		if err == nil {
			_, err = db.Files(db.Packages()[0])
		}
		var ce *backends.CorruptError
		if err == nil || name != "missing desc" && !errors.As(err, &ce) {
			t.Errorf("%s: %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

// A desc that parses, written back, parses the same.
func FuzzParseDesc(f *testing.F) {
	f.Add([]byte(sampleDesc))
	f.Add([]byte("%FILES%\nusr/\nusr/bin/x\n\n%BACKUP%\netc/x\tabc\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDesc(data)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, s := range slices.Sorted(maps.Keys(d)) {
			b.WriteString("%" + s + "%\n" + strings.Join(append(d[s], ""), "\n") + "\n")
		}
		if d2, err := ParseDesc([]byte(b.String())); err != nil || !reflect.DeepEqual(d, d2) {
			t.Fatalf("written back %q: %v, %v", b.String(), d2, err)
		}
		if p, err := d.Package(); err == nil {
			for _, dep := range p.Depends {
				_ = dep.String()
			}
			Vercmp(p.Version, "1:1.0-1")
		}
	})
}

func FuzzVercmp(f *testing.F) {
	f.Add("1:1.0a-1", "1.0.a")
	f.Fuzz(func(t *testing.T, a, b string) {
		if x, y := Vercmp(a, b), Vercmp(b, a); x != -y {
			t.Errorf("Vercmp(%q, %q) = %d but reversed %d", a, b, x, y)
		}
	})
}

// TestNativeArch: pacman.conf's Architecture when it names one, else the
// most common architecture of the packages.
func TestNativeArch(t *testing.T) {
	desc := func(name, arch string) map[string]string {
		return map[string]string{"desc": "%NAME%\n" + name + "\n\n%VERSION%\n1-1\n\n%ARCH%\n" + arch + "\n", "files": ""}
	}
	for _, tc := range []struct {
		name  string
		archs []string
		conf  string
		want  string
	}{
		{"only any", []string{"any", "any"}, "", ""},
		{"most common", []string{"aarch64", "aarch64", "x86_64", "any", "any", "any"}, "", "aarch64"},
		{"tie by name", []string{"x86_64", "aarch64"}, "", "aarch64"},
		{"conf auto", []string{"riscv64"}, "[options]\nArchitecture = auto\n", "riscv64"},
		{"conf names it", []string{"any"}, "[options]\n#Architecture = x86_64\nArchitecture = aarch64 armv8\n", "aarch64"},
		{"conf garbage", []string{"x86_64"}, "Architecture = ../x\n", "x86_64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkgs := map[string]map[string]string{}
			for i, a := range tc.archs {
				name := fmt.Sprintf("p%d", i)
				pkgs[name+"-1-1"] = desc(name, a)
			}
			root := writeTree(t, pkgs)
			if tc.conf != "" {
				os.MkdirAll(filepath.Join(root, "etc"), 0o755)
				os.WriteFile(filepath.Join(root, "etc/pacman.conf"), []byte(tc.conf), 0o644)
			}
			db, err := Open(hostile.Tree(t, root))
			if err != nil {
				t.Fatal(err)
			}
			if got := db.NativeArch(); got != tc.want {
				t.Errorf("NativeArch = %q, want %q", got, tc.want)
			}
		})
	}
}
