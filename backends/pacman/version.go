package pacman

import (
	"fmt"
	"strings"

	"github.com/gosupermin/gosupermin/internal/vercmp"
)

// Vercmp orders two [epoch:]pkgver[-pkgrel] versions as pacman's vercmp
// does: epochs (0 when absent), then pkgver, then pkgrel when both have
// one, each compared by segments.
func Vercmp(a, b string) int {
	if a == b {
		return 0
	}
	ea, va, ra, hasRA := splitEVR(a)
	eb, vb, rb, hasRB := splitEVR(b)
	if c := segcmp(ea, eb); c != 0 {
		return c
	}
	if c := segcmp(va, vb); c != 0 {
		return c
	}
	if hasRA && hasRB {
		return segcmp(ra, rb)
	}
	return 0
}

func splitEVR(s string) (epoch, version, release string, hasRelease bool) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	epoch, version = "0", s
	if i < len(s) && s[i] == ':' {
		if i > 0 {
			epoch = s[:i]
		}
		version = s[i+1:]
	}
	if j := strings.LastIndexByte(version, '-'); j >= 0 {
		return epoch, version[:j], version[j+1:], true
	}
	return epoch, version, "", false
}

var (
	isDigit = vercmp.IsDigit
	isAlpha = vercmp.IsAlpha
	isAlnum = vercmp.IsAlnum
)

// segcmp is pacman's variant of rpmvercmp: no "~" or "^", a longer run of
// separators is newer, and a trailing letter segment is older than the
// end of the string ("1.0a" < "1.0" < "1.0.1").
func segcmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	pi, pj := 0, 0 // where the previous segment ended
	for i < len(a) && j < len(b) {
		for i < len(a) && !isAlnum(a[i]) {
			i++
		}
		for j < len(b) && !isAlnum(b[j]) {
			j++
		}
		if i >= len(a) || j >= len(b) {
			break
		}
		if i-pi != j-pj {
			if i-pi < j-pj {
				return -1
			}
			return 1
		}
		var c int
		if c, i, j = vercmp.Segment(a, i, b, j); c != 0 {
			return c
		}
		pi, pj = i, j
	}
	if i >= len(a) && j >= len(b) {
		return 0
	}
	// A remaining letter segment never beats the end of the string.
	if i >= len(a) && !isAlpha(b[j]) || i < len(a) && isAlpha(a[i]) {
		return -1
	}
	return 1
}

// checkVersion applies makepkg's rules to a full version,
// [epoch:]pkgver-pkgrel: a numeric epoch; a pkgver of printable ASCII
// without spaces, "/", ":" or "-"; a pkgrel "integer[.integer]". So a
// version is one path component of the local database and one field of
// a line of text.
func checkVersion(v string) error {
	bad := func(why string) error {
		return fmt.Errorf("bad version %q: %s (want [epoch:]pkgver-pkgrel)", truncate(v), why)
	}
	rest := v
	if epoch, after, ok := strings.Cut(v, ":"); ok {
		if !allDigits(epoch) {
			return bad("the epoch is not a number")
		}
		rest = after
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return bad("no pkgrel")
	}
	pkgver, pkgrel := rest[:i], rest[i+1:]
	if pkgver == "" {
		return bad("empty pkgver")
	}
	for j := 0; j < len(pkgver); j++ {
		if c := pkgver[j]; c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == '-' {
			return bad(fmt.Sprintf("pkgver holds %q", c))
		}
	}
	major, minor, dot := strings.Cut(pkgrel, ".")
	if !allDigits(major) || dot && !allDigits(minor) {
		return bad("pkgrel is not integer[.integer]")
	}
	return nil
}

func allDigits(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }

// validArch is makepkg's rule for an architecture: letters, digits and
// "_" ("any" included).
func validArch(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' {
			return false
		}
	}
	return true
}
