package resolver

import "github.com/gosupermin/gosupermin/backends"

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
	if dep.Rel == "" {
		return true
	}
	return p.Rel == "=" && relHolds(d.db.CompareVersions(p.Version, dep.Version), dep.Rel)
}

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

// pacmanRules: one architecture; versioned relations need versioned provides.
type pacmanRules struct{ db backends.DB }

func (pacmanRules) archOK(*backends.Package, backends.Dep, *backends.Package) bool { return true }

func (p pacmanRules) provideOK(pr backends.Provide, dep backends.Dep) bool {
	if dep.Rel == "" {
		return true
	}
	return pr.Rel == "=" && relHolds(p.db.CompareVersions(pr.Version, dep.Version), dep.Rel)
}

func (pacmanRules) rank(*backends.Package, *backends.Package) int { return 0 }

// rpmRules: an unversioned Provides satisfies any versioned Requires; the
// host arch and noarch are preferred over other arches (multilib).
type rpmRules struct{ db backends.DB }

func (rpmRules) archOK(*backends.Package, backends.Dep, *backends.Package) bool { return true }

func (r rpmRules) provideOK(p backends.Provide, dep backends.Dep) bool {
	if dep.Rel == "" || p.Rel == "" {
		return true
	}
	if p.Rel != "=" {
		return true // a ranged Provides: rpm checks overlap; accept
	}
	return relHolds(r.db.CompareVersions(p.Version, dep.Version), dep.Rel)
}

func (r rpmRules) rank(from *backends.Package, cand *backends.Package) int {
	switch {
	case from != nil && cand.Arch == from.Arch && cand.Arch != "noarch":
		return 0
	case cand.Arch == r.db.NativeArch() || cand.Arch == "noarch":
		return 1
	}
	return 2
}
