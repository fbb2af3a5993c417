package pacman

import (
	"fmt"
	"strings"

	"github.com/gosupermin/gosupermin/backends"
)

var _ backends.Describer = (*DB)(nil)

// unknownPackager is what makepkg records when PACKAGER is not set:
// no one in particular.
const unknownPackager = "Unknown Packager"

// Describe reads the package's desc again for %PACKAGER%, %LICENSE% (one
// licence a line, joined with " AND ": each applies) and %URL%.
func (db *DB) Describe(p *backends.Package) (*backends.Description, error) {
	file := db.pkgFile(p, "desc")
	data, err := backends.ReadFile(db.fsys, file, maxDesc)
	if err != nil {
		return nil, fmt.Errorf("read pacman database: %w", err)
	}
	desc, err := ParseDesc(data)
	if err != nil {
		return nil, &backends.CorruptError{File: db.host(file), Record: p.ID, Err: err}
	}
	first := func(section string) string {
		if v := desc[section]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	d := &backends.Description{Supplier: first("PACKAGER"), Homepage: first("URL"),
		PURL: backends.PURL{Type: "alpm", Namespace: "arch", Name: p.Name, Version: p.Version}}
	if d.Supplier == unknownPackager {
		d.Supplier = ""
	}
	var licenses []string
	for _, l := range desc["LICENSE"] {
		if l = strings.TrimSpace(l); l != "" {
			licenses = append(licenses, l)
		}
	}
	if len(licenses) > 1 {
		for i, l := range licenses {
			if strings.Contains(l, " ") {
				licenses[i] = "(" + l + ")" // "GPL-2.0-or-later OR MIT" stays one operand
			}
		}
	}
	d.License = strings.Join(licenses, " AND ")
	if p.Arch != "" {
		d.PURL.Qualifiers = [][2]string{{"arch", p.Arch}}
	}
	return d, nil
}
