package dpkg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/gosupermin/gosupermin/backends"
)

// AdminDir is dpkg's database directory, relative to the root.
const AdminDir = "var/lib/dpkg"

// Detect reports whether root holds a dpkg database.
func Detect(root string) bool {
	_, err := os.Stat(filepath.Join(root, AdminDir, "status"))
	return err == nil
}

// DB is a dpkg database read under a root directory.
type DB struct {
	root       string
	admin      string
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

// Open reads the status file and diversions under root. File lists and
// scripts are read when asked for.
func Open(root string) (*DB, error) {
	db := &DB{root: root, admin: filepath.Join(root, AdminDir), extra: map[*backends.Package]*extra{}}
	statusPath := filepath.Join(db.admin, "status")
	data, err := os.ReadFile(statusPath)
	if err != nil {
		return nil, fmt.Errorf("read dpkg database: %w", err)
	}
	paras, err := ParseParagraphs(data)
	if err != nil {
		return nil, &backends.CorruptError{File: statusPath, Err: err}
	}
	for _, para := range paras {
		p, ex, err := packageFrom(para)
		if err != nil {
			rec := fmt.Sprintf("paragraph at line %d", para.Line)
			if n := para.Get("Package"); n != "" {
				rec = fmt.Sprintf("package %s (line %d)", n, para.Line)
			}
			return nil, &backends.CorruptError{File: statusPath, Record: rec, Err: err}
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
		db.native = readNativeArch(db.admin)
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
			return nil, &backends.CorruptError{File: statusPath, Err: fmt.Errorf("package %s listed twice", db.pkgs[i].ID)}
		}
	}
	if db.diversions, db.divOrder, err = readDiversions(filepath.Join(db.admin, "diversions")); err != nil {
		return nil, err
	}
	return db, nil
}

func packageFrom(para Paragraph) (*backends.Package, *extra, error) {
	name := para.Get("Package")
	if name == "" {
		return nil, nil, errors.New("no Package field")
	}
	if !validName(name) {
		return nil, nil, fmt.Errorf("bad package name %q", name)
	}
	status := strings.Fields(para.Get("Status"))
	if len(status) != 3 {
		return nil, nil, fmt.Errorf("bad Status field %q", para.Get("Status"))
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
func readNativeArch(admin string) string {
	if data, err := os.ReadFile(filepath.Join(admin, "arch")); err == nil {
		if f := strings.Fields(string(data)); len(f) > 0 {
			return f[0]
		}
	}
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "loong64":
		return "loong64"
	}
	return runtime.GOARCH
}

func readDiversions(file string) (map[string]diversion, []string, error) {
	out := map[string]diversion{}
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", file, err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return out, nil, nil
	}
	if len(lines)%3 != 0 {
		return nil, nil, &backends.CorruptError{File: file, Err: fmt.Errorf("%d lines, not a multiple of 3 (from, to, package)", len(lines))}
	}
	var order []string
	for i := 0; i < len(lines); i += 3 {
		from, to, by := lines[i], lines[i+1], lines[i+2]
		if !strings.HasPrefix(from, "/") || !strings.HasPrefix(to, "/") || by == "" {
			return nil, nil, &backends.CorruptError{File: file, Record: fmt.Sprintf("line %d", i+1), Err: fmt.Errorf("bad diversion %q -> %q by %q", from, to, by)}
		}
		out[path.Clean(from)] = diversion{to: path.Clean(to), by: by}
		order = append(order, path.Clean(from))
	}
	return out, order, nil
}

func (db *DB) Family() backends.Family         { return backends.Dpkg }
func (db *DB) NativeArch() string              { return db.native }
func (db *DB) Packages() []*backends.Package   { return db.pkgs }
func (db *DB) CompareVersions(a, b string) int { return CompareVersions(a, b) }

func (db *DB) DBFiles() []string {
	return []string{
		filepath.Join(AdminDir, "status"),
		filepath.Join(AdminDir, "diversions"),
		filepath.Join(AdminDir, "info"),
	}
}

// infoFile finds info/NAME:ARCH.SUFFIX (Multi-Arch: same) or info/NAME.SUFFIX.
func (db *DB) infoFile(p *backends.Package, suffix string) (string, []byte, error) {
	var first string
	for _, base := range []string{p.Name + ":" + p.Arch, p.Name} {
		f := filepath.Join(db.admin, "info", base+"."+suffix)
		if first == "" {
			first = f
		}
		data, err := os.ReadFile(f)
		if err == nil {
			return f, data, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return f, nil, fmt.Errorf("read %s: %w", f, err)
		}
	}
	return filepath.Join(db.admin, "info", p.Name+"."+suffix), nil, fs.ErrNotExist
}

// Files reads the package's .list, marks conffiles and applies diversions.
func (db *DB) Files(p *backends.Package) ([]backends.File, error) {
	listFile, data, err := db.infoFile(p, "list")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: missing file list of installed package %s", listFile, p.ID)
		}
		return nil, err
	}
	conf := map[string]bool{}
	for _, c := range db.extra[p].conffiles {
		conf[c] = true
	}
	if _, cdata, err := db.infoFile(p, "conffiles"); err == nil {
		for _, line := range strings.Split(string(cdata), "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "/") {
				conf[path.Clean(line)] = true
			}
		}
	}
	var out []backends.File
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line == "/." {
			continue
		}
		if !strings.HasPrefix(line, "/") {
			return nil, &backends.CorruptError{File: listFile, Record: fmt.Sprintf("line %d", n), Err: fmt.Errorf("%q is not an absolute path", truncate(line))}
		}
		p2 := path.Clean(line)
		f := backends.File{Path: p2, Source: p2, Config: conf[p2]}
		if d, ok := db.diversions[p2]; ok && d.by != p.Name {
			f.Source, f.DivertedBy = d.to, d.by
		}
		out = append(out, f)
	}
	if err := sc.Err(); err != nil {
		return nil, &backends.CorruptError{File: listFile, Err: err}
	}
	return out, nil
}
