// Package sbom describes what an appliance is made of as an SPDX 2.3
// JSON document (https://spdx.github.io/spdx-spec/v2.3/), the software
// bill of materials that scanners such as syft, grype and trivy read:
// one package for each package of the appliance, with its version,
// supplier, declared licence and package URL (purl), the kernel of a
// bootable appliance, and the dependencies the resolver chose.
//
// The document is written with github.com/spdx/tools-golang and checked
// with its validator. The same inputs give the same bytes: nothing in it
// is random, and its namespace is derived from its content.
package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/package-url/packageurl-go"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/gosupermin/gosupermin/backends"
)

// Options for New.
type Options struct {
	// Name names the appliance (the output directory's name).
	Name string
	// Packages are the appliance's packages; Deps the packages each one's
	// relations chose (a resolver.Closure's).
	Packages []*backends.Package
	Deps     map[*backends.Package][]*backends.Package
	// DB is the database of the packages: when it is a
	// backends.Describer, it gives each one's supplier and licence.
	DB backends.DB
	// OS is the tree's distribution: its ID is the namespace of the
	// package URLs, ID-VERSION_ID their distro qualifier.
	OS OSRelease
	// Kernel is the kernel of a bootable appliance; nil for none.
	Kernel *Kernel
	// Created is the document's creation time: SOURCE_DATE_EPOCH for a
	// reproducible document.
	Created time.Time
	// Tool names the program in the document's creators
	// ("gosupermin-5.3.99").
	Tool string
}

// Kernel is the kernel a bootable appliance boots.
type Kernel struct {
	// Release is its release ("6.1.0-18-amd64").
	Release string
	// Path is the kernel image, for the document's comment.
	Path string
	// Package installed it, when a package of DB did: it describes the
	// kernel. Nil for a kernel no package installed.
	Package *backends.Package
}

// Namespace is where the document namespaces of gosupermin's SBOMs live.
// They need not resolve: each is a unique name for one document.
const Namespace = "https://github.com/gosupermin/gosupermin/spdx/"

const (
	applianceID = "Appliance"
	noAssertion = "NOASSERTION"
)

// New makes the SPDX document of an appliance.
func New(o Options) (*spdx.Document, error) {
	name := o.Name
	if name == "" {
		name = "appliance"
	}
	tool := o.Tool
	if tool == "" {
		tool = "gosupermin"
	}
	doc := &spdx.Document{
		SPDXVersion:    spdx.Version,
		DataLicense:    spdx.DataLicense,
		SPDXIdentifier: "DOCUMENT",
		DocumentName:   name,
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: tool}},
			Created:  o.Created.UTC().Format(time.RFC3339),
		},
	}
	if o.Created.IsZero() {
		return nil, errors.New("sbom: no creation time")
	}
	app := newPackage(name, applianceID)
	app.PrimaryPackagePurpose = "OPERATING-SYSTEM"
	app.PackageComment = "A supermin appliance made by " + tool + " of the packages it contains, as installed in the tree it was built from."
	doc.Packages = append(doc.Packages, app)
	doc.Relationships = append(doc.Relationships, relation("DOCUMENT", "DESCRIBES", applianceID))

	m := &maker{o: o, doc: doc, ids: map[*backends.Package]common.ElementID{}, used: map[common.ElementID]bool{applianceID: true},
		refs: map[string]string{}}
	d, _ := o.DB.(backends.Describer)
	pkgs := slices.Clone(o.Packages)
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].ID < pkgs[j].ID })
	for _, p := range pkgs {
		if err := m.add(d, p, ""); err != nil {
			return nil, err
		}
	}
	if k := o.Kernel; k != nil {
		if err := m.addKernel(d, k); err != nil {
			return nil, err
		}
	}
	for _, p := range pkgs {
		deps := slices.Clone(o.Deps[p])
		sort.Slice(deps, func(i, j int) bool { return deps[i].ID < deps[j].ID })
		for _, dep := range deps {
			if id, ok := m.ids[dep]; ok && dep != p {
				doc.Relationships = append(doc.Relationships, relation(m.ids[p], "DEPENDS_ON", id))
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(m.refs)) {
		doc.OtherLicenses = append(doc.OtherLicenses, &spdx.OtherLicense{
			LicenseIdentifier: id,
			LicenseName:       m.refs[id],
			ExtractedText:     m.refs[id],
			LicenseComment:    "The licence as the package database declares it; SPDX has no identifier for it.",
		})
	}
	// The namespace is the content's: unique for each document, the same
	// for the same document.
	var buf bytes.Buffer
	if err := spdxjson.Write(doc, &buf); err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	doc.DocumentNamespace = Namespace + refID(name) + "-" + hex.EncodeToString(sum[:16])
	return doc, nil
}

// newPackage is a package that asserts nothing of where it comes from,
// of its licence or its files (a database records none of it).
func newPackage(name string, id common.ElementID) *spdx.Package {
	return &spdx.Package{PackageName: name, PackageSPDXIdentifier: id, PackageDownloadLocation: noAssertion,
		IsFilesAnalyzedTagPresent: true, PackageLicenseConcluded: noAssertion, PackageLicenseDeclared: noAssertion,
		PackageCopyrightText: noAssertion}
}

func relation(a common.ElementID, rel string, b common.ElementID) *spdx.Relationship {
	return &spdx.Relationship{RefA: common.DocElementID{ElementRefID: a}, RefB: common.DocElementID{ElementRefID: b}, Relationship: rel}
}

type maker struct {
	o    Options
	doc  *spdx.Document
	ids  map[*backends.Package]common.ElementID
	used map[common.ElementID]bool
	refs map[string]string // LicenseRef id -> declared name
}

// idRE is what an SPDX identifier may not hold.
var idRE = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// newID makes a unique SPDX identifier of prefix and a package's ID.
func (m *maker) newID(prefix, name string) common.ElementID {
	base := prefix + strings.Trim(idRE.ReplaceAllString(name, "-"), "-")
	id := common.ElementID(base)
	for n := 2; m.used[id]; n++ {
		id = common.ElementID(fmt.Sprintf("%s-%d", base, n))
	}
	m.used[id] = true
	return id
}

// add puts p in the document, contained in the appliance.
func (m *maker) add(d backends.Describer, p *backends.Package, comment string) error {
	desc := &backends.Description{}
	if d != nil {
		var err error
		if desc, err = d.Describe(p); err != nil {
			return fmt.Errorf("sbom: %w", err)
		}
	}
	id := m.newID("Package-", p.ID)
	m.ids[p] = id
	pkg := newPackage(p.Name, id)
	pkg.PackageVersion, pkg.PackageComment = p.Version, comment
	pkg.PackageSupplier, pkg.PackageHomePage = supplier(desc.Supplier), homepage(desc.Homepage)
	if l := expression(desc.License); l.expr != "" {
		pkg.PackageLicenseDeclared = l.expr
		for id, name := range l.refs {
			if _, ok := m.refs[id]; !ok {
				m.refs[id] = name
			}
		}
	}
	purl, err := m.purl(p, desc.PURL)
	if err != nil {
		return err
	}
	pkg.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: purl}}
	m.doc.Packages = append(m.doc.Packages, pkg)
	m.doc.Relationships = append(m.doc.Relationships, relation(applianceID, "CONTAINS", id))
	return nil
}

// addKernel puts the kernel in the document: its package when one
// installed it (already there when the appliance holds it too), else a
// package of its own.
func (m *maker) addKernel(d backends.Describer, k *Kernel) error {
	comment := fmt.Sprintf("The kernel the appliance boots: %s, release %s.", k.Path, k.Release)
	if k.Package != nil {
		if id, ok := m.ids[k.Package]; ok {
			for _, p := range m.doc.Packages {
				if p.PackageSPDXIdentifier == id {
					p.PackageComment = comment
					p.PrimaryPackagePurpose = "OPERATING-SYSTEM"
				}
			}
			return nil
		}
		if err := m.add(d, k.Package, comment); err != nil {
			return err
		}
		m.doc.Packages[len(m.doc.Packages)-1].PrimaryPackagePurpose = "OPERATING-SYSTEM"
		return nil
	}
	purl := packageurl.NewPackageURL("generic", "", "linux", k.Release, nil, "")
	if err := purl.Normalize(); err != nil {
		return fmt.Errorf("sbom: kernel %s: package URL: %w", k.Release, err)
	}
	id := m.newID("", "Kernel")
	pkg := newPackage("linux", id)
	pkg.PackageVersion, pkg.PackageSupplier = k.Release, &common.Supplier{Supplier: noAssertion}
	pkg.PrimaryPackagePurpose = "OPERATING-SYSTEM"
	pkg.PackageComment = comment + " No package of the database installed it."
	pkg.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: purl.ToString()}}
	m.doc.Packages = append(m.doc.Packages, pkg)
	m.doc.Relationships = append(m.doc.Relationships, relation(applianceID, "CONTAINS", id))
	return nil
}

// purl is p's package URL: the family's parts, the distribution's id as
// the namespace and its release as the distro qualifier when the tree
// has an os-release.
func (m *maker) purl(p *backends.Package, f backends.PURL) (string, error) {
	if f.Type == "" {
		f = backends.PURL{Type: "generic", Name: p.Name, Version: p.Version}
	}
	if m.o.OS.ID != "" {
		f.Namespace = m.o.OS.ID
	}
	var q packageurl.Qualifiers
	for _, kv := range f.Qualifiers {
		q = append(q, packageurl.Qualifier{Key: kv[0], Value: kv[1]})
	}
	if m.o.OS.ID != "" && m.o.OS.VersionID != "" {
		q = append(q, packageurl.Qualifier{Key: "distro", Value: m.o.OS.ID + "-" + m.o.OS.VersionID})
	}
	u := packageurl.NewPackageURL(f.Type, f.Namespace, f.Name, f.Version, q, "")
	if err := u.Normalize(); err != nil {
		return "", fmt.Errorf("sbom: %s: package URL: %w", p.ID, err)
	}
	return u.ToString(), nil
}

// emailRE splits "Name <email>", as Maintainer and Packager fields are.
var emailRE = regexp.MustCompile(`^(.*?)\s*<([^<>]*)>$`)

// supplier is SPDX's form of a supplier: "Person: Name (email)" for one
// with an address (a maintainer), "Organization: Name" for a name alone
// (an rpm Vendor); NOASSERTION when unknown.
func supplier(s string) *common.Supplier {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return &common.Supplier{Supplier: noAssertion}
	}
	if m := emailRE.FindStringSubmatch(s); m != nil && m[2] != "" {
		name := m[1]
		if name == "" {
			name = m[2]
		}
		return &common.Supplier{SupplierType: "Person", Supplier: name + " (" + m[2] + ")"}
	}
	return &common.Supplier{SupplierType: "Organization", Supplier: s}
}

// homepage keeps a web address; anything else is left out.
func homepage(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return u.String()
}

// Write validates doc and writes it as indented JSON.
func Write(w io.Writer, doc *spdx.Document) error {
	if err := Validate(doc); err != nil {
		return err
	}
	if err := spdxjson.Write(doc, w, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
		return fmt.Errorf("sbom: %w", err)
	}
	return nil
}

// Validate checks what tools-golang's validator checks (every
// relationship names an element of the document) and what ours needs:
// unique identifiers, a package URL for each package but the appliance,
// and each LicenseRef defined.
func Validate(doc *spdx.Document) error {
	if err := spdxlib.ValidateDocument(doc); err != nil {
		return fmt.Errorf("sbom: invalid document: %w", err)
	}
	seen := map[common.ElementID]bool{}
	refs := map[string]bool{}
	for _, l := range doc.OtherLicenses {
		refs[l.LicenseIdentifier] = true
	}
	for _, p := range doc.Packages {
		if seen[p.PackageSPDXIdentifier] {
			return fmt.Errorf("sbom: invalid document: identifier %s used twice", p.PackageSPDXIdentifier)
		}
		seen[p.PackageSPDXIdentifier] = true
		if p.PackageSPDXIdentifier != applianceID && len(p.PackageExternalReferences) == 0 {
			return fmt.Errorf("sbom: invalid document: package %s has no package URL", p.PackageName)
		}
		for _, f := range strings.Fields(strings.NewReplacer("(", " ", ")", " ").Replace(p.PackageLicenseDeclared)) {
			if strings.HasPrefix(f, "LicenseRef-") && !refs[f] {
				return fmt.Errorf("sbom: invalid document: package %s: %s is not defined", p.PackageName, f)
			}
		}
	}
	return nil
}
