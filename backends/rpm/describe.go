package rpm

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/gosupermin/gosupermin/backends"
)

var _ backends.Describer = (*DB)(nil)

// Describe reads the package's header again for its Vendor (else its
// Packager), License and URL tags.
func (db *DB) Describe(p *backends.Package) (*backends.Description, error) {
	h, err := db.Header(p)
	if err != nil {
		return nil, err
	}
	in, err := h.Info()
	if err != nil {
		return nil, db.corrupt(p, err)
	}
	var vendor, packager, license, url string
	for _, f := range []struct {
		tag uint32
		dst *string
	}{{TagVendor, &vendor}, {TagPackager, &packager}, {TagLicense, &license}, {TagURL, &url}} {
		if *f.dst, err = h.String(f.tag); err != nil {
			return nil, db.corrupt(p, fmt.Errorf("describe: %w", err))
		}
		*f.dst = strings.TrimSpace(*f.dst)
	}
	d := &backends.Description{Supplier: vendor, License: license, Homepage: url}
	if d.Supplier == "" {
		d.Supplier = packager
	}
	version := in.Version
	if in.Release != "" {
		version += "-" + in.Release
	}
	d.PURL = backends.PURL{Type: "rpm", Namespace: vendorNamespace(vendor), Name: in.Name, Version: version}
	if in.Arch != "" {
		d.PURL.Qualifiers = append(d.PURL.Qualifiers, [2]string{"arch", in.Arch})
	}
	if in.Epoch != nil {
		d.PURL.Qualifiers = append(d.PURL.Qualifiers, [2]string{"epoch", fmt.Sprint(*in.Epoch)})
	}
	return d, nil
}

// vendorNamespace is a package URL namespace made of a Vendor tag, for
// trees without an os-release: its first word, lower-case ("Fedora
// Project" -> "fedora", "openSUSE" -> "opensuse").
func vendorNamespace(vendor string) string {
	word, _, _ := strings.Cut(strings.TrimSpace(vendor), " ")
	word = strings.Map(func(r rune) rune {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '.') {
			return unicode.ToLower(r)
		}
		return -1
	}, word)
	return word
}
