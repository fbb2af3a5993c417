package dpkg

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/gosupermin/gosupermin/backends"
)

var _ backends.Describer = (*DB)(nil)

// maxCopyright bounds a copyright file: the largest of a Debian system
// are a few hundred KB (they hold every licence text).
const maxCopyright = 8 << 20

// Describe gives the package's Maintainer and Homepage from its status
// paragraph, and the licence its machine-readable copyright file
// (/usr/share/doc/NAME/copyright, DEP-5) declares. A copyright file that
// is missing, not machine-readable, unreadable by this user or not
// well-formed declares nothing: the licence is then unknown, not an error.
func (db *DB) Describe(p *backends.Package) (*backends.Description, error) {
	ex := db.extra[p]
	if ex == nil {
		return nil, fmt.Errorf("dpkg: %s is not a package of this database", p.ID)
	}
	paras, err := ParseParagraphs([]byte(ex.stanza))
	if err != nil || len(paras) != 1 {
		// Open parsed the same text.
		return nil, fmt.Errorf("dpkg: status paragraph of %s: %v", p.ID, err)
	}
	d := &backends.Description{
		Supplier: oneLine(paras[0].Get("Maintainer")),
		Homepage: oneLine(paras[0].Get("Homepage")),
		PURL:     backends.PURL{Type: "deb", Namespace: "debian", Name: p.Name, Version: p.Version},
	}
	if p.Arch != "" {
		d.PURL.Qualifiers = [][2]string{{"arch", p.Arch}}
	}
	name := "usr/share/doc/" + p.Name + "/copyright"
	data, err := backends.ReadFile(db.fsys, name, maxCopyright)
	switch {
	case err == nil:
		d.License = CopyrightLicense(data)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission),
		errors.Is(err, backends.ErrNotRegular), errors.Is(err, backends.ErrTooLarge):
	default:
		return nil, fmt.Errorf("dpkg: licence of %s: %w", p.ID, err)
	}
	return d, nil
}

// oneLine keeps the first line of a field (a Maintainer is one line; a
// malformed database could hold more).
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

// CopyrightLicense returns the licence a machine-readable debian/copyright
// file (https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/)
// declares: the header paragraph's License when it has one (the licence
// of the whole package), else the short names of every Files paragraph's
// License, each once, joined with " AND " (each applies to some of the
// files); "" for a file in another format. Names stay in the file's
// vocabulary ("GPL-2+", "Expat"): turning them into SPDX identifiers is
// for whoever writes SPDX.
func CopyrightLicense(data []byte) string {
	paras := copyrightParagraphs(string(data))
	if len(paras) == 0 {
		return ""
	}
	format := paras[0]["format"]
	if !strings.Contains(format, "copyright-format") && !strings.Contains(format, "dep5") {
		return ""
	}
	if l := paras[0]["license"]; l != "" {
		return l
	}
	var names []string
	seen := map[string]bool{}
	for _, para := range paras[1:] {
		if _, ok := para["files"]; !ok {
			continue // a standalone License paragraph holds a licence's text
		}
		l := para["license"]
		if l == "" || seen[l] {
			continue
		}
		seen[l] = true
		names = append(names, l)
	}
	if len(names) > 1 {
		for i, n := range names {
			if strings.ContainsAny(n, " ,") {
				// "GPL-1+ or Artistic" stays one operand of the AND.
				names[i] = "(" + n + ")"
			}
		}
	}
	return strings.Join(names, " AND ")
}

// copyrightParagraphs reads the first line of each field of each
// paragraph, by lower-case name. It is lenient where ParseParagraphs is
// strict: copyright files are only read for what they say, and some
// in the wild repeat a field or indent a line wrongly (elfutils' repeats
// Comment); the first value of a field wins.
func copyrightParagraphs(text string) []map[string]string {
	var out []map[string]string
	var cur map[string]string
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.TrimSpace(line) == "":
			cur = nil
		case line[0] == ' ' || line[0] == '\t' || line[0] == '#':
		default:
			name, value, ok := strings.Cut(line, ":")
			if !ok || strings.ContainsAny(name, " \t") {
				continue
			}
			if cur == nil {
				cur = map[string]string{}
				out = append(out, cur)
			}
			name = strings.ToLower(name)
			if _, dup := cur[name]; !dup {
				cur[name] = strings.TrimSpace(value)
			}
		}
	}
	return out
}
