package gather

import (
	"context"
	"path"
	"sync"

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
	type add struct {
		dst, src string
		pkg      int // in pkgs, for progress
	}
	var adds []add
	nexcl := 0
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
			adds = append(adds, add{dst, f.Source, i})
		}
	}
	srcs := make([]string, len(adds))
	for i, a := range adds {
		srcs[i] = a.src
	}
	t.warm(ctx, srcs)
	for i, a := range adds {
		if err := t.Add(a.dst, a.src); err != nil {
			return err
		}
		if i+1 == len(adds) || adds[i+1].pkg != a.pkg {
			t.progress(PhaseFiles, a.pkg+1, len(pkgs))
		}
	}
	t.progress(PhaseFiles, len(pkgs), len(pkgs))
	t.logf(1, "%d package files, %d after excludefiles", len(adds)+nexcl, len(adds))
	return nil
}

// warm looks up paths from a few goroutines, ahead of the one-by-one
// walk that adds them: when the tree is not in the kernel's caches, the
// disk then has many lookups to serve at once instead of one.
func (t *Tree) warm(ctx context.Context, paths []string) {
	const workers = 16
	next := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				_, _ = t.fs.LstatSys(p)
			}
		}()
	}
	for _, p := range paths {
		if ctx.Err() != nil {
			break
		}
		next <- p
	}
	close(next)
	wg.Wait()
}

func excluded(patterns []string, p string) bool {
	for _, pat := range patterns {
		if fnmatch.Match(pat, p) {
			return true
		}
	}
	return false
}

// warmTree lists every directory under dir from a few goroutines, which
// looks up every entry (rootfs's ReadDir does), ahead of the walk that
// adds them one by one.
func (t *Tree) warmTree(ctx context.Context, dir string) {
	const workers = 16
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	var visit func(d string)
	visit = func(d string) {
		defer wg.Done()
		sem <- struct{}{}
		ents, err := t.fs.ReadDir(d)
		<-sem
		if err != nil || ctx.Err() != nil {
			return
		}
		for _, e := range ents {
			if e.IsDir() {
				wg.Add(1)
				go visit(path.Join(d, e.Name()))
			}
		}
	}
	wg.Add(1)
	visit(dir)
	wg.Wait()
}
