package gather

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/gosupermin/gosupermin/appliance"
)

// Modules gathers a kernel's module directory modDir (a host path; it may
// lie outside any package tree) as its own manifest, at dst in the
// appliance. dst's ancestors come with the metadata of modDir's; merged
// into an appliance, the appliance's own directories win. It returns the
// host paths left out because this user cannot read them.
func Modules(ctx context.Context, modDir, dst string, opt Options) (*appliance.Manifest, []string, error) {
	opt.Root = modDir
	t := &Tree{opt: opt, m: appliance.New(), canon: map[string]string{"/": "/"}, inode: map[string]fileID{},
		checkRead: os.Geteuid() != 0}
	n := 0
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil && p != modDir && d != nil && d.IsDir() && t.skipUnreadable(p, err) {
			return nil // a directory this user cannot list: its entry is in, not its contents
		}
		if err != nil {
			return err
		}
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r, err := filepath.Rel(modDir, p)
		if err != nil {
			return err
		}
		src, err := t.Canon(path.Clean("/" + filepath.ToSlash(r)))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if err := t.addCanonical(path.Join(dst, src), src); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		n++
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("kernel modules: %w", err)
	}
	// The ancestors of dst pair with those of modDir.
	for d, h := path.Dir(dst), filepath.Dir(modDir); d != "/"; d, h = path.Dir(d), filepath.Dir(h) {
		e := dirMeta(h, opt.Epoch)
		e.Path, e.Kind = d, appliance.Dir
		if err := t.m.Put(e); err != nil {
			return nil, nil, err
		}
	}
	if err := t.addParents(); err != nil {
		return nil, nil, err
	}
	if opt.Clamp {
		if err := t.m.ClampTimes(opt.Epoch); err != nil {
			return nil, nil, err
		}
	}
	t.logf(1, "%d paths of %s", n, modDir)
	return t.m, t.unreadable, nil
}
