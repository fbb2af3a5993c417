package kernel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// vmlinuxXattr, on an ELF kernel InstallVmlinux wrote, holds the SHA-256
// of the bzImage it comes from and of the ELF itself. A later build from
// the same bzImage takes the ELF over from the output it replaces, once
// its content is checked against the second sum, instead of decompressing
// again: a second of CPU saved on every rebuild that does not change the
// kernel, which is most of them.
const vmlinuxXattr = "user.gosupermin.vmlinux"

// ErrWrite is wrapped by InstallVmlinux's error when writing the ELF
// failed (a full disk): unlike the kernel's own problems, the bzImage
// would not fare better.
var ErrWrite = errors.New("write the ELF kernel")

// InstallVmlinux writes at dst, which must not exist, the ELF kernel
// inside k's x86 bzImage (see Vmlinux): qemu boots it through the PVH
// entry point, without the bzImage's decompressor, which takes seconds
// under TCG. When prev (may be empty) is an ELF kernel this function
// wrote from the same bzImage and is unchanged since, it is hard-linked
// (or copied) instead, and reused says so. Errors of Vmlinux's are
// returned as they are, those of writing dst wrap ErrWrite; dst is then
// removed.
func (k *Kernel) InstallVmlinux(ctx context.Context, dst, prev string) (reused bool, err error) {
	in, size, err := k.openImage()
	if err != nil {
		return false, err
	}
	defer in.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(in, 0, size)); err != nil {
		return false, fmt.Errorf("kernel %s: %w", k.Image.Path, err)
	}
	src := hex.EncodeToString(h.Sum(nil))
	if prev != "" && takeOver(prev, dst, src) {
		return true, nil
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrWrite, err)
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(dst)
		}
	}()
	sum := sha256.New()
	dw := &destWriter{ctx: ctx, f: out}
	bw := bufio.NewWriterSize(dw, 1<<20)
	if _, err := Vmlinux(in, size, io.MultiWriter(bw, sum)); err != nil {
		if dw.err != nil {
			return false, fmt.Errorf("%w %s: %w", ErrWrite, dst, dw.err)
		}
		return false, fmt.Errorf("kernel %s: %w", k.Image.Path, err)
	}
	if err := bw.Flush(); err != nil {
		return false, fmt.Errorf("%w %s: %w", ErrWrite, dst, err)
	}
	if err := out.Truncate(dw.off); err != nil { // a hole at the end
		return false, fmt.Errorf("%w %s: %w", ErrWrite, dst, err)
	}
	// Without user xattrs (tmpfs before Linux 6.6) the next build
	// decompresses again: slower, not wrong.
	_ = unix.Fsetxattr(int(out.Fd()), vmlinuxXattr, []byte(src+" "+hex.EncodeToString(sum.Sum(nil))), 0)
	if err := out.Close(); err != nil {
		return false, fmt.Errorf("%w %s: %w", ErrWrite, dst, err)
	}
	return false, nil
}

// openImage opens the kernel image for random access.
func (k *Kernel) openImage() (readerAtCloser, int64, error) {
	f, err := openFile(k.Image)
	if err != nil {
		return nil, 0, fmt.Errorf("kernel %s: %w", k.Image.Path, err)
	}
	if r, ok := f.(interface {
		readerAtCloser
		Stat() (fs.FileInfo, error)
	}); ok {
		fi, err := r.Stat()
		if err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("kernel %s: %w", k.Image.Path, err)
		}
		return r, fi.Size(), nil
	}
	// A tree without random access: kernel images are a few MiB.
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxVmlinux+1))
	if err != nil {
		return nil, 0, fmt.Errorf("kernel %s: %w", k.Image.Path, err)
	}
	if len(b) > MaxVmlinux {
		return nil, 0, fmt.Errorf("kernel %s: %w", k.Image.Path, ErrTooLarge)
	}
	return nopCloser{bytes.NewReader(b)}, int64(len(b)), nil
}

type readerAtCloser interface {
	io.ReaderAt
	io.Closer
}

type nopCloser struct{ io.ReaderAt }

func (nopCloser) Close() error { return nil }

// destWriter writes the ELF leaving its all-zero pages as holes (half
// of Debian's: 32 MiB not written, nor stored), keeps the destination's
// own error apart from the decompressor's, and stops the copy once ctx
// is done.
type destWriter struct {
	ctx context.Context
	f   *os.File
	off int64
	err error
}

var zeroPage [4096]byte

func (d *destWriter) Write(p []byte) (int, error) {
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	for done := 0; done < len(p); {
		// A run of pages that are all zeros, or of pages that are not.
		end, zero := done, true
		for end < len(p) {
			page := p[end:min(len(p), end+len(zeroPage))]
			z := bytes.Equal(page, zeroPage[:len(page)])
			if end > done && z != zero {
				break
			}
			zero = z
			end += len(page)
		}
		if !zero {
			if _, err := d.f.WriteAt(p[done:end], d.off); err != nil {
				d.err = err
				return done, err
			}
		}
		d.off += int64(end - done)
		done = end
	}
	return len(p), nil
}

// takeOver links prev at dst when prev is a regular file whose xattr says
// it is the ELF of the bzImage whose SHA-256 is src, and whose content
// still has the SHA-256 it says. Anything else, it says no and the caller
// decompresses: prev is only an optimization.
func takeOver(prev, dst, src string) bool {
	f, err := os.OpenFile(prev, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() > MaxVmlinux {
		return false
	}
	buf := make([]byte, 256)
	n, err := unix.Fgetxattr(int(f.Fd()), vmlinuxXattr, buf)
	if err != nil {
		return false
	}
	from, elf, ok := strings.Cut(string(buf[:n]), " ")
	if !ok || from != src {
		return false
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil || hex.EncodeToString(h.Sum(nil)) != elf {
		return false
	}
	// The file checked, not whatever is at prev's name by now.
	if unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW) == nil {
		return true
	}
	return copyChecked(f, dst, buf[:n], elf)
}

// copyChecked copies f, already checked, to dst when it cannot be linked
// (another file system's /proc, a link count at its limit), checking the
// sum again as it goes.
func copyChecked(f *os.File, dst string, attr []byte, elf string) bool {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return false
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), f)
	if err == nil && hex.EncodeToString(h.Sum(nil)) == elf {
		_ = unix.Fsetxattr(int(out.Fd()), vmlinuxXattr, attr, 0)
		if out.Close() == nil {
			return true
		}
	} else {
		out.Close()
	}
	os.Remove(dst)
	return false
}
