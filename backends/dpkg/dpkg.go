package dpkg

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/gosupermin/gosupermin/backends"
)

// AdminDir is dpkg's database directory, relative to the root.
const AdminDir = "var/lib/dpkg"

const (
	statusFile     = AdminDir + "/status"
	diversionsFile = AdminDir + "/diversions"
	archFile       = AdminDir + "/arch"
	infoDir        = AdminDir + "/info"
)

// Bounds on what one database file may hold, far above what real
// systems have (a 900-package system's status is 0.8 MB, its largest
// list 4 MB), so that a hostile tree cannot make us spend memory without
// limit.
const (
	maxStatus = 64 << 20
	maxList   = 64 << 20
	maxInfo   = 16 << 20 // scripts, templates, conffiles, triggers
	maxSmall  = 64 << 10 // arch
)

// Detect reports whether fsys holds a dpkg database.
func Detect(fsys fs.FS) bool {
	_, err := fs.Stat(fsys, statusFile)
	return err == nil
}

// DB is a dpkg database read through an fs.FS of the root.
type DB struct {
	fsys       fs.FS
	native     string
	pkgs       []*backends.Package // sorted by ID
	fileOrder  []*backends.Package // as the status file lists them
	extra      map[*backends.Package]*extra
	diversions map[string]diversion
	divOrder   []string // diverted paths, in the file's order
}

type extra struct {
	conffiles []string // from the status file, obsolete ones dropped
	stanza    string   // the status paragraph as written
}

type diversion struct{ to, by string }

var (
	_ backends.DB          = (*DB)(nil)
	_ backends.Installer   = (*DB)(nil)
	_ backends.ApplianceDB = (*DB)(nil)
)

// installedStates are the dpkg states in which a package's files are on disk.
var installedStates = map[string]bool{
	"installed": true, "triggers-awaited": true, "triggers-pending": true,
	"half-configured": true, "unpacked": true,
}

// Open reads the status file and diversions of fsys, whose names are
// paths under the root ("var/lib/dpkg/status"). File lists and scripts
// are read when asked for, through fsys too. Every field that becomes a
// file name or goes into the appliance's text files is checked here.
func Open(fsys fs.FS) (*DB, error) {
	db := &DB{fsys: fsys, extra: map[*backends.Package]*extra{}}
	statusHost := db.host(statusFile)
	data, err := backends.ReadFile(fsys, statusFile, maxStatus)
	if err != nil {
		return nil, fmt.Errorf("read dpkg database: %w", err)
	}
	paras, err := ParseParagraphs(data)
	if err != nil {
		return nil, &backends.CorruptError{File: statusHost, Err: err}
	}
	for _, para := range paras {
		p, ex, err := packageFrom(para)
		if err != nil {
			rec := fmt.Sprintf("paragraph at line %d", para.Line)
			if n := para.Get("Package"); validPackageName(n) {
				rec = fmt.Sprintf("package %s (line %d)", n, para.Line)
			}
			return nil, &backends.CorruptError{File: statusHost, Record: rec, Err: err}
		}
		if p == nil {
			continue
		}
		if p.Name == "dpkg" && db.native == "" {
			db.native = p.Arch
		}
		ex.stanza = para.Raw
		db.pkgs = append(db.pkgs, p)
		db.fileOrder = append(db.fileOrder, p)
		db.extra[p] = ex
	}
	if db.native == "" {
		if db.native, err = db.readNativeArch(); err != nil {
			return nil, err
		}
	}
	for _, p := range db.pkgs {
		if p.Arch == "all" || p.Arch == "" {
			// Arch: all packages behave as the native architecture in
			// relations.
			p.ID = p.Name + ":all"
		} else {
			p.ID = p.Name + ":" + p.Arch
		}
		p.FullName = p.Name + "_" + p.Version + "_" + p.Arch
	}
	sort.Slice(db.pkgs, func(i, j int) bool { return db.pkgs[i].ID < db.pkgs[j].ID })
	for i := 1; i < len(db.pkgs); i++ {
		if db.pkgs[i].ID == db.pkgs[i-1].ID {
			return nil, &backends.CorruptError{File: statusHost, Err: fmt.Errorf("package %s listed twice", db.pkgs[i].ID)}
		}
	}
	if db.diversions, db.divOrder, err = db.readDiversions(); err != nil {
		return nil, err
	}
	return db, nil
}

func (db *DB) host(name string) string { return backends.HostPath(db.fsys, name) }

func packageFrom(para Paragraph) (*backends.Package, *extra, error) {
	name := para.Get("Package")
	if name == "" {
		return nil, nil, errors.New("no Package field")
	}
	if !validPackageName(name) {
		return nil, nil, fmt.Errorf("bad package name %q", truncate(name))
	}
	// dpkg's C parser would end a field at a NUL byte, and the paragraph
	// is copied into the appliance's status file as it is.
	if i := strings.IndexByte(para.Raw, 0); i >= 0 {
		return nil, nil, fmt.Errorf("line %d: NUL byte", para.Line+strings.Count(para.Raw[:i], "\n"))
	}
	status := strings.Fields(para.Get("Status"))
	if len(status) != 3 {
		return nil, nil, fmt.Errorf("bad Status field %q", truncate(para.Get("Status")))
	}
	if !installedStates[status[2]] {
		return nil, nil, nil
	}
	p := &backends.Package{
		Name:      name,
		Version:   para.Get("Version"),
		Arch:      para.Get("Architecture"),
		MultiArch: para.Get("Multi-Arch"),
		Essential: para.Get("Essential") == "yes",
	}
	if p.Version == "" {
		return nil, nil, errors.New("installed package without a Version")
	}
	if err := checkVersion(p.Version); err != nil {
		return nil, nil, err
	}
	// An installed package without an Architecture comes from a database
	// older than multiarch; dpkg treats it as the native one.
	if p.Arch != "" && !validArch(p.Arch) {
		return nil, nil, fmt.Errorf("bad Architecture %q", truncate(p.Arch))
	}
	switch p.MultiArch {
	case "", "no", "same", "foreign", "allowed":
	default:
		return nil, nil, fmt.Errorf("bad Multi-Arch %q", truncate(p.MultiArch))
	}
	for _, field := range []string{"Pre-Depends", "Depends"} {
		deps, err := ParseRelations(para.Get(field))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", field, err)
		}
		p.Depends = append(p.Depends, deps...)
	}
	prov, err := ParseProvides(para.Get("Provides"))
	if err != nil {
		return nil, nil, fmt.Errorf("Provides: %w", err)
	}
	p.Provides = prov
	ex := &extra{}
	for _, line := range strings.Split(para.Get("Conffiles"), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if !strings.HasPrefix(f[0], "/") {
			return nil, nil, fmt.Errorf("Conffiles: %q is not an absolute path", truncate(f[0]))
		}
		obsolete := false
		for _, flag := range f[2:] {
			obsolete = obsolete || flag == "obsolete" || flag == "remove-on-upgrade"
		}
		if !obsolete {
			ex.conffiles = append(ex.conffiles, path.Clean(f[0]))
		}
	}
	return p, ex, nil
}

// readNativeArch falls back on the first line of dpkg's arch file, then on
// the architecture this program was built for.
func (db *DB) readNativeArch() (string, error) {
	data, err := backends.ReadFile(db.fsys, archFile, maxSmall)
	if err == nil {
		if f := strings.Fields(string(data)); len(f) > 0 {
			if !validArch(f[0]) {
				return "", &backends.CorruptError{File: db.host(archFile), Record: "line 1", Err: fmt.Errorf("bad architecture %q", truncate(f[0]))}
			}
			return f[0], nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read dpkg database: %w", err)
	}
	switch runtime.GOARCH {
	case "386":
		return "i386", nil
	case "arm":
		return "armhf", nil
	}
	return runtime.GOARCH, nil
}

func (db *DB) readDiversions() (map[string]diversion, []string, error) {
	data, err := backends.ReadFile(db.fsys, diversionsFile, maxStatus)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]diversion{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read dpkg database: %w", err)
	}
	divs, order, err := parseDiversions(data)
	if err != nil {
		var ce *backends.CorruptError
		if errors.As(err, &ce) {
			ce.File = db.host(diversionsFile)
			return nil, nil, ce
		}
		return nil, nil, &backends.CorruptError{File: db.host(diversionsFile), Err: err}
	}
	out := make(map[string]diversion, len(divs))
	for _, d := range divs {
		out[d.From] = diversion{to: d.To, by: d.By}
	}
	return out, order, nil
}

// diversionRecord is one record of dpkg's diversions file: the file
// packages install as From is put at To instead.
type diversionRecord struct {
	From, To string
	By       string // the diverting package, or ":" for a local diversion
}

// parseDiversions parses dpkg's diversions file: three lines a record
// (the diverted path, where it goes, the package). The paths come back
// clean, so that ".." cannot leave the tree; order is the diverted
// paths, each once, in the file's order. A bad record is a
// *backends.CorruptError whose File the caller fills.
func parseDiversions(data []byte) ([]diversionRecord, []string, error) {
	text := strings.TrimSuffix(string(data), "\n")
	if text == "" {
		return nil, nil, nil
	}
	lines := strings.Split(text, "\n")
	if len(lines)%3 != 0 {
		return nil, nil, fmt.Errorf("%d lines, not a multiple of 3 (from, to, package)", len(lines))
	}
	var out []diversionRecord
	var order []string
	seen := map[string]bool{}
	for i := 0; i < len(lines); i += 3 {
		from, to, by := lines[i], lines[i+1], lines[i+2]
		bad := !strings.HasPrefix(from, "/") || !strings.HasPrefix(to, "/") ||
			strings.ContainsRune(from+to, 0) || by != ":" && !validPackageName(by)
		if bad {
			return nil, nil, &backends.CorruptError{Record: fmt.Sprintf("line %d", i+1),
				Err: fmt.Errorf("bad diversion %q -> %q by %q", truncate(from), truncate(to), truncate(by))}
		}
		d := diversionRecord{From: path.Clean(from), To: path.Clean(to), By: by}
		if !seen[d.From] {
			seen[d.From] = true
			order = append(order, d.From)
		}
		out = append(out, d)
	}
	return out, order, nil
}

func (db *DB) Family() backends.Family         { return backends.Dpkg }
func (db *DB) NativeArch() string              { return db.native }
func (db *DB) Packages() []*backends.Package   { return db.pkgs }
func (db *DB) CompareVersions(a, b string) int { return CompareVersions(a, b) }

func (db *DB) DBFiles() []string { return DBFiles(db.fsys) }

// DBFiles are the files whose change means a change of the database in
// fsys, found without reading it: the status file, the diversions, and
// the info directory (a package installed or removed adds or removes
// files there).
func DBFiles(fs.FS) []string {
	return []string{
		filepath.FromSlash(statusFile),
		filepath.FromSlash(diversionsFile),
		filepath.FromSlash(infoDir),
	}
}

// infoFile reads info/NAME:ARCH.SUFFIX (Multi-Arch: same) or
// info/NAME.SUFFIX, and returns the name it read (or the unqualified one
// when neither exists, with an error wrapping fs.ErrNotExist).
func (db *DB) infoFile(p *backends.Package, suffix string, max int64) (string, []byte, error) {
	for _, base := range []string{p.Name + ":" + p.Arch, p.Name} {
		name := infoDir + "/" + base + "." + suffix
		data, err := backends.ReadFile(db.fsys, name, max)
		if err == nil {
			return name, data, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return name, nil, fmt.Errorf("read dpkg database: %w", err)
		}
	}
	return infoDir + "/" + p.Name + "." + suffix, nil, fs.ErrNotExist
}

// Files reads the package's .list, marks conffiles and applies diversions.
func (db *DB) Files(p *backends.Package) ([]backends.File, error) {
	listFile, data, err := db.infoFile(p, "list", maxList)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: missing file list of installed package %s", db.host(listFile), p.ID)
		}
		return nil, err
	}
	conf := map[string]bool{}
	for _, c := range db.extra[p].conffiles {
		conf[c] = true
	}
	_, cdata, err := db.infoFile(p, "conffiles", maxInfo)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, line := range strings.Split(string(cdata), "\n") {
		// "remove-on-upgrade /path" lines name files that are no longer
		// the package's.
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "/") {
			conf[path.Clean(line)] = true
		}
	}
	paths, err := parseList(data)
	if err != nil {
		var ce *backends.CorruptError
		if errors.As(err, &ce) {
			ce.File = db.host(listFile)
			return nil, ce
		}
		return nil, &backends.CorruptError{File: db.host(listFile), Err: err}
	}
	out := make([]backends.File, 0, len(paths))
	for _, p2 := range paths {
		f := backends.File{Path: p2, Source: p2, Config: conf[p2]}
		if d, ok := db.diversions[p2]; ok && d.by != p.Name {
			f.Source, f.DivertedBy = d.to, d.by
		}
		out = append(out, f)
	}
	return out, nil
}

// parseList reads a .list file: one absolute path a line. The paths come
// back clean, so that ".." cannot leave the tree, without the root
// itself. A bad line is a *backends.CorruptError whose File the caller
// fills.
func parseList(data []byte) ([]string, error) {
	var out []string
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 {
			continue
		}
		if line[0] != '/' || bytes.IndexByte(line, 0) >= 0 {
			return nil, &backends.CorruptError{Record: fmt.Sprintf("line %d", n), Err: fmt.Errorf("%q is not an absolute path", truncate(string(line)))}
		}
		if p := path.Clean(string(line)); p != "/" {
			out = append(out, p)
		}
	}
	return out, nil
}
