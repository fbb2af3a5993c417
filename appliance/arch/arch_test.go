package arch

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestTable: every name of a row finds that row and no other, ELF
// identities are unique, and the Makefile builds an init for each row.
func TestTable(t *testing.T) {
	seen := map[string]*Arch{}
	for _, a := range All() {
		if a.Name == "" || a.Console == "" || a.Qemu.Binary == "" || a.Qemu.Machine == "" || a.Qemu.Disk == "" ||
			a.Image == UnknownImage || len(a.Modules) == 0 || len(a.Kernels) == 0 || a.Qemu.Serial == "" || a.Qemu.FS9P == "" {
			t.Errorf("%s: incomplete row %+v", a.Name, a)
		}
		// Any appliance can be run (gosupermin --run): its initrd has
		// what shares and the command's channel need.
		for _, m := range runModules {
			if !slices.Contains(a.Modules, m) {
				t.Errorf("%s: module pattern %q missing", a.Name, m)
			}
		}
		names := append(append([]string{a.Name, a.Debian, a.Uname}, a.RPM...), a.Pacman...)
		for _, n := range names {
			if other := seen[n]; other != nil && other != a {
				t.Errorf("name %q is both %s's and %s's", n, other.Name, a.Name)
			}
			seen[n] = a
			if got, ok := Lookup(n); !ok || got != a {
				t.Errorf("Lookup(%q) = %v, want %s", n, got, a.Name)
			}
		}
		if got := ELFArch(a.Machine, a.Class, a.Data); got != a {
			t.Errorf("ELFArch(%s) = %v", a.ELFString(), got)
		}
	}
	if _, ok := Lookup("i386"); ok {
		t.Error("Lookup(i386) found a row")
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^INIT_ARCHES\s*:=\s*(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile: no INIT_ARCHES")
	}
	if got := strings.Fields(string(m[1])); !slices.Equal(got, Names()) {
		t.Errorf("Makefile INIT_ARCHES %v, the table has %v", got, Names())
	}
}

// header makes a kernel image's first bytes: size bytes with the given
// bytes at their offsets.
func header(size int, at map[int]string) []byte {
	b := make([]byte, size)
	for off, s := range at {
		copy(b[off:], s)
	}
	return b
}

func le16(v uint16) string { return string(binary.LittleEndian.AppendUint16(nil, v)) }
func le32(v uint32) string { return string(binary.LittleEndian.AppendUint32(nil, v)) }

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// elfHeader is a minimal ELF file header (64 bytes for ELF64, 52 for
// ELF32) of an executable for machine m, with a PT_INTERP program header
// when dynamic: enough for debug/elf and the kernel's checks.
func elfHeader(m elf.Machine, c elf.Class, d elf.Data, dynamic bool) []byte {
	var bo binary.AppendByteOrder = binary.LittleEndian
	if d == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	b := []byte{0x7f, 'E', 'L', 'F', byte(c), byte(d), 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	b = bo.AppendUint16(b, uint16(elf.ET_EXEC))
	b = bo.AppendUint16(b, uint16(m))
	b = bo.AppendUint32(b, 1)
	phnum := uint16(0)
	if dynamic {
		phnum = 1
	}
	if c == elf.ELFCLASS64 {
		b = bo.AppendUint64(b, 0x400000) // entry
		b = bo.AppendUint64(b, 64)       // phoff
		b = bo.AppendUint64(b, 0)        // shoff
		b = bo.AppendUint32(b, 0)        // flags
		b = bo.AppendUint16(b, 64)       // ehsize
		b = bo.AppendUint16(b, 56)       // phentsize
		b = bo.AppendUint16(b, phnum)
		b = bo.AppendUint16(b, 64) // shentsize
		b = bo.AppendUint16(b, 0)  // shnum
		b = bo.AppendUint16(b, 0)  // shstrndx
		if dynamic {
			b = bo.AppendUint32(b, uint32(elf.PT_INTERP))
			b = append(b, make([]byte, 52)...)
		}
		return b
	}
	b = bo.AppendUint32(b, 0x8048000) // entry
	b = bo.AppendUint32(b, 52)        // phoff
	b = bo.AppendUint32(b, 0)         // shoff
	b = bo.AppendUint32(b, 0)         // flags
	b = bo.AppendUint16(b, 52)        // ehsize
	b = bo.AppendUint16(b, 32)        // phentsize
	b = bo.AppendUint16(b, phnum)
	b = bo.AppendUint16(b, 40)
	b = bo.AppendUint16(b, 0)
	b = bo.AppendUint16(b, 0)
	if dynamic {
		b = bo.AppendUint32(b, uint32(elf.PT_INTERP))
		b = append(b, make([]byte, 28)...)
	}
	return b
}

// The kernels' headers below are built as the real ones are laid out;
// each was checked against Debian 12's kernel of that architecture
// (6.1.0), riscv64 against the kernel documentation (Debian 12 has no
// riscv64 port).
func TestKernelArch(t *testing.T) {
	// x86: "HdrS", protocol 2.15, xloadflags with XLF_KERNEL_64.
	bz64 := header(0x300, map[int]string{0x202: "HdrS", 0x206: le16(0x20f), 0x236: "\x7f"})
	bz32 := header(0x300, map[int]string{0x202: "HdrS", 0x206: le16(0x20f), 0x236: "\x00"})
	bzOld := header(0x300, map[int]string{0x202: "HdrS", 0x206: le16(0x204)})
	// arm64 Debian: the EFI stub's "MZ" and PE header around "ARMd".
	arm64 := header(0x200, map[int]string{0: "MZ@\xfa", 0x38: "ARMd", 0x3c: le32(0x40), 0x40: "PE\x00\x00" + le16(0xaa64)})
	arm64Plain := header(0x40, map[int]string{0x38: "ARMd"})
	riscv := header(0x40, map[int]string{0x30: "RISCV\x00\x00\x00", 0x38: "RSC\x05"})
	riscvOld := header(0x40, map[int]string{0x30: "RISCV\x00\x00\x00"})
	ppc64le := elfHeader(elf.EM_PPC64, elf.ELFCLASS64, elf.ELFDATA2LSB, false)
	ppc64be := elfHeader(elf.EM_PPC64, elf.ELFCLASS64, elf.ELFDATA2MSB, false)
	// s390x: the IPL PSW and two CCWs, and the entry marker at 0x10008
	// (Debian's vmlinuz-6.1.0-50-s390x, byte for byte).
	s390 := header(HeaderSize, map[int]string{0: "\x00\x08\x00\x00\x80\x00\x02\x00", 8: string(s390IPL), 0x10008: "S390EP"})
	s390Marker := header(HeaderSize, map[int]string{0x10008: "S390EP"})
	// An EFI zboot kernel: only a PE application.
	zboot := header(0x100, map[int]string{0: "MZ", 4: "zimg", 0x3c: le32(0x80), 0x80: "PE\x00\x00" + le16(0x5064)})
	zbootOther := header(0x100, map[int]string{0: "MZ", 0x3c: le32(0x80), 0x80: "PE\x00\x00" + le16(0x01c4)})
	for _, tc := range []struct {
		name   string
		b      []byte
		arch   string
		format ImageFormat
		err    error
	}{
		{"amd64 bzImage", bz64, "amd64", BzImage, nil},
		{"i386 bzImage", bz32, "i386", BzImage, nil},
		{"old bzImage", bzOld, "i386", BzImage, nil},
		{"arm64 Image with EFI stub", arm64, "arm64", ARM64Image, nil},
		{"arm64 Image", arm64Plain, "arm64", ARM64Image, nil},
		{"arm64 Image, gzip", gz(arm64), "arm64", ARM64Image, nil},
		{"riscv64 Image", riscv, "riscv64", RISCVImage, nil},
		{"riscv64 Image, old magic", riscvOld, "riscv64", RISCVImage, nil},
		{"ppc64le vmlinux", ppc64le, "ppc64le", ELFImage, nil},
		{"ppc64 big-endian vmlinux", ppc64be, "EM_PPC64, 64-bit, big-endian", ELFImage, nil},
		{"s390x image", s390, "s390x", S390Image, nil},
		{"s390x entry marker only", s390Marker, "s390x", S390Image, nil},
		{"s390x, first bytes only", s390[:0x100], "s390x", S390Image, nil},
		{"EFI zboot riscv64", zboot, "riscv64", EFIImage, nil},
		{"EFI, unknown machine", zbootOther, "PE machine 0x01c4", EFIImage, nil},
		{"zeros", make([]byte, HeaderSize), "", UnknownImage, ErrUnknownImage},
		{"empty", nil, "", UnknownImage, ErrUnknownImage},
		{"MZ only", []byte("MZ"), "", UnknownImage, ErrUnknownImage},
		{"MZ, PE offset beyond", header(0x40, map[int]string{0: "MZ", 0x3c: le32(0xffffffff)}), "", UnknownImage, ErrUnknownImage},
		{"truncated gzip", gz(arm64)[:12], "", UnknownImage, nil},
		{"gzip of gzip", gz(gz(arm64)), "", UnknownImage, ErrUnknownImage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, format, err := KernelArch(tc.b)
			if name != tc.arch || format != tc.format {
				t.Errorf("KernelArch = %q, %v, %v; want %q, %v", name, format, err, tc.arch, tc.format)
			}
			switch {
			case tc.err != nil && !errors.Is(err, tc.err):
				t.Errorf("error %v, want %v", err, tc.err)
			case tc.arch != "" && err != nil:
				t.Errorf("error %v", err)
			case tc.arch == "" && err == nil:
				t.Error("no error")
			}
		})
	}
	if !BzImage.Direct() || EFIImage.Direct() || UnknownImage.Direct() {
		t.Error("Direct")
	}
}

// TestRealKernels reads the kernels of this machine and of trees given in
// GOSUPERMIN_TEST_KERNELS (space-separated paths, e.g. foreign Debian
// kernels unpacked by hand): each one's name says its architecture.
func TestRealKernels(t *testing.T) {
	paths, _ := filepath.Glob("/boot/vmlinu?-*")
	paths = append(paths, strings.Fields(os.Getenv("GOSUPERMIN_TEST_KERNELS"))...)
	n := 0
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue // mode 0600 on Ubuntu
		}
		b := make([]byte, HeaderSize)
		k, _ := f.Read(b)
		f.Close()
		name, format, err := KernelArch(b[:k])
		a, ok := Lookup(name)
		if err != nil || !ok {
			t.Errorf("%s: %q, %v, %v", p, name, format, err)
			continue
		}
		suffix := false
		for _, s := range a.Kernels {
			suffix = suffix || strings.HasSuffix(p, "-"+s)
		}
		if !suffix {
			t.Errorf("%s: read as %s (%v)", p, a.Name, format)
		}
		t.Logf("%s: %s, %v", p, a.Name, format)
		n++
	}
	if n == 0 {
		t.Skip("no readable kernel")
	}
}

func FuzzKernelArch(f *testing.F) {
	f.Add(header(0x300, map[int]string{0x202: "HdrS", 0x206: le16(0x20f), 0x236: "\x01"}))
	f.Add(gz(header(0x40, map[int]string{0x38: "ARMd"})))
	f.Add(header(0x100, map[int]string{0: "MZ", 0x3c: le32(0x80), 0x80: "PE\x00\x00" + le16(0xaa64)}))
	f.Add(elfHeader(elf.EM_S390, elf.ELFCLASS64, elf.ELFDATA2MSB, false))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, format, err := KernelArch(b)
		if err == nil && (name == "" || format == UnknownImage) {
			t.Fatalf("%q, %v without an error", name, format)
		}
	})
}

func TestResolve(t *testing.T) {
	db := func(n string) Source { return Source{What: "the package database (dpkg) of /r", Name: n} }
	k := func(n string) Source { return Source{What: "the kernel /r/boot/vmlinuz (bzImage)", Name: n} }
	cpu := func(n string) Source { return Source{What: "the host CPU asked for", Name: n} }
	for _, tc := range []struct {
		name    string
		sources []Source
		want    string
		err     error
		msg     []string
	}{
		{"none", nil, "", nil, nil},
		{"empty names", []Source{db(""), k("")}, "", nil, nil},
		{"one", []Source{db("arm64")}, "arm64", nil, nil},
		{"names of one row", []Source{db("ppc64el"), k("ppc64le"), cpu("ppc64le")}, "ppc64le", nil, nil},
		{"rpm and uname", []Source{db("x86_64"), k("amd64"), cpu("x86_64")}, "amd64", nil, nil},
		{"empty left out", []Source{db(""), k("s390x")}, "s390x", nil, nil},
		{"database and kernel disagree", []Source{db("arm64"), k("amd64")}, "", ErrMismatch,
			[]string{"the package database (dpkg) of /r says arm64", "the kernel /r/boot/vmlinuz (bzImage) says amd64"}},
		{"host CPU disagrees", []Source{db("aarch64"), k("arm64"), cpu("x86_64")}, "", ErrMismatch,
			[]string{"says aarch64 (arm64)", "the host CPU asked for says x86_64 (amd64)"}},
		{"not in the table", []Source{db("i386"), k("i386")}, "", ErrNotInTable, []string{"says i386", "amd64, arm64, riscv64, ppc64le, s390x"}},
		{"unknown and known", []Source{db("mips64el"), k("arm64")}, "", ErrMismatch, []string{"says mips64el", "says arm64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Resolve(tc.sources...)
			got := ""
			if a != nil {
				got = a.Name
			}
			if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Resolve = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("%q does not say %q", err, m)
				}
			}
		})
	}
}

// TestArgs: the qemu command line of each architecture has its machine,
// console and disk device.
func TestArgs(t *testing.T) {
	a, _ := Lookup("arm64")
	got := strings.Join(a.Args(QemuArgs{Kernel: "K", Initrd: "I", Disks: []string{"r,oot"}, Snapshot: true, Append: "root=/dev/vda"}), " ")
	want := "-M virt -cpu max,pauth-impdef=on -accel tcg -m 1024 -no-reboot -display none -monitor none -serial stdio -nodefaults " +
		"-kernel K -initrd I -append console=ttyAMA0 root=/dev/vda -drive file=r,,oot,format=raw,if=none,id=hd0,snapshot=on -device virtio-blk-pci,drive=hd0"
	if got != want {
		t.Errorf("arm64:\n%s\nwant\n%s", got, want)
	}
	s, _ := Lookup("s390x")
	got = strings.Join(s.Args(QemuArgs{Kernel: "K", Disks: []string{"r"}, SCSI: true, Accel: "kvm", MemoryMiB: 512}), " ")
	for _, w := range []string{"-M s390-ccw-virtio", "-accel kvm", "-m 512", "console=ttysclp0", "-device virtio-scsi-ccw,id=scsi", "-device scsi-hd,drive=hd0"} {
		if !strings.Contains(got, w) {
			t.Errorf("s390x: no %q in %s", w, got)
		}
	}
	if strings.Contains(got, "-initrd") || !strings.Contains(got, "-cpu host ") || strings.Contains(got, "snapshot") {
		t.Errorf("s390x: %s", got)
	}
}

// TestArgsRun: what gosupermin --run adds: 9p shares, a virtio-serial
// port on an inherited socket, CPUs, the console on a terminal; each
// with the architecture's device models.
func TestArgsRun(t *testing.T) {
	for _, tc := range []struct {
		arch string
		q    QemuArgs
		want []string
		not  []string
	}{
		{"amd64", QemuArgs{Kernel: "K", SMP: 2, Shares: []QemuShare{{Tag: "gs0", Dir: "/a,b"}, {Tag: "gs1", Dir: "/c", ReadOnly: true}},
			Ports: []QemuPort{{Name: "org.x", FD: 3}}},
			[]string{"-smp 2", "-fsdev local,id=fs0,path=/a,,b,security_model=none -device virtio-9p-pci,fsdev=fs0,mount_tag=gs0",
				"-fsdev local,id=fs1,path=/c,security_model=none,readonly=on", "-device virtio-serial-pci,id=vser0",
				"-chardev socket,id=port0,fd=3 -device virtserialport,bus=vser0.0,chardev=port0,name=org.x", "-serial stdio", "-monitor none"},
			[]string{"mux=on"}},
		{"s390x", QemuArgs{Kernel: "K", Shares: []QemuShare{{Tag: "gs0", Dir: "/d"}}, Ports: []QemuPort{{Name: "p", FD: 4}}, Terminal: true},
			[]string{"virtio-9p-ccw,fsdev=fs0", "-device virtio-serial-ccw,id=vser0", "-chardev stdio,id=con0,mux=on,signal=off -serial chardev:con0 -mon chardev=con0"},
			[]string{"-serial stdio", "-smp"}},
	} {
		a, _ := Lookup(tc.arch)
		got := strings.Join(a.Args(tc.q), " ")
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: no %q in\n%s", tc.arch, w, got)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(got, w) {
				t.Errorf("%s: %q in\n%s", tc.arch, w, got)
			}
		}
	}
}

// TestREADME: the README's table of architectures is this table.
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range All() {
		row := "| " + strings.Join([]string{a.Name, a.Debian, strings.Join(a.RPM, " ") + ", " + strings.Join(a.Pacman, " "), a.Uname,
			"`" + a.KernelGlob() + "`", a.Image.String(), a.Console, a.Qemu.Binary, a.Qemu.Machine, a.Qemu.CPU, a.Qemu.Disk}, " | ") + " |"
		row = strings.ReplaceAll(row, "|  |", "| |")
		if !bytes.Contains(readme, []byte("\n"+row+"\n")) {
			t.Errorf("README.md has no row\n%s", row)
		}
	}
}
