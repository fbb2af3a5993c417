// Package rpm reads an installed rpm database under a root directory in
// process: the sqlite (rpm >= 4.16), BerkeleyDB (Packages, older
// releases) and ndb (Packages.db, openSUSE) storage formats, and the
// header blobs they hold.
package rpm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"

	"github.com/gosupermin/gosupermin/backends"
)

// dbFile is one place and format rpm keeps its database in.
type dbFile struct {
	path string // relative to the root
	open func(f io.ReaderAt, size int64) (storage, error)
}

// Databases are tried in this order: the current location first, and
// the newest formats first (a converted tree can keep the old file).
var databases = []dbFile{
	{"usr/lib/sysimage/rpm/rpmdb.sqlite", openSQLiteStorage},
	{"usr/lib/sysimage/rpm/Packages.db", openNDB},
	{"usr/lib/sysimage/rpm/Packages", openBDB},
	{"var/lib/rpm/rpmdb.sqlite", openSQLiteStorage},
	{"var/lib/rpm/Packages.db", openNDB},
	{"var/lib/rpm/Packages", openBDB},
}

func openSQLiteStorage(f io.ReaderAt, size int64) (storage, error) { return openSQLite(f, size) }

func find(fsys fs.FS) (dbFile, bool) {
	for _, d := range databases {
		if fi, err := fs.Stat(fsys, d.path); err == nil && fi.Mode().IsRegular() {
			return d, true
		}
	}
	return dbFile{}, false
}

// Detect reports whether fsys holds an rpm database.
func Detect(fsys fs.FS) bool {
	_, ok := find(fsys)
	return ok
}

var (
	_ backends.DB         = (*DB)(nil)
	_ backends.FileOwners = (*DB)(nil)
	_ backends.Installer  = (*DB)(nil)
)

// DB is an rpm database read through an fs.FS of the root. It keeps the
// database file open, and no header: a package's header is read again
// when its files or scripts are asked for.
type DB struct {
	fsys   fs.FS
	file   dbFile
	host   string // the database file on the host, for messages
	st     storage
	open   []fs.File // the database file and its log, for Close
	native string
	pkgs   []*backends.Package
	recs   map[*backends.Package]*pkgRecord
	// fileReqs are the paths the packages' requires name, whose owners
	// the first Owners call finds in one pass.
	fileReqs []string

	ownersMu sync.Mutex
	owners   map[string][]*backends.Package // for the paths looked up so far
}

type pkgRecord struct {
	loc    location // where the header is in the database file
	record string   // key and NEVRA, for messages
	nevra  string
}

// maxPlatform bounds etc/rpm/platform, one short line.
const maxPlatform = 64 << 10

// Open reads every header of the database of fsys, whose names are paths
// under the root, and keeps the packages' identities and relations. File
// lists and scripts are read again when asked for. Close releases the
// database file.
func Open(fsys fs.FS) (*DB, error) {
	d, ok := find(fsys)
	if !ok {
		return nil, fmt.Errorf("no rpm database under %s", backends.HostPath(fsys, "."))
	}
	db := &DB{fsys: fsys, file: d, host: backends.HostPath(fsys, d.path), recs: map[*backends.Package]*pkgRecord{}}
	if err := db.openStorage(); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.readPackages(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openFile opens a file of the database for random access.
func (db *DB) openFile(name string) (io.ReaderAt, int64, error) {
	f, err := db.fsys.Open(name)
	if err != nil {
		return nil, 0, fmt.Errorf("read rpm database: %w", err)
	}
	r, size, err := readerAt(f)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("read rpm database: %s: %w", backends.HostPath(db.fsys, name), err)
	}
	db.open = append(db.open, f)
	return r, size, nil
}

func (db *DB) openStorage() error {
	r, size, err := db.openFile(db.file.path)
	if err != nil {
		return err
	}
	if db.st, err = db.file.open(r, size); err != nil {
		return db.fail(db.host, err)
	}
	sq, ok := db.st.(*sqliteDB)
	if !ok {
		return nil
	}
	// An sqlite update may have reached only the write-ahead log.
	wal := db.file.path + "-wal"
	wr, wsize, err := db.openFile(wal)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := sq.readWAL(wr, wsize); err != nil {
		return db.fail(backends.HostPath(db.fsys, wal), err)
	}
	return nil
}

// fail is the error of reading file: a read error as it is, anything else
// a corrupt database.
func (db *DB) fail(file string, err error) error {
	var ce *backends.CorruptError
	var pe *fs.PathError
	if errors.As(err, &ce) || errors.As(err, &pe) {
		return fmt.Errorf("read rpm database: %w", err)
	}
	return &backends.CorruptError{File: file, Err: err}
}

func (db *DB) readPackages() error {
	arches := map[string]int{}
	fileReqs := map[string]bool{}
	err := db.st.scan(func(loc location, blob []byte) error {
		in, err := readInfo(blob)
		if err != nil {
			return &backends.CorruptError{File: db.host, Record: loc.key, Err: err}
		}
		if in.Name == "gpg-pubkey" && in.Arch == "" {
			return nil // imported signing keys, not packages
		}
		p := &backends.Package{Name: in.Name, Version: in.EVR(), Arch: in.Arch, ID: in.NEVRA(), FullName: in.NEVRA()}
		for _, c := range in.Requires {
			if c.Flags&senseRPMLib != 0 || internalCapability(c.Name) {
				continue
			}
			p.Depends = append(p.Depends, c.Dep())
			if strings.HasPrefix(c.Name, "/") {
				fileReqs[path.Clean(c.Name)] = true
			}
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
		db.recs[p] = &pkgRecord{loc: loc, record: loc.key + " (" + p.ID + ")", nevra: p.ID}
		if in.Arch != "noarch" && in.Arch != "" {
			arches[in.Arch]++
		}
		return nil
	})
	if err != nil {
		return db.fail(db.host, err)
	}
	sort.SliceStable(db.pkgs, func(i, j int) bool { return db.pkgs[i].ID < db.pkgs[j].ID })
	for i := 1; i < len(db.pkgs); i++ {
		if db.pkgs[i].ID == db.pkgs[i-1].ID {
			// rpm allows it (a package installed twice with --force):
			// keep the ID unique.
			db.pkgs[i].ID += "#" + db.recs[db.pkgs[i]].loc.key
		}
	}
	db.fileReqs = slices.Sorted(maps.Keys(fileReqs))
	db.native = db.nativeArch(arches)
	return nil
}

// readInfo parses a header blob into a package's identity and relations,
// and checks what becomes file names and lines of the appliance's text
// files.
func readInfo(blob []byte) (*Info, error) {
	h, err := ParseHeader(blob)
	if err != nil {
		return nil, err
	}
	in, err := h.Info()
	if err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"NAME", in.Name}, {"VERSION", in.Version}, {"RELEASE", in.Release}, {"ARCH", in.Arch}} {
		if i := strings.IndexFunc(f.v, badIdentRune); i >= 0 {
			return nil, fmt.Errorf("%s %q: %s", f.name, truncate(f.v), badChar(f.v[i:]))
		}
	}
	return in, nil
}

// badIdentRune: rpm builds no package whose name, version, release or
// arch holds a space, a control character or a "/", and those would let
// them leave a file name or a line of text.
func badIdentRune(r rune) bool { return r == ' ' || r == '/' || unicode.IsControl(r) }

func badChar(s string) string {
	switch c := s[0]; {
	case c == 0:
		return "NUL byte"
	case c == ' ':
		return "space"
	case c == '/':
		return `"/"`
	default:
		return fmt.Sprintf("control character %#02x", c)
	}
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// Close releases the database file.
func (db *DB) Close() error {
	var first error
	for _, f := range db.open {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	db.open = nil
	return first
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
func (db *DB) nativeArch(arches map[string]int) string {
	if data, err := backends.ReadFile(db.fsys, "etc/rpm/platform", maxPlatform); err == nil {
		a, _, ok := strings.Cut(strings.TrimSpace(string(data)), "-")
		if ok && a != "" && strings.IndexFunc(a, badIdentRune) < 0 {
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
func (db *DB) DBFiles() []string { return dbFiles(db.file) }

// DBFiles are the files of the database in fsys, found without reading
// it: the database file and its write-ahead log (an sqlite update may
// touch only the log).
func DBFiles(fsys fs.FS) []string {
	d, ok := find(fsys)
	if !ok {
		return nil
	}
	return dbFiles(d)
}

func dbFiles(d dbFile) []string {
	f := filepath.FromSlash(d.path)
	if strings.HasSuffix(f, ".sqlite") {
		return []string{f, f + "-wal"}
	}
	return []string{f}
}

// Header reads again the header of an installed package.
func (db *DB) Header(p *backends.Package) (*Header, error) {
	r := db.recs[p]
	if r == nil {
		return nil, fmt.Errorf("package %s is not in the rpm database", p.ID)
	}
	blob, err := db.st.read(r.loc)
	if err != nil {
		return nil, db.corrupt(p, err)
	}
	h, err := ParseHeader(blob)
	if err != nil {
		return nil, db.corrupt(p, err)
	}
	in, err := h.Info()
	if err != nil {
		return nil, db.corrupt(p, err)
	}
	if in.NEVRA() != r.nevra {
		return nil, db.corrupt(p, fmt.Errorf("holds %s now: the database changed while it was read", truncate(in.NEVRA())))
	}
	return h, nil
}

func (db *DB) corrupt(p *backends.Package, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("read rpm database: %w", err)
	}
	return &backends.CorruptError{File: db.host, Record: db.recs[p].record, Err: err}
}

// Files lists the package's files with their %config and %ghost flags.
func (db *DB) Files(p *backends.Package) ([]backends.File, error) {
	h, err := db.Header(p)
	if err != nil {
		return nil, err
	}
	fis, err := h.Files()
	if err != nil {
		return nil, db.corrupt(p, err)
	}
	out := make([]backends.File, 0, len(fis))
	for _, fi := range fis {
		pth, err := cleanPath(fi.Path)
		if err != nil {
			return nil, db.corrupt(p, err)
		}
		out = append(out, backends.File{
			Path: pth, Source: pth,
			Config: fi.Flags&FileConfig != 0,
			Ghost:  fi.Flags&FileGhost != 0,
		})
	}
	return out, nil
}

// cleanPath makes a path of a file list clean, so that ".." cannot leave
// the tree. A newline has no place in the line-based lists of the
// appliance (rpm refuses to build a package with one).
func cleanPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\n") {
		return "", fmt.Errorf("file %q is not an absolute path", truncate(p))
	}
	return path.Clean(p), nil
}

// Owners lists the installed packages whose file list has path, for file
// requires ("Requires: /usr/bin/python3"). The first call finds the owners
// of every path the packages require in one pass over the database; a
// path none requires costs a pass of its own.
func (db *DB) Owners(p string) []*backends.Package {
	p = path.Clean(p)
	db.ownersMu.Lock()
	defer db.ownersMu.Unlock()
	if db.owners == nil {
		db.owners = map[string][]*backends.Package{}
		db.index(db.fileReqs)
	}
	if l, ok := db.owners[p]; ok {
		return l
	}
	db.index([]string{p})
	return db.owners[p]
}

// index finds the owners of paths.
func (db *DB) index(paths []string) {
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
		db.owners[p] = nil // looked up, owned or not
	}
	for _, pkg := range db.pkgs {
		h, err := db.Header(pkg)
		if err != nil {
			continue // reported by Files if the package is used
		}
		fis, err := h.Files()
		if err != nil {
			continue
		}
		for _, fi := range fis {
			k := path.Clean(fi.Path)
			if l := db.owners[k]; want[k] && (len(l) == 0 || l[len(l)-1] != pkg) {
				db.owners[k] = append(l, pkg)
			}
		}
	}
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
	h, err := db.Header(p)
	if err != nil {
		return nil, err
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
		st, err := h.Scriptlet(sc.body, sc.prog)
		if err != nil {
			return nil, db.corrupt(p, fmt.Errorf("%s: %w", sc.name, err))
		}
		if st == nil {
			continue
		}
		// The runner's command line: no control character may split it.
		for _, a := range st.Prog {
			if i := strings.IndexFunc(a, unicode.IsControl); i >= 0 {
				return nil, db.corrupt(p, fmt.Errorf("%s: interpreter %q: %s", sc.name, truncate(a), badChar(a[i:])))
			}
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
