package supermin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/appliance/cpio"
	"github.com/gosupermin/gosupermin/appliance/ext2"
	"github.com/gosupermin/gosupermin/appliance/initrd"
	"github.com/gosupermin/gosupermin/appliance/kernel"
	"github.com/gosupermin/gosupermin/internal/gather"
	"github.com/gosupermin/gosupermin/internal/rootfs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Boot is what the bootable formats share: the kernel, how it is put in
// the output, and the init program of the initrd.
//
// The appliance's architecture comes from the package database (its
// native architecture), the kernel image's header and Kernel.HostCPU when
// set; they must agree. It decides the initrd's modules (appliance/arch's
// table) and the init program, which must be a static ELF of that
// architecture: an init of another one is refused before anything is
// written.
type Boot struct {
	// Kernel chooses the kernel (Root and Log are the build's). When
	// HostCPU is empty, the kernels of the database's architecture are
	// preferred.
	Kernel kernel.Options
	// KernelFormat says what OUT/kernel is: by default the ELF kernel
	// inside an x86-64 bzImage, which boots without its decompressor.
	KernelFormat KernelFormat
	// CopyKernel copies the kernel image into the output instead of
	// linking it, when OUT/kernel is the image (KernelImage, or a kernel
	// KernelAuto keeps as it is).
	CopyKernel bool
	// Init is the static init program put in the initrd. When empty,
	// FindInit is asked for the one of the appliance's architecture
	// (arch.FindInit is gosupermin's search); gosupermin's command gives
	// one or the other.
	Init     string
	FindInit func(target *arch.Arch) (string, error)
}

// target settles the appliance's architecture from the database, the
// kernel and HostCPU; nil when none of them names one the table has
// (then the init's architecture cannot be checked).
func (b *Boot) target(a *Appliance, k *kernel.Kernel) (*arch.Arch, error) {
	sources := []arch.Source{a.dbArch}
	name, format, err := k.Arch()
	switch {
	case errors.Is(err, arch.ErrUnknownImage):
		a.Logf(1, "%v: its architecture is not checked", err)
	case err != nil:
		return nil, err
	default:
		sources = append(sources, arch.Source{What: fmt.Sprintf("the kernel %s (%s)", k.Image.Path, format), Name: name})
		if !format.Direct() {
			a.Warnf("kernel %s is an %s: qemu's -kernel does not boot it without EFI firmware", k.Image.Path, format)
		}
	}
	if b.Kernel.HostCPU != "" {
		sources = append(sources, arch.Source{What: "the host CPU asked for", Name: b.Kernel.HostCPU})
	}
	t, err := arch.Resolve(sources...)
	if errors.Is(err, arch.ErrNotInTable) && b.Init != "" {
		// supermin 5 built appliances for any architecture: with an init
		// given, go on without the checks the table allows.
		a.Warnf("%v: the init program's architecture is not checked", err)
		return nil, nil
	}
	if errors.Is(err, arch.ErrNotInTable) {
		return nil, fmt.Errorf("%w; give an init program built for it", err)
	}
	if err != nil {
		return nil, err
	}
	if t == nil {
		t = arch.Native()
	}
	return t, nil
}

// prepare finds the kernel and loads what the initrd needs.
func (b *Boot) prepare(a *Appliance, format string) (*kernel.Kernel, initrd.Options, error) {
	if b.Init == "" && b.FindInit == nil {
		return nil, initrd.Options{}, errNoInit
	}
	ko := b.Kernel
	ko.FS, ko.Root, ko.Log = a.tree.FS(), a.Root, func(s string) { a.Logf(2, "%s", s) }
	if dbArch, ok := arch.Lookup(a.dbArch.Name); ok && ko.HostCPU == "" {
		ko.HostCPU = dbArch.Uname
	}
	k, err := kernel.Find(ko)
	if err != nil {
		return nil, initrd.Options{}, err
	}
	a.closers = append(a.closers, k.Close)
	a.Kernel = k
	a.Logf(1, "kernel %s (%s), modules %s", k.Image.Path, k.Version, k.Modules.Path)
	target, err := b.target(a, k)
	if err != nil {
		return nil, initrd.Options{}, err
	}
	initPath := b.Init
	if initPath == "" {
		if target == nil {
			return nil, initrd.Options{}, fmt.Errorf("%w; the appliance's architecture is not one gosupermin knows (%s): give the init program", errNoInit, strings.Join(arch.Names(), ", "))
		}
		if initPath, err = b.FindInit(target); err != nil {
			return nil, initrd.Options{}, err
		}
	}
	init, size, err := initrd.InitBinary(initPath, target)
	if err != nil {
		return nil, initrd.Options{}, err
	}
	mods, err := initrd.LoadFor(k.Modules.FS, k.Modules.Name, k.Modules.Path, target)
	if err != nil {
		return nil, initrd.Options{}, err
	}
	total := 0
	for _, m := range mods {
		total += len(m.Data)
	}
	if target != nil {
		a.Logf(1, "architecture %s: console %s, %s -M %s", target.Name, target.Console, target.Qemu.Binary, target.Qemu.Machine)
	}
	a.Logf(1, "initrd: %d modules (%d KiB), init %s", len(mods), total>>10, initPath)
	o := initrd.Options{Format: format, Kernel: k.Version, Init: init, InitSize: size, Modules: mods, Time: a.Epoch}
	if target != nil {
		o.Drivers = target.Qemu.Drivers
	}
	return k, o, nil
}

// Ext2 is supermin 5's ext2 format: OUT/kernel (the ELF kernel inside an
// x86-64 bzImage, or the kernel image as it is: Boot.KernelFormat),
// OUT/initrd (uncompressed newc: our init, the modules to mount
// root and their load order) and OUT/root (a sparse ext2 image of the
// appliance and the kernel's whole /lib/modules/RELEASE). libguestfs
// boots such a directory as a fixed appliance.
type Ext2 struct {
	Boot
	// Size of the image in bytes; 0 is supermin's 4 GiB.
	Size int64
	// UUID of the filesystem; zero derives it from the content, so that
	// the same inputs give the same bytes. RandomUUID makes a random one.
	UUID       [16]byte
	RandomUUID bool
}

// DefaultSize is supermin's default ext2 image size.
const DefaultSize = 4 << 30

func (f *Ext2) Write(ctx context.Context, a *Appliance, dir string) error {
	k, parts, err := f.prepare(a, initrd.FormatExt2)
	if err != nil {
		return err
	}
	if err := f.write(ctx, a, k, parts, dir); err != nil {
		return err
	}
	// After the image, not beside it: decompressing needs a 32 MiB
	// dictionary, and with the image's read-ahead the build would go
	// over its memory bound and spend the CPU it would gain on GC.
	return f.installKernel(ctx, a, k, dir)
}

// write writes OUT/root and OUT/initrd.
func (f *Ext2) write(ctx context.Context, a *Appliance, k *kernel.Kernel, parts initrd.Options, dir string) error {
	m, err := withModules(ctx, a, k, f.Kernel.Modules != "")
	if err != nil {
		return err
	}
	// root first: it is the long part, and the one that can be too small.
	size := f.Size
	if size <= 0 {
		size = DefaultSize
	}
	uuid, err := f.uuid(k, a, m, size)
	if err != nil {
		return err
	}
	meter := a.meter(PhaseImage, m)
	err = writeFile(filepath.Join(dir, "root"), func(out *os.File) error {
		return ext2.NewWriter(out, ext2.Options{Size: size, UUID: uuid, Time: a.Epoch, Progress: meter.addFunc()}).WriteManifest(ctx, m)
	})
	if err != nil {
		return err
	}
	meter.end()
	a.Logf(1, "root: %s ext2, UUID %x-%x-%x-%x-%x", HumanSize(size), uuid[0:4], uuid[4:6], uuid[6:8], uuid[8:10], uuid[10:])
	rd, err := initrd.Manifest(parts)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "initrd"), func(out *os.File) error {
		return cpio.NewWriter(out).WriteManifest(ctx, rd)
	})
}

// withModules is the appliance with the kernel's whole module directory
// at its /lib/modules/RELEASE, as supermin's ext2 has it.
func withModules(ctx context.Context, a *Appliance, k *kernel.Kernel, given bool) (*appliance.Manifest, error) {
	dst, _ := a.Manifest.Resolve(path.Join("/lib/modules", k.Version))
	// The tree's own modules, or a host directory named by the caller.
	fsys, dir := a.tree, k.Modules.Name
	if given {
		t, err := rootfs.Open(k.Modules.Path)
		if err != nil {
			return nil, fmt.Errorf("kernel modules: %w", err)
		}
		// Open until the build ends: the image reads the files later.
		a.closers = append(a.closers, t.Close)
		fsys, dir = t, "/"
	}
	mods, unreadable, err := gather.Modules(ctx, fsys, dir, dst, gather.Options{Epoch: a.Epoch, Clamp: a.Clamp,
		Log: func(level int, msg string) { a.Logf(level, "%s", msg) }})
	if err != nil {
		return nil, err
	}
	a.ReportUnreadable(unreadable)
	m, err := appliance.Merge(a.Manifest, mods)
	if err != nil {
		return nil, err
	}
	return m, m.Seal()
}

// uuid is the image's: given, random, or derived from its content.
func (f *Ext2) uuid(k *kernel.Kernel, a *Appliance, m *appliance.Manifest, size int64) ([16]byte, error) {
	var u [16]byte
	switch {
	case f.RandomUUID:
		if _, err := rand.Read(u[:]); err != nil {
			return u, err
		}
		u[6] = u[6]&0x0f | 0x40
		u[8] = u[8]&0x3f | 0x80
		return u, nil
	case f.UUID != u:
		return f.UUID, nil
	}
	h := sha256.New()
	fmt.Fprintf(h, "gosupermin ext2 root\x00%s\x00%d\x00", k.Version, size)
	if len(a.Packages) > 0 {
		var names []string
		for _, p := range a.Packages {
			names = append(names, p.FullName)
		}
		sort.Strings(names)
		fmt.Fprintf(h, "%s\x00", strings.Join(names, "\n"))
	}
	var num [8]byte
	for _, e := range m.Entries() {
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
	return ext2.UUIDFor(h.Sum(nil)), nil
}

// CPIO writes OUT/kernel and OUT/initrd, the whole appliance as one
// compressed newc initramfs with our init as /init: see appliance/initrd
// for the layout and what becomes of the appliance's own /init. Only the
// modules of the mini initrd are in it, not the whole
// /lib/modules/RELEASE (hundreds of MiB that would live in RAM).
type CPIO struct {
	Boot
	// Compress is "zstd" (the default when empty), "gzip" or "none".
	Compress string
}

func (f *CPIO) Write(ctx context.Context, a *Appliance, dir string) error {
	k, parts, err := f.prepare(a, initrd.FormatCPIO)
	if err != nil {
		return err
	}
	if err := f.write(ctx, a, parts, dir); err != nil {
		return err
	}
	return f.installKernel(ctx, a, k, dir)
}

// write writes OUT/initrd.
func (f *CPIO) write(ctx context.Context, a *Appliance, parts initrd.Options, dir string) error {
	m, err := initrd.Overlay(a.Manifest, parts)
	if err != nil {
		return err
	}
	a.ReportUnreadable(nil)
	var meter *meter
	if a.opt.Progress != nil {
		meter = a.opt.meter(PhaseInitramfs, cpioSize(m), true)
	}
	err = writeFile(filepath.Join(dir, "initrd"), func(out *os.File) error {
		w, err := compressor(out, f.Compress)
		if err != nil {
			return err
		}
		var in io.Writer = w
		if meter != nil {
			in = meteredWriter{w, meter}
		}
		if err := cpio.NewWriter(in).WriteManifest(ctx, m); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	})
	if err != nil {
		return err
	}
	meter.end()
	return nil
}

// meteredWriter counts what goes into the compressor.
type meteredWriter struct {
	w io.Writer
	m *meter
}

func (w meteredWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.m.add(int64(n))
	return n, err
}

// cpioSize is about the size of m as a newc archive: a header, the name
// and the data of each entry, padded; enough for a progress indicator.
func cpioSize(m *appliance.Manifest) int64 {
	var n int64
	for _, e := range m.Entries() {
		n += 110 + int64(len(e.Path)) + 3 + e.Size + 3
	}
	return n
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// ErrCompress is wrapped by the error for an unknown compression.
var ErrCompress = errors.New("unknown compression (zstd, gzip or none)")

// compressor wraps w in the compression method. Both compressors give the
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
	return nil, fmt.Errorf("%q: %w", method, ErrCompress)
}

// HumanSize writes n as supermin's size syntax reads it back: 4G, 512M.
func HumanSize(n int64) string {
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
