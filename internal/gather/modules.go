package gather

import (
	"context"
	"fmt"
	"path"

	"golang.org/x/sys/unix"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/internal/rootfs"
)

// Modules gathers a kernel's module directory, dir of the tree fsys, as
// its own manifest, at dst in the appliance. dst's ancestors come with
// the metadata of dir's; merged into an appliance, the appliance's own
// directories win. It returns the host paths left out because this user
// cannot read them.
func Modules(ctx context.Context, fsys *rootfs.FS, dir, dst string, opt Options) (*appliance.Manifest, []string, error) {
	t := newTree(fsys, opt)
	dir, err := t.Canon(path.Clean("/" + dir))
	if err != nil {
		return nil, nil, fmt.Errorf("kernel modules: %w", err)
	}
	t.warmTree(ctx, dir)
	n := 0
	var walk func(rel string) error
	walk = func(rel string) error {
		if n++; n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		src := path.Join(dir, rel)
		if err := t.addCanonical(path.Join(dst, rel), src); err != nil {
			return fmt.Errorf("%s: %w", t.host(src), err)
		}
		st, err := fsys.LstatSys(src)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil
		}
		ents, err := fsys.ReadDir(src)
		if err != nil {
			if rel != "/" && t.skipUnreadable(t.host(src), err) {
				return nil // a directory this user cannot list: its entry is in, not its contents
			}
			return err
		}
		for _, e := range ents {
			if err := walk(path.Join(rel, e.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("/"); err != nil {
		return nil, nil, fmt.Errorf("kernel modules: %w", err)
	}
	// The ancestors of dst pair with those of dir.
	for d, s := path.Dir(dst), path.Dir(dir); d != "/"; d, s = path.Dir(d), path.Dir(s) {
		e := appliance.Entry{Mode: 0o755, ModTime: opt.Epoch}
		if s != "/" || dir != "/" {
			e = t.dirEntry(s)
		}
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
	t.logf(1, "%d paths of %s", n, t.host(dir))
	return t.m, t.unreadable, nil
}
