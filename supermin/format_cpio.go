package supermin

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gosupermin/gosupermin/appliance/cpio"
	"github.com/gosupermin/gosupermin/appliance/initrd"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func init() { Formats["cpio"] = writeCPIO }

// writeCPIO writes OUT/kernel and OUT/initrd, the whole appliance as one
// compressed newc initramfs (--compress zstd, gzip or none) with our init
// as /init: see appliance/initrd for the layout and what becomes of the
// appliance's own /init. Only the modules of the mini initrd are in it,
// not the whole /lib/modules/RELEASE (hundreds of MiB that would live in
// RAM); hostfiles can bring more.
func writeCPIO(ctx context.Context, b *build, tmp string) error {
	k, err := b.findKernel()
	if err != nil {
		return err
	}
	parts, err := b.initrdParts(k, initrd.FormatCPIO)
	if err != nil {
		return err
	}
	if err := initrd.Add(b.manifest, parts); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.reportUnreadable()
	if err := b.manifest.Seal(); err != nil {
		return err
	}
	err = writeFile(filepath.Join(tmp, "initrd"), func(f *os.File) error {
		w, err := compressor(f, b.Compress)
		if err != nil {
			return err
		}
		if err := cpio.NewWriter(w).WriteManifest(ctx, b.manifest); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	})
	if err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	return b.writeKernel(k, tmp)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// compressor wraps w in the --compress method. Both compressors give the
// same bytes for the same input (no names or times in their headers).
func compressor(w io.Writer, method string) (io.WriteCloser, error) {
	switch method {
	case "", "zstd":
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault))
	case "gzip":
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	case "none":
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("--compress %q: use zstd, gzip or none", method)
}
