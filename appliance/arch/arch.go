// Package arch is gosupermin's one table of the architectures it makes
// appliances for: each one's names in Debian, rpm, pacman, uname and Go,
// its ELF identity, its kernels' file names and image format, the modules
// the mini initrd loads to mount root, its console, and how qemu boots it.
// Whatever depends on the architecture (kernel choice, the initrd's
// modules, the init's check, the qemu tests, the README's examples) reads
// it here.
//
// It also tells an appliance's architecture from what it is made of: the
// package database's architecture (Lookup), the kernel image's header
// (KernelArch), an ELF file's header (ELFArch), and settles them
// (Resolve): sources that disagree are an error naming each.
package arch

import (
	"debug/elf"
	"fmt"
	"runtime"
	"strings"
)

// Arch is one architecture.
type Arch struct {
	// Name is Go's name (GOARCH): the one of init-NAME files and of the
	// go build command that makes them.
	Name string
	// Debian is dpkg's architecture; Uname the kernel's (uname -m).
	Debian, Uname string
	// RPM and Pacman are the package architectures those databases
	// record for this machine's packages (not noarch/any).
	RPM, Pacman []string
	// Machine, Class and Data identify its ELF executables.
	Machine elf.Machine
	Class   elf.Class
	Data    elf.Data
	// Kernels are the suffixes of kernel file names made for it
	// (/boot/vmlinuz-RELEASE-SUFFIX), the distributions' flavours.
	Kernels []string
	// Image is the format of its kernels as distributions install them.
	Image ImageFormat
	// Modules are the patterns of the modules the mini initrd loads to
	// find and mount the root disk (file names without .ko and the
	// compression suffix), with everything they need.
	Modules []string
	// Console is the serial console's device, for console=.
	Console string
	// Qemu is how qemu boots it.
	Qemu Qemu
}

// Qemu is what starting qemu-system for an architecture takes.
type Qemu struct {
	Binary  string // qemu-system-x86_64
	Machine string // -M
	CPU     string // -cpu under TCG; empty: the machine's default (KVM wants "host")
	// Disk and SCSI are the -device models of a virtio disk and of a
	// virtio SCSI controller on this machine (PCI, or CCW on s390x).
	Disk, SCSI string
	// DiskName is the device name the kernel gives the first virtio
	// disk, for root=.
	DiskName string
	// Serial and FS9P are the -device models of a virtio-serial
	// controller and of a virtio 9p share (PCI, or CCW on s390x):
	// gosupermin --run talks to the init and shares directories with them.
	Serial, FS9P string
	// Drivers are the modules of these devices, in the order the init
	// tries them before it matches devices to modules (which costs a
	// few tenths of a second under emulation): the bus, the disk, the
	// serial ports, then SCSI disks.
	Drivers []string
}

// pciDrivers and ccwDrivers are Qemu.Drivers on a PCI and a CCW bus.
var (
	pciDrivers = []string{"virtio_pci", "virtio_blk", "virtio_console", "virtio_scsi", "sd_mod"}
	ccwDrivers = []string{"virtio_ccw", "virtio_blk", "virtio_console", "virtio_scsi", "sd_mod"}
)

// commonModules: the root's filesystem (ext4 mounts ext2), virtio disks
// and their bus, the CRC helpers ext4 needs, and SCSI disks for virtio-scsi
// (libguestfs attaches its appliance that way); then runModules.
var commonModules = append([]string{"ext2", "ext4", "virtio*", "crc*", "libcrc*", "sd_mod"}, runModules...)

// runModules are what gosupermin --run needs of any appliance: virtio
// 9p shares (and virtiofs, which virtio* also matches) and the
// virtio-serial ports that carry the command and its output. The serial
// consoles' drivers (8250, pl011, hvc, sclp) are built into the
// distributions' kernels: console= needs them before any module loads.
var runModules = []string{"9p", "9pnet_virtio", "virtiofs", "virtio_console"}

// ExcludedModules are left out of the mini initrd even when a pattern
// matches them: the virtio GPU drags in the whole DRM stack.
var ExcludedModules = []string{"virtio-gpu", "virtio_gpu"}

// table is every architecture gosupermin knows, the Debian kernels' ones.
var table = []*Arch{
	{
		Name: "amd64", Debian: "amd64", Uname: "x86_64",
		RPM: []string{"x86_64"}, Pacman: []string{"x86_64"},
		Machine: elf.EM_X86_64, Class: elf.ELFCLASS64, Data: elf.ELFDATA2LSB,
		Kernels: []string{"amd64", "x86_64", "generic", "cloud-amd64", "rt-amd64"},
		Image:   BzImage,
		// supermin 5's set: IDE and SATA disks of the pc machine, pmem,
		// and ibmvscsi as supermin lists it for every architecture.
		Modules: append([]string{"ext2", "ext4", "virtio*", "libata*", "piix*", "sd_mod", "ata_piix",
			"crc*", "libcrc*", "ibmvscsi*", "libnvdimm", "nd_pmem", "nd_btt", "nfit"}, runModules...),
		Console: "ttyS0",
		Qemu:    Qemu{Binary: "qemu-system-x86_64", Machine: "pc", Disk: "virtio-blk-pci", SCSI: "virtio-scsi-pci", DiskName: "vda", Serial: "virtio-serial-pci", FS9P: "virtio-9p-pci", Drivers: pciDrivers},
	},
	{
		Name: "arm64", Debian: "arm64", Uname: "aarch64",
		RPM: []string{"aarch64"}, Pacman: []string{"aarch64"},
		Machine: elf.EM_AARCH64, Class: elf.ELFCLASS64, Data: elf.ELFDATA2LSB,
		Kernels: []string{"arm64", "aarch64", "generic", "cloud-arm64", "rt-arm64"},
		Image:   ARM64Image,
		Modules: commonModules,
		Console: "ttyAMA0",
		// TCG's default cortex-a15 is 32-bit: "max" runs arm64 kernels,
		// and with pauth-impdef its pointer authentication is cheap to
		// emulate (a Debian appliance reaches its init in 9 s, not 27).
		Qemu: Qemu{Binary: "qemu-system-aarch64", Machine: "virt", CPU: "max,pauth-impdef=on", Disk: "virtio-blk-pci", SCSI: "virtio-scsi-pci", DiskName: "vda", Serial: "virtio-serial-pci", FS9P: "virtio-9p-pci", Drivers: pciDrivers},
	},
	{
		Name: "riscv64", Debian: "riscv64", Uname: "riscv64",
		RPM: []string{"riscv64"}, Pacman: []string{"riscv64"},
		Machine: elf.EM_RISCV, Class: elf.ELFCLASS64, Data: elf.ELFDATA2LSB,
		Kernels: []string{"riscv64", "generic"},
		Image:   RISCVImage,
		Modules: commonModules,
		Console: "ttyS0",
		Qemu:    Qemu{Binary: "qemu-system-riscv64", Machine: "virt", Disk: "virtio-blk-pci", SCSI: "virtio-scsi-pci", DiskName: "vda", Serial: "virtio-serial-pci", FS9P: "virtio-9p-pci", Drivers: pciDrivers},
	},
	{
		Name: "ppc64le", Debian: "ppc64el", Uname: "ppc64le",
		RPM: []string{"ppc64le"}, Pacman: []string{"powerpc64le"},
		Machine: elf.EM_PPC64, Class: elf.ELFCLASS64, Data: elf.ELFDATA2LSB,
		Kernels: []string{"powerpc64le", "ppc64le", "ppc64el", "generic"},
		Image:   ELFImage,
		// pseries disks may also be IBM virtual SCSI.
		Modules: append(append([]string(nil), commonModules...), "ibmvscsi*"),
		Console: "hvc0",
		Qemu:    Qemu{Binary: "qemu-system-ppc64", Machine: "pseries", Disk: "virtio-blk-pci", SCSI: "virtio-scsi-pci", DiskName: "vda", Serial: "virtio-serial-pci", FS9P: "virtio-9p-pci", Drivers: pciDrivers},
	},
	{
		Name: "s390x", Debian: "s390x", Uname: "s390x",
		RPM: []string{"s390x"}, Pacman: []string{"s390x"},
		Machine: elf.EM_S390, Class: elf.ELFCLASS64, Data: elf.ELFDATA2MSB,
		Kernels: []string{"s390x", "generic"},
		Image:   S390Image,
		Modules: commonModules,
		Console: "ttysclp0",
		Qemu:    Qemu{Binary: "qemu-system-s390x", Machine: "s390-ccw-virtio", Disk: "virtio-blk-ccw", SCSI: "virtio-scsi-ccw", DiskName: "vda", Serial: "virtio-serial-ccw", FS9P: "virtio-9p-ccw", Drivers: ccwDrivers},
	},
}

// All returns every architecture of the table, in a fixed order.
func All() []*Arch { return append([]*Arch(nil), table...) }

// Names are the architectures' Names, in All's order.
func Names() []string {
	out := make([]string, len(table))
	for i, a := range table {
		out[i] = a.Name
	}
	return out
}

// Lookup finds an architecture by any of its names: Go's, Debian's,
// uname's, rpm's or pacman's ("x86_64", "amd64", "ppc64el", "aarch64").
func Lookup(name string) (*Arch, bool) {
	for _, a := range table {
		if a.is(name) {
			return a, true
		}
	}
	return nil, false
}

func (a *Arch) is(name string) bool {
	if name == a.Name || name == a.Debian || name == a.Uname {
		return true
	}
	for _, n := range append(append([]string(nil), a.RPM...), a.Pacman...) {
		if name == n {
			return true
		}
	}
	return false
}

// Native is the architecture this program runs on, nil if the table
// does not have it.
func Native() *Arch {
	a, _ := Lookup(runtime.GOARCH)
	return a
}

func (a *Arch) String() string { return a.Name }

// KernelGlob is the file name pattern of Debian's kernels for it, under
// /boot: "vmlinuz-*-arm64".
func (a *Arch) KernelGlob() string {
	prefix := "vmlinuz"
	if a.Image == ELFImage {
		prefix = "vmlinux"
	}
	return prefix + "-*-" + a.Kernels[0]
}

// DebianKernelPackage is the name of Debian's kernel metapackage for it:
// "linux-image-arm64".
func (a *Arch) DebianKernelPackage() string { return "linux-image-" + a.Kernels[0] }

// InitName is the file name of this architecture's init program in the
// places gosupermin looks for it: init-NAME.
func (a *Arch) InitName() string { return "init-" + a.Name }

// BuildInitCommand is the go command that makes this architecture's
// init program at out, in a checkout of gosupermin.
func (a *Arch) BuildInitCommand(out string) string {
	return fmt.Sprintf("CGO_ENABLED=0 GOOS=linux GOARCH=%s go build -trimpath -ldflags='-s -w' -o %s ./cmd/gosupermin-init", a.Name, out)
}

// InstallInitCommand is the go command that installs this architecture's
// init program where FindInit looks beside a `go install`ed gosupermin:
// GOBIN/linux_NAME/gosupermin-init (go install puts cross-compiled
// programs there; it refuses to when GOBIN is set).
func (a *Arch) InstallInitCommand() string {
	return fmt.Sprintf("CGO_ENABLED=0 GOOS=linux GOARCH=%s go install github.com/gosupermin/gosupermin/cmd/gosupermin-init@latest", a.Name)
}

// ELFString describes the ELF identity: "EM_AARCH64, 64-bit, little-endian".
func (a *Arch) ELFString() string { return elfString(a.Machine, a.Class, a.Data) }

func elfString(m elf.Machine, c elf.Class, d elf.Data) string {
	bits := map[elf.Class]string{elf.ELFCLASS32: "32-bit", elf.ELFCLASS64: "64-bit"}[c]
	if bits == "" {
		bits = c.String()
	}
	endian := map[elf.Data]string{elf.ELFDATA2LSB: "little-endian", elf.ELFDATA2MSB: "big-endian"}[d]
	if endian == "" {
		endian = d.String()
	}
	return fmt.Sprintf("%s, %s, %s", m, bits, endian)
}

// QemuArgs are qemu's arguments to boot an appliance of this
// architecture: kernel, initrd, disks, command line with the console.
type QemuArgs struct {
	Kernel, Initrd string
	// Disks are raw images. With Snapshot qemu writes into a temporary
	// overlay, leaving the files as they were.
	Disks    []string
	Snapshot bool
	// SCSI attaches the disks with virtio-scsi (as libguestfs does)
	// instead of virtio-blk.
	SCSI bool
	// Append is the kernel command line; console= of the architecture is
	// put first.
	Append    string
	MemoryMiB int    // 1024 if 0
	Accel     string // "tcg" if empty; "kvm" runs the host's CPU model
	SMP       int    // virtual CPUs; qemu's default (1) if 0
	// Shares are host directories the guest mounts with virtio 9p.
	Shares []QemuShare
	// Ports are virtio-serial ports, each backed by a connected socket
	// qemu inherits.
	Ports []QemuPort
	// Terminal puts the serial console and qemu's monitor on qemu's
	// stdio for a person at a terminal: Ctrl+C goes to the guest and
	// Ctrl+A X stops qemu. Otherwise the console is written to stdout.
	Terminal bool
}

// QemuShare is a host directory shared with the guest by virtio 9p; the
// guest mounts it by Tag (mount -t 9p -o trans=virtio TAG DIR).
type QemuShare struct {
	Tag, Dir string
	ReadOnly bool
}

// QemuPort is a virtio-serial port: the guest finds it by Name in
// /sys/class/virtio-ports/*/name, qemu reads and writes the socket FD
// (a descriptor number in qemu's process).
type QemuPort struct {
	Name string
	FD   int
}

// Args is the qemu command line (without the binary, Qemu.Binary): no
// display, the serial console on stdio, no reboot.
func (a *Arch) Args(q QemuArgs) []string {
	if q.MemoryMiB == 0 {
		q.MemoryMiB = 1024
	}
	if q.Accel == "" {
		q.Accel = "tcg"
	}
	args := []string{"-M", a.Qemu.Machine}
	switch {
	case q.Accel == "kvm":
		// The table's CPU models are for TCG; KVM runs the host's.
		args = append(args, "-cpu", "host")
	case a.Qemu.CPU != "":
		args = append(args, "-cpu", a.Qemu.CPU)
	}
	args = append(args, "-accel", q.Accel, "-m", fmt.Sprint(q.MemoryMiB))
	if q.SMP > 0 {
		args = append(args, "-smp", fmt.Sprint(q.SMP))
	}
	args = append(args, "-no-reboot", "-display", "none")
	if q.Terminal {
		args = append(args, "-chardev", "stdio,id=con0,mux=on,signal=off", "-serial", "chardev:con0", "-mon", "chardev=con0")
	} else {
		args = append(args, "-monitor", "none", "-serial", "stdio")
	}
	args = append(args, "-nodefaults", "-kernel", q.Kernel)
	if q.Initrd != "" {
		args = append(args, "-initrd", q.Initrd)
	}
	args = append(args, "-append", strings.TrimSpace("console="+a.Console+" "+q.Append))
	if q.SCSI && len(q.Disks) > 0 {
		args = append(args, "-device", a.Qemu.SCSI+",id=scsi")
	}
	snap := ""
	if q.Snapshot {
		snap = ",snapshot=on"
	}
	for i, d := range q.Disks {
		id := fmt.Sprintf("hd%d", i)
		// A comma in a file name is written twice for qemu's option parser.
		file := strings.ReplaceAll(d, ",", ",,")
		args = append(args, "-drive", "file="+file+",format=raw,if=none,id="+id+snap)
		if q.SCSI {
			args = append(args, "-device", "scsi-hd,drive="+id)
		} else {
			args = append(args, "-device", a.Qemu.Disk+",drive="+id)
		}
	}
	for i, sh := range q.Shares {
		id := fmt.Sprintf("fs%d", i)
		fsdev := "local,id=" + id + ",path=" + strings.ReplaceAll(sh.Dir, ",", ",,") + ",security_model=none"
		if sh.ReadOnly {
			fsdev += ",readonly=on"
		}
		args = append(args, "-fsdev", fsdev, "-device", a.Qemu.FS9P+",fsdev="+id+",mount_tag="+sh.Tag)
	}
	if len(q.Ports) > 0 {
		args = append(args, "-device", a.Qemu.Serial+",id=vser0")
	}
	for i, p := range q.Ports {
		id := fmt.Sprintf("port%d", i)
		args = append(args, "-chardev", fmt.Sprintf("socket,id=%s,fd=%d", id, p.FD),
			"-device", "virtserialport,bus=vser0.0,chardev="+id+",name="+p.Name)
	}
	return args
}
