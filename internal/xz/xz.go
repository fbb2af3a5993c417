// Package xz reads the xz format (.xz files, xz-compressed kernels and
// modules): every stream of a file, with their block checks, indexes and
// footers verified, and the filter chains xz makes by default (LZMA2
// alone) and for x86 executables (x86 BCJ, then LZMA2: Linux's
// compressed kernels).
//
// The container and LZMA2 (lzma2.go) are decoded here. ulikunitz/xz's
// reader, which this package used before, allocates whatever dictionary
// a block header asks for (up to 4 GiB) before decoding a byte, so a
// hostile header would crash the caller, and its LZMA2 decoder is half as
// fast; it stays the oracle the tests compare with. This reader allocates
// at most the bound it is given.
package xz

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
)

// Magic starts every xz stream.
const Magic = "\xfd7zXZ\x00"

// DefaultMaxDict bounds the LZMA2 dictionary. 64 MiB is what xz -9 uses;
// data compressed with a larger one still decodes as long as it never
// refers further back than this.
const DefaultMaxDict = 64 << 20

// MinDict is the smallest dictionary LZMA2 decodes with: enough for a
// first block of output, which can refer back only within itself.
const MinDict = 4096

var crc64Table = crc64.MakeTable(crc64.ECMA)

// Reader decodes every stream of an xz file, checking block checks,
// the index and the stream footers.
type Reader struct {
	in    *countReader
	dict  int64 // the largest dictionary to allocate
	flags [2]byte
	check func() hash.Hash // nil for check type "none"
	size  int              // bytes of the check

	block      io.Reader // the current block's data, through its filters; nil between blocks
	sum        hash.Hash
	hdrSize    int64
	compStart  int64
	compSize   int64 // from the block header, or -1
	uncompSize int64 // from the block header, or -1
	uncomp     int64

	blocks    records // the blocks read, to check the index against
	indexSize uint64  // for the footer to check
	err       error
}

// records sums the index records of a stream, as liblzma checks them:
// a count, two totals and a hash of the list.
type records struct {
	count, unpadded, uncomp uint64
	h                       hash.Hash
}

func (r *records) add(unpadded, uncomp uint64) {
	if r.h == nil {
		r.h = sha256.New()
	}
	r.count++
	r.unpadded += unpadded
	r.uncomp += uncomp
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], unpadded)
	binary.LittleEndian.PutUint64(b[8:], uncomp)
	r.h.Write(b[:])
}

func (r *records) equal(o *records) bool {
	if r.count != o.count || r.unpadded != o.unpadded || r.uncomp != o.uncomp {
		return false
	}
	if r.count == 0 {
		return true
	}
	return bytes.Equal(r.h.Sum(nil), o.h.Sum(nil))
}

type countReader struct {
	r *bufio.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *countReader) full(p []byte) error {
	n, err := io.ReadFull(c.r, p)
	c.n += int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// NewReader reads the xz file r, allocating at most maxDict bytes of
// LZMA2 dictionary (DefaultMaxDict if maxDict <= 0). It reads r through
// a bufio.Reader, r itself if it is one; what it has buffered past the
// end of the last stream is lost to other readers of r.
func NewReader(r io.Reader, maxDict int64) (*Reader, error) {
	if maxDict <= 0 {
		maxDict = DefaultMaxDict
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	x := &Reader{in: &countReader{r: br}, dict: maxDict}
	if err := x.streamHeader(); err != nil {
		return nil, err
	}
	return x, nil
}

func (x *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if x.err != nil {
			return 0, x.err
		}
		if x.block == nil {
			if err := x.nextBlock(); err != nil {
				x.err = err
			}
			continue
		}
		n, err := x.block.Read(p)
		x.uncomp += int64(n)
		if x.sum != nil {
			x.sum.Write(p[:n])
		}
		if x.uncompSize >= 0 && x.uncomp > x.uncompSize {
			x.err = errors.New("xz: block larger than its header says")
			return 0, x.err
		}
		switch {
		case err == io.EOF:
			if err := x.endBlock(); err != nil {
				x.err = err
			}
			x.block = nil
		case err != nil:
			x.err = fmt.Errorf("xz: %w", err)
			return n, x.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (x *Reader) streamHeader() error {
	var h [12]byte
	if err := x.in.full(h[:]); err != nil {
		return err
	}
	if string(h[:6]) != Magic {
		return errors.New("not an xz stream")
	}
	if crc32.ChecksumIEEE(h[6:8]) != binary.LittleEndian.Uint32(h[8:]) {
		return errors.New("stream header checksum mismatch")
	}
	if h[6] != 0 || h[7]&0xf0 != 0 {
		return errors.New("unsupported stream flags")
	}
	x.flags = [2]byte{h[6], h[7]}
	switch h[7] {
	case 0:
		x.check, x.size = nil, 0
	case 1:
		x.check, x.size = func() hash.Hash { return crc32.NewIEEE() }, 4
	case 4:
		x.check, x.size = func() hash.Hash { return crc64.New(crc64Table) }, 8
	case 10:
		x.check, x.size = sha256.New, 32
	default:
		return fmt.Errorf("unsupported check type %d", h[7])
	}
	x.blocks = records{}
	return nil
}

// nextBlock starts the next block, or reads the index and footer that
// end a stream and then the next stream's header; io.EOF after the last.
func (x *Reader) nextBlock() error {
	start := x.in.n
	b, err := x.in.ReadByte()
	if err != nil {
		return fmt.Errorf("xz: truncated: %w", io.ErrUnexpectedEOF)
	}
	if b == 0 {
		if err := x.index(); err != nil {
			return fmt.Errorf("xz: index: %w", err)
		}
		return x.streamEnd()
	}
	hdr := make([]byte, (int(b)+1)*4)
	hdr[0] = b
	if err := x.in.full(hdr[1:]); err != nil {
		return fmt.Errorf("xz: block header: %w", err)
	}
	n := len(hdr)
	if crc32.ChecksumIEEE(hdr[:n-4]) != binary.LittleEndian.Uint32(hdr[n-4:]) {
		return errors.New("xz: block header checksum mismatch")
	}
	chain, err := x.blockHeader(hdr[1 : n-4])
	if err != nil {
		return fmt.Errorf("xz: block header: %w", err)
	}
	x.hdrSize, x.compStart, x.uncomp = x.in.n-start, x.in.n, 0
	if x.check != nil {
		x.sum = x.check()
	} else {
		x.sum = nil
	}
	lr := newLZMA2Reader(x.in, chain.dict)
	x.block = lr
	if chain.x86 {
		x.block = newX86Reader(lr, chain.x86Start)
	}
	return nil
}

// Filter ids of the chains this reader decodes.
const (
	filterX86   = 0x04
	filterLZMA2 = 0x21
)

// chain is a block's filter chain: LZMA2, after the x86 BCJ filter if
// x86.
type chain struct {
	dict     int // the LZMA2 dictionary to allocate
	x86      bool
	x86Start uint32 // the x86 filter's start offset
}

// blockHeader reads the flags and the filter chain, one of those this
// reader supports: LZMA2 alone, or x86 BCJ then LZMA2 (the order of
// encoding: LZMA2 is always last).
func (x *Reader) blockHeader(b []byte) (chain, error) {
	var c chain
	r := bytes.NewReader(b)
	flags, _ := r.ReadByte()
	if flags&0x3c != 0 {
		return c, errors.New("unsupported block flags")
	}
	x.compSize, x.uncompSize = -1, -1
	if flags&0x40 != 0 {
		v, err := readVLI(r)
		if err != nil || v == 0 {
			return c, errors.New("bad compressed size")
		}
		x.compSize = int64(v)
	}
	if flags&0x80 != 0 {
		v, err := readVLI(r)
		if err != nil {
			return c, errors.New("bad uncompressed size")
		}
		x.uncompSize = int64(v)
	}
	n := int(flags&3) + 1
	if n > 2 {
		return c, fmt.Errorf("a chain of %d filters (only LZMA2, alone or after x86 BCJ, is supported)", n)
	}
	id, err := readVLI(r)
	if err != nil {
		return c, errors.New("bad filter id")
	}
	if n == 2 {
		if id != filterX86 {
			return c, fmt.Errorf("filter %#x before LZMA2 (only x86 BCJ is supported)", id)
		}
		size, err := readVLI(r)
		switch {
		case err != nil || size != 0 && size != 4:
			return c, errors.New("bad x86 BCJ properties")
		case size == 4:
			var off [4]byte
			if _, err := io.ReadFull(r, off[:]); err != nil {
				return c, errors.New("bad x86 BCJ properties")
			}
			c.x86Start = binary.LittleEndian.Uint32(off[:])
		}
		c.x86 = true
		if id, err = readVLI(r); err != nil {
			return c, errors.New("bad filter id")
		}
	}
	if id != filterLZMA2 {
		return c, fmt.Errorf("filter %#x (only LZMA2 is supported as the last one)", id)
	}
	if n, err := readVLI(r); err != nil || n != 1 {
		return c, errors.New("bad LZMA2 properties")
	}
	code, err := r.ReadByte()
	if err != nil {
		return c, errors.New("bad LZMA2 properties")
	}
	dc, err := dictSize(code)
	if err != nil {
		return c, err
	}
	for r.Len() > 0 {
		if p, _ := r.ReadByte(); p != 0 {
			return chain{}, errors.New("header padding is not zero")
		}
	}
	dc = min(dc, x.dict)
	if x.uncompSize >= 0 {
		dc = min(dc, max(x.uncompSize, MinDict))
	}
	c.dict = int(dc)
	return c, nil
}

// endBlock checks the sizes, the padding and the check of the block just
// decoded.
func (x *Reader) endBlock() error {
	comp := x.in.n - x.compStart
	if x.compSize >= 0 && comp != x.compSize {
		return errors.New("xz: block's compressed size differs from its header")
	}
	if x.uncompSize >= 0 && x.uncomp != x.uncompSize {
		return errors.New("xz: block's size differs from its header")
	}
	var buf [3 + 32]byte
	pad, stored := buf[:-(x.hdrSize+comp)&3], buf[3:3+x.size]
	if err := x.in.full(pad); err != nil || !isZero(pad) {
		return errors.New("xz: bad block padding")
	}
	if err := x.in.full(stored); err != nil {
		return fmt.Errorf("xz: block check: %w", err)
	}
	if x.sum != nil {
		var ok bool
		switch x.size {
		case 4:
			ok = binary.LittleEndian.Uint32(stored) == x.sum.(hash.Hash32).Sum32()
		case 8:
			ok = binary.LittleEndian.Uint64(stored) == x.sum.(hash.Hash64).Sum64()
		default:
			ok = bytes.Equal(stored, x.sum.Sum(nil))
		}
		if !ok {
			return errors.New("xz: block check mismatch (corrupt data)")
		}
	}
	x.blocks.add(uint64(x.hdrSize+comp)+uint64(x.size), uint64(x.uncomp))
	return nil
}

// hashReader feeds the bytes it reads to a CRC32, as the index's check
// covers them all.
type hashReader struct {
	r   io.ByteReader
	crc hash.Hash32
	n   int64
}

func (h *hashReader) ReadByte() (byte, error) {
	c, err := h.r.ReadByte()
	if err != nil {
		return 0, io.ErrUnexpectedEOF
	}
	h.crc.Write([]byte{c})
	h.n++
	return c, nil
}

// index reads a stream's index (its 0 indicator already read) and
// compares it with the blocks decoded.
func (x *Reader) index() error {
	hr := &hashReader{r: x.in, crc: crc32.NewIEEE(), n: 1}
	hr.crc.Write([]byte{0})
	count, err := readVLI(hr)
	if err != nil {
		return err
	}
	var got records
	for i := uint64(0); i < count; i++ {
		unpadded, err := readVLI(hr)
		if err != nil {
			return err
		}
		uncomp, err := readVLI(hr)
		if err != nil {
			return err
		}
		if unpadded == 0 {
			return errors.New("record of an empty block")
		}
		got.add(unpadded, uncomp)
		if got.count > x.blocks.count {
			return errors.New("more records than blocks")
		}
	}
	for hr.n&3 != 0 {
		if c, err := hr.ReadByte(); err != nil || c != 0 {
			return errors.New("bad padding")
		}
	}
	var crc [4]byte
	if err := x.in.full(crc[:]); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(crc[:]) != hr.crc.Sum32() {
		return errors.New("checksum mismatch")
	}
	if !got.equal(&x.blocks) {
		return errors.New("does not match the blocks")
	}
	x.indexSize = uint64(hr.n + 4)
	return nil
}

// streamEnd reads the stream footer, the padding after it and the header
// of the next stream if one follows; io.EOF if none does.
func (x *Reader) streamEnd() error {
	var f [12]byte
	if err := x.in.full(f[:]); err != nil {
		return fmt.Errorf("xz: stream footer: %w", err)
	}
	switch {
	case crc32.ChecksumIEEE(f[4:10]) != binary.LittleEndian.Uint32(f[:4]):
		return errors.New("xz: stream footer checksum mismatch")
	case string(f[10:]) != "YZ" || f[8] != x.flags[0] || f[9] != x.flags[1]:
		return errors.New("xz: bad stream footer")
	case (uint64(binary.LittleEndian.Uint32(f[4:8]))+1)*4 != x.indexSize:
		return errors.New("xz: stream footer disagrees with the index size")
	}
	for {
		b, err := x.in.r.Peek(4)
		if len(b) == 0 && err == io.EOF {
			return io.EOF
		}
		if len(b) < 4 {
			return errors.New("xz: garbage after the last stream")
		}
		if !isZero(b) {
			break
		}
		x.in.r.Discard(4)
		x.in.n += 4
	}
	if err := x.streamHeader(); err != nil {
		return fmt.Errorf("xz: after a stream: %w", err)
	}
	return nil
}

// readVLI reads xz's variable-length integer: 7 bits a byte, low first,
// at most 9 bytes, no needless trailing zero byte.
func readVLI(r io.ByteReader) (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, io.ErrUnexpectedEOF
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, errors.New("number encoded with a needless zero byte")
			}
			return v, nil
		}
	}
	return 0, errors.New("number longer than 9 bytes")
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// dictSize reads LZMA2's dictionary size property: 2 or 3 times a power
// of two from 4 KiB, and 4 GiB - 1 for 40, the largest.
func dictSize(code byte) (int64, error) {
	switch {
	case code > 40:
		return 0, fmt.Errorf("LZMA2 dictionary size code %d (at most 40)", code)
	case code == 40:
		return 1<<32 - 1, nil
	}
	return int64(2|code&1) << (code/2 + 11), nil
}
