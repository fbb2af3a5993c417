package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// licenseIDs are SPDX licence identifiers (https://spdx.org/licenses/)
// that distributions' packages declare, by lower-case name: a declared
// name matching one (in any case) is that licence. The list is not the
// whole SPDX list (each was checked against Debian's
// node-spdx-license-ids and node-spdx-exceptions); a name not in it
// becomes a LicenseRef, which is always valid SPDX and keeps the
// declared name.
var licenseIDs = index(
	"0BSD", "AFL-2.1", "AFL-3.0", "AGPL-1.0-only", "AGPL-1.0-or-later", "AGPL-3.0-only", "AGPL-3.0-or-later",
	"Apache-1.0", "Apache-1.1", "Apache-2.0", "APSL-2.0", "Artistic-1.0", "Artistic-1.0-Perl", "Artistic-2.0",
	"Beerware", "BSD-1-Clause", "BSD-2-Clause", "BSD-2-Clause-Patent", "BSD-3-Clause", "BSD-3-Clause-Clear",
	"BSD-4-Clause", "BSD-4-Clause-UC", "BSD-Source-Code", "BSL-1.0", "bzip2-1.0.6", "CC-BY-3.0", "CC-BY-4.0",
	"CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC0-1.0", "CDDL-1.0", "CDDL-1.1", "CPL-1.0", "curl", "ECL-2.0", "EPL-1.0",
	"EPL-2.0", "EUPL-1.1", "EUPL-1.2", "FSFAP", "FSFUL", "FSFULLR", "FTL", "GFDL-1.1-only", "GFDL-1.1-or-later",
	"GFDL-1.2-only", "GFDL-1.2-or-later", "GFDL-1.3-only", "GFDL-1.3-or-later", "GPL-1.0-only", "GPL-1.0-or-later",
	"GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "HPND", "ICU", "IJG", "ImageMagick",
	"Info-ZIP", "IPA", "ISC", "JasPer-2.0", "LGPL-2.0-only", "LGPL-2.0-or-later", "LGPL-2.1-only",
	"LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later", "Libpng", "libpng-2.0", "libtiff", "LPPL-1.3c",
	"MIT", "MIT-0", "MIT-CMU", "MPL-1.1", "MPL-2.0", "MS-PL", "NCSA", "NTP", "OFL-1.1", "OLDAP-2.8", "OpenSSL",
	"PHP-3.01", "PostgreSQL", "PSF-2.0", "Python-2.0", "Ruby", "Sendmail", "SGI-B-2.0", "Sleepycat", "Spencer-94",
	"TCL", "Unicode-DFS-2016", "Unlicense", "UPL-1.0", "Vim", "W3C", "WTFPL", "X11",
	"XFree86-1.1", "Zlib", "zlib-acknowledgement", "ZPL-2.1",
)

// exceptionIDs are SPDX licence exceptions (https://spdx.org/licenses/exceptions-index.html).
var exceptionIDs = index(
	"Autoconf-exception-2.0", "Autoconf-exception-3.0", "Bison-exception-2.2", "Classpath-exception-2.0",
	"eCos-exception-2.0", "Font-exception-2.0", "GCC-exception-2.0", "GCC-exception-3.1", "Libtool-exception",
	"Linux-syscall-note", "LLVM-exception", "Qt-GPL-exception-1.0", "Qt-LGPL-exception-1.1",
	"u-boot-exception-2.0", "WxWindows-exception-3.1",
)

// exceptionNames are exceptions as Debian's copyright files name them
// ("GPL-3+ with Bison exception"), by lower-case name less " exception":
// the SPDX exception for a licence's identifier.
var exceptionNames = map[string]func(license string) string{
	"bison":              func(string) string { return "Bison-exception-2.2" },
	"libtool":            func(string) string { return "Libtool-exception" },
	"linux-syscall-note": func(string) string { return "Linux-syscall-note" },
	"classpath":          func(string) string { return "Classpath-exception-2.0" },
	"font":               func(string) string { return "Font-exception-2.0" },
	"autoconf": func(l string) string {
		if strings.HasPrefix(l, "GPL-3") {
			return "Autoconf-exception-3.0"
		}
		return "Autoconf-exception-2.0"
	},
}

// exceptionID is the SPDX identifier of an exception to the licence id;
// "" when there is none.
func exceptionID(exc, id string) string {
	if e, ok := exceptionIDs[strings.ToLower(exc)]; ok {
		return e
	}
	if f, ok := exceptionNames[strings.ToLower(strings.TrimSuffix(exc, " exception"))]; ok {
		return f(id)
	}
	return ""
}

// licenseAliases are names of Debian's copyright format, Fedora's old
// License tags and Arch's old license array, by lower-case name.
var licenseAliases = map[string]string{
	"expat": "MIT", "apache-2": "Apache-2.0", "apache 2.0": "Apache-2.0", "asl 2.0": "Apache-2.0",
	"asl2.0": "Apache-2.0", "apache2": "Apache-2.0", "artistic": "Artistic-1.0", "perl": "Artistic-1.0-Perl",
	"openldap-2.8": "OLDAP-2.8", "cc0": "CC0-1.0", "boost": "BSL-1.0", "mplv2.0": "MPL-2.0", "mplv1.1": "MPL-1.1",
	"psfl": "PSF-2.0", "zpl": "ZPL-2.1",
	// Deprecated SPDX identifiers, still common in License tags.
	"gpl-2.0": "GPL-2.0-only", "gpl-2.0+": "GPL-2.0-or-later", "gpl-3.0": "GPL-3.0-only", "gpl-3.0+": "GPL-3.0-or-later",
	"lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later", "lgpl-3.0": "LGPL-3.0-only", "lgpl-3.0+": "LGPL-3.0-or-later",
}

func index(ids ...string) map[string]string {
	m := make(map[string]string, len(ids))
	for _, id := range ids {
		m[strings.ToLower(id)] = id
	}
	return m
}

// gnuRE matches the GNU licences as Debian ("GPL-2+", "LGPL-2.1"),
// Fedora ("GPLv2+", "LGPLv2") and SPDX ("GPL-2.0-or-later") write them.
var gnuRE = regexp.MustCompile(`(?i)^(AGPL|LGPL|GPL|GFDL)(?:-|v)?([0-9])(?:\.([0-9]))?(\+|-or-later|-only)?$`)

// licenseID is the SPDX identifier of one declared licence name, "" when
// SPDX has none (that we know of).
func licenseID(name string) string {
	low := strings.ToLower(name)
	if id, ok := licenseAliases[low]; ok {
		return id
	}
	if id, ok := licenseIDs[low]; ok {
		return id
	}
	if m := gnuRE.FindStringSubmatch(name); m != nil {
		minor := m[3]
		if minor == "" {
			minor = "0"
			if strings.EqualFold(m[1], "GFDL") {
				return "" // GFDL-1 is no version
			}
		}
		suffix := "-only"
		if m[4] == "+" || strings.EqualFold(m[4], "-or-later") {
			suffix = "-or-later"
		}
		return licenseIDs[strings.ToLower(m[1]+"-"+m[2]+"."+minor+suffix)]
	}
	return ""
}

// A license is an SPDX licence expression made of a declared licence,
// and the LicenseRef identifiers it made up for names SPDX has no
// identifier for, each with the name it stands for.
type license struct {
	expr string
	refs map[string]string
}

// expression turns a licence as a package declares it (Debian's
// "GPL-2+ or Artistic", Fedora's "GPLv2+ and BSD", SPDX's "MIT OR
// Apache-2.0") into an SPDX licence expression; "" for "". Operators
// (and, or, with: any case) and parentheses keep their places; each name
// between them becomes its SPDX identifier, or a LicenseRef. Debian's
// commas ("A or B, and C": "(A or B) and C") group what comes before
// them. What cannot be read as an expression becomes one LicenseRef.
func expression(declared string) license {
	declared = strings.Join(strings.Fields(declared), " ")
	l := license{refs: map[string]string{}}
	if declared == "" {
		return l
	}
	parts := strings.Split(declared, ",")
	var out []string
	for i, part := range parts {
		toks := strings.Fields(strings.NewReplacer("(", " ( ", ")", " ) ").Replace(part))
		op := "AND" // a bare comma lists licences that all apply
		if i > 0 && len(toks) > 0 && (operator(toks[0]) == "AND" || operator(toks[0]) == "OR") {
			op, toks = operator(toks[0]), toks[1:]
		}
		expr, ok := translate(toks)
		if !ok {
			l.refs = map[string]string{} // of the parts before
			l.expr = l.ref(declared)
			return l
		}
		var ids []string
		for _, t := range expr {
			if t.name != "" {
				t.s = licenseID(t.name)
				if t.s == "" {
					t.s = l.ref(t.name)
				}
			}
			ids = append(ids, t.s)
		}
		if i > 0 {
			out = append(group(out), op)
			ids = group(ids)
		}
		out = append(out, ids...)
	}
	l.expr = strings.NewReplacer("( ", "(", " )", ")").Replace(strings.Join(out, " "))
	return l
}

// group parenthesises an expression of more than one token.
func group(expr []string) []string {
	if len(expr) < 2 {
		return expr
	}
	return append(append([]string{"("}, expr...), ")")
}

// ref makes up the LicenseRef identifier of a name.
func (l license) ref(name string) string {
	id := "LicenseRef-" + refID(name)
	if _, ok := l.refs[id]; !ok {
		l.refs[id] = name
	}
	return id
}

// refIDRE is what an SPDX idstring may not hold.
var refIDRE = regexp.MustCompile(`[^A-Za-z0-9.]+`)

// maxRefID bounds a made-up identifier: a whole copyright header that is
// no expression makes one, and a few hundred characters help no one.
const maxRefID = 64

func refID(name string) string {
	s := strings.Trim(refIDRE.ReplaceAllString(strings.ReplaceAll(name, "+", "-plus"), "-"), "-")
	if s == "" {
		s = "unknown"
	}
	if len(s) > maxRefID {
		sum := sha256.Sum256([]byte(name))
		s = strings.TrimRight(s[:maxRefID-9], "-") + "-" + hex.EncodeToString(sum[:4])
	}
	return s
}

func operator(tok string) string {
	switch strings.ToLower(tok) {
	case "and", "&":
		return "AND"
	case "or", "|":
		return "OR"
	case "with":
		return "WITH"
	}
	return ""
}

// exprToken is an operator or parenthesis (s), or a licence by its
// declared name, to be made an identifier.
type exprToken struct{ s, name string }

// translate reads one comma-free part: operands and operators must
// alternate and parentheses balance. A "with" naming an SPDX exception
// after an SPDX licence stays WITH; any other ("GPL-2+ with Autoconf
// exception") makes the licence and its exception one name.
func translate(toks []string) ([]exprToken, bool) {
	var out []exprToken
	depth, wantOperand := 0, true
	// name reads the words of one name from i: up to an operator or a
	// parenthesis ("ASL 2.0", "Autoconf exception").
	name := func(i int) (string, int) {
		j := i
		for j < len(toks) && operator(toks[j]) == "" && toks[j] != "(" && toks[j] != ")" {
			j++
		}
		return strings.Join(toks[i:j], " "), j
	}
	for i := 0; i < len(toks); {
		switch t := toks[i]; {
		case t == "(":
			if !wantOperand {
				return nil, false
			}
			depth++
			out = append(out, exprToken{s: t})
			i++
		case t == ")":
			if wantOperand || depth == 0 {
				return nil, false
			}
			depth--
			out = append(out, exprToken{s: t})
			i++
		case operator(t) == "WITH":
			exc, j := name(i + 1)
			last := len(out) - 1
			if wantOperand || exc == "" || out[last].name == "" {
				return nil, false
			}
			if lic := licenseID(out[last].name); lic != "" && exceptionID(exc, lic) != "" {
				out = append(out, exprToken{s: "WITH"}, exprToken{s: exceptionID(exc, lic)})
			} else {
				out[last].name += " with " + exc
			}
			i = j
		case operator(t) != "":
			if wantOperand {
				return nil, false
			}
			out = append(out, exprToken{s: operator(t)})
			wantOperand = true
			i++
		default:
			if !wantOperand {
				return nil, false
			}
			var n string
			n, i = name(i)
			out = append(out, exprToken{name: n})
			wantOperand = false
		}
	}
	return out, !wantOperand && depth == 0
}
