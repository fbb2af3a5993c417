// Package vercmp holds the step that rpm's rpmvercmp and pacman's vercmp
// (derived from it) share: comparing one run of digits or of letters.
package vercmp

import "strings"

// Segment compares the runs of digits or of letters that start at a[i]
// and b[j] (both alphanumeric), as rpmvercmp does: numbers numerically, a
// number above letters. It returns where each run ends.
func Segment(a string, i int, b string, j int) (c, ni, nj int) {
	si, sj := i, j
	num := IsDigit(a[i])
	run := IsAlpha
	if num {
		run = IsDigit
	}
	for i < len(a) && run(a[i]) {
		i++
	}
	for j < len(b) && run(b[j]) {
		j++
	}
	sa, sb := a[si:i], b[sj:j]
	if sb == "" {
		// Segments of different kinds: a number is newer than letters.
		if num {
			return 1, i, j
		}
		return -1, i, j
	}
	if num {
		sa = strings.TrimLeft(sa, "0")
		sb = strings.TrimLeft(sb, "0")
		if len(sa) != len(sb) {
			if len(sa) > len(sb) {
				return 1, i, j
			}
			return -1, i, j
		}
	}
	return strings.Compare(sa, sb), i, j
}

// IsDigit, IsAlpha and IsAlnum are the ASCII classes the algorithms use
// (not Unicode's: versions compare bytes).
func IsDigit(c byte) bool { return c >= '0' && c <= '9' }
func IsAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func IsAlnum(c byte) bool { return IsDigit(c) || IsAlpha(c) }
