package baseimage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Our own tar reader: archive/tar expands sparse holes into zeros through
// Read and hides the sparse map, so a 100 GiB sparse entry would cost
// minutes of CPU to skip. This one hands out the map and the stored bytes
// only, and bounds everything a header can make it allocate.

const (
	blockSize = 512
	// maxSpecial bounds one pax extended header or GNU long name/link.
	maxSpecial = 1 << 20
	// maxExtents bounds one entry's sparse map.
	maxExtents = 1 << 20
)

// extent is a region of a sparse file's logical data that the archive
// stores; what lies between extents reads as zeros.
type extent struct{ off, len int64 }

// header is one archive member, with pax, GNU long-name and sparse
// headers already folded in.
type header struct {
	name, linkname     string
	typ                byte // '0' for every regular file ('\x00', '7', 'S' included)
	mode, uid, gid     int64
	uname, gname       string
	size               int64 // logical size of the data
	mtime              time.Time
	devmajor, devminor int64
	sparse             []extent // stored regions of a sparse file; nil when not sparse
}

// tarReader reads a tar stream member by member; between two calls of next,
// Read returns the stored data of the current member (for a sparse file,
// the extents' bytes one after the other).
type tarReader struct {
	r      *bufio.Reader
	pos    int64 // bytes of the tar stream consumed
	remain int64 // stored bytes of the current member not read yet
	pad    int64 // padding after them
	global paxRecords
	last   string // name of the previous member, for errors
	start  int64  // offset of the member being read, for errors
	blk    [blockSize]byte
}

func newTarReader(r io.Reader) *tarReader {
	return &tarReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Read reads the current member's stored data.
func (t *tarReader) Read(p []byte) (int, error) {
	if t.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > t.remain {
		p = p[:t.remain]
	}
	n, err := t.r.Read(p)
	t.remain -= int64(n)
	t.pos += int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (t *tarReader) discard(n int64) error {
	for n > 0 {
		step := min(n, 1<<30)
		k, err := t.r.Discard(int(step))
		t.pos += int64(k)
		n -= int64(k)
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (t *tarReader) where() string {
	if t.last == "" {
		return fmt.Sprintf("tar header at byte %d", t.start)
	}
	return fmt.Sprintf("tar header at byte %d (after %q)", t.start, t.last)
}

// readBlock reads the next 512-byte block; a clean end of stream is io.EOF.
func (t *tarReader) readBlock() error {
	n, err := io.ReadFull(t.r, t.blk[:])
	t.pos += int64(n)
	if err == io.ErrUnexpectedEOF {
		return fmt.Errorf("archive truncated in a header block")
	}
	return err
}

// next returns the next member; io.EOF at the end of the archive (an
// all-zero block, or the end of the stream between members).
func (t *tarReader) next() (*header, error) {
	if err := t.discard(t.remain + t.pad); err != nil {
		return nil, fmt.Errorf("skip data of %q: %w", t.last, err)
	}
	t.remain, t.pad = 0, 0
	t.start = t.pos
	h, err := t.readMember()
	if err != nil {
		if err == io.EOF {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", t.where(), err)
	}
	t.last = h.name
	return h, nil
}

func (t *tarReader) readMember() (*header, error) {
	var (
		pax                paxRecords
		longName, longLink *string
		pending            bool // extended headers wait for their member
	)
	for {
		if err := t.readBlock(); err != nil {
			if err == io.EOF && pending {
				return nil, errors.New("archive ends after an extended header")
			}
			return nil, err
		}
		if isZero(t.blk[:]) {
			if pending {
				return nil, errors.New("archive ends after an extended header")
			}
			return nil, io.EOF
		}
		h, err := parseBlock(&t.blk)
		if err != nil {
			return nil, err
		}
		switch h.typ {
		case 'x', 'g':
			data, err := t.special(h)
			if err != nil {
				return nil, err
			}
			recs, err := parsePAX(data)
			if err != nil {
				return nil, fmt.Errorf("pax header: %w", err)
			}
			if h.typ == 'g' {
				t.global.merge(recs) // for every later member: nothing waits for it
				continue
			}
			pax, pending = recs, true
			continue
		case 'L', 'K':
			data, err := t.special(h)
			if err != nil {
				return nil, err
			}
			s := cstring(data)
			if h.typ == 'L' {
				longName = &s
			} else {
				longLink = &s
			}
			pending = true
			continue
		}
		if longName != nil {
			h.name = *longName
		}
		if longLink != nil {
			h.linkname = *longLink
		}
		if err := t.global.apply(h); err != nil {
			return nil, fmt.Errorf("pax global header: %w", err)
		}
		if err := pax.apply(h); err != nil {
			return nil, fmt.Errorf("pax header: %w", err)
		}
		return h, t.finishMember(h, &pax)
	}
}

// finishMember sets where the member's data is, reads its sparse map if
// it has one, and makes every kind of regular file type '0'.
func (t *tarReader) finishMember(h *header, pax *paxRecords) error {
	total := h.size // what the archive stores after the headers
	switch {
	case isHeaderOnly(h.typ):
		total = 0
	case h.typ == '\x00' && strings.HasSuffix(h.name, "/"):
		h.typ, total = '5', 0 // pre-POSIX archives mark directories by the slash only
	}
	t.remain, t.pad = total, -total&(blockSize-1)
	switch {
	case h.typ == 'S':
		if pax.sparse() {
			return errors.New("both an old GNU sparse map and pax sparse records")
		}
		real, err := t.oldGNUSparse()
		if err != nil {
			return err
		}
		h.sparse, h.size = real.sparse, real.size
	case isRegular(h.typ) && pax.sparse():
		if err := t.paxSparse(h, pax); err != nil {
			return err
		}
	case pax.sparse():
		return fmt.Errorf("GNU sparse records on an entry of type %q", h.typ)
	}
	if isRegular(h.typ) || h.typ == 'S' {
		h.typ = '0'
	}
	if h.sparse != nil {
		if err := checkSparse(h.sparse, h.size); err != nil {
			return err
		}
		h.sparse = dropEmpty(h.sparse)
		if n := h.physical(); n != t.remain {
			return fmt.Errorf("sparse map holds %d bytes, the archive stores %d", n, t.remain)
		}
	}
	return nil
}

// special reads the data of an extended header.
func (t *tarReader) special(h *header) ([]byte, error) {
	size := h.size
	if size > maxSpecial {
		return nil, fmt.Errorf("%q header of %d bytes (more than %d)", h.typ, size, maxSpecial)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(t.r, data); err != nil {
		return nil, fmt.Errorf("extended header truncated: %w", err)
	}
	t.pos += size
	return data, t.discard(-size & (blockSize - 1))
}

func isRegular(typ byte) bool { return typ == '0' || typ == '\x00' || typ == '7' }

// isHeaderOnly says which types have no data in the archive, whatever
// their size field says.
func isHeaderOnly(typ byte) bool {
	switch typ {
	case '1', '2', '3', '4', '5', '6':
		return true
	}
	return false
}

func isZero(b []byte) bool {
	for len(b) >= len(zeros) {
		if !bytes.Equal(b[:len(zeros)], zeros[:]) {
			return false
		}
		b = b[len(zeros):]
	}
	return bytes.Equal(b, zeros[:len(b)])
}

var zeros [holeBlock]byte

// physical is the number of bytes a sparse file stores.
func (h *header) physical() int64 {
	var n int64
	for _, e := range h.sparse {
		n += e.len
	}
	return n
}

// The header block: ustar (POSIX), old GNU and v7 share the first 257 bytes.
const (
	magicUSTAR = "ustar\x00"
	magicGNU   = "ustar "
)

func parseBlock(b *[blockSize]byte) (*header, error) {
	if err := checksum(b); err != nil {
		return nil, err
	}
	h := &header{typ: b[156], name: cstring(b[0:100]), linkname: cstring(b[157:257])}
	var err error
	num := func(field []byte, what string) int64 {
		v, e := parseNumber(field)
		if e != nil && err == nil {
			err = fmt.Errorf("%s field: %w", what, e)
		}
		return v
	}
	h.mode = num(b[100:108], "mode")
	h.uid = num(b[108:116], "uid")
	h.gid = num(b[116:124], "gid")
	h.size = num(b[124:136], "size")
	h.mtime = time.Unix(num(b[136:148], "mtime"), 0)
	magic := string(b[257:263])
	if magic == magicUSTAR || magic == magicGNU {
		h.uname, h.gname = cstring(b[265:297]), cstring(b[297:329])
		if h.typ == '3' || h.typ == '4' {
			h.devmajor = num(b[329:337], "devmajor")
			h.devminor = num(b[337:345], "devminor")
		}
	}
	if magic == magicUSTAR {
		prefix := b[345:500]
		if string(b[508:512]) == "tar\x00" {
			prefix = b[345:476] // star: the prefix is shorter, times follow it
		}
		if p := cstring(prefix); p != "" {
			h.name = p + "/" + h.name
		}
	}
	if err != nil {
		return nil, err
	}
	if h.size < 0 {
		return nil, fmt.Errorf("negative size %d", h.size)
	}
	return h, nil
}

// checksum accepts both sums tar implementations have written: of the
// bytes as unsigned and as signed chars, the field itself as spaces.
func checksum(b *[blockSize]byte) error {
	want, err := parseOctal(b[148:156])
	if err != nil {
		return fmt.Errorf("checksum field: %w", err)
	}
	var unsigned, signed int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	if want != unsigned && want != signed {
		return fmt.Errorf("header checksum mismatch (not a tar archive, or corrupt)")
	}
	return nil
}

// oldGNUSparse reads the map of an 'S' member: four extents in the header
// block (still in t.blk), then extension blocks of 21 while the
// "isextended" byte says so. It returns the map and the real size.
func (t *tarReader) oldGNUSparse() (*header, error) {
	if string(t.blk[257:263]) != magicGNU {
		return nil, errors.New("old GNU sparse entry without the GNU magic")
	}
	real, err := parseNumber(t.blk[483:495])
	if err != nil {
		return nil, fmt.Errorf("realsize field: %w", err)
	}
	out := &header{size: real, sparse: []extent{}}
	fields, more := t.blk[386:482], t.blk[482] != 0
	for {
		for ; len(fields) >= 24 && fields[0] != 0; fields = fields[24:] {
			off, err := parseNumber(fields[:12])
			if err != nil {
				return nil, fmt.Errorf("sparse offset: %w", err)
			}
			n, err := parseNumber(fields[12:24])
			if err != nil {
				return nil, fmt.Errorf("sparse numbytes: %w", err)
			}
			if len(out.sparse) == maxExtents {
				return nil, fmt.Errorf("sparse map has more than %d extents", maxExtents)
			}
			out.sparse = append(out.sparse, extent{off, n})
		}
		if !more {
			return out, nil
		}
		if err := t.readBlock(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("sparse extension block: %w", err)
		}
		fields, more = t.blk[:504], t.blk[504] != 0
	}
}

// checkSparse requires extents in order, disjoint and inside the file,
// and drops empty ones (GNU tar ends every map with one at the end of
// the file).
func checkSparse(m []extent, size int64) error {
	var end int64
	for _, e := range m {
		if e.off < 0 || e.len < 0 || e.off > size || e.len > size-e.off {
			return fmt.Errorf("sparse extent %d+%d outside the file's %d bytes", e.off, e.len, size)
		}
		if e.off < end {
			return fmt.Errorf("sparse extents out of order or overlapping at %d", e.off)
		}
		end = e.off + e.len
	}
	return nil
}

func dropEmpty(m []extent) []extent {
	out := m[:0]
	for _, e := range m {
		if e.len > 0 {
			out = append(out, e)
		}
	}
	return out
}

// paxSparse reads the GNU sparse formats carried by pax records: 0.0
// (GNU.sparse.offset/numbytes pairs), 0.1 (GNU.sparse.map) and 1.0 (the
// map at the start of the data).
func (t *tarReader) paxSparse(h *header, pax *paxRecords) error {
	major, minor := pax.get("GNU.sparse.major"), pax.get("GNU.sparse.minor")
	if name := pax.get("GNU.sparse.name"); name != "" {
		h.name = name
	}
	size := pax.get("GNU.sparse.realsize")
	if size == "" {
		size = pax.get("GNU.sparse.size")
	}
	real, err := parseDecimal(size, "GNU.sparse.realsize")
	if err != nil {
		return err
	}
	h.size = real
	var nums []int64
	switch {
	case major == "1" && minor == "0":
		h.sparse, err = t.sparseMap10()
		return err
	case major != "" || minor != "":
		return fmt.Errorf("unsupported GNU sparse format %s.%s", major, minor)
	case pax.has("GNU.sparse.map"):
		if s := pax.get("GNU.sparse.map"); s != "" {
			for f := range strings.SplitSeq(s, ",") {
				v, err := parseDecimal(f, "GNU.sparse.map")
				if err != nil {
					return err
				}
				nums = append(nums, v)
			}
		}
	default:
		nums = pax.sparse00
	}
	if len(nums)%2 != 0 {
		return errors.New("sparse map has an offset without a length")
	}
	if len(nums) > 2*maxExtents {
		return fmt.Errorf("sparse map has more than %d extents", maxExtents)
	}
	if nb := pax.get("GNU.sparse.numblocks"); nb != "" {
		n, err := parseDecimal(nb, "GNU.sparse.numblocks")
		if err != nil {
			return err
		}
		if n != int64(len(nums)/2) {
			return fmt.Errorf("GNU.sparse.numblocks is %d, the map has %d", n, len(nums)/2)
		}
	}
	h.sparse = make([]extent, 0, len(nums)/2)
	for i := 0; i < len(nums); i += 2 {
		h.sparse = append(h.sparse, extent{nums[i], nums[i+1]})
	}
	return nil
}

// sparseMap10 reads format 1.0's map from the start of the data: decimal
// numbers one a line (count, then offset and length pairs), padded to a
// block.
func (t *tarReader) sparseMap10() ([]extent, error) {
	var used int64
	line := func() (int64, error) {
		var buf [20]byte
		n := 0
		for {
			c, err := t.readByte()
			if err != nil {
				return 0, fmt.Errorf("sparse map truncated: %w", err)
			}
			used++
			if c == '\n' {
				return parseDecimal(string(buf[:n]), "sparse map")
			}
			if n == len(buf) {
				return 0, errors.New("sparse map number too long")
			}
			buf[n] = c
			n++
		}
	}
	count, err := line()
	if err != nil {
		return nil, err
	}
	if count > maxExtents {
		return nil, fmt.Errorf("sparse map has %d extents (more than %d)", count, maxExtents)
	}
	m := []extent{}
	for i := int64(0); i < count; i++ {
		off, err := line()
		if err != nil {
			return nil, err
		}
		n, err := line()
		if err != nil {
			return nil, err
		}
		m = append(m, extent{off, n})
	}
	if _, err := io.CopyN(io.Discard, t, -used&(blockSize-1)); err != nil {
		return nil, fmt.Errorf("sparse map truncated: %w", err)
	}
	return m, nil
}

func (t *tarReader) readByte() (byte, error) {
	if t.remain == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	c, err := t.r.ReadByte()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	t.remain--
	t.pos++
	return c, nil
}

// cstring is a NUL-terminated field.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// parseNumber reads a numeric header field: octal text, or GNU's base-256
// (first byte 0x80 for positive, 0xff for negative: two's complement).
func parseNumber(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		return parseBase256(b)
	}
	return parseOctal(b)
}

func parseBase256(b []byte) (int64, error) {
	first := b[0] & 0x7f
	if first&0x40 != 0 {
		first |= 0x80 // sign-extend the 7 value bits
	}
	neg := first&0x80 != 0
	fill := byte(0)
	if neg {
		fill = 0xff
	}
	var v uint64
	for i, c := range b {
		if i == 0 {
			c = first
		}
		if i < len(b)-8 {
			if c != fill {
				return 0, errors.New("base-256 number out of range")
			}
			continue
		}
		v = v<<8 | uint64(c)
	}
	if len(b) < 8 && neg {
		v |= ^uint64(0) << (8 * len(b))
	}
	if (int64(v) < 0) != neg {
		return 0, errors.New("base-256 number out of range")
	}
	return int64(v), nil
}

func parseOctal(b []byte) (int64, error) {
	s := strings.TrimLeft(string(b), " \x00")
	s = strings.TrimRight(s, " \x00")
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 8, 63)
	if err != nil {
		return 0, fmt.Errorf("bad octal number %q", s)
	}
	return int64(v), nil
}

func parseDecimal(s, what string) (int64, error) {
	v, err := strconv.ParseUint(s, 10, 63)
	if err != nil || s == "" || s[0] == '+' {
		return 0, fmt.Errorf("%s: bad number %q", what, s)
	}
	return int64(v), nil
}
