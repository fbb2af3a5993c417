package supermin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/ext2"
	"github.com/gosupermin/gosupermin/appliance/initrd"
	"github.com/gosupermin/gosupermin/appliance/kernel"
)

// What the bootable formats (ext2, cpio) share: the kernel, its modules
// and our init.

// findKernel chooses the kernel (appliance/kernel: SUPERMIN_KERNEL,
// SUPERMIN_KERNEL_VERSION, SUPERMIN_MODULES, /lib/modules/*/vmlinuz,
// /boot/vmlinu?-*) under the build's root.
func (b *build) findKernel() (*kernel.Kernel, error) {
	k, err := kernel.Find(kernel.Options{Root: b.root, HostCPU: b.HostCPU, Log: func(s string) { b.logf(2, "%s", s) }})
	if err != nil {
		return nil, err
	}
	b.logf(1, "kernel %s (%s), modules %s", k.Path, k.Version, k.ModDir)
	return k, nil
}

// writeKernel puts OUT/kernel: a symlink to the host kernel, or a copy
// with --copy-kernel.
func (b *build) writeKernel(k *kernel.Kernel, tmp string) error {
	dst := filepath.Join(tmp, "kernel")
	if !b.CopyKernel {
		abs, err := filepath.Abs(k.Path)
		if err != nil {
			return err
		}
		return os.Symlink(abs, dst)
	}
	in, err := os.Open(k.Path)
	if err != nil {
		return fmt.Errorf("copy kernel: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy kernel %s: %w", k.Path, err)
	}
	return out.Close()
}

// initrdParts gathers what initrd.Add needs: our init and the modules to
// mount root, decompressed.
func (b *build) initrdParts(k *kernel.Kernel, format string) (initrd.Options, error) {
	exe := os.Getenv("GOSUPERMIN_INIT")
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return initrd.Options{}, fmt.Errorf("find the gosupermin executable for the initrd's init: %w", err)
		}
	}
	src, size, err := initrd.InitBinary(exe)
	if err != nil {
		return initrd.Options{}, err
	}
	md, err := initrd.Open(k.ModDir)
	if err != nil {
		return initrd.Options{}, err
	}
	mods := md.Select(initrd.DefaultPatterns, initrd.DefaultExcludes)
	data, err := md.Load(mods)
	if err != nil {
		return initrd.Options{}, err
	}
	var total int
	for _, d := range data {
		total += len(d)
	}
	b.logf(1, "initrd: %d modules (%d KiB), init %s", len(mods), total>>10, exe)
	return initrd.Options{Format: format, Kernel: k.Version, Init: src, InitSize: size, Modules: mods, Data: data, Time: b.epoch}, nil
}

// addModuleTree adds the kernel's whole module directory to the appliance
// at /lib/modules/RELEASE, as supermin does for ext2.
func (b *build) addModuleTree(k *kernel.Kernel) error {
	// The module directory is read as a tree of its own: it may be
	// outside the root (SUPERMIN_MODULES names a host directory), and its
	// paths land under the appliance's own /lib/modules.
	mt := newTree(k.ModDir, b.manifest, b.epoch)
	dstBase := path.Join("/lib/modules", k.Version)
	n := 0
	err := filepath.WalkDir(k.ModDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil && p != k.ModDir && d != nil && d.IsDir() && mt.skipUnreadable(p, err) {
			return nil // a directory this user cannot list: its entry is in, not its contents
		}
		if err != nil {
			return err
		}
		r, err := filepath.Rel(k.ModDir, p)
		if err != nil {
			return err
		}
		src := path.Clean("/" + filepath.ToSlash(r))
		dst, err := b.tree.Canon(path.Join(dstBase, src))
		if err != nil {
			return err
		}
		if _, err := mt.Add(dst, src); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		n++
		return nil
	})
	b.tree.unreadable = append(b.tree.unreadable, mt.unreadable...)
	if err != nil {
		return fmt.Errorf("kernel modules: %w", err)
	}
	mt.LinkHardlinks()
	b.tree.AddParents()
	b.clampTimes(b.manifest)
	b.logf(1, "%d paths of %s added", n, k.ModDir)
	return b.manifest.Check()
}

// rootUUID is the ext2 UUID: GOSUPERMIN_ROOT_UUID if it is a UUID, random
// if it is "random", else derived from the content so that the same
// inputs give the same image.
func (b *build) rootUUID(k *kernel.Kernel, entries []*appliance.Entry, size int64) ([16]byte, error) {
	var u [16]byte
	switch v := os.Getenv("GOSUPERMIN_ROOT_UUID"); {
	case v == "random":
		if _, err := rand.Read(u[:]); err != nil {
			return u, err
		}
		u[6] = u[6]&0x0f | 0x40
		u[8] = u[8]&0x3f | 0x80
		return u, nil
	case v != "":
		h, err := hex.DecodeString(strings.ReplaceAll(v, "-", ""))
		if err != nil || len(h) != 16 {
			return u, fmt.Errorf("GOSUPERMIN_ROOT_UUID=%q: not a UUID (or \"random\")", v)
		}
		copy(u[:], h)
		return u, nil
	}
	return contentUUID(b, k, entries, size), nil
}

func contentUUID(b *build, k *kernel.Kernel, entries []*appliance.Entry, size int64) [16]byte {
	h := sha256.New()
	fmt.Fprintf(h, "gosupermin ext2 root\x00%s\x00%d\x00", k.Version, size)
	if b.closure != nil {
		var names []string
		for _, p := range b.closure.Packages {
			names = append(names, p.FullName)
		}
		sort.Strings(names)
		fmt.Fprintf(h, "%s\x00", strings.Join(names, "\n"))
	}
	var num [8]byte
	for _, e := range entries {
		h.Write([]byte(e.Path))
		h.Write([]byte{0, byte(e.Kind)})
		for _, v := range []uint64{uint64(e.Mode), uint64(e.UID), uint64(e.GID), uint64(e.Size),
			uint64(e.ModTime.Unix()), uint64(e.Major), uint64(e.Minor)} {
			binary.LittleEndian.PutUint64(num[:], v)
			h.Write(num[:])
		}
		h.Write([]byte(e.Link))
		h.Write([]byte{0})
	}
	return ext2.UUIDFor(h.Sum(nil))
}
