package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/gosupermin/gosupermin/internal/xz"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Vmlinux and its helpers take the ELF kernel out of an x86 bzImage, for
// qemu to boot through the PVH entry point: qemu's -kernel loads an ELF
// with a PVH note itself, so the guest skips the bzImage's decompressor.
// Under KVM that decompressor takes a fraction of a second; under TCG,
// where every instruction is translated, Debian's xz payload takes
// seconds, more than Go takes to decompress it on the host.
//
// x86 boot protocol (Documentation/arch/x86/boot.rst), from 2.08: the
// setup header gives the payload's place in the protected-mode code,
// which starts after the setup sectors. The kernel's build
// (arch/x86/boot/compressed/Makefile, the *_with_size commands) appends
// the uncompressed size to the compressed stream, 4 bytes little-endian,
// and the payload covers both.
const (
	offSetupSects    = 0x1f1
	offPayloadOffset = 0x248
	offPayloadLength = 0x24c
	setupHeaderEnd   = 0x250 // the fields read here end before it
	minPayloadProto  = 0x208
)

// MaxVmlinux bounds the ELF kernel Vmlinux writes. Debian's is about
// 60 MiB; a payload that says or makes more is refused rather than
// allowed to fill memory or a disk.
const MaxVmlinux = 256 << 20

// Errors Vmlinux wraps, for callers that boot the bzImage instead.
var (
	// ErrPayloadFormat: the payload is compressed in a format this
	// package does not decompress (lzma, lzo, lz4, bzip2: rare in
	// distributions' kernels).
	ErrPayloadFormat = errors.New("the kernel's payload is compressed in a format gosupermin does not decompress")
	// ErrNoPVH: the kernel has no PVH entry point (CONFIG_PVH is off),
	// so qemu could not boot its ELF.
	ErrNoPVH = errors.New("the kernel has no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY note; CONFIG_PVH)")
	// ErrTooLarge: the payload says or makes more than MaxVmlinux.
	ErrTooLarge = fmt.Errorf("the kernel's ELF is larger than %d MiB", MaxVmlinux>>20)
)

// Payload finds the compressed payload of the x86 bzImage r, of size
// bytes: where it starts, its length without the size appended to it,
// and that size (of the ELF it decompresses to).
func Payload(r io.ReaderAt, size int64) (off, length int64, elfSize uint32, err error) {
	var h [setupHeaderEnd]byte
	if size < int64(len(h)) {
		return 0, 0, 0, fmt.Errorf("%w: %d bytes", ErrNotBzImage, size)
	}
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return 0, 0, 0, fmt.Errorf("read the bzImage header: %w", err)
	}
	if string(h[offMagic:offMagic+4]) != "HdrS" {
		return 0, 0, 0, ErrNotBzImage
	}
	if proto := binary.LittleEndian.Uint16(h[offProtocol:]); proto < minPayloadProto {
		return 0, 0, 0, fmt.Errorf("boot protocol %d.%02d does not say where the payload is (2.08 does)", proto>>8, proto&0xff)
	}
	sects := int64(h[offSetupSects])
	if sects == 0 {
		sects = 4 // boot.rst: 0 means 4, for old kernels
	}
	pm := (sects + 1) * 512
	off = pm + int64(binary.LittleEndian.Uint32(h[offPayloadOffset:]))
	length = int64(binary.LittleEndian.Uint32(h[offPayloadLength:]))
	if length < 4+6 || off > size || length > size-off {
		return 0, 0, 0, fmt.Errorf("bzImage payload of %d bytes at %#x is not within the file's %d bytes", length, off, size)
	}
	var sz [4]byte
	if _, err := r.ReadAt(sz[:], off+length-4); err != nil {
		return 0, 0, 0, fmt.Errorf("read the bzImage payload's size: %w", err)
	}
	elfSize = binary.LittleEndian.Uint32(sz[:])
	if elfSize > MaxVmlinux {
		return 0, 0, 0, fmt.Errorf("%w: its payload says %d MiB", ErrTooLarge, elfSize>>20)
	}
	return off, length - 4, elfSize, nil
}

// Magic numbers of the payload formats, as the kernel's compressors make
// them (arch/x86/boot/compressed/Makefile).
var payloadFormats = []struct {
	name, magic string
}{
	{"xz", xz.Magic},
	{"gzip", "\x1f\x8b"},
	{"zstd", "\x28\xb5\x2f\xfd"},
	{"bzip2", "BZh"},
	{"lzma", "\x5d\x00\x00"},
	{"lzo", "\x89LZO"},
	{"lz4", "\x02\x21\x4c\x18"}, // the legacy frame the kernel's lz4 -l makes
}

// Vmlinux writes to w the ELF kernel inside the x86 bzImage r, of size
// bytes, and returns its length. The payload is decompressed (xz, gzip
// or zstd; ErrPayloadFormat for the others) up to MaxVmlinux bytes and
// must be an ELF64 for x86-64 with a PVH note (ErrNoPVH): what qemu
// boots as -kernel without the bzImage's own decompressor. The checks
// are made as the ELF goes by, so on error w may have received part of
// it, to be thrown away.
func Vmlinux(r io.ReaderAt, size int64, w io.Writer) (int64, error) {
	off, length, want, err := Payload(r, size)
	if err != nil {
		return 0, err
	}
	var head [6]byte
	if _, err := r.ReadAt(head[:], off); err != nil {
		return 0, fmt.Errorf("read the bzImage payload: %w", err)
	}
	format := "unknown"
	for _, f := range payloadFormats {
		if bytes.HasPrefix(head[:], []byte(f.magic)) {
			format = f.name
			break
		}
	}
	payload := io.NewSectionReader(r, off, length)
	var dec io.Reader
	switch format {
	case "xz":
		x, err := xz.NewReader(payload, 0)
		if err != nil {
			return 0, fmt.Errorf("xz payload: %w", err)
		}
		dec = x
	case "gzip":
		z, err := gzip.NewReader(payload)
		if err != nil {
			return 0, fmt.Errorf("gzip payload: %w", err)
		}
		defer z.Close()
		dec = z
	case "zstd":
		z, err := zstd.NewReader(payload, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(MaxVmlinux), zstd.WithDecoderMaxWindow(MaxVmlinux))
		if err != nil {
			return 0, fmt.Errorf("zstd payload: %w", err)
		}
		defer z.Close()
		dec = z
	default:
		return 0, fmt.Errorf("%w: %s (magic % x)", ErrPayloadFormat, format, head)
	}
	check := &elfCheck{}
	// The count is w's: io.Copy's leaves out the last write when the
	// check refuses it.
	out := &countWriter{w: w}
	// One byte more than the payload says it makes, to tell a payload
	// that makes more.
	_, err = io.Copy(io.MultiWriter(out, check), io.LimitReader(dec, int64(want)+1))
	n := out.n
	switch {
	case errors.Is(err, errNotELF):
		return n, err
	case err != nil:
		return n, fmt.Errorf("%s payload: %w", format, err)
	case n > int64(want):
		return n, fmt.Errorf("%s payload: it makes more than the %d bytes its size says", format, want)
	case n < int64(want):
		return n, fmt.Errorf("%s payload: it makes %d bytes, its size says %d", format, n, want)
	}
	if err := check.done(); err != nil {
		return n, err
	}
	return n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// errNotELF is wrapped for a payload that is not an x86-64 ELF.
var errNotELF = errors.New("the kernel's payload is not an ELF64 x86-64 executable")

// ELF64 constants (the System V ABI and Xen's public/elfnote.h).
const (
	elfHeaderSize   = 64
	elfPhdrSize     = 56
	elfMachineX8664 = 62
	ptNote          = 4
	// noteXenPhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit entry
	// point that qemu's PVH boot jumps to.
	noteXenPhys32Entry = 18
	// maxPhdrs and maxNotes bound what elfCheck keeps: a vmlinux has a
	// handful of segments and a few KiB of notes.
	maxPhdrs = 256
	maxNotes = 1 << 20
)

// elfCheck reads an ELF as it is written to it, keeping only its header,
// program headers and notes, to find the PVH note at the end.
type elfCheck struct {
	n     int64 // bytes written so far
	hdr   [elfHeaderSize]byte
	phoff int64
	phdrs []byte // once the header is read
	notes []noteSeg
}

// noteSeg is a PT_NOTE segment: where it is in the file and its bytes.
type noteSeg struct {
	off int64
	buf []byte
}

// fill copies into dst, which holds the file from dstOff on, the part of
// p (the file from pOff on) that falls in it, and says whether dst is
// full after that.
func fill(dst []byte, dstOff int64, p []byte, pOff int64) bool {
	lo := max(dstOff, pOff)
	hi := min(dstOff+int64(len(dst)), pOff+int64(len(p)))
	if lo < hi {
		copy(dst[lo-dstOff:hi-dstOff], p[lo-pOff:hi-pOff])
	}
	return pOff+int64(len(p)) >= dstOff+int64(len(dst))
}

func (c *elfCheck) Write(p []byte) (int, error) {
	at := c.n
	c.n += int64(len(p))
	if at < elfHeaderSize {
		if !fill(c.hdr[:], 0, p, at) {
			return len(p), nil
		}
		if err := c.header(); err != nil {
			return 0, err
		}
	}
	if c.notes == nil && c.phdrs != nil {
		if !fill(c.phdrs, c.phoff, p, at) {
			return len(p), nil
		}
		if err := c.programHeaders(); err != nil {
			return 0, err
		}
	}
	for _, s := range c.notes {
		fill(s.buf, s.off, p, at)
	}
	return len(p), nil
}

// header checks the ELF header and sets where the program headers are.
func (c *elfCheck) header() error {
	h := c.hdr[:]
	if string(h[:4]) != "\x7fELF" {
		return fmt.Errorf("%w: it starts % x", errNotELF, h[:4])
	}
	le := binary.LittleEndian
	if h[4] != 2 || h[5] != 1 || le.Uint16(h[18:]) != elfMachineX8664 {
		return fmt.Errorf("%w: class %d, data %d, machine %d", errNotELF, h[4], h[5], le.Uint16(h[18:]))
	}
	phoff, entsize, phnum := le.Uint64(h[32:]), le.Uint16(h[54:]), le.Uint16(h[56:])
	if entsize != elfPhdrSize || phnum == 0 || phnum > maxPhdrs || phoff < elfHeaderSize || phoff > MaxVmlinux {
		return fmt.Errorf("%w: %d program headers of %d bytes at %#x", errNotELF, phnum, entsize, phoff)
	}
	c.phoff = int64(phoff)
	c.phdrs = make([]byte, int(phnum)*elfPhdrSize)
	return nil
}

// programHeaders reads the PT_NOTE segments' places. The notes must come
// after the program headers, as in every vmlinux: a reader of a stream
// cannot go back to them.
func (c *elfCheck) programHeaders() error {
	le := binary.LittleEndian
	end := c.phoff + int64(len(c.phdrs))
	total := 0
	c.notes = []noteSeg{}
	for i := 0; i < len(c.phdrs); i += elfPhdrSize {
		ph := c.phdrs[i : i+elfPhdrSize]
		if le.Uint32(ph) != ptNote {
			continue
		}
		off, size := le.Uint64(ph[8:]), le.Uint64(ph[32:])
		total += int(min(size, maxNotes+1))
		if off < uint64(end) || off > MaxVmlinux || total > maxNotes {
			return fmt.Errorf("%w: a note segment of %d bytes at %#x", errNotELF, size, off)
		}
		c.notes = append(c.notes, noteSeg{off: int64(off), buf: make([]byte, size)})
	}
	return nil
}

// done looks, once the whole ELF is read, for the PVH note in its note
// segments: name "Xen", type 18, a nonzero 32-bit address (qemu reads the
// first 4 bytes of its descriptor, so 4 or 8 bytes).
func (c *elfCheck) done() error {
	if c.n < elfHeaderSize || c.notes == nil {
		return fmt.Errorf("%w: it ends after %d bytes", errNotELF, c.n)
	}
	le := binary.LittleEndian
	for _, s := range c.notes {
		if s.off+int64(len(s.buf)) > c.n {
			return fmt.Errorf("%w: a note segment at %#x is beyond its end", errNotELF, s.off)
		}
		b := s.buf
		for len(b) >= 12 {
			namesz, descsz, typ := le.Uint32(b), le.Uint32(b[4:]), le.Uint32(b[8:])
			nameEnd := 12 + int64(namesz)
			descEnd := nameEnd + (-nameEnd & 3) + int64(descsz) // name padded to 4 bytes
			if descEnd > int64(len(b)) {
				break
			}
			name := b[12:nameEnd]
			desc := b[nameEnd+(-nameEnd&3) : descEnd]
			if typ == noteXenPhys32Entry && string(bytes.TrimRight(name, "\x00")) == "Xen" &&
				(descsz == 4 || descsz == 8) && le.Uint32(desc) != 0 {
				return nil
			}
			b = b[min(descEnd+(-descEnd&3), int64(len(b))):]
		}
	}
	return ErrNoPVH
}
