package rpm

import (
	"strings"
	"testing"
)

func TestParseRich(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"(a and b)", "(a and b)"},
		{"(a or b or c)", "a | b | c"},
		{"(foo >= 1.0 and bar)", "(foo (>= 1.0) and bar)"},
		{"(foo>=1.0 and bar<2)", "(foo (>= 1.0) and bar (< 2))"},
		{"(a if b)", "(a if b)"},
		{"(a if b else c)", "(a if b if c)"},
		{"(a unless b else c)", "(a unless b unless c)"},
		{"(a with b)", "(a with b)"},
		{"(a without b)", "(a without b)"},
		{"((a or b) and (c if d))", "(a | b and (c if d))"},
		{"(perl(Foo::Bar) >= 1:2.0-3 or python3dist(x))", "perl(Foo::Bar) (>= 1:2.0-3) | python3dist(x)"},
		{"(libc.so.6()(64bit) and /bin/sh)", "(libc.so.6()(64bit) and /bin/sh)"},
		{"( a  and  ( b or c ) )", "(a and b | c)"},
		{"(a = 1 and b == 2 and c =< 3)", "(a (= 1) and b (= 2) and c (<= 3))"},
		{"(foo)", "foo"},
	} {
		d, err := ParseRich(c.in)
		if err != nil {
			t.Errorf("ParseRich(%q): %v", c.in, err)
			continue
		}
		if d.String() != c.want {
			t.Errorf("ParseRich(%q) = %s, want %s", c.in, d, c.want)
		}
	}
	for _, bad := range []string{
		"", "a and b", "(a and b", "(a and b))", "(a and b or c)", "(a if b if c)",
		"(a else b)", "(a and)", "(and a)", "(a >= )", "(a foo b)", "()", "(a if b else c else d)",
		"(a without b without c)", "(a and b) x", strings.Repeat("(", 100) + "a" + strings.Repeat(")", 100),
	} {
		if d, err := ParseRich(bad); err == nil {
			t.Errorf("ParseRich(%q) = %s, want an error", bad, d)
		}
	}
}

// A rich dependency rpm would reject stays an atom nobody provides.
func TestCapabilityDep(t *testing.T) {
	if d := (Capability{Name: "(a and b or c)"}).Dep(); d.Name != "(a and b or c)" || d.Op != 0 {
		t.Errorf("bad rich dep: %+v", d)
	}
	if d := (Capability{Name: "x", Flags: senseMissingOK | senseGreater, Version: "2"}).Dep(); d.String() != "(x (> 2) if x (> 2))" {
		t.Errorf("missingok: %s", d)
	}
	if d := (Capability{Name: "x", Flags: senseLess | senseEqual, Version: "2"}).Dep(); d.String() != "x (<= 2)" {
		t.Errorf("versioned: %s", d)
	}
}

func FuzzParseRich(f *testing.F) {
	for _, s := range []string{"(a and b)", "((a or b) if c else (d with e))", "(perl(X) >= 1 unless y)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseRich(s)
		if err == nil {
			_ = d.String()
		}
	})
}
