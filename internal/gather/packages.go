package gather

import (
	"context"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/internal/fnmatch"
)

// AddPackages adds the files of pkgs (a closure) as their database lists
// them: config files are left out (they come from the base image), and
// so are paths that match an excludefiles pattern (fnmatch, "*" crossing
// "/"). A file diverted with dpkg-divert is taken from where it was
// diverted to, and goes back to its own name when the diverting package
// is not in the appliance.
func (t *Tree) AddPackages(ctx context.Context, db backends.DB, pkgs []*backends.Package, excludes []string) error {
	in := map[string]bool{}
	for _, p := range pkgs {
		in[p.Name] = true
	}
	nfiles, nexcl := 0, 0
	t.progress(PhaseFiles, 0, len(pkgs))
	for i, p := range pkgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		files, err := db.Files(p)
		if err != nil {
			return err
		}
		for _, f := range files {
			if f.Config {
				continue
			}
			dst := f.Path
			if f.DivertedBy == ":" || in[f.DivertedBy] {
				dst = f.Source // the diverter is in the appliance too: keep the tree's layout
			}
			if excluded(excludes, f.Path) || dst != f.Path && excluded(excludes, dst) {
				nexcl++
				continue
			}
			if err := t.Add(dst, f.Source); err != nil {
				return err
			}
			nfiles++
		}
		t.progress(PhaseFiles, i+1, len(pkgs))
	}
	t.logf(1, "%d package files, %d after excludefiles", nfiles+nexcl, nfiles)
	return nil
}

func excluded(patterns []string, p string) bool {
	for _, pat := range patterns {
		if fnmatch.Match(pat, p) {
			return true
		}
	}
	return false
}
