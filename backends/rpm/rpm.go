// Package rpm reads an installed rpm database under a root directory in
// process: the sqlite (rpm >= 4.16), BerkeleyDB (Packages, older
// releases) and ndb (Packages.db, openSUSE) storage formats, and the
// header blobs they hold.
package rpm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/gosupermin/gosupermin/backends"
)

// dbFile is one place and format rpm keeps its database in.
type dbFile struct {
	path string // relative to the root
	read func(file string) ([]record, error)
}

// Databases are tried in this order: the current location first, and
// the newest formats first (a converted tree can keep the old file).
var databases = []dbFile{
	{"usr/lib/sysimage/rpm/rpmdb.sqlite", readSQLite},
	{"usr/lib/sysimage/rpm/Packages.db", readNDB},
	{"usr/lib/sysimage/rpm/Packages", readBDB},
	{"var/lib/rpm/rpmdb.sqlite", readSQLite},
	{"var/lib/rpm/Packages.db", readNDB},
	{"var/lib/rpm/Packages", readBDB},
}

func find(root string) (dbFile, bool) {
	for _, d := range databases {
		if fi, err := os.Stat(filepath.Join(root, d.path)); err == nil && fi.Mode().IsRegular() {
			return d, true
		}
	}
	return dbFile{}, false
}

// Detect reports whether root holds an rpm database.
func Detect(root string) bool {
	_, ok := find(root)
	return ok
}

var (
	_ backends.DB         = (*DB)(nil)
	_ backends.FileOwners = (*DB)(nil)
	_ backends.Installer  = (*DB)(nil)
)

// DB is an rpm database read under a root directory.
type DB struct {
	root   string
	file   dbFile
	native string
	pkgs   []*backends.Package
	hdr    map[*backends.Package]*pkgHeader

	ownersOnce sync.Once
	owners     map[string][]*backends.Package
	ownersErr  error
}

type pkgHeader struct {
	key    string // where the header is in the database file
	record string // key and NEVRA, for messages
	h      *Header
}

// Open reads every header of the database under root. File lists and
// scripts are decoded when asked for.
func Open(root string) (*DB, error) {
	d, ok := find(root)
	if !ok {
		return nil, fmt.Errorf("no rpm database under %s", root)
	}
	file := filepath.Join(root, d.path)
	recs, err := d.read(file)
	if err != nil {
		var ce *backends.CorruptError
		if errors.As(err, &ce) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("read rpm database: %w", err)
		}
		return nil, &backends.CorruptError{File: file, Err: err}
	}
	db := &DB{root: root, file: d, hdr: map[*backends.Package]*pkgHeader{}}
	arches := map[string]int{}
	for _, r := range recs {
		h, err := ParseHeader(r.blob)
		if err != nil {
			return nil, &backends.CorruptError{File: file, Record: r.key, Err: err}
		}
		in, err := h.Info()
		if err != nil {
			return nil, &backends.CorruptError{File: file, Record: r.key, Err: err}
		}
		if in.Name == "gpg-pubkey" && in.Arch == "" {
			continue // imported signing keys, not packages
		}
		p := &backends.Package{Name: in.Name, Version: in.EVR(), Arch: in.Arch, ID: in.NEVRA(), FullName: in.NEVRA()}
		for _, c := range in.Requires {
			if c.Flags&senseRPMLib != 0 || internalCapability(c.Name) {
				continue
			}
			p.Depends = append(p.Depends, c.Dep())
		}
		for _, c := range in.Provides {
			if c.Name == p.Name && senseRel(c.Flags) == "=" {
				continue // the package's own name: the resolver checks it
			}
			pr := backends.Provide{Name: c.Name, Rel: senseRel(c.Flags)}
			if pr.Rel != "" {
				pr.Version = c.Version
			}
			p.Provides = append(p.Provides, pr)
		}
		db.pkgs = append(db.pkgs, p)
		db.hdr[p] = &pkgHeader{key: r.key, record: r.key + " (" + p.ID + ")", h: h}
		if in.Arch != "noarch" && in.Arch != "" {
			arches[in.Arch]++
		}
	}
	sort.SliceStable(db.pkgs, func(i, j int) bool { return db.pkgs[i].ID < db.pkgs[j].ID })
	for i := 1; i < len(db.pkgs); i++ {
		if db.pkgs[i].ID == db.pkgs[i-1].ID {
			// rpm allows it (a package installed twice with --force):
			// keep the ID unique.
			db.pkgs[i].ID += "#" + db.hdr[db.pkgs[i]].key
		}
	}
	db.native = nativeArch(root, arches)
	return db, nil
}

// internalCapability: rpmlib() features describe rpm itself, which the
// appliance does not hold; config() requires name the package's own
// config files.
func internalCapability(name string) bool {
	return strings.HasPrefix(name, "rpmlib(") || strings.HasPrefix(name, "config(")
}

// nativeArch: the arch in /etc/rpm/platform, else the most common arch
// among installed packages (ties: the arch this program was built for,
// then by name), else the arch this program was built for.
func nativeArch(root string, arches map[string]int) string {
	if data, err := os.ReadFile(filepath.Join(root, "etc/rpm/platform")); err == nil {
		if a, _, ok := strings.Cut(strings.TrimSpace(string(data)), "-"); ok && a != "" {
			return a
		}
	}
	self := goArch()
	best, n := "", 0
	for a, c := range arches {
		if c > n || c == n && (a == self || best != self && a < best) {
			best, n = a, c
		}
	}
	if best != "" {
		return best
	}
	return self
}

func goArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "386":
		return "i686"
	case "arm64":
		return "aarch64"
	case "arm":
		return "armv7hl"
	case "loong64":
		return "loongarch64"
	}
	return runtime.GOARCH
}

func (db *DB) Family() backends.Family         { return backends.RPM }
func (db *DB) NativeArch() string              { return db.native }
func (db *DB) Packages() []*backends.Package   { return db.pkgs }
func (db *DB) CompareVersions(a, b string) int { return CompareEVR(a, b) }

// DBFiles: the database file and its write-ahead log (an sqlite update
// may touch only the log).
func (db *DB) DBFiles() []string {
	f := filepath.FromSlash(db.file.path)
	if strings.HasSuffix(f, ".sqlite") {
		return []string{f, f + "-wal"}
	}
	return []string{f}
}

// Header returns the parsed header of an installed package.
func (db *DB) Header(p *backends.Package) *Header {
	if ph := db.hdr[p]; ph != nil {
		return ph.h
	}
	return nil
}

func (db *DB) corrupt(p *backends.Package, err error) error {
	return &backends.CorruptError{File: filepath.Join(db.root, db.file.path), Record: db.hdr[p].record, Err: err}
}

// Files lists the package's files with their %config and %ghost flags.
func (db *DB) Files(p *backends.Package) ([]backends.File, error) {
	ph := db.hdr[p]
	if ph == nil {
		return nil, fmt.Errorf("package %s is not in the rpm database", p.ID)
	}
	fis, err := ph.h.Files()
	if err != nil {
		return nil, db.corrupt(p, err)
	}
	out := make([]backends.File, 0, len(fis))
	for _, fi := range fis {
		if !strings.HasPrefix(fi.Path, "/") {
			return nil, db.corrupt(p, fmt.Errorf("file %q is not an absolute path", fi.Path))
		}
		pth := path.Clean(fi.Path)
		out = append(out, backends.File{
			Path: pth, Source: pth,
			Config: fi.Flags&FileConfig != 0,
			Ghost:  fi.Flags&FileGhost != 0,
		})
	}
	return out, nil
}

// Owners lists the installed packages whose file list has path, for file
// requires ("Requires: /usr/bin/python3").
func (db *DB) Owners(p string) []*backends.Package {
	db.ownersOnce.Do(func() {
		db.owners = map[string][]*backends.Package{}
		for _, pkg := range db.pkgs {
			fis, err := db.hdr[pkg].h.Files()
			if err != nil {
				continue // reported by Files if the package is used
			}
			for _, fi := range fis {
				k := path.Clean(fi.Path)
				if l := db.owners[k]; len(l) == 0 || l[len(l)-1] != pkg {
					db.owners[k] = append(l, pkg)
				}
			}
		}
	})
	return db.owners[path.Clean(p)]
}

// Scripts returns %pre, %post and %posttrans as a fresh install runs them:
// with "1" (the number of instances installed) as $1, by the interpreter
// the package names (-p), /bin/sh by default. A Lua scriptlet has
// Interpreter "<lua>": it can only run inside rpm. A scriptlet with an
// interpreter but no body ("%post -p /sbin/ldconfig") has an empty Body:
// the runner executes the interpreter itself with Args. When -p gave the
// interpreter arguments, Interpreter holds them after the program,
// separated by spaces.
func (db *DB) Scripts(p *backends.Package) (*backends.Scripts, error) {
	ph := db.hdr[p]
	if ph == nil {
		return nil, fmt.Errorf("package %s is not in the rpm database", p.ID)
	}
	s := &backends.Scripts{}
	for _, sc := range []struct {
		body, prog uint32
		phase      backends.ScriptPhase
		name       string
	}{
		{TagPreIn, TagPreInProg, backends.PreInstall, "%pre"},
		{TagPostIn, TagPostInProg, backends.PostInstall, "%post"},
		{TagPostTrans, TagPostTransProg, backends.PostTransaction, "%posttrans"},
	} {
		st, err := ph.h.Scriptlet(sc.body, sc.prog)
		if err != nil {
			return nil, db.corrupt(p, fmt.Errorf("%s: %w", sc.name, err))
		}
		if st == nil {
			continue
		}
		interp := "/bin/sh"
		if len(st.Prog) > 0 && st.Prog[0] != "" {
			interp = strings.Join(st.Prog, " ")
		}
		s.List = append(s.List, backends.Script{
			Phase: sc.phase, Name: sc.name, Interpreter: interp,
			Args: []string{"1"}, Body: []byte(st.Body),
		})
	}
	return s, nil
}

// Install: rpm runs scripts in the transaction's order, with no
// environment of its own and no triggers gosupermin runs.
func (db *DB) Install(pkgs []*backends.Package, _ func(string) bool) (*backends.Install, error) {
	return &backends.Install{Order: pkgs}, nil
}
