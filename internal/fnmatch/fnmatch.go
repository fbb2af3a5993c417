// Package fnmatch matches names against shell patterns as fnmatch(3) does
// without FNM_PATHNAME, the way supermin's excludefiles match paths.
package fnmatch

// Match says whether name matches pattern: "*" and "?" also match "/", so
// "/usr/share/doc/*" matches a whole tree; "[...]" classes, "!" or "^"
// negating, "\\" quoting; an unterminated "[" is a literal.
func Match(pattern, name string) bool {
	px, nx := 0, 0
	starPx, starNx := -1, -1
	for nx < len(name) || px < len(pattern) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starPx, starNx = px, nx
				px++
				continue
			case '?':
				if nx < len(name) {
					px++
					nx++
					continue
				}
			case '[':
				if nx < len(name) {
					if ok, width := matchClass(pattern[px:], name[nx]); width > 0 {
						if ok {
							px += width
							nx++
							continue
						}
					} else if name[nx] == '[' { // unterminated: a literal "["
						px++
						nx++
						continue
					}
				}
			case '\\':
				if px+1 < len(pattern) && nx < len(name) && pattern[px+1] == name[nx] {
					px += 2
					nx++
					continue
				}
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		if starPx >= 0 && starNx < len(name) {
			starNx++
			px, nx = starPx+1, starNx
			continue
		}
		return false
	}
	return true
}

// matchClass matches c against the bracket expression at the start of p;
// width is the expression's length, 0 when it is not terminated.
func matchClass(p string, c byte) (ok bool, width int) {
	i := 1
	negate := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		negate = true
		i++
	}
	matched := false
	first := true
	for i < len(p) {
		if p[i] == ']' && !first {
			return matched != negate, i + 1
		}
		first = false
		lo := p[i]
		if lo == '\\' && i+1 < len(p) {
			i++
			lo = p[i]
		}
		hi := lo
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			hi = p[i+2]
			i += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
		i++
	}
	return false, 0
}
