// Package resolver turns package roots into a deterministic dependency
// closure, with each package family's own relation semantics.
package resolver

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gosupermin/gosupermin/backends"
)

// Closure is the result of a resolution.
type Closure struct {
	// Packages in dependency order: each after the packages it depends
	// on, cycles broken deterministically (depth-first, roots sorted,
	// relations in declaration order).
	Packages []*backends.Package
	// Deps are the packages chosen for each package's relations.
	Deps map[*backends.Package][]*backends.Package
	// Missing are roots that are not installed.
	Missing []string
}

// Warn receives messages about the host's database that do not stop a build.
type Warn func(msg string)

// rules are what differs between families.
type rules interface {
	// archOK says whether cand may satisfy dep of from (nil for a root).
	archOK(from *backends.Package, dep backends.Dep, cand *backends.Package) bool
	// provideOK says whether a Provide satisfies a (possibly versioned) dep.
	provideOK(p backends.Provide, dep backends.Dep) bool
	// rank orders candidates: lower first (after those already chosen).
	rank(from *backends.Package, cand *backends.Package) int
	// root turns a root as the user wrote it into a relation.
	root(name string) backends.Dep
}

type resolver struct {
	db       backends.DB
	rules    rules
	byName   map[string][]*backends.Package
	provides map[string][]provider
	owners   backends.FileOwners
	warn     Warn
	chosen   map[*backends.Package]bool
	state    map[*backends.Package]uint8 // 1 visiting, 2 done
	out      *Closure
	warned   map[string]bool
}

type provider struct {
	pkg *backends.Package
	p   backends.Provide
}

// Resolve computes the closure of roots in db. Roots may carry a dpkg
// architecture ("libc6:amd64"). Unsatisfiable relations are warned about
// and skipped: the host's database is what it is, and a build must go on.
func Resolve(db backends.DB, roots []string, warn Warn) (*Closure, error) {
	if warn == nil {
		warn = func(string) {}
	}
	r := &resolver{
		db: db, warn: warn,
		byName:   map[string][]*backends.Package{},
		provides: map[string][]provider{},
		chosen:   map[*backends.Package]bool{},
		state:    map[*backends.Package]uint8{},
		out:      &Closure{Deps: map[*backends.Package][]*backends.Package{}},
		warned:   map[string]bool{},
	}
	switch db.Family() {
	case backends.Dpkg:
		r.rules = dpkgRules{db}
	case backends.RPM:
		r.rules = newRPMRules(db)
	case backends.Pacman:
		r.rules = pacmanRules{db}
	default:
		return nil, fmt.Errorf("resolver: unknown package family %v", db.Family())
	}
	r.owners, _ = db.(backends.FileOwners)
	for _, p := range db.Packages() {
		r.byName[p.Name] = append(r.byName[p.Name], p)
		for _, pr := range p.Provides {
			r.provides[pr.Name] = append(r.provides[pr.Name], provider{p, pr})
		}
	}
	sorted := append([]string(nil), roots...)
	sort.Strings(sorted)
	var prev string
	for i, root := range sorted {
		if i > 0 && root == prev {
			continue
		}
		prev = root
		p := r.root(root)
		if p == nil {
			r.out.Missing = append(r.out.Missing, root)
			continue
		}
		r.visit(p)
	}
	return r.out, nil
}

func (r *resolver) root(name string) *backends.Package {
	dep := r.rules.root(name)
	return r.pick(nil, dep, r.satisfiers(nil, dep, true))
}

func (r *resolver) visit(p *backends.Package) {
	if r.state[p] != 0 {
		return
	}
	r.state[p] = 1
	r.chosen[p] = true
	var deps []*backends.Package
	seen := map[*backends.Package]bool{}
	for _, d := range p.Depends {
		for _, c := range r.eval(p, d) {
			if c != p && !seen[c] {
				seen[c] = true
				deps = append(deps, c)
				r.chosen[c] = true
			}
		}
		for _, c := range deps {
			r.visit(c)
		}
	}
	r.out.Deps[p] = deps
	r.state[p] = 2
	r.out.Packages = append(r.out.Packages, p)
}

// eval chooses the packages that satisfy d for from.
func (r *resolver) eval(from *backends.Package, d backends.Dep) []*backends.Package {
	switch d.Op {
	case backends.Atom:
		if isRPMLib(d.Name) {
			return nil
		}
		if c := r.pick(from, d, r.satisfiers(from, d, true)); c != nil {
			return []*backends.Package{c}
		}
		if c := r.pick(from, d, r.satisfiers(from, d, false)); c != nil {
			r.warnOnce(fmt.Sprintf("%s requires %s, but %s %s is installed: using it", from.ID, d, c.Name, c.Version))
			return []*backends.Package{c}
		}
		r.warnOnce(fmt.Sprintf("%s requires %s, which is not installed", from.ID, d))
		return nil
	case backends.Or:
		for _, alt := range d.Sub {
			if r.holds(from, alt, true) {
				return r.eval(from, alt)
			}
		}
		for _, alt := range d.Sub {
			if r.holds(from, alt, false) {
				return r.eval(from, alt)
			}
		}
		r.warnOnce(fmt.Sprintf("%s requires %s: no alternative is installed", from.ID, d))
		return nil
	case backends.And:
		var out []*backends.Package
		for _, s := range d.Sub {
			out = append(out, r.eval(from, s)...)
		}
		return out
	case backends.If, backends.Unless:
		if len(d.Sub) < 2 {
			return nil
		}
		cond := r.holds(from, d.Sub[1], true)
		if d.Op == backends.Unless {
			cond = !cond
		}
		if cond {
			return r.eval(from, d.Sub[0])
		}
		if len(d.Sub) > 2 {
			return r.eval(from, d.Sub[2])
		}
		return nil
	case backends.With, backends.Without:
		if c := r.pick(from, d, r.compound(from, d)); c != nil {
			return []*backends.Package{c}
		}
		r.warnOnce(fmt.Sprintf("%s requires %s, which no installed package satisfies", from.ID, d))
		return nil
	}
	return nil
}

// holds says whether some installed package satisfies d.
func (r *resolver) holds(from *backends.Package, d backends.Dep, strict bool) bool {
	switch d.Op {
	case backends.Atom:
		return isRPMLib(d.Name) || len(r.satisfiers(from, d, strict)) > 0
	case backends.Or:
		for _, s := range d.Sub {
			if r.holds(from, s, strict) {
				return true
			}
		}
		return false
	case backends.And:
		for _, s := range d.Sub {
			if !r.holds(from, s, strict) {
				return false
			}
		}
		return true
	case backends.If, backends.Unless:
		if len(d.Sub) < 2 {
			return true
		}
		cond := r.holds(from, d.Sub[1], strict)
		if d.Op == backends.Unless {
			cond = !cond
		}
		if cond {
			return r.holds(from, d.Sub[0], strict)
		}
		return len(d.Sub) < 3 || r.holds(from, d.Sub[2], strict)
	case backends.With, backends.Without:
		return len(r.compound(from, d)) > 0
	}
	return false
}

// compound finds packages satisfying every part of a "with" (or the first
// but not the second part of a "without").
func (r *resolver) compound(from *backends.Package, d backends.Dep) []*backends.Package {
	if len(d.Sub) < 2 || d.Sub[0].Op != backends.Atom {
		return nil
	}
	var out []*backends.Package
	for _, c := range r.satisfiers(from, d.Sub[0], true) {
		ok := true
		for i, s := range d.Sub[1:] {
			in := r.satisfiedBy(from, s, c)
			if d.Op == backends.Without && i == 0 {
				in = !in
			}
			ok = ok && in
		}
		if ok {
			out = append(out, c)
		}
	}
	return out
}

func (r *resolver) satisfiedBy(from *backends.Package, d backends.Dep, c *backends.Package) bool {
	if d.Op != backends.Atom {
		return false
	}
	for _, s := range r.satisfiers(from, d, true) {
		if s == c {
			return true
		}
	}
	return false
}

// satisfiers lists installed packages that satisfy an atom: by name, by
// Provides, or by owning the file it names. With strict false, versions
// are not checked.
func (r *resolver) satisfiers(from *backends.Package, d backends.Dep, strict bool) []*backends.Package {
	var out []*backends.Package
	seen := map[*backends.Package]bool{}
	add := func(p *backends.Package) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, p := range r.byName[d.Name] {
		if r.rules.archOK(from, d, p) && (!strict || r.versionOK(p.Version, d)) {
			add(p)
		}
	}
	for _, pr := range r.provides[d.Name] {
		if r.rules.archOK(from, d, pr.pkg) && (!strict || r.rules.provideOK(pr.p, d)) {
			add(pr.pkg)
		}
	}
	if strings.HasPrefix(d.Name, "/") && r.owners != nil {
		for _, p := range r.owners.Owners(d.Name) {
			add(p)
		}
	}
	return out
}

func (r *resolver) versionOK(have string, d backends.Dep) bool {
	if d.Rel == "" {
		return true
	}
	return relHolds(r.db.CompareVersions(have, d.Version), d.Rel)
}

func relHolds(c int, rel string) bool {
	switch rel {
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case "=":
		return c == 0
	case ">=":
		return c >= 0
	case ">":
		return c > 0
	}
	return false
}

// pick chooses one candidate: one already in the closure, else the best
// ranked, ties broken by ID.
func (r *resolver) pick(from *backends.Package, d backends.Dep, cands []*backends.Package) *backends.Package {
	if len(cands) == 0 {
		return nil
	}
	best := cands[0]
	key := func(p *backends.Package) (int, int, string) {
		in := 1
		if r.chosen[p] {
			in = 0
		}
		real := 1
		if p.Name == d.Name {
			real = 0
		}
		return in, real*1000 + r.rules.rank(from, p), p.ID
	}
	bi, br, bid := key(best)
	for _, c := range cands[1:] {
		ci, cr, cid := key(c)
		if ci < bi || ci == bi && (cr < br || cr == br && cid < bid) {
			best, bi, br, bid = c, ci, cr, cid
		}
	}
	return best
}

func (r *resolver) warnOnce(msg string) {
	if !r.warned[msg] {
		r.warned[msg] = true
		r.warn(msg)
	}
}

// isRPMLib: rpmlib() capabilities describe rpm itself, which the appliance
// does not contain.
func isRPMLib(name string) bool { return strings.HasPrefix(name, "rpmlib(") }
