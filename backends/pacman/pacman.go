// Package pacman reads pacman's local database under a root directory:
// var/lib/pacman/local/NAME-VERSION/{desc,files,install}.
package pacman

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/gosupermin/gosupermin/backends"
)

// LocalDir is pacman's local database, relative to the root.
const LocalDir = "var/lib/pacman/local"

// maxInstall bounds an install file, a shell script of a few KB.
const maxInstall = 16 << 20

// Detect reports whether fsys holds a pacman local database.
func Detect(fsys fs.FS) bool {
	fi, err := fs.Stat(fsys, LocalDir)
	return err == nil && fi.IsDir()
}

var (
	_ backends.DB        = (*DB)(nil)
	_ backends.Installer = (*DB)(nil)
)

// DB is a pacman local database read through an fs.FS of the root.
type DB struct {
	fsys   fs.FS
	pkgs   []*backends.Package
	native string
}

// Open reads every package's desc of fsys, whose names are paths under
// the root. File lists and install files are read when asked for.
func Open(fsys fs.FS) (*DB, error) {
	db := &DB{fsys: fsys}
	ents, err := fs.ReadDir(fsys, LocalDir)
	if err != nil {
		return nil, fmt.Errorf("read pacman database: %w", err)
	}
	for _, e := range ents {
		if !db.isDir(e) {
			continue // ALPM_DB_VERSION
		}
		file := LocalDir + "/" + e.Name() + "/desc"
		data, err := backends.ReadFile(fsys, file, maxDesc)
		if err != nil {
			return nil, fmt.Errorf("read pacman database: %w", err)
		}
		d, err := ParseDesc(data)
		if err != nil {
			return nil, &backends.CorruptError{File: db.host(file), Record: e.Name(), Err: err}
		}
		p, err := d.Package()
		if err != nil {
			return nil, &backends.CorruptError{File: db.host(file), Record: e.Name(), Err: err}
		}
		if p.ID != e.Name() {
			return nil, &backends.CorruptError{File: db.host(file), Record: e.Name(), Err: fmt.Errorf("describes %s, not the package its directory names", p.ID)}
		}
		db.pkgs = append(db.pkgs, p)
	}
	sort.Slice(db.pkgs, func(i, j int) bool { return db.pkgs[i].ID < db.pkgs[j].ID })
	for i := 1; i < len(db.pkgs); i++ {
		if db.pkgs[i].Name == db.pkgs[i-1].Name {
			return nil, &backends.CorruptError{File: db.host(LocalDir), Err: fmt.Errorf("%s installed twice (%s and %s)", db.pkgs[i].Name, db.pkgs[i-1].ID, db.pkgs[i].ID)}
		}
	}
	db.native = db.nativeArch()
	return db, nil
}

// maxConf bounds pacman.conf, a few KB.
const maxConf = 1 << 20

// nativeArch is the machine the packages were installed for: pacman.conf's
// Architecture when it names one (not "auto"), else the most common
// architecture of the installed packages other than "any" (ties: by
// name), else "" (only "any" packages).
func (db *DB) nativeArch() string {
	if data, err := backends.ReadFile(db.fsys, "etc/pacman.conf", maxConf); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(l, "=")
			if !ok || strings.TrimSpace(k) != "Architecture" {
				continue
			}
			// "Architecture = x86_64 x86_64_v3": the first is the machine.
			if f := strings.Fields(v); len(f) > 0 && f[0] != "auto" && validArch(f[0]) {
				return f[0]
			}
		}
	}
	count := map[string]int{}
	for _, p := range db.pkgs {
		if p.Arch != "" && p.Arch != "any" {
			count[p.Arch]++
		}
	}
	best := ""
	for a, n := range count {
		if best == "" || n > count[best] || n == count[best] && a < best {
			best = a
		}
	}
	return best
}

// isDir says whether a directory entry is a package's directory: pacman
// follows symlinks there (through fsys, they stay in the tree).
func (db *DB) isDir(e fs.DirEntry) bool {
	if e.Type()&fs.ModeSymlink == 0 {
		return e.IsDir()
	}
	fi, err := fs.Stat(db.fsys, LocalDir+"/"+e.Name())
	return err == nil && fi.IsDir()
}

func (db *DB) host(name string) string { return backends.HostPath(db.fsys, name) }

func (db *DB) Family() backends.Family         { return backends.Pacman }
func (db *DB) NativeArch() string              { return db.native }
func (db *DB) Packages() []*backends.Package   { return db.pkgs }
func (db *DB) CompareVersions(a, b string) int { return Vercmp(a, b) }

// DBFiles: the local directory, which changes whenever a package is
// installed, upgraded or removed (its NAME-VERSION directory comes and
// goes), and each package's desc and files (a reinstall rewrites them).
func (db *DB) DBFiles() []string {
	out := []string{filepath.FromSlash(LocalDir)}
	// IDs are names and versions that Open checked: one path component.
	for _, p := range db.pkgs {
		out = append(out, filepath.Join(filepath.FromSlash(LocalDir), p.ID, "desc"), filepath.Join(filepath.FromSlash(LocalDir), p.ID, "files"))
	}
	return out
}

// DBFiles are the files of the database in fsys, found by listing its
// directory without reading any file: the local directory and each
// package's desc and files.
func DBFiles(fsys fs.FS) []string {
	out := []string{filepath.FromSlash(LocalDir)}
	ents, err := fs.ReadDir(fsys, LocalDir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, filepath.Join(filepath.FromSlash(LocalDir), e.Name(), "desc"), filepath.Join(filepath.FromSlash(LocalDir), e.Name(), "files"))
		}
	}
	return out
}

// Desc is a parsed desc (or files) file: %SECTION% headers, each followed
// by its lines, up to an empty line.
type Desc map[string][]string

// maxDesc bounds what one desc file may hold.
const maxDesc = 64 << 20

// ParseDesc parses pacman's desc and files format.
func ParseDesc(data []byte) (Desc, error) {
	if len(data) > maxDesc {
		return nil, fmt.Errorf("%d bytes: too large", len(data))
	}
	if bytes.IndexByte(data, 0) >= 0 || !utf8.Valid(data) {
		return nil, errors.New("not a text file")
	}
	d := Desc{}
	section := ""
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		switch {
		case line == "":
			section = ""
		case section == "":
			if len(line) < 3 || line[0] != '%' || line[len(line)-1] != '%' {
				return nil, fmt.Errorf("line %d: %q is not a %%SECTION%% header", n+1, truncate(line))
			}
			section = line[1 : len(line)-1]
			if _, dup := d[section]; dup {
				return nil, fmt.Errorf("line %d: section %s twice", n+1, line)
			}
			d[section] = []string{}
		default:
			d[section] = append(d[section], line)
		}
	}
	return d, nil
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func (d Desc) one(section string) (string, error) {
	v := d[section]
	if len(v) != 1 || v[0] == "" {
		return "", fmt.Errorf("%%%s%%: want one value, have %d", section, len(v))
	}
	return v[0], nil
}

// Package builds the package a desc describes.
func (d Desc) Package() (*backends.Package, error) {
	name, err := d.one("NAME")
	if err != nil {
		return nil, err
	}
	version, err := d.one("VERSION")
	if err != nil {
		return nil, err
	}
	if !validName(name) {
		return nil, fmt.Errorf("bad package name %q", truncate(name))
	}
	if err := checkVersion(version); err != nil {
		return nil, fmt.Errorf("package %s: %w", name, err)
	}
	p := &backends.Package{Name: name, Version: version, ID: name + "-" + version, FullName: name + "-" + version}
	if a := d["ARCH"]; len(a) > 0 {
		if !validArch(a[0]) {
			return nil, fmt.Errorf("package %s: bad %%ARCH%% %q", name, truncate(a[0]))
		}
		p.Arch = a[0]
	}
	for _, s := range d["DEPENDS"] {
		dep, err := ParseDepend(s)
		if err != nil {
			return nil, fmt.Errorf("package %s: %%DEPENDS%%: %w", name, err)
		}
		p.Depends = append(p.Depends, dep)
	}
	for _, s := range d["PROVIDES"] {
		dep, err := ParseDepend(s)
		if err != nil {
			return nil, fmt.Errorf("package %s: %%PROVIDES%%: %w", name, err)
		}
		if dep.Rel != "" && dep.Rel != "=" {
			return nil, fmt.Errorf("package %s: %%PROVIDES%%: %q: only = may version a provision", name, s)
		}
		p.Provides = append(p.Provides, backends.Provide{Name: dep.Name, Rel: dep.Rel, Version: dep.Version})
	}
	return p, nil
}

func validName(s string) bool {
	if s == "" || s[0] == '-' || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("@._+-", c) >= 0) {
			return false
		}
	}
	return true
}

// ParseDepend parses "name", "name>=1.0", "name=1:2.0-1" (pacman's depend
// and provide strings; an optdepend's ": description" is cut).
func ParseDepend(s string) (backends.Dep, error) {
	i := strings.IndexAny(s, "<>=")
	name, rel, ver := s, "", ""
	if i >= 0 {
		name = s[:i]
		rest := s[i:]
		for _, r := range []string{"<=", ">=", "<", ">", "="} {
			if strings.HasPrefix(rest, r) {
				rel, ver = r, rest[len(r):]
				break
			}
		}
		if ver == "" {
			return backends.Dep{}, fmt.Errorf("%q: missing version", s)
		}
	}
	if name == "" || strings.ContainsAny(name, " \t") || strings.ContainsAny(ver, " \t<>=") {
		return backends.Dep{}, fmt.Errorf("%q: bad dependency", s)
	}
	return backends.Dep{Op: backends.Atom, Name: name, Rel: rel, Version: ver}, nil
}

func (db *DB) pkgFile(p *backends.Package, name string) string {
	return LocalDir + "/" + p.ID + "/" + name
}

// Files reads %FILES% (paths relative to the root, directories with a
// trailing "/") and marks the %BACKUP% ones as config files. pacman
// writes a files file for every package, an empty one for a meta
// package: a missing one is a damaged database, as a missing dpkg list.
func (db *DB) Files(p *backends.Package) ([]backends.File, error) {
	file := db.pkgFile(p, "files")
	data, err := backends.ReadFile(db.fsys, file, maxDesc)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &backends.CorruptError{File: db.host(file), Record: p.ID, Err: errors.New("missing file list of an installed package")}
	}
	if err != nil {
		return nil, fmt.Errorf("read pacman database: %w", err)
	}
	d, err := ParseDesc(data)
	if err != nil {
		return nil, &backends.CorruptError{File: db.host(file), Record: p.ID, Err: err}
	}
	backup := map[string]bool{}
	for _, b := range d["BACKUP"] {
		f, _, _ := strings.Cut(b, "\t")
		backup[path.Clean("/"+f)] = true
	}
	out := make([]backends.File, 0, len(d["FILES"]))
	for _, f := range d["FILES"] {
		if strings.HasPrefix(f, "/") || f == "" {
			return nil, &backends.CorruptError{File: db.host(file), Record: p.ID, Err: fmt.Errorf("%q is not a path relative to the root", truncate(f))}
		}
		// Made absolute before it is cleaned: ".." cannot leave the tree.
		pth := path.Clean("/" + f)
		if pth == "/" {
			continue
		}
		out = append(out, backends.File{Path: pth, Source: pth, Config: backup[pth]})
	}
	return out, nil
}

var postInstall = regexp.MustCompile(`(?m)^[ \t]*(function[ \t]+post_install\b|post_install[ \t]*\(\))`)

// Scripts returns post_install from the package's install file, run as
// pacman runs it: bash sources the whole file and calls
// "post_install VERSION".
func (db *DB) Scripts(p *backends.Package) (*backends.Scripts, error) {
	s := &backends.Scripts{}
	data, err := backends.ReadFile(db.fsys, db.pkgFile(p, "install"), maxInstall)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pacman database: %w", err)
	}
	if postInstall.Match(data) {
		s.List = append(s.List, backends.Script{
			Phase: backends.PostInstall, Name: "post_install", Interpreter: "/bin/bash",
			Function: "post_install", Args: []string{p.Version}, Body: data,
		})
	}
	return s, nil
}

// Install: pacman runs scripts in the transaction's order, with no
// environment of its own.
func (db *DB) Install(pkgs []*backends.Package, _ func(string) bool) (*backends.Install, error) {
	return &backends.Install{Order: pkgs}, nil
}
