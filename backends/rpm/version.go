package rpm

import (
	"strings"

	"github.com/gosupermin/gosupermin/internal/vercmp"
)

// Vercmp compares two version or release strings as rpm's rpmvercmp does:
// alternating runs of digits and letters compared segment by segment
// (numbers numerically and above letters), other characters only
// separating, "~" sorting before anything (even the end), "^" after the
// end but before anything else.
func Vercmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isAlnum(a[i]) && a[i] != '~' && a[i] != '^' {
			i++
		}
		for j < len(b) && !isAlnum(b[j]) && b[j] != '~' && b[j] != '^' {
			j++
		}
		// Tilde: sorts before everything.
		ta, tb := i < len(a) && a[i] == '~', j < len(b) && b[j] == '~'
		if ta || tb {
			if !ta {
				return 1
			}
			if !tb {
				return -1
			}
			i++
			j++
			continue
		}
		// Caret: like the end of the string, but after it.
		ca, cb := i < len(a) && a[i] == '^', j < len(b) && b[j] == '^'
		if ca || cb {
			if i >= len(a) {
				return -1
			}
			if j >= len(b) {
				return 1
			}
			if !ca {
				return 1
			}
			if !cb {
				return -1
			}
			i++
			j++
			continue
		}
		if i >= len(a) || j >= len(b) {
			break
		}
		var c int
		if c, i, j = vercmp.Segment(a, i, b, j); c != 0 {
			return c
		}
	}
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i >= len(a):
		return -1
	}
	return 1
}

var (
	isDigit = vercmp.IsDigit
	isAlpha = vercmp.IsAlpha
	isAlnum = vercmp.IsAlnum
)

// SplitEVR splits [epoch:]version[-release]. The epoch is "" when absent;
// the release is "" when absent.
func SplitEVR(evr string) (epoch, version, release string) {
	if i := strings.IndexByte(evr, ':'); i >= 0 && allDigits(evr[:i]) {
		epoch, evr = evr[:i], evr[i+1:]
	}
	if i := strings.LastIndexByte(evr, '-'); i >= 0 {
		evr, release = evr[:i], evr[i+1:]
	}
	return epoch, evr, release
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// CompareEVR compares two [epoch:]version[-release] strings as rpm compares
// a package or Provides with a Requires: a missing epoch is 0, and the
// releases are compared only when both sides have one ("Requires: foo >=
// 1.2" is satisfied by every release of 1.2).
func CompareEVR(a, b string) int {
	ea, va, ra := SplitEVR(a)
	eb, vb, rb := SplitEVR(b)
	if ea == "" {
		ea = "0"
	}
	if eb == "" {
		eb = "0"
	}
	if c := Vercmp(ea, eb); c != 0 {
		return c
	}
	if c := Vercmp(va, vb); c != 0 {
		return c
	}
	if ra != "" && rb != "" {
		return Vercmp(ra, rb)
	}
	return 0
}
