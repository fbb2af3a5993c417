package xz

import (
	"encoding/binary"
	"io"
	"math/bits"
)

// The x86 BCJ filter (filter id 0x04) helps LZMA2 with x86 machine code:
// the encoder turns the 32-bit relative operand of each CALL (E8) and
// JMP (E9) that looks like a near branch (its top byte 0x00 or 0xFF) into
// an absolute address, so that branches to the same function become the
// same bytes. The decoder turns them back. Which E8/E9 bytes were
// converted is not recorded: the decoder makes the same choice as the
// encoder from the same bytes, the converted ones already restored, so
// every rule below is part of the format.
//
// The rules, for an E8/E9 byte at position p (offset from the start of
// the block's data, plus the filter's start offset, modulo 2^32):
//
//   - Its operand is the 4 bytes after it; only an E8/E9 whose operand
//     lies in the data is looked at (the last 4 bytes pass as they are).
//   - An E8/E9 that was not converted is remembered for the next 3 bytes.
//     If one such byte is among the 3 before p and the top byte of its
//     operand (which overlaps p's operand) is 0x00 or 0xFF, or if two or
//     more are, p is not converted either.
//   - Otherwise p is converted when the top byte of its operand is 0x00
//     or 0xFF: address - (p + 5) is the relative operand. The encoder
//     made sure the byte of the result that a remembered E8/E9's operand
//     ends on is not 0x00 or 0xFF (which would have turned that E8/E9
//     into one to convert): where it was, it flipped the bits below that
//     byte and converted again, so the decoder undoes that the same way.
//     The result is sign-extended from bit 24, and the 5 bytes of the
//     instruction are done: scanning goes on after them.

// x86 is the x86 BCJ decoder's state between buffers.
type x86 struct {
	ip   uint32 // p of the next byte to convert: the start offset plus its position
	pos  int64  // the position of the next byte to convert
	last int64  // the position of the last E8/E9 byte that was not converted
	// seen has a bit for each E8/E9 byte not converted: bit k for the
	// one k bytes before last.
	seen uint32
}

// msByte says whether b is the top byte of a near branch's operand.
func msByte(b byte) bool { return b == 0 || b == 0xff }

// decode converts b in place, b starting at x.pos, and returns how many
// of its bytes are done; the rest (at most 4, the start of a branch whose
// operand is not all there) must come again, with more bytes after them.
func (x *x86) decode(b []byte) int {
	i := 0
	for ; i+4 < len(b); i++ {
		if b[i]&0xfe != 0xe8 {
			continue
		}
		at := x.pos + int64(i)
		// near: the E8/E9 bytes not converted among the 3 before this
		// one, bit k for the one k+1 bytes before.
		var near uint32
		if d := at - x.last; d <= 3 {
			near = x.seen << (d - 1) & 7
		}
		if near != 0 {
			k := bits.Len32(near) // how far back the farthest one is
			if near&(near-1) != 0 || msByte(b[i+4-k]) {
				x.last, x.seen = at, near<<1|1
				continue
			}
		}
		if !msByte(b[i+4]) {
			x.last, x.seen = at, near<<1|1
			continue
		}
		next := x.ip + uint32(i) + 5
		v := binary.LittleEndian.Uint32(b[i+1:])
		rel := v - next
		if near != 0 {
			shift := 32 - 8*bits.Len32(near)
			for msByte(byte(rel >> (shift - 8))) {
				v = rel ^ (1<<shift - 1)
				rel = v - next
			}
		}
		rel = uint32(int32(rel<<7) >> 7)
		binary.LittleEndian.PutUint32(b[i+1:], rel)
		i += 4
	}
	x.pos += int64(i)
	x.ip += uint32(i)
	return i
}

// x86Reader undoes the x86 BCJ filter on the data r gives.
type x86Reader struct {
	r   io.Reader
	x   x86
	buf []byte
	// buf[:done] is decoded, buf[start:done] not yet returned;
	// buf[done:n] is read but not decoded.
	start, done, n int
	err            error // r's, once it has ended
}

func newX86Reader(r io.Reader, start uint32) *x86Reader {
	// last: far enough back that no E8/E9 is remembered at the start.
	return &x86Reader{r: r, x: x86{ip: start, last: -4}, buf: make([]byte, 32<<10)}
}

func (x *x86Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for x.start == x.done {
		if x.err != nil {
			if x.done < x.n {
				// The end: the last bytes cannot start a branch.
				x.done = x.n
				continue
			}
			return 0, x.err
		}
		x.n = copy(x.buf, x.buf[x.done:x.n])
		x.start, x.done = 0, 0
		k, err := x.r.Read(x.buf[x.n:])
		x.n += k
		if err != nil {
			x.err = err
		}
		x.done = x.x.decode(x.buf[:x.n])
	}
	n := copy(p, x.buf[x.start:x.done])
	x.start += n
	return n, nil
}
