package supermin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/appliance/kernel"
)

// KernelFormat is what a bootable format writes as OUT/kernel.
type KernelFormat int

const (
	// KernelAuto is KernelELF where the kernel allows it (an x86-64
	// bzImage with a PVH entry point, compressed with xz, gzip or zstd)
	// and KernelImage otherwise.
	KernelAuto KernelFormat = iota
	// KernelELF is the uncompressed ELF kernel inside the bzImage. qemu's
	// -kernel boots it through the PVH entry point, so the guest skips
	// the bzImage's decompressor: seconds under TCG (qemu without KVM,
	// as in most build daemons and CI), a few tenths under KVM. It takes
	// about 60 MiB where a link takes none, and about a second to
	// decompress when the output replaced does not have it already.
	KernelELF
	// KernelImage is the distribution's kernel image as it is, a link to
	// it (or a copy, with CopyKernel): what supermin 5 writes.
	KernelImage
)

var kernelFormatNames = []string{"auto", "elf", "image"}

func (f KernelFormat) String() string {
	if int(f) < len(kernelFormatNames) {
		return kernelFormatNames[f]
	}
	return fmt.Sprintf("KernelFormat(%d)", int(f))
}

// ParseKernelFormat reads the name String gives.
func ParseKernelFormat(s string) (KernelFormat, error) {
	for i, n := range kernelFormatNames {
		if s == n {
			return KernelFormat(i), nil
		}
	}
	return 0, fmt.Errorf("unknown kernel format %q (auto, elf or image)", s)
}

// errNoELF is returned when KernelELF is asked of a kernel that is not
// an x86-64 bzImage.
var errNoELF = errors.New("only an x86-64 bzImage has an ELF kernel inside that qemu boots directly")

// installKernel writes OUT/kernel as b.KernelFormat says, taking over the
// ELF kernel of the output the build replaces when it is the same.
func (b *Boot) installKernel(ctx context.Context, a *Appliance, k *kernel.Kernel, dir string) error {
	dst := filepath.Join(dir, "kernel")
	if b.KernelFormat == KernelImage {
		return k.Install(dst, b.CopyKernel)
	}
	name, format, err := k.Arch()
	if err == nil && (name != "amd64" || format != arch.BzImage) {
		err = fmt.Errorf("kernel %s is a %s %s: %w", k.Image.Path, name, format, errNoELF)
	}
	if err == nil {
		var prev string
		if a.Previous != "" {
			prev = filepath.Join(a.Previous, "kernel")
		}
		start := time.Now()
		var reused bool
		if reused, err = k.InstallVmlinux(ctx, dst, prev); err == nil {
			if reused {
				a.Logf(1, "kernel: the ELF kernel inside %s, taken over from %s", k.Image.Path, prev)
			} else {
				a.Logf(1, "kernel: the ELF kernel inside %s, decompressed in %.2f s", k.Image.Path, time.Since(start).Seconds())
			}
			return nil
		}
	}
	if b.KernelFormat == KernelELF || ctx.Err() != nil || errors.Is(err, kernel.ErrWrite) {
		return err
	}
	os.Remove(dst)
	a.Logf(1, "kernel: %s as it is (%v)", k.Image.Path, err)
	return k.Install(dst, b.CopyKernel)
}
