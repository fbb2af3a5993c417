// Package backends defines what gosupermin needs from a package database:
// installed packages, their relations, files, config files and scripts.
//
// The dpkg, rpm and pacman subpackages implement DB by reading their
// database under a root directory in process, without subprocesses.
package backends

import (
	"fmt"
	"strings"
)

// DB is one package database read under a root directory.
type DB interface {
	// Family names the resolution semantics: "dpkg", "rpm" or "pacman".
	Family() string
	// Packages returns every installed package, sorted by ID.
	Packages() []*Package
	// NativeArch is the architecture the database was installed for
	// (dpkg's and rpm's host arch); "" when the family has none.
	NativeArch() string
	// CompareVersions orders two versions with the family's algorithm.
	CompareVersions(a, b string) int
	// Files lists what the package installed, as its database records it.
	Files(p *Package) ([]File, error)
	// Scripts returns the package's maintainer scripts and trigger interests.
	Scripts(p *Package) (*Scripts, error)
	// DBFiles are the database files whose change invalidates a build
	// (--if-newer), as paths under the root.
	DBFiles() []string
}

// FileOwners is implemented by databases whose relations may name files
// (rpm's "Requires: /bin/sh").
type FileOwners interface {
	Owners(path string) []*Package
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
	// executable file run directly (dpkg).
	Interpreter string
	// Args are the arguments the package manager gives on a fresh install.
	Args []string
	Body []byte
}

// Scripts is what a package runs at install time.
type Scripts struct {
	List []Script
	// TriggerInterests are the dpkg trigger names the package is
	// interested in (its postinst runs with "triggered NAMES").
	TriggerInterests []string
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
