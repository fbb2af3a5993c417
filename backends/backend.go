// Package backends defines what gosupermin needs from a package database:
// installed packages, their relations, files, config files and scripts.
//
// The dpkg, rpm and pacman subpackages implement DB by reading their
// database in process, without subprocesses, and only through the fs.FS
// they are given: internal/rootfs's view of the tree keeps every symlink
// inside it and opens nothing but regular files, so that a hostile tree
// cannot make them read the host's files or hang on a FIFO.
package backends

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// Family is a package manager's family: it decides how relations resolve.
type Family uint8

const (
	Dpkg   Family = iota + 1 // Debian and derivatives
	RPM                      // Fedora, RHEL, openSUSE...
	Pacman                   // Arch Linux
)

func (f Family) String() string {
	switch f {
	case Dpkg:
		return "dpkg"
	case RPM:
		return "rpm"
	case Pacman:
		return "pacman"
	}
	return fmt.Sprintf("Family(%d)", uint8(f))
}

// DB is one package database read under a root directory.
type DB interface {
	// Family names the resolution semantics.
	Family() Family
	// Packages returns every installed package, sorted by ID.
	Packages() []*Package
	// NativeArch is the architecture the database was installed for
	// (dpkg's and rpm's host arch); "" when the family has none.
	NativeArch() string
	// CompareVersions orders two versions with the family's algorithm.
	CompareVersions(a, b string) int
	// Files lists what the package installed, as its database records it.
	Files(p *Package) ([]File, error)
	// DBFiles are the database files whose change invalidates a build
	// (--if-newer), as paths under the root.
	DBFiles() []string
}

// FileOwners is implemented by databases whose relations may name files
// (rpm's "Requires: /bin/sh").
type FileOwners interface {
	Owners(path string) []*Package
}

// Installer is implemented by databases whose packages have maintainer
// scripts: it says how the family's package manager runs them when it
// installs a set of packages afresh.
type Installer interface {
	// Scripts returns p's scripts as a fresh install runs them.
	Scripts(p *Package) (*Scripts, error)
	// Install describes the installation of pkgs, given in dependency
	// order; active says whether the appliance activates a trigger (a
	// file trigger is activated by a file under its path).
	Install(pkgs []*Package, active func(trigger string) bool) (*Install, error)
}

// ApplianceDB is implemented by databases that the appliance's own
// package tools and scripts read: which of their files a set of packages
// needs in the appliance (dpkg's status, file lists, diversions).
type ApplianceDB interface {
	ApplianceFiles(pkgs []*Package) ([]DBFile, error)
}

// DBFile is a file or directory of the package database in the appliance.
type DBFile struct {
	Path string // in the appliance
	Dir  bool
	// Data is the content of a file made for the appliance (a status file
	// with only the appliance's packages); when nil, the file at Path in
	// the tree is copied as it is.
	Data []byte
}

// Package is one installed package.
type Package struct {
	Name    string
	Version string // full version as the family compares it (epoch included)
	Arch    string
	// MultiArch is dpkg's Multi-Arch field: "", "same", "foreign", "allowed".
	MultiArch string
	// Depends must all hold for the package to work (dpkg Depends and
	// Pre-Depends, rpm Requires, pacman depends), in declaration order.
	Depends  []Dep
	Provides []Provide
	// Essential packages are implicit dependencies of every other
	// (dpkg's "Essential: yes"): maintainer scripts take them for granted.
	Essential bool
	// ID is unique in its database and names the package in lists and
	// messages: dpkg "name:arch", rpm NEVRA, pacman "name-version".
	ID string
	// FullName is the name supermin writes in /packagelist.
	FullName string
}

func (p *Package) String() string { return p.ID }

// DepOp says how a Dep combines its parts.
type DepOp uint8

const (
	Atom    DepOp = iota // a capability: Name, Arch, Rel, Version
	Or                   // any of Sub (dpkg "a | b", rpm "or")
	And                  // all of Sub
	If                   // Sub[0] if Sub[1] holds, else Sub[2] when present
	Unless               // Sub[0] unless Sub[1] holds, else Sub[2] when present
	With                 // one package satisfying every Sub
	Without              // a package satisfying Sub[0] but not Sub[1]
)

// Dep is one relation, possibly compound (rpm rich dependencies).
type Dep struct {
	Op DepOp
	// Atom fields.
	Name    string // package, virtual capability, or file path
	Arch    string // dpkg qualifier: "", "any", "native" or an arch name
	Rel     string // "", "<", "<=", "=", ">=", ">"
	Version string
	Sub     []Dep
}

func (d Dep) String() string {
	switch d.Op {
	case Atom:
		s := d.Name
		if d.Arch != "" {
			s += ":" + d.Arch
		}
		if d.Rel != "" {
			s += " (" + d.Rel + " " + d.Version + ")"
		}
		return s
	case Or:
		return joinDeps(d.Sub, " | ")
	}
	names := [...]string{And: "and", If: "if", Unless: "unless", With: "with", Without: "without"}
	return "(" + joinDeps(d.Sub, " "+names[d.Op]+" ") + ")"
}

func joinDeps(ds []Dep, sep string) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, sep)
}

// Provide is a capability a package offers besides its own name.
type Provide struct {
	Name    string
	Rel     string // "" or "=" (rpm allows others; they are kept)
	Version string
}

// File is one path a package installed.
type File struct {
	// Path is where the package put the file, as its list records it.
	Path string
	// Source is where the file is on disk, relative to the root: Path,
	// unless a diversion moved it.
	Source string
	// DivertedBy names the package that diverted Path to Source
	// ("" when not diverted, ":" for a local diversion).
	DivertedBy string
	Config     bool // dpkg conffile, rpm %config, pacman backup
	Ghost      bool // rpm %ghost: may legitimately be missing
}

// ScriptPhase says when a maintainer script runs during an installation.
type ScriptPhase uint8

const (
	PreInstall ScriptPhase = iota
	PostInstall
	PostTransaction
)

// Script is one maintainer script of a package.
type Script struct {
	Phase ScriptPhase
	// Name is the script's own name: "preinst", "%post", "post_install".
	Name string
	// Interpreter runs Body ("/bin/sh", "<lua>"); empty when Body is an
	// executable file run directly (dpkg). A name in angle brackets is an
	// interpreter that exists only inside the package manager.
	Interpreter string
	// Function, when set, names a shell function that the runner calls
	// with Args after Interpreter has sourced Body (pacman's .install).
	Function string
	// Args are the arguments the package manager gives on a fresh install.
	Args []string
	// Env are variables the package manager sets for this script.
	Env  [][2]string
	Body []byte
}

// Scripts is what a package runs at install time.
type Scripts struct {
	List []Script
	// Extra are files that must be saved beside the scripts, as
	// NAME.SUFFIX (debconf loads a package's config script and templates
	// from beside its postinst).
	Extra []ExtraFile
}

// ExtraFile is a file saved beside a package's scripts.
type ExtraFile struct {
	Suffix string
	Mode   uint32
	Data   []byte
}

// Install is what is common to every script of one installation.
type Install struct {
	// Order is the packages in the order the package manager would
	// install them (dpkg installs base-passwd first, as debootstrap does).
	Order []*Package
	// Env are variables set for every script.
	Env [][2]string
	// NoServices says that scripts must not start services while they
	// run (Debian's invoke-rc.d asks /usr/sbin/policy-rc.d).
	NoServices bool
	// Triggers are the scripts run once after every package was
	// installed: dpkg's "postinst triggered NAMES".
	Triggers []Trigger
}

// Trigger is one run of a package's script for the triggers it is
// interested in.
type Trigger struct {
	Package *Package
	Script  string // the name of one of the package's Scripts
	Args    []string
	Env     [][2]string
}

// CorruptError reports a database record that cannot be parsed.
type CorruptError struct {
	File   string // the database file, as a path on the host
	Record string // the paragraph, header or entry, when known
	Err    error
}

func (e *CorruptError) Error() string {
	if e.Record != "" {
		return fmt.Sprintf("%s: %s: %v", e.File, e.Record, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// HostPath is where name, a path of fsys, is on the host, for messages:
// fsys's own answer when it has one (internal/rootfs's view has), else
// name itself.
func HostPath(fsys fs.FS, name string) string {
	if h, ok := fsys.(interface{ HostPath(string) string }); ok {
		return h.HostPath(name)
	}
	return name
}

// ErrTooLarge is wrapped by ReadFile's error for a file over its limit.
var ErrTooLarge = errors.New("file too large")

// ErrNotRegular is wrapped by ReadFile's error for a name that is not a
// regular file.
var ErrNotRegular = errors.New("not a regular file")

// ReadFile reads the regular file name of fsys, whose size the caller
// bounds: a database file over max bytes is an error, not memory spent.
// Errors are *fs.PathError naming the host path.
func ReadFile(fsys fs.FS, name string, max int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pathErr := func(err error) error { return &fs.PathError{Op: "read", Path: HostPath(fsys, name), Err: err} }
	fi, err := f.Stat()
	if err != nil {
		return nil, pathErr(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, pathErr(ErrNotRegular)
	}
	if fi.Size() > max {
		return nil, pathErr(fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, fi.Size(), max))
	}
	// One byte more than the size, so that the end is seen without a
	// second buffer; the file may also have grown since Stat.
	data := make([]byte, 0, fi.Size()+1)
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return nil, pathErr(err)
		}
		if int64(len(data)) > max {
			return nil, pathErr(fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max))
		}
		if len(data) == cap(data) {
			data = slices.Grow(data, 64<<10)
		}
	}
}
