package xz

import (
	"errors"
	"fmt"
	"io"
)

// This file decodes LZMA2 (the xz format's filter 0x21) with the
// structure of the reference decoders (liblzma's chunk rules, XZ
// Embedded's dictionary and range decoder). ulikunitz/xz's decoder,
// which this package used before, took 1.5 s for Debian's kernel payload
// (63 MiB out), most of it in calls through interfaces for every bit;
// decoding here reads a chunk's compressed bytes (at most 64 KiB) at
// once and keeps the range decoder's state in locals.

var (
	errLZMA2     = errors.New("corrupt LZMA2 data")
	errLZMAProps = errors.New("LZMA2: lc + lp is more than 4, or a bad properties byte")
)

const (
	lzmaStates     = 12
	posStatesMax   = 1 << 4
	lenLowSymbols  = 8
	lenMidSymbols  = 8
	lenHighSymbols = 256
	distStates     = 4
	distSlots      = 64
	distModelStart = 4
	distModelEnd   = 14
	fullDistances  = 1 << (distModelEnd / 2)
	alignBits      = 4
	matchLenMin    = 2
	probInit       = 1 << 10
)

type lenDecoder struct {
	choice, choice2 uint16
	low             [posStatesMax][lenLowSymbols]uint16
	mid             [posStatesMax][lenMidSymbols]uint16
	high            [lenHighSymbols]uint16
}

// lzmaProbs are the adaptive probabilities of an LZMA state.
type lzmaProbs struct {
	isMatch    [lzmaStates][posStatesMax]uint16
	isRep      [lzmaStates]uint16
	isRep0     [lzmaStates]uint16
	isRep1     [lzmaStates]uint16
	isRep2     [lzmaStates]uint16
	isRep0Long [lzmaStates][posStatesMax]uint16
	distSlot   [distStates][distSlots]uint16
	distSpec   [fullDistances - distModelEnd + 1]uint16
	align      [1 << alignBits]uint16
	matchLen   lenDecoder
	repLen     lenDecoder
	literal    [0x300 << 4]uint16 // lc + lp <= 4
}

// lzma2Reader decodes an LZMA2 stream from in, with a dictionary of
// dictSize bytes.
type lzma2Reader struct {
	in  io.Reader
	err error

	// The dictionary: dict[start:pos] is decoded and not yet read; full
	// bytes of it are history (at most len(dict)).
	dict             []byte
	pos, start, full int
	total            uint64 // bytes decoded since the dictionary's reset, for positions
	needDictReset    bool
	needProps        bool
	chunkLeft        int  // uncompressed bytes left in the current chunk
	stored           bool // the current chunk is uncompressed
	chunk            *[chunkBuf]byte
	chunkLen         int
	inPos            int
	rng, code        uint32
	lc, lp, pb       uint
	state            int
	rep0, rep1, rep2 uint32
	rep3             uint32
	matchLeft        int // of the match being copied when the limit came
	probs            *lzmaProbs
}

func newLZMA2Reader(in io.Reader, dictSize int) *lzma2Reader {
	return &lzma2Reader{in: in, dict: make([]byte, dictSize), needDictReset: true, needProps: true,
		chunk: new([chunkBuf]byte), probs: new(lzmaProbs)}
}

func (z *lzma2Reader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if z.start < z.pos {
			k := copy(p[n:], z.dict[z.start:z.pos])
			z.start += k
			n += k
			continue
		}
		if z.err != nil {
			break
		}
		if z.pos == len(z.dict) {
			z.pos, z.start = 0, 0
		}
		if z.chunkLeft == 0 {
			if z.err = z.nextChunk(); z.err != nil {
				break
			}
			continue
		}
		limit := min(len(z.dict), z.pos+z.chunkLeft, z.pos+len(p)-n)
		before := z.pos
		if z.stored {
			if _, err := io.ReadFull(z.in, z.dict[z.pos:limit]); err != nil {
				z.err = fmt.Errorf("LZMA2: %w", noEOF(err))
				break
			}
			z.pos = limit
		} else if z.err = z.decode(limit); z.err != nil {
			break
		}
		d := z.pos - before
		z.full = min(len(z.dict), z.full+d)
		z.total += uint64(d)
		z.chunkLeft -= d
		if z.chunkLeft == 0 && !z.stored && !z.chunkEnd() {
			z.err = errLZMA2
		}
	}
	if n > 0 {
		return n, nil
	}
	return 0, z.err
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// nextChunk reads a chunk's header (and an LZMA chunk's compressed
// bytes), with liblzma's rules on what must be reset first; io.EOF at the
// end marker.
func (z *lzma2Reader) nextChunk() error {
	var b [6]byte
	if _, err := io.ReadFull(z.in, b[:1]); err != nil {
		return fmt.Errorf("LZMA2: %w", noEOF(err))
	}
	c := b[0]
	if c == 0 {
		return io.EOF
	}
	if c >= 0xe0 || c == 1 {
		z.needProps = true
		z.pos, z.start, z.full, z.total = 0, 0, 0, 0
	} else if z.needDictReset {
		return errLZMA2
	}
	z.needDictReset = false
	if c < 0x80 {
		if c > 2 {
			return errLZMA2
		}
		if _, err := io.ReadFull(z.in, b[:2]); err != nil {
			return fmt.Errorf("LZMA2: %w", noEOF(err))
		}
		z.stored, z.chunkLeft = true, int(b[0])<<8|int(b[1])+1
		return nil
	}
	hdr := b[:4]
	if c >= 0xc0 {
		hdr = b[:5]
	}
	if _, err := io.ReadFull(z.in, hdr); err != nil {
		return fmt.Errorf("LZMA2: %w", noEOF(err))
	}
	z.stored = false
	z.chunkLeft = int(c&0x1f)<<16 | int(b[0])<<8 | int(b[1]) + 1
	comp := int(b[2])<<8 | int(b[3]) + 1
	switch {
	case c >= 0xc0:
		p := uint(b[4])
		if p >= 9*5*5 {
			return errLZMAProps
		}
		z.lc, z.lp, z.pb = p%9, p/9%5, p/45
		if z.lc+z.lp > 4 {
			return errLZMAProps
		}
		z.needProps = false
		z.reset()
	case z.needProps:
		return errLZMA2
	case c >= 0xa0:
		z.reset()
	}
	if comp < 5 {
		return errLZMA2
	}
	z.chunkLen = comp
	c5 := z.chunk[:comp]
	if _, err := io.ReadFull(z.in, c5); err != nil {
		return fmt.Errorf("LZMA2: %w", noEOF(err))
	}
	if c5[0] != 0 {
		return errLZMA2
	}
	z.rng, z.code = 0xffffffff, uint32(c5[1])<<24|uint32(c5[2])<<16|uint32(c5[3])<<8|uint32(c5[4])
	z.inPos = 5
	return nil
}

// chunkEnd says whether the LZMA chunk's data ends as it must: no match
// going on, and the range decoder, normalized, has read every byte and
// its code is 0 (what the encoder's flush leaves).
func (z *lzma2Reader) chunkEnd() bool {
	r := rc{rng: z.rng, code: z.code, in: z.chunk, pos: z.inPos}
	r.normalize()
	return z.matchLeft == 0 && r.pos == z.chunkLen && r.code == 0
}

// reset is the LZMA state reset.
func (z *lzma2Reader) reset() {
	p := z.probs
	fill := func(s []uint16) {
		for i := range s {
			s[i] = probInit
		}
	}
	for i := range p.isMatch {
		fill(p.isMatch[i][:])
		fill(p.isRep0Long[i][:])
	}
	fill(p.isRep[:])
	fill(p.isRep0[:])
	fill(p.isRep1[:])
	fill(p.isRep2[:])
	for i := range p.distSlot {
		fill(p.distSlot[i][:])
	}
	fill(p.distSpec[:])
	fill(p.align[:])
	fill(p.literal[:])
	for _, l := range []*lenDecoder{&p.matchLen, &p.repLen} {
		l.choice, l.choice2 = probInit, probInit
		for i := range l.low {
			fill(l.low[i][:])
			fill(l.mid[i][:])
		}
		fill(l.high[:])
	}
	z.state, z.rep0, z.rep1, z.rep2, z.rep3, z.matchLeft = 0, 0, 0, 0, 0, 0
}

// rc is the range decoder over one chunk's bytes, in a buffer of twice
// the largest chunk: indexes are masked, so reading past the chunk needs
// no check in the loop, and the chunk's end finds it (pos past the end).
type rc struct {
	rng, code uint32
	in        *[chunkBuf]byte
	pos       int
}

const chunkBuf = 1 << 17

func (r *rc) normalize() {
	if r.rng < 1<<24 {
		r.rng <<= 8
		r.code = r.code<<8 | uint32(r.in[r.pos&(chunkBuf-1)])
		r.pos++
	}
}

// bit decodes one bit with probability *p and adapts it. Small enough
// for the compiler to inline: it is most of the decoding time.
func (r *rc) bit(p *uint16) (b uint32) {
	if r.rng < 1<<24 {
		r.rng <<= 8
		r.code = r.code<<8 | uint32(r.in[r.pos&(chunkBuf-1)])
		r.pos++
	}
	bound := (r.rng >> 11) * uint32(*p)
	if r.code < bound {
		r.rng = bound
		*p += (1<<11 - *p) >> 5
	} else {
		r.rng -= bound
		r.code -= bound
		*p -= *p >> 5
		b = 1
	}
	return b
}

// tree decodes a bit tree of limit leaves (a power of two), the symbol
// less limit.
func (r *rc) tree(probs []uint16, limit uint32) uint32 {
	s := uint32(1)
	for s < limit {
		s = s<<1 | r.bit(&probs[s])
	}
	return s - limit
}

// reverse adds to *dest the bits of a reverse bit tree.
func (r *rc) reverse(probs []uint16, dest *uint32, bits uint) {
	s := uint32(1)
	for i := range bits {
		b := r.bit(&probs[s])
		s = s<<1 | b
		*dest += b << i
	}
}

func (r *rc) direct(dest *uint32, bits uint) {
	for range bits {
		r.normalize()
		r.rng >>= 1
		r.code -= r.rng
		t := 0 - (r.code >> 31)
		r.code += r.rng & t
		*dest = *dest<<1 + t + 1
	}
}

func (r *rc) length(l *lenDecoder, posState uint32) int {
	if r.bit(&l.choice) == 0 {
		return int(r.tree(l.low[posState][:], lenLowSymbols)) + matchLenMin
	}
	if r.bit(&l.choice2) == 0 {
		return int(r.tree(l.mid[posState][:], lenMidSymbols)) + matchLenMin + lenLowSymbols
	}
	return int(r.tree(l.high[:], lenHighSymbols)) + matchLenMin + lenLowSymbols + lenMidSymbols
}

// decode decodes LZMA symbols into the dictionary until z.pos reaches
// limit (a match may stop there, to go on at the next call).
func (z *lzma2Reader) decode(limit int) error {
	r := rc{rng: z.rng, code: z.code, in: z.chunk, pos: z.inPos}
	p := z.probs
	dict, pos, full := z.dict, z.pos, z.full
	total := z.total - uint64(pos) // total + pos is the position
	state, rep0, rep1, rep2, rep3 := z.state, z.rep0, z.rep1, z.rep2, z.rep3
	pbMask, lpMask := uint32(1)<<z.pb-1, uint32(1)<<z.lp-1
	lc := z.lc
	var err error
	// History is what the dictionary held before this call, plus what
	// this call decoded.
	hist := func(pos int) int { return min(len(dict), full+pos-z.pos) }
	if z.matchLeft > 0 {
		var ok bool
		if pos, z.matchLeft, ok = copyMatch(dict, pos, limit, hist(pos), rep0, z.matchLeft); !ok {
			err = errLZMA2
		}
	}
	for pos < limit && err == nil {
		posState := uint32(total+uint64(pos)) & pbMask
		if r.bit(&p.isMatch[state][posState]) == 0 {
			var prev byte
			if pos > 0 {
				prev = dict[pos-1]
			} else if full+pos-z.pos > 0 {
				prev = dict[len(dict)-1]
			}
			ctx := (uint32(total+uint64(pos))&lpMask)<<lc + uint32(prev)>>(8-lc)
			probs := p.literal[0x300*ctx : 0x300*ctx+0x300]
			s := uint32(1)
			if state < 7 {
				for s < 0x100 {
					s = s<<1 | r.bit(&probs[s])
				}
			} else {
				if int(rep0) >= hist(pos) {
					err = errLZMA2
					break
				}
				src := pos - int(rep0) - 1
				if src < 0 {
					src += len(dict)
				}
				match := uint32(dict[src]) << 1
				offset := uint32(0x100)
				for s < 0x100 {
					mbit := match & offset
					match <<= 1
					if r.bit(&probs[offset+mbit+s]) == 1 {
						s = s<<1 | 1
						offset = mbit
					} else {
						s <<= 1
						offset ^= mbit
					}
				}
			}
			dict[pos] = byte(s)
			pos++
			switch {
			case state < 4:
				state = 0
			case state < 10:
				state -= 3
			default:
				state -= 6
			}
			continue
		}
		var n int
		if r.bit(&p.isRep[state]) == 0 {
			rep3, rep2, rep1 = rep2, rep1, rep0
			n = r.length(&p.matchLen, posState)
			if state < 7 {
				state = 7
			} else {
				state = 10
			}
			ds := min(n-matchLenMin, distStates-1)
			slot := r.tree(p.distSlot[ds][:], distSlots)
			if slot < distModelStart {
				rep0 = slot
			} else {
				bits := uint(slot>>1 - 1)
				rep0 = 2 | slot&1
				if slot < distModelEnd {
					rep0 <<= bits
					r.reverse(p.distSpec[rep0-slot:], &rep0, bits)
				} else {
					r.direct(&rep0, bits-alignBits)
					rep0 <<= alignBits
					r.reverse(p.align[:], &rep0, alignBits)
					if rep0 == 0xffffffff {
						// The end marker, which LZMA2 does not use.
						err = errLZMA2
						break
					}
				}
			}
		} else {
			if r.bit(&p.isRep0[state]) == 0 {
				if r.bit(&p.isRep0Long[state][posState]) == 0 {
					if state < 7 {
						state = 9
					} else {
						state = 11
					}
					var ok bool
					if pos, _, ok = copyMatch(dict, pos, limit, hist(pos), rep0, 1); !ok {
						err = errLZMA2
					}
					continue
				}
			} else {
				var d uint32
				if r.bit(&p.isRep1[state]) == 0 {
					d = rep1
				} else {
					if r.bit(&p.isRep2[state]) == 0 {
						d = rep2
					} else {
						d, rep3 = rep3, rep2
					}
					rep2 = rep1
				}
				rep1, rep0 = rep0, d
			}
			if state < 7 {
				state = 8
			} else {
				state = 11
			}
			n = r.length(&p.repLen, posState)
		}
		if d := int(rep0) + 1; d <= pos && n <= limit-pos && d <= hist(pos) {
			// Most matches: short, inside the dictionary's buffer.
			if d >= n {
				copy(dict[pos:pos+n], dict[pos-d:])
			} else {
				for i := pos; i < pos+n; i++ {
					dict[i] = dict[i-d]
				}
			}
			pos += n
			continue
		}
		var ok bool
		if pos, z.matchLeft, ok = copyMatch(dict, pos, limit, hist(pos), rep0, n); !ok {
			err = errLZMA2
		}
		if z.matchLeft > 0 {
			break
		}
	}
	z.rng, z.code, z.inPos = r.rng, r.code, r.pos
	z.pos = pos
	z.state, z.rep0, z.rep1, z.rep2, z.rep3 = state, rep0, rep1, rep2, rep3
	if r.pos > z.chunkLen {
		// Past the chunk: corrupt, and no need to decode on.
		return errLZMA2
	}
	return err
}

// copyMatch copies n bytes from dist+1 back (of hist bytes of history)
// to dict[pos:], up to limit, and returns the new pos and how many bytes
// are left; not ok when dist is beyond the history.
func copyMatch(dict []byte, pos, limit, hist int, dist uint32, n int) (int, int, bool) {
	if int(dist) >= hist {
		return pos, 0, false
	}
	src := pos - int(dist) - 1
	if src < 0 {
		src += len(dict)
	}
	k := min(n, limit-pos)
	left := n - k
	for k > 0 {
		m := min(k, len(dict)-src)
		if d := pos - src; d > 0 && d < m {
			// Overlapping: byte by byte, as the format means.
			for i := range m {
				dict[pos+i] = dict[src+i]
			}
		} else {
			copy(dict[pos:pos+m], dict[src:src+m])
		}
		pos += m
		src += m
		if src == len(dict) {
			src = 0
		}
		k -= m
	}
	return pos, left, true
}
