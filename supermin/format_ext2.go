package supermin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/cpio"
	"github.com/gosupermin/gosupermin/appliance/ext2"
	"github.com/gosupermin/gosupermin/appliance/initrd"
)

func init() { Formats["ext2"] = writeExt2 }

// defaultSize is supermin's default ext2 image size.
const defaultSize = 4 << 30

// writeExt2 writes supermin 5's ext2 appliance: OUT/kernel (symlink or
// copy of the host kernel), OUT/initrd (uncompressed newc: our init, the
// modules to mount root and their load order) and OUT/root (sparse ext2
// with the appliance and the kernel's whole /lib/modules/RELEASE).
// libguestfs boots such a directory as a fixed appliance.
//
// The image's UUID is derived from its content (paths, metadata, package
// list, kernel release, size) and its times are the build's epoch
// (SOURCE_DATE_EPOCH), so the same inputs give the same bytes;
// GOSUPERMIN_ROOT_UUID=random or =UUID overrides it. The init put in the
// initrd is this executable, or GOSUPERMIN_INIT.
func writeExt2(ctx context.Context, b *build, tmp string) error {
	k, err := b.findKernel()
	if err != nil {
		return err
	}
	parts, err := b.initrdParts(k, initrd.FormatExt2)
	if err != nil {
		return err
	}
	if err := b.addModuleTree(k); err != nil {
		return err
	}
	b.reportUnreadable()
	if err := ctx.Err(); err != nil {
		return err
	}

	// root first: it is the long part, and the one that can be too small.
	size := b.Size
	if size <= 0 {
		size = defaultSize
	}
	if err := b.manifest.Seal(); err != nil {
		return err
	}
	entries := b.manifest.Entries()
	uuid, err := b.rootUUID(k, entries, size)
	if err != nil {
		return err
	}
	rootPath := filepath.Join(tmp, "root")
	f, err := os.OpenFile(rootPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	err = ext2.NewWriter(f, ext2.Options{Size: size, UUID: uuid, Time: b.epoch}).WriteManifest(ctx, b.manifest)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, ext2.ErrNoSpace) {
		return fmt.Errorf("%w; use a larger --size (it is %s)", err, humanSize(size))
	}
	if err != nil {
		return err
	}
	b.logf(1, "root: %s ext2, UUID %x-%x-%x-%x-%x", humanSize(size), uuid[0:4], uuid[4:6], uuid[6:8], uuid[8:10], uuid[10:])
	if err := ctx.Err(); err != nil {
		return err
	}

	m := appliance.New()
	if err := initrd.Add(m, parts); err != nil {
		return err
	}
	if err := m.Seal(); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(tmp, "initrd"), func(w *os.File) error {
		return cpio.NewWriter(w).WriteManifest(ctx, m)
	}); err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	return b.writeKernel(k, tmp)
}

// writeFile creates p and fills it with write.
func writeFile(p string, write func(*os.File) error) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%db", n)
}
