package appliance

import "context"

// Writer writes a sealed manifest in one format: a directory tree
// (appliance/chroot), a filesystem image (appliance/ext2) or an archive
// (appliance/cpio). A writer never changes the manifest.
type Writer interface {
	WriteManifest(ctx context.Context, m *Manifest) error
}
