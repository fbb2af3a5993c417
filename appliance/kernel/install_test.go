package kernel

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// bzImageKernel writes img as dir/vmlinuz and returns the Kernel of it.
func bzImageKernel(t *testing.T, dir string, img []byte) *Kernel {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	return &Kernel{Image: Ref{FS: os.DirFS(dir), Name: "vmlinuz", Path: filepath.Join(dir, "vmlinuz")}}
}

// needXattrs skips outside CI where the temporary directory's file
// system has no user xattrs (tmpfs before Linux 6.6): InstallVmlinux
// then always decompresses, which the reuse cases cannot tell apart.
func needXattrs(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "xattr-probe")
	os.WriteFile(p, nil, 0o644)
	defer os.Remove(p)
	if err := unix.Setxattr(p, "user.probe", []byte("1"), 0); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: %s has no user xattrs: %v", dir, err)
		}
		t.Skipf("%s has no user xattrs (%v): the ELF kernel cannot be taken over there", dir, err)
	}
}

// TestInstallVmlinux: the ELF is written and taken over by the next
// install from the same bzImage, hard-linked, only when it is unchanged,
// comes from that bzImage, and is a regular file at the name given.
func TestInstallVmlinux(t *testing.T) {
	dir := t.TempDir()
	needXattrs(t, dir)
	// Three pages of zeros in its code, which must become a hole.
	e := fakeELF(elf.ELFCLASS64, elf.EM_X86_64, []note{pvhNote}, 6*4096)
	clear(e[4096 : 4*4096])
	k := bzImageKernel(t, t.TempDir(), payloadImage(withSize(compressGzip(t, e), len(e))))
	ctx := context.Background()
	install := func(prev string) (string, bool) {
		t.Helper()
		dst := filepath.Join(t.TempDir(), "kernel")
		reused, err := k.InstallVmlinux(ctx, dst, prev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, e) {
			t.Fatalf("%s: %d bytes, not the ELF", dst, len(got))
		}
		return dst, reused
	}
	first, reused := install(filepath.Join(dir, "absent"))
	if reused {
		t.Fatal("reused a file that does not exist")
	}
	f, err := os.Open(first)
	if err != nil {
		t.Fatal(err)
	}
	hole, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE)
	f.Close()
	if err != nil || hole != 4096 {
		t.Errorf("the first hole of an ELF whose pages 1-3 are zeros is at %d (%v), want 4096", hole, err)
	}
	second, reused := install(first)
	if !reused {
		t.Fatal("the unchanged ELF of the same bzImage was not taken over")
	}
	fi1, _ := os.Stat(first)
	fi2, _ := os.Stat(second)
	if !os.SameFile(fi1, fi2) {
		t.Error("taken over by a copy where a hard link was possible")
	}

	t.Run("changed", func(t *testing.T) {
		prev := filepath.Join(t.TempDir(), "kernel")
		b, _ := os.ReadFile(first)
		b[len(b)-1] ^= 1
		os.WriteFile(prev, b, 0o644)
		attr := make([]byte, 256)
		n, err := unix.Getxattr(first, vmlinuxXattr, attr)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(prev, vmlinuxXattr, attr[:n], 0); err != nil {
			t.Fatal(err)
		}
		if _, reused := install(prev); reused {
			t.Error("took over an ELF whose content changed")
		}
	})
	t.Run("symlink", func(t *testing.T) {
		prev := filepath.Join(t.TempDir(), "kernel")
		os.Symlink(first, prev)
		if _, reused := install(prev); reused {
			t.Error("followed a symbolic link to take an ELF over")
		}
	})
	// A hostile or broken previous output: none of these is taken over,
	// opened in a way that blocks, or read whole into memory.
	t.Run("hostile", func(t *testing.T) {
		attr := make([]byte, 256)
		n, err := unix.Getxattr(first, vmlinuxXattr, attr)
		if err != nil {
			t.Fatal(err)
		}
		good := attr[:n]
		for name, mk := range map[string]func(p string) error{
			"fifo": func(p string) error { return unix.Mkfifo(p, 0o644) },
			"directory": func(p string) error {
				if err := os.Mkdir(p, 0o755); err != nil {
					return err
				}
				return unix.Setxattr(p, vmlinuxXattr, good, 0)
			},
			"larger than MaxVmlinux": func(p string) error {
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					return err
				}
				if err := os.Truncate(p, MaxVmlinux+1); err != nil {
					return err
				}
				return unix.Setxattr(p, vmlinuxXattr, good, 0)
			},
			"xattr without the ELF's sum": func(p string) error {
				b, _ := os.ReadFile(first)
				os.WriteFile(p, b, 0o644)
				return unix.Setxattr(p, vmlinuxXattr, good[:64], 0)
			},
			"xattr too long": func(p string) error {
				b, _ := os.ReadFile(first)
				os.WriteFile(p, b, 0o644)
				return unix.Setxattr(p, vmlinuxXattr, bytes.Repeat([]byte("a"), 4000), 0)
			},
		} {
			t.Run(name, func(t *testing.T) {
				prev := filepath.Join(t.TempDir(), "kernel")
				if err := mk(prev); err != nil {
					t.Fatal(err)
				}
				if _, reused := install(prev); reused {
					t.Error("taken over")
				}
			})
		}
	})
	t.Run("another bzImage", func(t *testing.T) {
		other := bzImageKernel(t, t.TempDir(), payloadImage(withSize(compressXZ(t, e), len(e))))
		dst := filepath.Join(t.TempDir(), "kernel")
		reused, err := other.InstallVmlinux(ctx, dst, first)
		if err != nil || reused {
			t.Errorf("the ELF of another bzImage: reused %v, %v", reused, err)
		}
	})
}

// TestInstallVmlinuxErrors: a kernel without an ELF we can boot is
// Vmlinux's error and leaves nothing; failing to write is ErrWrite.
func TestInstallVmlinuxErrors(t *testing.T) {
	ctx := context.Background()
	e := pvhELF()
	lz4 := payloadImage(withSize([]byte("\x02\x21\x4c\x18 not really lz4"), len(e)))
	k := bzImageKernel(t, t.TempDir(), lz4)
	dst := filepath.Join(t.TempDir(), "kernel")
	if _, err := k.InstallVmlinux(ctx, dst, ""); !errors.Is(err, ErrPayloadFormat) || errors.Is(err, ErrWrite) {
		t.Errorf("lz4 payload: %v", err)
	}
	if _, err := os.Lstat(dst); err == nil {
		t.Error("a failed install left its file")
	}
	good := bzImageKernel(t, t.TempDir(), payloadImage(withSize(compressGzip(t, e), len(e))))
	if _, err := good.InstallVmlinux(ctx, filepath.Join(t.TempDir(), "no", "kernel"), ""); !errors.Is(err, ErrWrite) {
		t.Errorf("destination in a missing directory: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	dst = filepath.Join(t.TempDir(), "kernel")
	if _, err := good.InstallVmlinux(cctx, dst, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := os.Lstat(dst); err == nil {
		t.Error("a cancelled install left its file")
	}
}
