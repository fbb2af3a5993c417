package resolver

import (
	"strings"

	"github.com/gosupermin/gosupermin/backends"
)

// dpkgRules follow Debian policy and the Multi-Arch specification.
type dpkgRules struct{ db backends.DB }

func (d dpkgRules) arch(p *backends.Package) string {
	if p == nil || p.Arch == "all" || p.Arch == "" {
		return d.db.NativeArch()
	}
	return p.Arch
}

func (d dpkgRules) archOK(from *backends.Package, dep backends.Dep, cand *backends.Package) bool {
	native := d.db.NativeArch()
	switch dep.Arch {
	case "":
		if from == nil {
			return true // a root without qualifier: any installed arch
		}
		return cand.Arch == "all" || cand.MultiArch == "foreign" || d.arch(cand) == d.arch(from)
	case "any":
		return cand.Arch == "all" || cand.MultiArch == "allowed" || cand.MultiArch == "foreign" ||
			from == nil || d.arch(cand) == d.arch(from)
	case "native":
		return cand.Arch == "all" || cand.Arch == native || cand.MultiArch == "foreign"
	}
	return cand.Arch == dep.Arch || dep.Arch == native && cand.Arch == "all"
}

// provideOK: an unversioned Provides never satisfies a versioned relation.
func (d dpkgRules) provideOK(p backends.Provide, dep backends.Dep) bool {
	return exactProvideOK(d.db, p, dep)
}

// root: "libc6:amd64" names an architecture.
func (dpkgRules) root(name string) backends.Dep {
	dep := backends.Dep{Op: backends.Atom, Name: name}
	if i := strings.IndexByte(name, ':'); i > 0 {
		dep.Name, dep.Arch = name[:i], name[i+1:]
	}
	return dep
}

// exactProvideOK is dpkg's and pacman's rule: a versioned relation is
// satisfied only by a provision of exactly one version ("= V") that
// satisfies it; an unversioned provision satisfies unversioned relations.
func exactProvideOK(db backends.DB, p backends.Provide, dep backends.Dep) bool {
	if dep.Rel == "" {
		return true
	}
	return p.Rel == "=" && relHolds(db.CompareVersions(p.Version, dep.Version), dep.Rel)
}

// plainRoot: a root is a name, as written.
func plainRoot(name string) backends.Dep { return backends.Dep{Op: backends.Atom, Name: name} }

// rank prefers the dependent's architecture, then the native one.
func (d dpkgRules) rank(from *backends.Package, cand *backends.Package) int {
	switch a := d.arch(cand); {
	case from != nil && a == d.arch(from):
		return 0
	case a == d.db.NativeArch():
		return 1
	}
	return 2
}

// pacmanRules: one architecture; a versioned depend is satisfied only by
// the package itself or a versioned provision (pacman's alpm_depcmp: an
// unversioned provision satisfies unversioned depends only).
type pacmanRules struct{ db backends.DB }

func (pacmanRules) archOK(*backends.Package, backends.Dep, *backends.Package) bool { return true }

func (p pacmanRules) provideOK(pr backends.Provide, dep backends.Dep) bool {
	return exactProvideOK(p.db, pr, dep)
}

func (pacmanRules) root(name string) backends.Dep { return plainRoot(name) }

// rank: pacman installs one version of a name; candidates differ only by
// name, and the resolver's order (the package named, then by ID) decides.
func (pacmanRules) rank(*backends.Package, *backends.Package) int { return 0 }

// rpmRules follow rpm's dependency semantics: a Requires and a Provides
// match when their version ranges overlap (an unversioned side matches
// anything); among candidates, the dependent's arch, then the host arch
// or noarch, then other arches (multilib), and for one name installed in
// several versions (kernels), the newest.
type rpmRules struct {
	db backends.DB
	// newer counts, per package, the installed packages of the same name
	// and arch with a higher version.
	newer map[*backends.Package]int
}

func newRPMRules(db backends.DB) rpmRules {
	r := rpmRules{db: db, newer: map[*backends.Package]int{}}
	byName := map[string][]*backends.Package{}
	for _, p := range db.Packages() {
		byName[p.Name+"."+p.Arch] = append(byName[p.Name+"."+p.Arch], p)
	}
	for _, ps := range byName {
		for _, p := range ps {
			for _, q := range ps {
				if db.CompareVersions(q.Version, p.Version) > 0 {
					r.newer[p]++
				}
			}
		}
	}
	return r
}

func (rpmRules) archOK(*backends.Package, backends.Dep, *backends.Package) bool { return true }

func (rpmRules) root(name string) backends.Dep { return plainRoot(name) }

func (r rpmRules) provideOK(p backends.Provide, dep backends.Dep) bool {
	return rpmOverlap(r.db.CompareVersions, p.Rel, p.Version, dep.Rel, dep.Version)
}

// rpmOverlap says whether the ranges "A relA verA" and "B relB verB"
// intersect, as rpm's rpmdsCompare decides.
func rpmOverlap(cmp func(a, b string) int, relA, verA, relB, verB string) bool {
	if relA == "" || relB == "" || verA == "" || verB == "" {
		return true
	}
	has := func(rel string, c byte) bool { return strings.IndexByte(rel, c) >= 0 }
	switch sense := cmp(verA, verB); {
	case sense < 0:
		return has(relA, '>') || has(relB, '<')
	case sense > 0:
		return has(relA, '<') || has(relB, '>')
	default:
		return has(relA, '=') && has(relB, '=') || has(relA, '<') && has(relB, '<') || has(relA, '>') && has(relB, '>')
	}
}

func (r rpmRules) rank(from *backends.Package, cand *backends.Package) int {
	arch := 2
	switch {
	case from != nil && cand.Arch == from.Arch && cand.Arch != "noarch":
		arch = 0
	case cand.Arch == r.db.NativeArch() || cand.Arch == "noarch":
		arch = 1
	}
	return arch*100 + min(r.newer[cand], 99)
}
