package dpkg

import (
	"fmt"
	"strconv"
	"strings"
)

// validPackageName is dpkg's rule for the names it writes into its
// database, [a-z0-9][a-z0-9+.-]* (dpkg lowercases what it installs; it
// accepts one-character names, which policy's two-character minimum
// forbids only in the archive), which also keeps them usable as the file
// names of info/NAME.list and the like.
func validPackageName(s string) bool {
	if s == "" || !isLowerAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '+' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validArch is dpkg's rule for architecture names ("all" and "any"
// included), which go into info/NAME:ARCH.list.
func validArch(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// checkVersion applies deb-version(5) as dpkg does when it reads its
// database: what dpkg refuses (an empty or non-numeric epoch, an empty
// upstream version or revision) is an error; what it only warns about (an
// upstream version not starting with a digit, characters outside the
// allowed set) is accepted, except what has no place in a file name or a
// line of text: NUL and other control characters, spaces and "/".
func checkVersion(v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c == 0x7f || c == '/' {
			return fmt.Errorf("bad version %q: %s", truncate(v), badChar(c))
		}
	}
	rest := v
	if epoch, after, ok := strings.Cut(v, ":"); ok {
		if _, err := strconv.ParseInt(epoch, 10, 32); err != nil || strings.Trim(epoch, "0123456789") != "" {
			return fmt.Errorf("bad version %q: the epoch is not a number", truncate(v))
		}
		rest = after
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		if i == len(rest)-1 {
			return fmt.Errorf("bad version %q: empty revision", truncate(v))
		}
		rest = rest[:i]
	}
	if rest == "" {
		return fmt.Errorf("bad version %q: empty upstream version", truncate(v))
	}
	return nil
}

func badChar(c byte) string {
	switch {
	case c == 0:
		return "NUL byte"
	case c == ' ':
		return "space"
	case c == '/':
		return `"/"`
	}
	return fmt.Sprintf("control character %#02x", c)
}
