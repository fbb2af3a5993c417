package rpm

import (
	"fmt"
	"strings"

	"github.com/gosupermin/gosupermin/backends"
)

// maxRichDepth bounds the nesting of a rich dependency.
const maxRichDepth = 64

// ParseRich parses an rpm rich (boolean) dependency, "(a >= 1 and (b or
// c))", into a backends.Dep tree. Operators: and, or, with, without
// (binary or chained with the same operator), if and unless with an
// optional else. Operands are capabilities with an optional relation, or
// nested rich dependencies; capability names may contain balanced
// parentheses ("perl(Foo::Bar)").
func ParseRich(s string) (backends.Dep, error) {
	p := &richParser{s: s}
	p.space()
	if !p.peek('(') {
		return backends.Dep{}, fmt.Errorf("rich dependency %q does not start with '('", s)
	}
	d, err := p.expr(0)
	if err != nil {
		return backends.Dep{}, fmt.Errorf("rich dependency %q: %w", s, err)
	}
	p.space()
	if p.i != len(p.s) {
		return backends.Dep{}, fmt.Errorf("rich dependency %q: trailing text at offset %d", s, p.i)
	}
	return d, nil
}

type richParser struct {
	s string
	i int
}

func (p *richParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *richParser) peek(c byte) bool { return p.i < len(p.s) && p.s[p.i] == c }

var richOps = map[string]backends.DepOp{
	"and": backends.And, "or": backends.Or, "with": backends.With,
	"without": backends.Without, "if": backends.If, "unless": backends.Unless,
}

// expr parses "( operand op operand ... )" at p.i, which is at '('.
func (p *richParser) expr(depth int) (backends.Dep, error) {
	if depth > maxRichDepth {
		return backends.Dep{}, fmt.Errorf("nested deeper than %d", maxRichDepth)
	}
	p.i++ // '('
	first, err := p.operand(depth)
	if err != nil {
		return backends.Dep{}, err
	}
	subs := []backends.Dep{first}
	var op backends.DepOp
	var opName string
	hasElse := false
	for {
		p.space()
		if p.peek(')') {
			p.i++
			break
		}
		start := p.i
		word := p.word()
		if word == "" {
			if p.i >= len(p.s) {
				return backends.Dep{}, fmt.Errorf("missing ')'")
			}
			return backends.Dep{}, fmt.Errorf("expected an operator at offset %d", start)
		}
		switch {
		case word == "else":
			if (op != backends.If && op != backends.Unless) || hasElse || len(subs) != 2 {
				return backends.Dep{}, fmt.Errorf("'else' without 'if' or 'unless' at offset %d", start)
			}
			hasElse = true
		case opName == "":
			o, ok := richOps[word]
			if !ok {
				return backends.Dep{}, fmt.Errorf("unknown operator %q at offset %d", word, start)
			}
			op, opName = o, word
		case word != opName:
			return backends.Dep{}, fmt.Errorf("operator %q after %q needs parentheses (offset %d)", word, opName, start)
		case op == backends.If || op == backends.Unless || op == backends.Without:
			return backends.Dep{}, fmt.Errorf("%q cannot be chained (offset %d)", word, start)
		}
		d, err := p.operand(depth)
		if err != nil {
			return backends.Dep{}, err
		}
		subs = append(subs, d)
	}
	if opName == "" {
		return first, nil // "(foo)": redundant parentheses
	}
	return backends.Dep{Op: op, Sub: subs}, nil
}

// word reads a run of letters.
func (p *richParser) word() string {
	start := p.i
	for p.i < len(p.s) && isAlpha(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// operand parses a nested expression or "name [rel version]".
func (p *richParser) operand(depth int) (backends.Dep, error) {
	p.space()
	if p.i >= len(p.s) {
		return backends.Dep{}, fmt.Errorf("missing operand at the end")
	}
	if p.peek('(') {
		return p.expr(depth + 1)
	}
	name, err := p.token(true)
	if err != nil {
		return backends.Dep{}, err
	}
	if _, isOp := richOps[name]; isOp || name == "else" {
		return backends.Dep{}, fmt.Errorf("operator %q where a capability was expected", name)
	}
	d := backends.Dep{Op: backends.Atom, Name: name}
	save := p.i
	p.space()
	rel := p.rel()
	if rel == "" {
		p.i = save
		return d, nil
	}
	p.space()
	v, err := p.token(false)
	if err != nil || v == "" {
		return backends.Dep{}, fmt.Errorf("%s %s: missing version", name, rel)
	}
	d.Rel, d.Version = rel, v
	return d, nil
}

func (p *richParser) rel() string {
	for _, r := range []string{"<=", ">=", "=<", "=>", "<", ">", "=="} {
		if strings.HasPrefix(p.s[p.i:], r) {
			p.i += len(r)
			switch r {
			case "=<":
				return "<="
			case "=>":
				return ">="
			case "==":
				return "="
			}
			return r
		}
	}
	if p.peek('=') {
		p.i++
		return "="
	}
	return ""
}

// token reads a capability name or version: up to white space or a ')'
// that closes nothing inside the token.
func (p *richParser) token(name bool) (string, error) {
	start, depth := p.i, 0
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == ' ' || c == '\t' || c == '\n' {
			break
		}
		if c == '(' {
			depth++
		} else if c == ')' {
			if depth == 0 {
				break
			}
			depth--
		} else if name && depth == 0 && (c == '<' || c == '>' || c == '=') {
			break
		}
		p.i++
	}
	if p.i == start {
		return "", fmt.Errorf("empty capability at offset %d", start)
	}
	return p.s[start:p.i], nil
}

// Dep turns one Requires entry into a backends.Dep: rich dependencies are
// parsed, "Requires(missingok)" becomes "x if x" (used when installed).
// A rich dependency rpm would not have accepted is kept as an atom named
// by its text, which nothing provides: the resolver warns about it.
func (c Capability) Dep() backends.Dep {
	if strings.HasPrefix(c.Name, "(") {
		if d, err := ParseRich(c.Name); err == nil {
			return d
		}
		return backends.Dep{Op: backends.Atom, Name: c.Name}
	}
	d := backends.Dep{Op: backends.Atom, Name: c.Name, Rel: senseRel(c.Flags)}
	if d.Rel != "" {
		d.Version = c.Version
	}
	if d.Rel != "" && d.Version == "" {
		d.Rel = ""
	}
	if c.Flags&senseMissingOK != 0 {
		return backends.Dep{Op: backends.If, Sub: []backends.Dep{d, d}}
	}
	return d
}

func senseRel(flags uint32) string {
	switch flags & (senseLess | senseGreater | senseEqual) {
	case senseLess:
		return "<"
	case senseLess | senseEqual:
		return "<="
	case senseEqual:
		return "="
	case senseGreater | senseEqual:
		return ">="
	case senseGreater:
		return ">"
	}
	return ""
}
