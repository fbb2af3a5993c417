package sbom

import (
	"reflect"
	"strings"
	"testing"
)

func TestExpression(t *testing.T) {
	for _, c := range []struct {
		declared, want string
		refs           map[string]string
	}{
		{"", "", nil},
		{"MIT", "MIT", nil},
		{"mit", "MIT", nil},
		{"GPL-2+", "GPL-2.0-or-later", nil},
		{"GPL-2", "GPL-2.0-only", nil},
		{"LGPL-2.1+", "LGPL-2.1-or-later", nil},
		{"GPLv3", "GPL-3.0-only", nil},
		{"GPL-2.0-or-later", "GPL-2.0-or-later", nil},
		{"GPL-2.0+", "GPL-2.0-or-later", nil},
		{"Expat", "MIT", nil},
		{"BSD-3-clause", "BSD-3-Clause", nil},
		{"OpenLDAP-2.8", "OLDAP-2.8", nil},
		{"GPL-1+ or Artistic", "GPL-1.0-or-later OR Artistic-1.0", nil},
		{"GPLv2+ and BSD", "GPL-2.0-or-later AND LicenseRef-BSD", map[string]string{"LicenseRef-BSD": "BSD"}},
		{"ASL 2.0 and MIT", "Apache-2.0 AND MIT", nil},
		{"(GPL-1+ or Artistic) AND Expat", "(GPL-1.0-or-later OR Artistic-1.0) AND MIT", nil},
		{"GPL-2.0-only WITH Linux-syscall-note", "GPL-2.0-only WITH Linux-syscall-note", nil},
		{"GPL-2+ with Autoconf exception", "GPL-2.0-or-later WITH Autoconf-exception-2.0", nil},
		{"GPL-3+ with Autoconf exception", "GPL-3.0-or-later WITH Autoconf-exception-3.0", nil},
		{"GPL-3+ with Bison exception", "GPL-3.0-or-later WITH Bison-exception-2.2", nil},
		{"GPL-2 with Linux-syscall-note exception", "GPL-2.0-only WITH Linux-syscall-note", nil},
		{"GPL-2+ with Autoconf-data exception", "LicenseRef-GPL-2-plus-with-Autoconf-data-exception",
			map[string]string{"LicenseRef-GPL-2-plus-with-Autoconf-data-exception": "GPL-2+ with Autoconf-data exception"}},
		{"GPL with Bison exception", "LicenseRef-GPL-with-Bison-exception",
			map[string]string{"LicenseRef-GPL-with-Bison-exception": "GPL with Bison exception"}},
		{strings.Repeat("Weird licence ", 10) + "or", "LicenseRef-Weird-licence-Weird-licence-Weird-licence-Weird-licence-45eec28d",
			map[string]string{"LicenseRef-Weird-licence-Weird-licence-Weird-licence-Weird-licence-45eec28d": strings.Repeat("Weird licence ", 10) + "or"}},
		{"public-domain", "LicenseRef-public-domain", map[string]string{"LicenseRef-public-domain": "public-domain"}},
		{"GPL", "LicenseRef-GPL", map[string]string{"LicenseRef-GPL": "GPL"}},
		{"GPL-2+ or Artistic, and BSD-3-clause", "(GPL-2.0-or-later OR Artistic-1.0) AND BSD-3-Clause", nil},
		{"MIT, Zlib", "MIT AND Zlib", nil},
		{"A or B, and C, or D", "((LicenseRef-A OR LicenseRef-B) AND LicenseRef-C) OR LicenseRef-D",
			map[string]string{"LicenseRef-A": "A", "LicenseRef-B": "B", "LicenseRef-C": "C", "LicenseRef-D": "D"}},
		// Not an expression: one reference to the whole.
		{"GPL or", "LicenseRef-GPL-or", map[string]string{"LicenseRef-GPL-or": "GPL or"}},
		{"(MIT", "LicenseRef-MIT", map[string]string{"LicenseRef-MIT": "(MIT"}},
		{"MIT)", "LicenseRef-MIT", map[string]string{"LicenseRef-MIT": "MIT)"}},
		{"with MIT", "LicenseRef-with-MIT", map[string]string{"LicenseRef-with-MIT": "with MIT"}},
		{"Foo, and GPL or", "LicenseRef-Foo-and-GPL-or", map[string]string{"LicenseRef-Foo-and-GPL-or": "Foo, and GPL or"}},
		{"+++", "LicenseRef-plus-plus-plus", map[string]string{"LicenseRef-plus-plus-plus": "+++"}},
	} {
		l := expression(c.declared)
		if c.refs == nil {
			c.refs = map[string]string{}
		}
		if l.expr != c.want || !reflect.DeepEqual(l.refs, c.refs) {
			t.Errorf("expression(%q) = %q %v, want %q %v", c.declared, l.expr, l.refs, c.want, c.refs)
		}
	}
}
