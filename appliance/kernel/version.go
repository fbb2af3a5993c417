package kernel

import "strings"

// Compare orders kernel release strings: -1 if a < b, 0 if equal, +1 if
// a > b. Runs of digits compare as numbers (6.1.0-10 < 6.1.0-56,
// 6.8.0-45-generic < 6.8.0-100-generic), other runs byte by byte with
// letters before other characters, and '~' sorts before anything, even the
// end of the string (6.1~rc1 < 6.1), as dpkg and rpm order versions.
//
// Backup names never win: a release ending in ".old", ".bak", "~" or a dpkg
// leftover suffix sorts before every release that does not.
func Compare(a, b string) int {
	ba, bb := isBackup(a), isBackup(b)
	switch {
	case ba && !bb:
		return -1
	case bb && !ba:
		return 1
	}
	return compareParts(a, b)
}

var backupSuffixes = []string{".old", ".bak", ".orig", ".dpkg-old", ".dpkg-new", ".dpkg-tmp", ".dpkg-dist", ".dpkg-bak", ".rpmsave", ".rpmnew", "~"}

// isBackup reports whether a release (or file name) is a backup copy that
// must never be chosen over a real kernel.
func isBackup(s string) bool {
	for _, suf := range backupSuffixes {
		if strings.HasSuffix(s, suf) {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// order is the weight of a non-digit character: '~' lowest, then the end
// of a run, letters, and then everything else.
func order(c byte) int {
	switch {
	case c == '~':
		return -1
	case isLetter(c):
		return int(c)
	default:
		return int(c) + 256
	}
}

func compareParts(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		// Non-digit run.
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ca, cb := 0, 0
			if i < len(a) && !isDigit(a[i]) {
				ca = order(a[i])
			}
			if j < len(b) && !isDigit(b[j]) {
				cb = order(b[j])
			}
			if ca != cb {
				if ca < cb {
					return -1
				}
				return 1
			}
			i++
			j++
		}
		// Digit run: skip leading zeros, then the longer number is larger,
		// then the first differing digit decides.
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		si, sj := i, j
		for i < len(a) && isDigit(a[i]) {
			i++
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		na, nb := a[si:i], b[sj:j]
		if len(na) != len(nb) {
			if len(na) < len(nb) {
				return -1
			}
			return 1
		}
		if c := strings.Compare(na, nb); c != 0 {
			return c
		}
	}
	return 0
}
