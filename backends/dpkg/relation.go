package dpkg

import (
	"fmt"
	"strings"

	"github.com/gosupermin/gosupermin/backends"
)

// ParseRelations parses a Depends-style field: "a, b (>= 1) | c:any".
// Architecture restrictions ("[amd64]") and build profiles ("<!nocheck>")
// do not occur in installed packages' fields and are ignored when present.
func ParseRelations(field string) ([]backends.Dep, error) {
	var out []backends.Dep
	for _, group := range strings.Split(field, ",") {
		if strings.TrimSpace(group) == "" {
			continue
		}
		var alts []backends.Dep
		for _, alt := range strings.Split(group, "|") {
			d, err := parseAtom(alt)
			if err != nil {
				return nil, err
			}
			alts = append(alts, d)
		}
		if len(alts) == 1 {
			out = append(out, alts[0])
		} else {
			out = append(out, backends.Dep{Op: backends.Or, Sub: alts})
		}
	}
	return out, nil
}

var relOps = []struct{ text, rel string }{
	{"<<", "<"}, {"<=", "<="}, {">>", ">"}, {">=", ">="}, {"=", "="}, {"<", "<="}, {">", ">="},
}

func parseAtom(s string) (backends.Dep, error) {
	orig := strings.TrimSpace(s)
	s = orig
	if i := strings.IndexAny(s, "[<"); i >= 0 && !strings.Contains(s[:i], "(") {
		s = strings.TrimSpace(s[:i])
	}
	d := backends.Dep{Op: backends.Atom}
	name := s
	if i := strings.IndexByte(s, '('); i >= 0 {
		name = strings.TrimSpace(s[:i])
		rest := s[i+1:]
		j := strings.IndexByte(rest, ')')
		if j < 0 {
			return d, fmt.Errorf("relation %q: missing )", orig)
		}
		cons := strings.TrimSpace(rest[:j])
		for _, op := range relOps {
			if strings.HasPrefix(cons, op.text) {
				d.Rel = op.rel
				d.Version = strings.TrimSpace(cons[len(op.text):])
				break
			}
		}
		if d.Rel == "" || d.Version == "" || strings.ContainsAny(d.Version, " \t") {
			return d, fmt.Errorf("relation %q: bad version constraint %q", orig, cons)
		}
	}
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name, d.Arch = name[:i], name[i+1:]
		if d.Arch == "" {
			return d, fmt.Errorf("relation %q: empty architecture qualifier", orig)
		}
	}
	if !validName(name) {
		return d, fmt.Errorf("relation %q: bad package name %q", orig, name)
	}
	d.Name = name
	return d, nil
}

// validName accepts what dpkg accepts in package names (lowercase
// alphanumerics and +-.), plus uppercase for old databases.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// ParseProvides parses a Provides field: "a, b (= 1.0)".
func ParseProvides(field string) ([]backends.Provide, error) {
	deps, err := ParseRelations(field)
	if err != nil {
		return nil, err
	}
	out := make([]backends.Provide, 0, len(deps))
	for _, d := range deps {
		if d.Op != backends.Atom {
			return nil, fmt.Errorf("provides %q: alternatives are not allowed", field)
		}
		out = append(out, backends.Provide{Name: d.Name, Rel: d.Rel, Version: d.Version})
	}
	return out, nil
}
