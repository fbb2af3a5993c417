package arch

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ImageFormat is the format of a kernel image file.
type ImageFormat uint8

const (
	UnknownImage ImageFormat = iota
	// BzImage is x86's ("HdrS" at 0x202, Documentation/arch/x86/boot.rst).
	BzImage
	// ARM64Image is arm64's Image ("ARM\x64" at 0x38,
	// Documentation/arch/arm64/booting.rst), with or without its EFI stub.
	ARM64Image
	// RISCVImage is RISC-V's Image ("RSC\x05" at 0x38, or the older
	// "RISCV\0\0\0" at 0x30, Documentation/arch/riscv/boot-image-header.rst).
	RISCVImage
	// ELFImage is an ELF vmlinux (ppc64le's kernels).
	ELFImage
	// S390Image is s390's IPL image: a PSW and two CCWs in its first 24
	// bytes, "S390EP" at 0x10008 (arch/s390/boot/head.S).
	S390Image
	// EFIImage is a PE/COFF EFI application only (an EFI zboot kernel,
	// "zimg" at 4): it needs EFI firmware to boot, not qemu -kernel alone.
	EFIImage
)

func (f ImageFormat) String() string {
	switch f {
	case BzImage:
		return "bzImage"
	case ARM64Image:
		return "arm64 Image"
	case RISCVImage:
		return "RISC-V Image"
	case ELFImage:
		return "ELF vmlinux"
	case S390Image:
		return "s390 image"
	case EFIImage:
		return "EFI application"
	}
	return "unknown image format"
}

// Direct says whether qemu's -kernel boots such an image with the
// machine's default firmware.
func (f ImageFormat) Direct() bool { return f != UnknownImage && f != EFIImage }

// HeaderSize is how much of a kernel image KernelArch needs at most:
// s390's entry marker is at 0x10008.
const HeaderSize = 0x10010

// ErrUnknownImage is wrapped by KernelArch's error for an image whose
// header it does not know.
var ErrUnknownImage = errors.New("not a kernel image gosupermin knows (bzImage, arm64 or RISC-V Image, ELF vmlinux, s390 image, EFI application)")

// s390IPL is the start of an s390 kernel after its PSW: two CCWs that
// read the rest of the IPL record.
var s390IPL = []byte{0x02, 0, 0, 0x18, 0x60, 0, 0, 0x50, 0x02, 0, 0, 0x68, 0x60, 0, 0, 0x50}

// PE machine types of EFI-stub kernels.
var peMachines = map[uint16]string{0x8664: "amd64", 0xaa64: "arm64", 0x5064: "riscv64"}

// KernelArch tells a kernel image's architecture and format from its
// first bytes (HeaderSize is always enough): the Name of an architecture
// of the table, or for one the table lacks a plain description ("i386",
// "EM_PPC64, 64-bit, big-endian") that Lookup does not find. A
// gzip-compressed image (Ubuntu's arm64 kernels) is looked into. An image
// it does not know is ErrUnknownImage.
func KernelArch(b []byte) (string, ImageFormat, error) {
	return kernelArch(b, true)
}

func kernelArch(b []byte, unzip bool) (string, ImageFormat, error) {
	at := func(off int, magic string) bool {
		return len(b) >= off+len(magic) && string(b[off:off+len(magic)]) == magic
	}
	switch {
	case at(0x202, "HdrS"):
		// XLF_KERNEL_64 (xloadflags bit 0, protocol 2.12) says it has a
		// 64-bit entry point; Debian's amd64 kernels have protocol 2.15.
		if len(b) >= 0x238 && binary.LittleEndian.Uint16(b[0x206:]) >= 0x20c && b[0x236]&1 != 0 {
			return "amd64", BzImage, nil
		}
		return "i386", BzImage, nil
	case at(0x38, "ARM\x64"):
		return "arm64", ARM64Image, nil
	case at(0x38, "RSC\x05"), at(0x30, "RISCV\x00\x00\x00"):
		return "riscv64", RISCVImage, nil
	case at(0, "\x7fELF"):
		name, err := ELFHeaderArch(b)
		return name, ELFImage, err
	case at(0, "\x00\x08\x00\x00") && at(8, string(s390IPL)), at(0x10008, "S390EP"):
		return "s390x", S390Image, nil
	case at(0, "\x1f\x8b") && unzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return "", UnknownImage, fmt.Errorf("gzip-compressed: %w", err)
		}
		// A truncated stream still gives what it holds of the header.
		head, err := io.ReadAll(io.LimitReader(zr, HeaderSize))
		if len(head) == 0 {
			return "", UnknownImage, fmt.Errorf("gzip-compressed: %w", err)
		}
		return kernelArch(head, false)
	case at(0, "MZ") && len(b) >= 0x40:
		pe := int(binary.LittleEndian.Uint32(b[0x3c:]))
		if pe > 0 && pe+6 <= len(b) && string(b[pe:pe+4]) == "PE\x00\x00" {
			m := binary.LittleEndian.Uint16(b[pe+4:])
			if name, ok := peMachines[m]; ok {
				return name, EFIImage, nil
			}
			return fmt.Sprintf("PE machine %#04x", m), EFIImage, nil
		}
	}
	return "", UnknownImage, ErrUnknownImage
}

// ELFHeaderArch tells the architecture of an ELF file from its first 20
// bytes (identification and e_machine): the Name of an architecture of
// the table, or a description of its identity that Lookup does not find.
func ELFHeaderArch(b []byte) (string, error) {
	if len(b) < 20 || string(b[:4]) != "\x7fELF" {
		return "", errors.New("not an ELF file")
	}
	class, data := elf.Class(b[elf.EI_CLASS]), elf.Data(b[elf.EI_DATA])
	var m elf.Machine
	switch data {
	case elf.ELFDATA2LSB:
		m = elf.Machine(binary.LittleEndian.Uint16(b[18:]))
	case elf.ELFDATA2MSB:
		m = elf.Machine(binary.BigEndian.Uint16(b[18:]))
	default:
		return "", fmt.Errorf("ELF data encoding %d is neither little- nor big-endian", b[elf.EI_DATA])
	}
	if a := ELFArch(m, class, data); a != nil {
		return a.Name, nil
	}
	return elfString(m, class, data), nil
}

// ELFArch finds the architecture of an ELF machine, class and byte
// order; nil if the table has none.
func ELFArch(m elf.Machine, c elf.Class, d elf.Data) *Arch {
	for _, a := range table {
		if a.Machine == m && a.Class == c && a.Data == d {
			return a
		}
	}
	return nil
}
