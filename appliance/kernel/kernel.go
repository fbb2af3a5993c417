// Package kernel chooses the host kernel an appliance boots, and the
// directory of its modules, as supermin 5 does but without its faults.
//
// Order of choice:
//
//  1. Options.Kernel names the kernel file (supermin's SUPERMIN_KERNEL);
//     its release is Options.Version (SUPERMIN_KERNEL_VERSION), else the
//     one in the bzImage header.
//  2. Otherwise /lib/modules/*/vmlinuz (Fedora, Arch, recent Debian-likes):
//     the newest release whose directory has modules.dep.
//  3. Otherwise /boot/vmlinu?-*: kernels named for the host CPU model
//     (vmlinuz-*-x86_64, or -amd64 on Debian) first, then any other; the
//     newest release wins.
//
// Names with xen, zfcpdump or +debug (and tegra on arm), files under 10000
// bytes and kernels without a module directory holding modules.dep are
// skipped. Releases are ordered by a real version comparison (Compare) and
// backup names (.old, .bak, ...) never win. The release is taken from the
// file name, or from the bzImage header when the name does not give a
// release that has modules. Options.Modules (SUPERMIN_MODULES) overrides
// the module directory.
//
// The chosen kernel must be readable: a kernel the user cannot read (Ubuntu
// installs /boot/vmlinuz-* mode 0600) is an error at once, saying how to
// fix it, rather than a failure later in qemu.
//
// Vmlinux takes the ELF kernel out of an x86 bzImage, for qemu to boot
// through the PVH entry point without the bzImage's decompressor, which
// is slow where qemu emulates the CPU (TCG).
package kernel

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/internal/rootfs"
)

// Kernel is the chosen kernel.
type Kernel struct {
	Image   Ref    // the kernel image
	Version string // release, e.g. 6.1.0-56-amd64
	Modules Ref    // its module directory (/lib/modules/RELEASE)
	closers []io.Closer
}

// Close releases what Find opened to read the kernel's files.
func (k *Kernel) Close() error {
	var err error
	for _, c := range k.closers {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	k.closers = nil
	return err
}

// Ref is a file or directory Find chose: where to read it, and where it
// is on the host (for messages, and for a symlink to it).
type Ref struct {
	FS   fs.FS  // the tree searched, or the host for a path the caller gave
	Name string // in FS (fs.ValidPath)
	Path string // on the host
}

// Options for Find.
type Options struct {
	// FS is the tree to search (its /boot and /lib/modules), Root where
	// it is on the host, for messages ("/" if empty). A nil FS reads the
	// host's Root with os.DirFS: give an FS that keeps symlinks inside the
	// tree for a tree someone else made.
	FS   fs.FS
	Root string
	// HostCPU is the CPU model whose kernels are preferred; empty means
	// the machine gosupermin runs on.
	HostCPU string
	// Kernel, when set, is the kernel file to use instead of searching,
	// a host path; Version is its release, read from its header when empty.
	Kernel, Version string
	// Modules, when set, is the module directory instead of
	// /lib/modules/RELEASE in the tree, a host path.
	Modules string
	// Log, if set, receives a line about each candidate skipped and why.
	Log func(msg string)

	modules *rootfs.FS // Modules, once opened
}

// Errors Find wraps, so that callers can add their own advice.
var (
	ErrNotFound   = errors.New("no kernel found")
	ErrNoVersion  = errors.New("the kernel's release is unknown")
	ErrNoModules  = errors.New("the kernel has no module directory")
	ErrUnreadable = errors.New("the kernel is not readable")
)

// minSize is the size under which a "kernel" is a stub, not a kernel.
const minSize = 10000

// openFile opens a kernel for reading; tests replace it.
var openFile = func(r Ref) (io.ReadCloser, error) { return r.FS.Open(r.Name) }

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(fmt.Sprintf(format, args...))
	}
}

// tree is the path p of the tree searched.
func (o *Options) tree(p string) Ref {
	name := strings.TrimPrefix(path.Clean("/"+p), "/")
	if name == "" {
		name = "."
	}
	return Ref{FS: o.FS, Name: name, Path: filepath.Join(o.Root, filepath.FromSlash(name))}
}

// host is a host path the caller gave, read as the host has it.
func host(p string) (Ref, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return Ref{}, err
	}
	name := strings.TrimPrefix(abs, "/")
	if name == "" {
		name = "."
	}
	return Ref{FS: os.DirFS("/"), Name: name, Path: abs}, nil
}

func (r Ref) join(elem ...string) Ref {
	r.Name = path.Join(append([]string{r.Name}, elem...)...)
	r.Path = filepath.Join(append([]string{r.Path}, elem...)...)
	return r
}

// lstat describes r itself where its FS can say so.
func (r Ref) lstat() (fs.FileInfo, error) {
	if l, ok := r.FS.(fs.ReadLinkFS); ok {
		return l.Lstat(r.Name)
	}
	return fs.Stat(r.FS, r.Name)
}

// Find chooses the kernel.
func Find(o Options) (*Kernel, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.FS == nil {
		o.FS = os.DirFS(o.Root)
	}
	k, err := find(&o)
	if err != nil {
		if o.modules != nil {
			o.modules.Close()
		}
		return nil, err
	}
	if o.modules != nil {
		k.closers = append(k.closers, o.modules)
	}
	if err := checkReadable(k.Image); err != nil {
		return nil, err
	}
	if !isRegular(k.Modules.join("modules.dep")) {
		return nil, fmt.Errorf("kernel %s: %w: no modules.dep in %s (run depmod %s)", k.Image.Path, ErrNoModules, k.Modules.Path, k.Version)
	}
	return k, nil
}

func find(o *Options) (*Kernel, error) {
	if o.Kernel != "" {
		return given(o)
	}
	if k, err := fromLibModules(o); k != nil || err != nil {
		return k, err
	}
	if k, err := fromBoot(o); k != nil || err != nil {
		return k, err
	}
	return nil, fmt.Errorf("%w: looked for %s and %s. Install the distribution's kernel "+
		"(Debian/Ubuntu: apt-get install linux-image-amd64 or linux-image-generic; Fedora: dnf install kernel-core)",
		ErrNotFound, o.tree("/lib/modules/*/vmlinuz").Path, o.tree("/boot/vmlinu?-*").Path)
}

// given is the kernel the caller named.
func given(o *Options) (*Kernel, error) {
	img, err := host(o.Kernel)
	if err != nil {
		return nil, err
	}
	fi, err := fs.Stat(img.FS, img.Name)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("kernel %s: not a regular file", img.Path)
	}
	if err := checkReadable(img); err != nil {
		return nil, err
	}
	ver := o.Version
	if ver == "" {
		if ver, err = fileVersion(img); err != nil {
			return nil, fmt.Errorf("kernel %s: %w: %v", img.Path, ErrNoVersion, err)
		}
	}
	mods, err := modDir(o, ver)
	if err != nil {
		return nil, err
	}
	return &Kernel{Image: img, Version: ver, Modules: mods}, nil
}

// modDir is Options.Modules, or /lib/modules/VERSION in the tree.
func modDir(o *Options, ver string) (Ref, error) {
	if o.Modules != "" {
		return namedModules(o)
	}
	return o.tree(path.Join("/lib/modules", ver)), nil
}

// namedModules is the module directory the caller named, read as a tree
// of its own: its symlinks (a module directory of another tree, say)
// never lead out of it.
func namedModules(o *Options) (Ref, error) {
	if o.modules == nil {
		t, err := rootfs.Open(o.Modules)
		if err != nil {
			return Ref{}, fmt.Errorf("kernel modules: %w", err)
		}
		o.modules = t
	}
	return Ref{FS: o.modules.FS(), Name: ".", Path: o.modules.Dir()}, nil
}

func hasModules(o *Options, ver string) bool {
	m, err := modDir(o, ver)
	return err == nil && isRegular(m.join("modules.dep"))
}

func isRegular(r Ref) bool {
	fi, err := fs.Stat(r.FS, r.Name)
	return err == nil && fi.Mode().IsRegular()
}

type candidate struct {
	Kernel
	model bool // named for the host CPU model
}

// fromLibModules looks for /lib/modules/VERSION/vmlinuz.
func fromLibModules(o *Options) (*Kernel, error) {
	dir := o.tree("/lib/modules")
	ents, err := fs.ReadDir(dir.FS, dir.Name)
	if err != nil {
		return nil, nil
	}
	var cands []candidate
	for _, e := range ents {
		ver := e.Name()
		if skipName(ver, o) {
			continue
		}
		img := dir.join(ver, "vmlinuz")
		if !bigEnough(img, o) {
			continue
		}
		mods, err := modDir(o, ver)
		if err != nil {
			return nil, err
		}
		if !hasModules(o, ver) {
			o.logf("kernel %s: skipped, no modules.dep in %s", img.Path, mods.Path)
			continue
		}
		cands = append(cands, candidate{Kernel: Kernel{Image: img, Version: ver, Modules: mods}})
	}
	return best(cands), nil
}

// fromBoot looks for /boot/vmlinu?-*.
func fromBoot(o *Options) (*Kernel, error) {
	dir := o.tree("/boot")
	ents, err := fs.ReadDir(dir.FS, dir.Name)
	if err != nil {
		return nil, nil
	}
	models := cpuModels(o.HostCPU)
	var cands []candidate
	for _, e := range ents {
		name := e.Name()
		if len(name) < len("vmlinuz-") || !strings.HasPrefix(name, "vmlinu") || name[7] != '-' {
			continue
		}
		if skipName(name, o) {
			continue
		}
		img := dir.join(name)
		if !bigEnough(img, o) {
			continue
		}
		ver := name[8:]
		if !hasModules(o, ver) {
			// The name does not give the release (vmlinuz-linux on
			// Arch, a renamed file): ask the kernel itself.
			hv, err := fileVersion(img)
			if errors.Is(err, fs.ErrPermission) {
				// Still a candidate: if it wins, Find says how to
				// make it readable.
				o.logf("kernel %s: cannot read its header: %v", img.Path, err)
			}
			if err != nil || !hasModules(o, hv) {
				m, _ := modDir(o, ver)
				o.logf("kernel %s: skipped, no modules.dep in %s", img.Path, m.Path)
				continue
			}
			ver = hv
		}
		mods, err := modDir(o, ver)
		if err != nil {
			return nil, err
		}
		c := candidate{Kernel: Kernel{Image: img, Version: ver, Modules: mods}}
		for _, m := range models {
			if strings.HasSuffix(strings.TrimSuffix(name, ".old"), "-"+m) {
				c.model = true
			}
		}
		cands = append(cands, c)
	}
	return best(cands), nil
}

// best is the candidate for the host model with the newest release; file
// names break ties so that the choice never depends on directory order.
func best(cands []candidate) *Kernel {
	if len(cands) == 0 {
		return nil
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if ba, bb := isBackup(a.Image.Path), isBackup(b.Image.Path); ba != bb {
			return bb
		}
		if a.model != b.model {
			return a.model
		}
		if c := Compare(a.Version, b.Version); c != 0 {
			return c > 0
		}
		return a.Image.Path > b.Image.Path
	})
	k := cands[0].Kernel
	return &k
}

// skipName rejects kernels that cannot boot a generic appliance.
func skipName(name string, o *Options) bool {
	bad := []string{"xen", "zfcpdump", "+debug"}
	if isARM(o.HostCPU) {
		bad = append(bad, "tegra")
	}
	for _, b := range bad {
		if strings.Contains(name, b) {
			o.logf("kernel %s: skipped (%s)", name, b)
			return true
		}
	}
	return false
}

// bigEnough says whether r is a regular file large enough to be a
// kernel; a symlink is not followed (the kernel's path is given to qemu).
func bigEnough(r Ref, o *Options) bool {
	fi, err := r.lstat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if fi.Size() < minSize {
		o.logf("kernel %s: skipped, only %d bytes", r.Path, fi.Size())
		return false
	}
	return true
}

// hostCPU is the CPU model asked for, else the machine's (uname -m).
func hostCPU(cpu string) string {
	if cpu != "" {
		return cpu
	}
	if a := arch.Native(); a != nil {
		return a.Uname
	}
	switch runtime.GOARCH {
	case "386":
		return "i686"
	case "arm":
		return "armv7l"
	}
	return runtime.GOARCH
}

func isARM(cpu string) bool {
	c := hostCPU(cpu)
	return strings.HasPrefix(c, "arm") || c == "aarch64"
}

// cpuModels are the suffixes of kernels built for cpu: the name given and
// the distributions' flavours (appliance/arch's table).
func cpuModels(cpu string) []string {
	c := hostCPU(cpu)
	models := []string{c}
	if a, ok := arch.Lookup(c); ok {
		return append(models, a.Kernels...)
	}
	switch {
	case len(c) == 4 && c[0] == 'i' && strings.HasSuffix(c, "86"):
		models = append(models, "686", "686-pae", "generic")
	case strings.HasPrefix(c, "armv7"):
		models = append(models, "armmp", "armmp-lpae", "armv7hl")
	}
	return models
}

// checkReadable opens the kernel to be sure the user can read it.
func checkReadable(r Ref) error {
	f, err := openFile(r)
	if err == nil {
		f.Close()
		return nil
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("kernel %s: %w by you (%v). Kernels in /boot are mode 0600 on Ubuntu; "+
			"make it readable with: sudo chmod 0644 %s (or use dpkg-statoverride --update --add root root 0644 %s to keep it so across updates)",
			r.Path, ErrUnreadable, err, r.Path, r.Path)
	}
	return fmt.Errorf("kernel %s: %w", r.Path, err)
}

// fileVersion reads the release from a kernel file's bzImage header.
func fileVersion(r Ref) (string, error) {
	f, err := openFile(r)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, headerReadSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF {
		return "", err
	}
	return HeaderVersion(buf[:n])
}

// Arch tells the kernel image's architecture and format from its header
// (arch.KernelArch): an architecture's Name, or a description of one the
// table lacks; arch.ErrUnknownImage for a format it does not know.
func (k *Kernel) Arch() (string, arch.ImageFormat, error) {
	f, err := openFile(k.Image)
	if err != nil {
		return "", arch.UnknownImage, fmt.Errorf("kernel %s: %w", k.Image.Path, err)
	}
	defer f.Close()
	buf := make([]byte, arch.HeaderSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF {
		return "", arch.UnknownImage, fmt.Errorf("kernel %s: %w", k.Image.Path, err)
	}
	name, format, err := arch.KernelArch(buf[:n])
	if err != nil {
		return "", format, fmt.Errorf("kernel %s: %w", k.Image.Path, err)
	}
	return name, format, nil
}

// Install puts the kernel at dst, a new file: a symlink to it, or with
// copy a copy, which outlives the kernel's removal. The symlink names the
// image's real path where its FS can say it (RealPath), so that the link
// does not go through a symlink of the tree, which the host would read
// differently.
func (k *Kernel) Install(dst string, copy bool) error {
	if !copy {
		target := k.Image.Path
		if rp, ok := k.Image.FS.(interface{ RealPath(string) (string, error) }); ok {
			p, err := rp.RealPath(k.Image.Name)
			if err != nil {
				return fmt.Errorf("kernel %s: %w", k.Image.Path, err)
			}
			target = p
		}
		return os.Symlink(target, dst)
	}
	in, err := openFile(k.Image)
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
		return fmt.Errorf("copy kernel %s: %w", k.Image.Path, err)
	}
	return out.Close()
}
