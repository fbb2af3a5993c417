// Package ext2 writes an appliance manifest as an ext2 filesystem image,
// in pure Go, streaming file data into a sparse file without mke2fs or root.
package ext2

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
)

// Options for NewWriter.
type Options struct {
	Size  int64     // image size in bytes (the file is truncated to it, sparse)
	UUID  [16]byte  // filesystem UUID (caller derives it from content for reproducibility)
	Label string    // volume label, may be empty
	Time  time.Time // superblock creation/write time and times of entries with zero ModTime
	// Prefetch bounds the reading ahead of files' data.
	Prefetch appliance.PrefetchOptions
	// Progress, if set, is told the size of each regular file once its
	// data is written, for a progress indicator.
	Progress func(bytes int64)
}

// ErrNoSpace is wrapped by the error Write returns when the tree does not
// fit in Options.Size.
var ErrNoSpace = errors.New("ext2: the appliance does not fit in the image")

// noSpaceError keeps the sizes in the message so that the user knows what
// to ask for, while errors.Is still finds ErrNoSpace.
type noSpaceError struct{ need, have int64 }

func (e *noSpaceError) Error() string {
	const mib = 1 << 20
	return fmt.Sprintf("ext2: the appliance needs at least %d MiB but the image is %d MiB",
		(e.need+mib-1)/mib, e.have/mib)
}

func (e *noSpaceError) Unwrap() error { return ErrNoSpace }

// UUIDFor derives a version-4-shaped UUID from seed, so that an image built
// twice from the same content gets the same UUID.
func UUIDFor(seed []byte) [16]byte {
	sum := sha256.Sum256(seed)
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// Writer writes a manifest as an ext2 image into a file.
type Writer struct {
	f   *os.File
	opt Options
}

var _ appliance.Writer = (*Writer)(nil)

// NewWriter returns a writer into f, which must be empty.
func NewWriter(f *os.File, opt Options) *Writer { return &Writer{f: f, opt: opt} }

// WriteManifest streams the sealed manifest m into the file. Nothing large
// is written before the whole tree is known to fit; on ErrNoSpace the file
// is left empty.
func (w *Writer) WriteManifest(ctx context.Context, m *appliance.Manifest) error {
	if !m.Sealed() {
		return appliance.ErrNotSealed
	}
	return write(ctx, w.f, m.Entries(), w.opt)
}

// write streams entries (sorted as Manifest.Entries returns them) into f.
// It checks again what a sealed manifest promises, since a bad image
// would only show at boot.
func write(ctx context.Context, f *os.File, entries []*appliance.Entry, opt Options) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("ext2: %w", err)
	}
	if fi.Size() != 0 {
		return fmt.Errorf("ext2: %s is not empty", f.Name())
	}
	if opt.Size < 0 {
		return fmt.Errorf("ext2: negative image size %d", opt.Size)
	}
	if len(opt.Label) > 16 {
		return fmt.Errorf("ext2: label %q is longer than 16 bytes", opt.Label)
	}
	if opt.Time.IsZero() {
		// The zero time.Time predates what ext2 can store; the epoch is the
		// deterministic choice.
		opt.Time = time.Unix(0, 0)
	}
	w := &writer{f: f, opt: opt, ctx: ctx}
	if err := w.build(entries); err != nil {
		return err
	}
	if err := w.collectXattrs(); err != nil {
		return err
	}
	if err := w.plan(); err != nil {
		return err
	}
	if err := f.Truncate(opt.Size); err != nil {
		return fmt.Errorf("ext2: %w", err)
	}
	if err := w.writeData(); err != nil {
		return err
	}
	return w.writeMetadata()
}
