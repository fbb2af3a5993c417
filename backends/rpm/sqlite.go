package rpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
)

// A read-only reader of the one table rpm's sqlite backend keeps its
// headers in: "Packages" (hnum INTEGER PRIMARY KEY, blob BLOB). It reads
// the file format directly (header, table b-trees, overflow chains, and
// the committed frames of a write-ahead log), so that reading a database
// never writes beside it (no -shm or -wal files, no locks) and works on a
// read-only tree.

const sqliteMagic = "SQLite format 3\x00"

// maxPayload bounds one row: a header blob and a few bytes of record
// header.
const maxPayload = maxBlob + 1024

type sqliteDB struct {
	f        io.ReaderAt
	size     int64
	pageSize int
	usable   int
	npages   uint32
	wal      io.ReaderAt
	walPages map[uint32]int64 // page number -> offset of its content in the WAL, from committed frames
	table    uint32           // root page of the Packages table, once found
}

func openSQLite(f io.ReaderAt, size int64) (*sqliteDB, error) {
	var h [100]byte
	if err := readAt(f, h[:], 0); err != nil {
		return nil, fmt.Errorf("not an sqlite database: %d bytes", size)
	}
	if string(h[:16]) != sqliteMagic {
		return nil, errors.New("not an sqlite database (bad magic)")
	}
	ps := int(binary.BigEndian.Uint16(h[16:18]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps&(ps-1) != 0 {
		return nil, fmt.Errorf("sqlite page size %d invalid", ps)
	}
	usable := ps - int(h[20])
	if usable < 480 {
		return nil, fmt.Errorf("sqlite usable page size %d invalid", usable)
	}
	if enc := binary.BigEndian.Uint32(h[56:60]); enc > 1 {
		return nil, fmt.Errorf("sqlite text encoding %d: only UTF-8 is read", enc)
	}
	return &sqliteDB{f: f, size: size, pageSize: ps, usable: usable, npages: uint32(min(size/int64(ps), 1<<32-1))}, nil
}

// readWAL indexes the frames of every committed transaction of the log
// that belongs to the current database (matching salts, valid checksums):
// their pages are read from the log instead of the database file.
func (db *sqliteDB) readWAL(f io.ReaderAt, size int64) error {
	if size < 32 {
		return nil // empty log: everything is in the database file
	}
	var h [32]byte
	if err := readAt(f, h[:], 0); err != nil {
		return err
	}
	magic := binary.BigEndian.Uint32(h[0:4])
	if magic != 0x377f0682 && magic != 0x377f0683 {
		return nil // not a valid log: sqlite ignores it too
	}
	bigEndianSum := magic&1 == 1
	if int(binary.BigEndian.Uint32(h[8:12])) != db.pageSize {
		return nil
	}
	s0, s1 := walChecksum(bigEndianSum, h[:24], 0, 0)
	if s0 != binary.BigEndian.Uint32(h[24:28]) || s1 != binary.BigEndian.Uint32(h[28:32]) {
		return nil
	}
	salt := h[16:24]
	committed := map[uint32]int64{}
	pending := map[uint32]int64{}
	frame := make([]byte, 24+db.pageSize)
	var maxPage uint32
	for off := int64(32); off+int64(len(frame)) <= size; off += int64(len(frame)) {
		if err := readAt(f, frame, off); err != nil {
			return err
		}
		if !bytes.Equal(frame[8:16], salt) {
			break
		}
		s0, s1 = walChecksum(bigEndianSum, frame[:8], s0, s1)
		s0, s1 = walChecksum(bigEndianSum, frame[24:], s0, s1)
		if s0 != binary.BigEndian.Uint32(frame[16:20]) || s1 != binary.BigEndian.Uint32(frame[20:24]) {
			break
		}
		pg := binary.BigEndian.Uint32(frame[0:4])
		if pg == 0 {
			break
		}
		pending[pg] = off + 24
		if n := binary.BigEndian.Uint32(frame[4:8]); n != 0 { // commit frame
			maps.Copy(committed, pending)
			clear(pending)
			maxPage = n
		}
	}
	if len(committed) > 0 {
		db.wal, db.walPages = f, committed
		db.npages = maxPage
	}
	return nil
}

func walChecksum(bigEndian bool, b []byte, s0, s1 uint32) (uint32, uint32) {
	order := binary.ByteOrder(binary.LittleEndian)
	if bigEndian {
		order = binary.BigEndian
	}
	for i := 0; i+8 <= len(b); i += 8 {
		s0 += order.Uint32(b[i:]) + s1
		s1 += order.Uint32(b[i+4:]) + s0
	}
	return s0, s1
}

func (db *sqliteDB) page(n uint32) ([]byte, error) {
	if n == 0 || n > db.npages {
		return nil, fmt.Errorf("page %d out of range (1-%d)", n, db.npages)
	}
	p := make([]byte, db.pageSize)
	r, off := db.f, int64(n-1)*int64(db.pageSize)
	if woff, ok := db.walPages[n]; ok {
		r, off = db.wal, woff
	}
	if err := readAt(r, p, off); err != nil {
		return nil, fmt.Errorf("page %d: %w", n, err)
	}
	return p, nil
}

// btreePage reads the b-tree page pg: its content, its kind (0x05
// interior table page, 0x0d leaf), its cell offsets, and for an interior
// page its right-most child.
func (db *sqliteDB) btreePage(pg uint32) (p []byte, kind byte, cells []int, right uint32, err error) {
	if p, err = db.page(pg); err != nil {
		return nil, 0, nil, 0, err
	}
	hdr := 0
	if pg == 1 {
		hdr = 100
	}
	kind = p[hdr]
	ncells := int(binary.BigEndian.Uint16(p[hdr+3:]))
	ptrs := hdr + 8
	switch kind {
	case 0x05:
		ptrs = hdr + 12
		right = binary.BigEndian.Uint32(p[hdr+8:])
	case 0x0d:
	default:
		return nil, 0, nil, 0, fmt.Errorf("page %d: not a table b-tree page (type %#x)", pg, kind)
	}
	if ptrs+2*ncells > db.usable {
		return nil, 0, nil, 0, fmt.Errorf("page %d: %d cells do not fit", pg, ncells)
	}
	cells = make([]int, ncells)
	for i := range cells {
		cells[i] = int(binary.BigEndian.Uint16(p[ptrs+2*i:]))
		if kind == 0x05 && cells[i]+4 > db.usable {
			return nil, 0, nil, 0, fmt.Errorf("page %d: cell %d out of the page", pg, i)
		}
	}
	return p, kind, cells, right, nil
}

// maxDepth bounds a b-tree's depth: sqlite's own trees of billions of
// rows are under 10 levels.
const maxDepth = 40

// walk calls fn with the rowid and payload of every row of the table
// b-tree rooted at page root, in rowid order.
func (db *sqliteDB) walk(root uint32, fn func(rowid int64, payload []byte) error) error {
	seen := map[uint32]bool{}
	var visit func(pg uint32, depth int) error
	visit = func(pg uint32, depth int) error {
		if depth > maxDepth {
			return fmt.Errorf("b-tree deeper than %d levels at page %d", maxDepth, pg)
		}
		if seen[pg] {
			return fmt.Errorf("page %d reached twice", pg)
		}
		seen[pg] = true
		p, kind, cells, right, err := db.btreePage(pg)
		if err != nil {
			return err
		}
		if kind == 0x05 {
			for _, off := range cells {
				if err := visit(binary.BigEndian.Uint32(p[off:]), depth+1); err != nil {
					return err
				}
			}
			return visit(right, depth+1)
		}
		for i, off := range cells {
			rowid, payload, err := db.cell(p, off)
			if err != nil {
				return fmt.Errorf("page %d cell %d: %w", pg, i, err)
			}
			if err := fn(rowid, payload); err != nil {
				return err
			}
		}
		return nil
	}
	return visit(root, 0)
}

// lookup finds the payload of row rowid of the table b-tree rooted at
// page root: one page a level.
func (db *sqliteDB) lookup(root uint32, rowid int64) ([]byte, error) {
	pg := root
	for depth := 0; depth <= maxDepth; depth++ {
		p, kind, cells, right, err := db.btreePage(pg)
		if err != nil {
			return nil, err
		}
		if kind == 0x05 {
			// Cell i's key is the largest rowid of its left child.
			cur := pg
			pg = right
			for i, off := range cells {
				key, n := varint(p[off+4 : db.usable])
				if n == 0 {
					return nil, fmt.Errorf("page %d cell %d: bad key", cur, i)
				}
				if rowid <= int64(key) {
					pg = binary.BigEndian.Uint32(p[off:])
					break
				}
			}
			continue
		}
		for i, off := range cells {
			if off >= db.usable {
				return nil, fmt.Errorf("page %d cell %d: cell offset out of the page", pg, i)
			}
			b := p[off:db.usable]
			_, n := varint(b)
			rid, m := varint(b[n:])
			if n == 0 || m == 0 {
				return nil, fmt.Errorf("page %d cell %d: bad cell", pg, i)
			}
			if int64(rid) == rowid {
				_, payload, err := db.cell(p, off)
				if err != nil {
					return nil, fmt.Errorf("page %d cell %d: %w", pg, i, err)
				}
				return payload, nil
			}
		}
		return nil, fmt.Errorf("row %d not found", rowid)
	}
	return nil, fmt.Errorf("b-tree deeper than %d levels at page %d", maxDepth, pg)
}

// cell reads a leaf table cell: payload size, rowid, local payload, and
// the overflow chain for the rest.
func (db *sqliteDB) cell(p []byte, off int) (int64, []byte, error) {
	if off >= db.usable {
		return 0, nil, errors.New("cell offset out of the page")
	}
	b := p[off:db.usable]
	plen, n := varint(b)
	if n == 0 {
		return 0, nil, errors.New("bad payload size")
	}
	b = b[n:]
	rowid, n := varint(b)
	if n == 0 {
		return 0, nil, errors.New("bad rowid")
	}
	b = b[n:]
	if plen > uint64(db.npages)*uint64(db.pageSize) || plen > maxPayload {
		return 0, nil, fmt.Errorf("payload of %d bytes larger than the database or %d", plen, maxPayload)
	}
	u := uint64(db.usable)
	x := u - 35
	local := plen
	if plen > x {
		m := (u-12)*32/255 - 23
		k := m + (plen-m)%(u-4)
		local = m
		if k <= x {
			local = k
		}
	}
	if uint64(len(b)) < local {
		return 0, nil, errors.New("payload overruns the page")
	}
	payload := make([]byte, 0, plen)
	payload = append(payload, b[:local]...)
	if local == plen {
		return int64(rowid), payload, nil
	}
	if uint64(len(b)) < local+4 {
		return 0, nil, errors.New("overflow pointer overruns the page")
	}
	next := binary.BigEndian.Uint32(b[local:])
	seen := map[uint32]bool{}
	for uint64(len(payload)) < plen {
		if next == 0 || seen[next] {
			return 0, nil, fmt.Errorf("overflow chain broken after %d of %d bytes", len(payload), plen)
		}
		seen[next] = true
		op, err := db.page(next)
		if err != nil {
			return 0, nil, fmt.Errorf("overflow: %w", err)
		}
		chunk := op[4:db.usable]
		if rest := plen - uint64(len(payload)); uint64(len(chunk)) > rest {
			chunk = chunk[:rest]
		}
		payload = append(payload, chunk...)
		next = binary.BigEndian.Uint32(op[:4])
	}
	return int64(rowid), payload, nil
}

// varint reads sqlite's big-endian base-128 varint (at most 9 bytes);
// n is 0 when b is too short.
func varint(b []byte) (v uint64, n int) {
	for i := 0; i < 9; i++ {
		if i >= len(b) {
			return 0, 0
		}
		if i == 8 {
			return v<<8 | uint64(b[i]), 9
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return v, 9
}

// columns decodes a record into its values: nil for NULL, int64, float64
// bits as int64, []byte for blobs and text.
func columns(rec []byte) ([]any, error) {
	hlen, n := varint(rec)
	if n == 0 || hlen > uint64(len(rec)) || hlen < uint64(n) {
		return nil, errors.New("bad record header")
	}
	types := rec[n:hlen]
	body := rec[hlen:]
	var out []any
	for len(types) > 0 {
		t, n := varint(types)
		if n == 0 {
			return nil, errors.New("bad record header")
		}
		types = types[n:]
		var size uint64
		switch {
		case t == 0 || t == 8 || t == 9:
		case t <= 4:
			size = t
		case t == 5:
			size = 6
		case t == 6 || t == 7:
			size = 8
		case t >= 12:
			size = (t - 12) / 2
		default:
			return nil, fmt.Errorf("reserved serial type %d", t)
		}
		if size > uint64(len(body)) {
			return nil, errors.New("record body truncated")
		}
		v := body[:size]
		body = body[size:]
		switch {
		case t == 0:
			out = append(out, nil)
		case t == 8:
			out = append(out, int64(0))
		case t == 9:
			out = append(out, int64(1))
		case t >= 12:
			out = append(out, v)
		default:
			var x int64
			if len(v) > 0 && v[0]&0x80 != 0 {
				x = -1
			}
			for _, c := range v {
				x = x<<8 | int64(c)
			}
			out = append(out, x)
		}
	}
	return out, nil
}

// packagesTable finds the Packages table in sqlite_master, once.
func (db *sqliteDB) packagesTable() (uint32, error) {
	if db.table != 0 {
		return db.table, nil
	}
	var root int64
	err := db.walk(1, func(_ int64, payload []byte) error {
		cols, err := columns(payload)
		if err != nil {
			return fmt.Errorf("sqlite_master: %w", err)
		}
		if len(cols) < 4 {
			return nil
		}
		typ, _ := cols[0].([]byte)
		name, _ := cols[1].([]byte)
		if string(typ) == "table" && strings.EqualFold(string(name), "Packages") {
			root, _ = cols[3].(int64)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if root <= 0 || root > int64(^uint32(0)) {
		return 0, errors.New("no Packages table")
	}
	db.table = uint32(root)
	return db.table, nil
}

// blob is the header column of a row of the Packages table.
func blob(rowid int64, payload []byte) ([]byte, error) {
	cols, err := columns(payload)
	if err != nil {
		return nil, fmt.Errorf("hnum %d: %w", rowid, err)
	}
	if len(cols) < 2 {
		return nil, fmt.Errorf("hnum %d: %d columns", rowid, len(cols))
	}
	b, ok := cols[1].([]byte)
	if !ok {
		return nil, fmt.Errorf("hnum %d: blob column is not a blob", rowid)
	}
	return b, nil
}

// scan: the location of an sqlite blob is its row's hnum (a).
func (db *sqliteDB) scan(fn func(location, []byte) error) error {
	root, err := db.packagesTable()
	if err != nil {
		return err
	}
	return db.walk(root, func(rowid int64, payload []byte) error {
		b, err := blob(rowid, payload)
		if err != nil {
			return err
		}
		return fn(location{key: fmt.Sprintf("hnum %d", rowid), a: rowid}, b)
	})
}

func (db *sqliteDB) read(loc location) ([]byte, error) {
	root, err := db.packagesTable()
	if err != nil {
		return nil, err
	}
	payload, err := db.lookup(root, loc.a)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc.key, err)
	}
	return blob(loc.a, payload)
}
