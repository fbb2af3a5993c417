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
)

// Kernel is the chosen kernel.
type Kernel struct {
	Path    string // kernel image on the host (absolute, with Root)
	Version string // release, e.g. 6.1.0-56-amd64
	ModDir  string // module directory on the host (absolute, with Root)
}

// Options for Find.
type Options struct {
	// Root is the tree to search ("/" if empty). Kernel and Modules are
	// host paths, used as they are.
	Root string
	// HostCPU is the CPU model whose kernels are preferred; empty means
	// the machine gosupermin runs on.
	HostCPU string
	// Kernel, when set, is the kernel file to use instead of searching;
	// Version is its release, read from its header when empty.
	Kernel, Version string
	// Modules, when set, is the module directory instead of
	// /lib/modules/RELEASE under Root.
	Modules string
	// Log, if set, receives a line about each candidate skipped and why.
	Log func(msg string)
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
var openFile = func(p string) (io.ReadCloser, error) { return os.Open(p) }

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(fmt.Sprintf(format, args...))
	}
}

func (o *Options) host(p string) string {
	root := o.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, filepath.FromSlash(p))
}

// Find chooses the kernel.
func Find(o Options) (*Kernel, error) {
	k, err := find(&o)
	if err != nil {
		return nil, err
	}
	if err := checkReadable(k.Path); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(filepath.Join(k.ModDir, "modules.dep")); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("kernel %s: %w: no modules.dep in %s (run depmod %s)", k.Path, ErrNoModules, k.ModDir, k.Version)
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
		ErrNotFound, o.host("/lib/modules/*/vmlinuz"), o.host("/boot/vmlinu?-*"))
}

// given is the kernel the caller named.
func given(o *Options) (*Kernel, error) {
	kpath := o.Kernel
	fi, err := os.Stat(kpath)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("kernel %s: not a regular file", kpath)
	}
	if err := checkReadable(kpath); err != nil {
		return nil, err
	}
	ver := o.Version
	if ver == "" {
		if ver, err = fileVersion(kpath); err != nil {
			return nil, fmt.Errorf("kernel %s: %w: %v", kpath, ErrNoVersion, err)
		}
	}
	return &Kernel{Path: kpath, Version: ver, ModDir: modDir(o, ver)}, nil
}

// modDir is Options.Modules, or /lib/modules/VERSION under the root.
func modDir(o *Options, ver string) string {
	if o.Modules != "" {
		return o.Modules
	}
	return o.host(path.Join("/lib/modules", ver))
}

func hasModules(o *Options, ver string) bool {
	fi, err := os.Stat(filepath.Join(modDir(o, ver), "modules.dep"))
	return err == nil && fi.Mode().IsRegular()
}

type candidate struct {
	Kernel
	model bool // named for the host CPU model
}

// fromLibModules looks for /lib/modules/VERSION/vmlinuz.
func fromLibModules(o *Options) (*Kernel, error) {
	dir := o.host("/lib/modules")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil
	}
	var cands []candidate
	for _, e := range ents {
		ver := e.Name()
		if skipName(ver, o) {
			continue
		}
		kpath := filepath.Join(dir, ver, "vmlinuz")
		if !bigEnough(kpath, o) {
			continue
		}
		if !hasModules(o, ver) {
			o.logf("kernel %s: skipped, no modules.dep in %s", kpath, modDir(o, ver))
			continue
		}
		cands = append(cands, candidate{Kernel: Kernel{Path: kpath, Version: ver, ModDir: modDir(o, ver)}})
	}
	return best(cands), nil
}

// fromBoot looks for /boot/vmlinu?-*.
func fromBoot(o *Options) (*Kernel, error) {
	dir := o.host("/boot")
	ents, err := os.ReadDir(dir)
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
		kpath := filepath.Join(dir, name)
		if !bigEnough(kpath, o) {
			continue
		}
		ver := name[8:]
		if !hasModules(o, ver) {
			// The name does not give the release (vmlinuz-linux on
			// Arch, a renamed file): ask the kernel itself.
			hv, err := fileVersion(kpath)
			if errors.Is(err, fs.ErrPermission) {
				// Still a candidate: if it wins, Find says how to
				// make it readable.
				o.logf("kernel %s: cannot read its header: %v", kpath, err)
			}
			if err != nil || !hasModules(o, hv) {
				o.logf("kernel %s: skipped, no modules.dep in %s", kpath, modDir(o, ver))
				continue
			}
			ver = hv
		}
		c := candidate{Kernel: Kernel{Path: kpath, Version: ver, ModDir: modDir(o, ver)}}
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
		if ba, bb := isBackup(a.Path), isBackup(b.Path); ba != bb {
			return bb
		}
		if a.model != b.model {
			return a.model
		}
		if c := Compare(a.Version, b.Version); c != 0 {
			return c > 0
		}
		return a.Path > b.Path
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

func bigEnough(p string, o *Options) bool {
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if fi.Size() < minSize {
		o.logf("kernel %s: skipped, only %d bytes", p, fi.Size())
		return false
	}
	return true
}

func hostCPU(cpu string) string {
	if cpu != "" {
		return cpu
	}
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "386":
		return "i686"
	case "arm64":
		return "aarch64"
	case "arm":
		return "armv7l"
	case "ppc64le":
		return "ppc64le"
	case "riscv64":
		return "riscv64"
	case "s390x":
		return "s390x"
	}
	return runtime.GOARCH
}

func isARM(cpu string) bool {
	c := hostCPU(cpu)
	return strings.HasPrefix(c, "arm") || c == "aarch64"
}

// cpuModels are the suffixes of kernels built for cpu: the uname -m name
// and the distributions' names for it.
func cpuModels(cpu string) []string {
	c := hostCPU(cpu)
	models := []string{c}
	switch {
	case c == "x86_64" || c == "amd64":
		models = append(models, "x86_64", "amd64", "generic", "cloud-amd64", "rt-amd64")
	case c == "aarch64" || c == "arm64":
		models = append(models, "aarch64", "arm64", "generic", "cloud-arm64")
	case len(c) == 4 && c[0] == 'i' && strings.HasSuffix(c, "86"):
		models = append(models, "686", "686-pae", "generic")
	case strings.HasPrefix(c, "armv7"):
		models = append(models, "armmp", "armmp-lpae", "armv7hl")
	case c == "ppc64le":
		models = append(models, "powerpc64le", "generic")
	case c == "riscv64":
		models = append(models, "generic")
	case c == "s390x":
		models = append(models, "generic")
	}
	return models
}

// checkReadable opens the kernel to be sure the user can read it.
func checkReadable(p string) error {
	f, err := openFile(p)
	if err == nil {
		f.Close()
		return nil
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("kernel %s: %w by you (%v). Kernels in /boot are mode 0600 on Ubuntu; "+
			"make it readable with: sudo chmod 0644 %s (or use dpkg-statoverride --update --add root root 0644 %s to keep it so across updates)",
			p, ErrUnreadable, err, p, p)
	}
	return fmt.Errorf("kernel %s: %w", p, err)
}

// fileVersion reads the release from a kernel file's bzImage header.
func fileVersion(p string) (string, error) {
	f, err := openFile(p)
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

// Install puts the kernel at dst, a new file: a symlink to it (an
// absolute path), or with copy a copy, which outlives the kernel's
// removal from the host.
func (k *Kernel) Install(dst string, copy bool) error {
	if !copy {
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
