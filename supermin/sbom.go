package supermin

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gosupermin/gosupermin/appliance/kernel"
	"github.com/gosupermin/gosupermin/appliance/sbom"
	"github.com/gosupermin/gosupermin/backends"
)

// SBOM asks Build for a software bill of materials: an SPDX 2.3 JSON
// document of the appliance's packages and kernel (see package sbom).
type SBOM struct {
	// Path is the file to write. It is written beside the output, never
	// inside it, and only when the build succeeds: a failed build leaves
	// the previous one, as it leaves the previous output.
	Path string
	// Tool names the program in the document ("gosupermin-5.3.99").
	Tool string
}

// staged is a file written beside its path, renamed onto it by commit.
type staged struct{ tmp, path string }

// stageSBOM writes the appliance's SBOM beside o.SBOM.Path; nil when
// none is asked for.
func (o *BuildOptions) stageSBOM(a *Appliance) (*staged, error) {
	if o.SBOM.Path == "" {
		return nil, nil
	}
	data, err := a.sbom(o)
	if err != nil {
		return nil, fmt.Errorf("bill of materials: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(o.SBOM.Path), "."+filepath.Base(o.SBOM.Path)+".gosupermin-tmp-")
	if err != nil {
		return nil, fmt.Errorf("write the bill of materials %s: %w", o.SBOM.Path, err)
	}
	s := &staged{tmp: f.Name(), path: o.SBOM.Path}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(s.tmp, 0o644) // CreateTemp's 0600 is for secrets
	}
	if err != nil {
		s.abort()
		return nil, fmt.Errorf("write the bill of materials %s: %w", o.SBOM.Path, err)
	}
	return s, nil
}

func (s *staged) commit() error {
	if s == nil {
		return nil
	}
	if err := os.Rename(s.tmp, s.path); err != nil {
		return fmt.Errorf("write the bill of materials %s: %w", s.path, err)
	}
	s.tmp = ""
	return nil
}

func (s *staged) abort() {
	if s != nil && s.tmp != "" {
		os.Remove(s.tmp)
		s.tmp = ""
	}
}

// sbom is the appliance's SPDX document.
func (a *Appliance) sbom(o *BuildOptions) ([]byte, error) {
	osr, err := sbom.ReadOSRelease(a.tree.FS())
	if err != nil {
		return nil, fmt.Errorf("os-release: %w", err)
	}
	created := o.Epoch
	if created.IsZero() {
		created = time.Now()
	}
	so := sbom.Options{
		Name: filepath.Base(filepath.Clean(o.Out)), Packages: a.Packages, Deps: a.deps, DB: a.db,
		OS: osr, Created: created, Tool: o.SBOM.Tool,
	}
	if k := a.Kernel; k != nil {
		so.Kernel = &sbom.Kernel{Release: k.Version, Path: k.Image.Path, Package: a.kernelPackage(k)}
	}
	doc, err := sbom.New(so)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := sbom.Write(&buf, doc); err != nil {
		return nil, err
	}
	a.Logf(1, "bill of materials: %d packages", len(doc.Packages))
	return buf.Bytes(), nil
}

// kernelPackage is the package of the database that installed the
// kernel image, nil when none did (a kernel given by its path) or it
// cannot be told. The image is found by its name among each package's
// files, then by its inode, so that a path through a directory symlink
// (/lib -> usr/lib) is the same file. Packages with "linux" or "kernel"
// in their name are looked at first: the others' lists are read only
// when they do not have it.
func (a *Appliance) kernelPackage(k *kernel.Kernel) *backends.Package {
	rel, err := filepath.Rel(a.Root, k.Image.Path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil
	}
	want, ok := fileID(a.tree.Stat(filepath.ToSlash(rel)))
	if !ok {
		return nil
	}
	base := path.Base(filepath.ToSlash(rel))
	pkgs := slices.Clone(a.db.Packages())
	likely := func(p *backends.Package) bool {
		return strings.Contains(p.Name, "linux") || strings.Contains(p.Name, "kernel")
	}
	slices.SortStableFunc(pkgs, func(x, y *backends.Package) int {
		switch lx, ly := likely(x), likely(y); {
		case lx && !ly:
			return -1
		case ly && !lx:
			return 1
		}
		return 0
	})
	for _, p := range pkgs {
		files, err := a.db.Files(p)
		if err != nil {
			continue // a package whose list cannot be read did not install it, as far as we can tell
		}
		for _, f := range files {
			if path.Base(f.Source) != base {
				continue
			}
			if id, ok := fileID(a.tree.Stat(strings.TrimPrefix(f.Source, "/"))); ok && id == want {
				return p
			}
		}
	}
	return nil
}

type devIno struct{ dev, ino uint64 }

func fileID(fi fs.FileInfo, err error) (devIno, bool) {
	if err != nil {
		return devIno{}, false
	}
	switch st := fi.Sys().(type) {
	case *unix.Stat_t:
		return devIno{st.Dev, st.Ino}, true
	case *syscall.Stat_t:
		return devIno{st.Dev, st.Ino}, true
	}
	return devIno{}, false
}
