package sbom

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"

	"github.com/gosupermin/gosupermin/backends"
)

// OSRelease is what os-release(5) says of the distribution of a tree.
type OSRelease struct {
	ID        string // "debian", "fedora", "arch"
	VersionID string // "12", "40"; empty on rolling releases
	Name      string // "Debian GNU/Linux"
}

// maxOSRelease bounds os-release, a few lines.
const maxOSRelease = 64 << 10

// ReadOSRelease reads etc/os-release of fsys, else usr/lib/os-release,
// as os-release(5) says. A tree with neither has an empty OSRelease.
func ReadOSRelease(fsys fs.FS) (OSRelease, error) {
	for _, name := range []string{"etc/os-release", "usr/lib/os-release"} {
		data, err := backends.ReadFile(fsys, name, maxOSRelease)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return OSRelease{}, err
		}
		return parseOSRelease(string(data)), nil
	}
	return OSRelease{}, nil
}

// parseOSRelease reads shell-like assignments: VAR=value, with single or
// double quotes and backslash escapes; other lines are ignored.
func parseOSRelease(text string) OSRelease {
	var o OSRelease
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			if v[0] == '"' {
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				} else {
					v = v[1 : len(v)-1]
				}
			} else {
				v = v[1 : len(v)-1]
			}
		}
		switch k {
		case "ID":
			o.ID = strings.ToLower(v)
		case "VERSION_ID":
			o.VersionID = v
		case "NAME":
			o.Name = v
		}
	}
	return o
}
