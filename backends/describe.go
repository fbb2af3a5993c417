package backends

// Describer is implemented by databases that record who supplies a
// package and under which licence: what a software bill of materials
// says of each package. Each family knows where its database keeps it.
type Describer interface {
	// Describe returns what the database records of p. A field the
	// database does not have is empty; an error is a failure to read
	// what it has.
	Describe(p *Package) (*Description, error)
}

// Description is what a package database says of a package beyond its
// identity and relations.
type Description struct {
	// Supplier distributes the package: dpkg's Maintainer, rpm's Vendor
	// (else its Packager), pacman's packager. Usually "Name <email>".
	Supplier string
	// License is the licence the package declares, in its family's
	// vocabulary (Debian's copyright short names, rpm's License tag,
	// pacman's license array joined with " AND "); empty when unknown.
	License string
	// Homepage is the upstream project's web page, as recorded.
	Homepage string
	// PURL is how the package is named as a package URL, less what only
	// the distribution knows (the namespace may be replaced by the
	// distribution's id).
	PURL PURL
}

// PURL is the family's part of a package URL (https://github.com/package-url/purl-spec):
// pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS.
type PURL struct {
	// Type is "deb", "rpm" or "alpm".
	Type string
	// Namespace is the family's default vendor ("debian", "arch", or
	// rpm's Vendor): the distribution's id replaces it when known.
	Namespace string
	Name      string
	Version   string
	// Qualifiers are the family's: arch, and rpm's epoch.
	Qualifiers [][2]string
}
