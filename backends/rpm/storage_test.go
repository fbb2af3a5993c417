package rpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/internal/hostile"
)

// makeNDB writes an ndb Packages.db holding blobs (package indexes 1..n).
func makeNDB(blobs [][]byte) []byte {
	le := binary.LittleEndian
	data := make([]byte, ndbPageSize) // one slot page
	le.PutUint32(data[0:], ndbMagic)
	le.PutUint32(data[12:], 1)
	le.PutUint32(data[16:], uint32(len(blobs)+1))
	for i := 2; i < ndbPageSize/ndbSlotSize; i++ {
		le.PutUint32(data[i*ndbSlotSize:], ndbSlotMagic)
	}
	for i, b := range blobs {
		n := (ndbHeadSize + len(b) + ndbTailSize + ndbBlockSize - 1) / ndbBlockSize * ndbBlockSize
		off := len(data)
		blk := make([]byte, n)
		le.PutUint32(blk[0:], ndbHeadMagic)
		le.PutUint32(blk[4:], uint32(i+1))
		le.PutUint32(blk[12:], uint32(len(b)))
		copy(blk[ndbHeadSize:], b)
		le.PutUint32(blk[n-8:], uint32(len(b)))
		le.PutUint32(blk[n-4:], ndbTailMagic)
		data = append(data, blk...)
		s := data[(i+3)*ndbSlotSize:] // leave slot 2 free
		le.PutUint32(s[4:], uint32(i+1))
		le.PutUint32(s[8:], uint32(off/ndbBlockSize))
		le.PutUint32(s[12:], uint32(n/ndbBlockSize))
	}
	return data
}

// makeBDB writes a Berkeley DB hash file: meta page, one hash page with
// the record-0 entry and one entry per blob, blobs on overflow pages.
func makeBDB(order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}, blobs [][]byte) []byte {
	const ps = 512
	page := func(typ byte, n int) []byte {
		p := make([]byte, ps)
		order.PutUint32(p[8:], uint32(n))
		p[25] = typ
		return p
	}
	meta := page(bdbPageHashMeta, 0)
	order.PutUint32(meta[12:], bdbHashMagic)
	order.PutUint32(meta[20:], ps)
	hash := page(bdbPageHash, 1)
	pages := [][]byte{meta, hash}
	type item []byte
	var items []item
	key := func(n uint32) item { return append(item{bdbItemKeyData}, order.AppendUint32(nil, n)...) }
	items = append(items, key(0), append(item{bdbItemKeyData}, order.AppendUint32(nil, uint32(len(blobs)+1))...))
	for i, b := range blobs {
		first := len(pages)
		for off := 0; off < len(b) || off == 0; off += ps - bdbPageHeader {
			op := page(bdbPageOverflow, len(pages))
			chunk := b[off:min(len(b), off+ps-bdbPageHeader)]
			order.PutUint16(op[22:], uint16(len(chunk)))
			copy(op[bdbPageHeader:], chunk)
			if off+ps-bdbPageHeader < len(b) {
				order.PutUint32(op[16:], uint32(len(pages)+1))
			}
			pages = append(pages, op)
		}
		ref := make(item, 12)
		ref[0] = bdbItemOffPage
		order.PutUint32(ref[4:], uint32(first))
		order.PutUint32(ref[8:], uint32(len(b)))
		items = append(items, key(uint32(i+1)), ref)
	}
	end := ps
	order.PutUint16(hash[20:], uint16(len(items)))
	for i, it := range items {
		end -= len(it)
		copy(hash[end:], it)
		order.PutUint16(hash[bdbPageHeader+2*i:], uint16(end))
	}
	order.PutUint32(meta[32:], uint32(len(pages)-1))
	return bytes.Join(pages, nil)
}

func sampleBlobs() [][]byte {
	var out [][]byte
	for _, n := range []string{"a", "b", "c"} {
		out = append(out, buildHeader(tagValue{TagName, n}, tagValue{TagVersion, "1"}, tagValue{TagRelease, strings.Repeat("1", 700)}))
	}
	return out
}

// record is one blob a storage found, and where.
type record struct {
	loc  location
	blob []byte
}

// scanAll reads every record of a storage, and each again from its
// location: the same blob must come back.
func scanAll(st storage, err error) ([]record, error) {
	if err != nil {
		return nil, err
	}
	var out []record
	err = st.scan(func(loc location, blob []byte) error {
		again, err := st.read(loc)
		if err != nil {
			return fmt.Errorf("%s read again: %w", loc.key, err)
		}
		if !bytes.Equal(again, blob) {
			return fmt.Errorf("%s read again: another blob", loc.key)
		}
		out = append(out, record{loc, append([]byte(nil), blob...)})
		return nil
	})
	return out, err
}

func parseNDB(data []byte) ([]record, error) {
	return scanAll(openNDB(bytes.NewReader(data), int64(len(data))))
}

func parseBDB(data []byte) ([]record, error) {
	return scanAll(openBDB(bytes.NewReader(data), int64(len(data))))
}

// readSQLite reads the database file and its log as Open does.
func readSQLite(file string) ([]record, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	db, err := openSQLite(f, fi.Size())
	if err != nil {
		return nil, err
	}
	if w, err := os.Open(file + "-wal"); err == nil {
		defer w.Close()
		wi, err := w.Stat()
		if err != nil {
			return nil, err
		}
		if err := db.readWAL(w, wi.Size()); err != nil {
			return nil, err
		}
	}
	return scanAll(db, nil)
}

func checkRecords(t *testing.T, what string, recs []record, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var names []string
	for _, r := range recs {
		h, err := ParseHeader(r.blob)
		if err != nil {
			t.Fatalf("%s %s: %v", what, r.loc.key, err)
		}
		n, _ := h.String(TagName)
		names = append(names, n)
	}
	if strings.Join(names, " ") != "a b c" {
		t.Errorf("%s: read %v", what, names)
	}
}

func TestNDB(t *testing.T) {
	data := makeNDB(sampleBlobs())
	recs, err := parseNDB(data)
	checkRecords(t, "ndb", recs, err)
	for n := 0; n < len(data); n += 7 {
		if _, err := parseNDB(data[:n]); err == nil && n < len(data)-ndbBlockSize*50 {
			t.Fatalf("ndb truncated to %d bytes: no error", n)
		}
	}
	bad := append([]byte(nil), data...)
	binary.LittleEndian.PutUint32(bad[len(bad)-4:], 0)
	if _, err := parseNDB(bad); err == nil || !strings.Contains(err.Error(), "package index 3") {
		t.Errorf("bad tail: %v", err)
	}
}

func TestBDB(t *testing.T) {
	for _, order := range []interface {
		binary.ByteOrder
		binary.AppendByteOrder
	}{binary.LittleEndian, binary.BigEndian} {
		data := makeBDB(order, sampleBlobs())
		recs, err := parseBDB(data)
		checkRecords(t, "bdb "+order.String(), recs, err)
		for n := 0; n < len(data); n += 13 {
			parseBDB(data[:n]) // no panic
		}
	}
	data := makeBDB(binary.LittleEndian, sampleBlobs())
	binary.LittleEndian.PutUint32(data[512*2+16:], 0) // break the first blob's chain
	if _, err := parseBDB(data); err == nil || !strings.Contains(err.Error(), "header 1: overflow chain broken") {
		t.Errorf("broken chain: %v", err)
	}
}

// A tree with a BerkeleyDB or ndb database opens like a sqlite one.
func TestOpenFormats(t *testing.T) {
	for _, c := range []struct{ path, driver string }{
		{"var/lib/rpm/Packages", "bdb"},
		{"usr/lib/sysimage/rpm/Packages.db", "ndb"},
	} {
		root := t.TempDir()
		f := filepath.Join(root, c.path)
		os.MkdirAll(filepath.Dir(f), 0o755)
		data := makeBDB(binary.LittleEndian, sampleBlobs())
		if c.driver == "ndb" {
			data = makeNDB(sampleBlobs())
		}
		os.WriteFile(f, data, 0o644)
		if !Detect(hostile.Tree(t, root)) {
			t.Fatalf("%s not detected", c.path)
		}
		db, err := Open(hostile.Tree(t, root))
		if err != nil {
			t.Fatal(err)
		}
		if len(db.Packages()) != 3 || db.Packages()[0].ID != "a-1-"+strings.Repeat("1", 700) {
			t.Errorf("%s: packages %v", c.path, db.Packages())
		}
		if got := db.DBFiles(); len(got) != 1 || got[0] != filepath.FromSlash(c.path) {
			t.Errorf("DBFiles %v", got)
		}
		db.Close()
		os.WriteFile(f, data[:len(data)-100], 0o644)
		_, err = Open(hostile.Tree(t, root))
		var ce *backends.CorruptError
		if !errors.As(err, &ce) {
			t.Errorf("%s truncated: %v", c.driver, err)
		}
	}
	if Detect(hostile.Tree(t, t.TempDir())) {
		t.Error("empty root detected")
	}
}

// sqliteTree installs two fixture packages with the real rpm, which
// writes an sqlite database.
func sqliteTree(t *testing.T) string {
	for _, tool := range []string{"rpm", "rpmbuild"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed: CI must install it", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	top, root := t.TempDir(), t.TempDir()
	var rpms []string
	for _, spec := range []string{"gs-sh", "gs-tools", "gs-plugin"} {
		out, err := exec.Command("rpmbuild", "--define", "_topdir "+top, "--nodeps", "--quiet", "-bb", "../../fixtures/rpm/"+spec+".spec").CombinedOutput()
		if err != nil {
			t.Fatalf("rpmbuild: %v\n%s", err, out)
		}
		m, _ := filepath.Glob(filepath.Join(top, "RPMS/noarch", spec+"-*.rpm"))
		rpms = append(rpms, m...)
	}
	out, err := exec.Command("rpm", append([]string{"--root", root, "--dbpath", "/usr/lib/sysimage/rpm", "-i", "--nodeps", "--noscripts"}, rpms...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -i: %v\n%s", err, out)
	}
	return root
}

func TestSQLiteWAL(t *testing.T) {
	root := sqliteTree(t)
	file := filepath.Join(root, "usr/lib/sysimage/rpm/rpmdb.sqlite")
	want, err := readSQLite(file)
	if err != nil || len(want) != 3 {
		t.Fatalf("read %d records: %v", len(want), err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(binary.BigEndian.Uint16(data[16:]))
	// Move every page into one committed WAL transaction, leave page 1
	// (the file header) and zero the rest of the database file.
	be := binary.BigEndian
	wal := make([]byte, 32)
	be.PutUint32(wal[0:], 0x377f0682)
	be.PutUint32(wal[4:], 3007000)
	be.PutUint32(wal[8:], uint32(ps))
	copy(wal[16:24], "saltsalt")
	s0, s1 := walChecksum(false, wal[:24], 0, 0)
	be.PutUint32(wal[24:], s0)
	be.PutUint32(wal[28:], s1)
	npages := len(data) / ps
	frame := func(pg, commit uint32, content []byte, salt string) {
		h := make([]byte, 24)
		be.PutUint32(h[0:], pg)
		be.PutUint32(h[4:], commit)
		copy(h[8:16], salt)
		s0, s1 = walChecksum(false, h[:8], s0, s1)
		s0, s1 = walChecksum(false, content, s0, s1)
		be.PutUint32(h[16:], s0)
		be.PutUint32(h[20:], s1)
		wal = append(append(wal, h...), content...)
	}
	for pg := 1; pg <= npages; pg++ {
		commit := uint32(0)
		if pg == npages {
			commit = uint32(npages)
		}
		frame(uint32(pg), commit, data[(pg-1)*ps:pg*ps], "saltsalt")
	}
	frame(2, 0, make([]byte, ps), "saltsalt") // not committed: ignored
	frame(2, 3, make([]byte, ps), "oldsalt!") // an older log's frame: ignored
	zeroed := append([]byte(nil), data[:ps]...)
	zeroed = append(zeroed, make([]byte, len(data)-ps)...)
	os.WriteFile(file, zeroed, 0o644)
	os.WriteFile(file+"-wal", wal, 0o644)
	got, err := readSQLite(file)
	if err != nil || len(got) != len(want) {
		t.Fatalf("with the WAL: %d records, %v", len(got), err)
	}
	for i := range got {
		if !bytes.Equal(got[i].blob, want[i].blob) || got[i].loc != want[i].loc {
			t.Errorf("record %d differs through the WAL", i)
		}
	}
	// A damaged checksum drops the transaction: the zeroed file remains.
	wal[32+24+100] ^= 1
	os.WriteFile(file+"-wal", wal, 0o644)
	if _, err := readSQLite(file); err == nil {
		t.Error("a WAL with a bad checksum was used")
	}
	// Truncations of the database file are errors, not panics.
	os.Remove(file + "-wal")
	for n := 0; n < len(data); n += ps / 2 {
		os.WriteFile(file, data[:n], 0o644)
		if _, err := readSQLite(file); err == nil {
			t.Errorf("database truncated to %d of %d bytes read without error", n, len(data))
		}
	}
}

func FuzzStorage(f *testing.F) {
	f.Add(byte(0), makeNDB(sampleBlobs()[:1]))
	f.Add(byte(1), makeBDB(binary.LittleEndian, sampleBlobs()[:1]))
	f.Add(byte(2), []byte(sqliteMagic+"\x02\x00\x01\x01\x00\x40\x20\x20"+strings.Repeat("\x00", 600)))
	f.Add(byte(2), makeSQLite(sampleBlobs(), 2))
	// Every blob a scan finds reads the same again from its location.
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		r, size := bytes.NewReader(data), int64(len(data))
		var err error
		switch kind % 3 {
		case 0:
			_, err = scanAll(openNDB(r, size))
		case 1:
			_, err = scanAll(openBDB(r, size))
		case 2:
			_, err = scanAll(openSQLiteStorage(r, size))
		}
		if err != nil && strings.Contains(err.Error(), "read again") {
			t.Fatal(err)
		}
	})
}

func sqliteVarint(v uint64) []byte {
	b := []byte{byte(v & 0x7f)}
	for v >>= 7; v > 0; v >>= 7 {
		b = append([]byte{byte(v&0x7f) | 0x80}, b...)
	}
	return b
}

// sqliteRecord encodes columns: nil, int64 (as 4 bytes), string, []byte.
func sqliteRecord(cols ...any) []byte {
	var types, body []byte
	for _, c := range cols {
		switch v := c.(type) {
		case nil:
			types = append(types, 0)
		case int64:
			types = append(types, 4)
			body = binary.BigEndian.AppendUint32(body, uint32(v))
		case string:
			types = append(types, sqliteVarint(uint64(13+2*len(v)))...)
			body = append(body, v...)
		case []byte:
			types = append(types, sqliteVarint(uint64(12+2*len(v)))...)
			body = append(body, v...)
		}
	}
	return append(append(sqliteVarint(uint64(len(types)+1)), types...), body...)
}

// makeSQLite writes an sqlite database like rpm's: a Packages table of
// (hnum, blob) with hnum 1..len(blobs), on 512-byte pages, at most
// perLeaf rows a leaf under one interior root page, large payloads on
// overflow pages.
func makeSQLite(blobs [][]byte, perLeaf int) []byte {
	const ps = 512
	be := binary.BigEndian
	pages := [][]byte{make([]byte, ps)}
	newPage := func() (uint32, []byte) {
		pages = append(pages, make([]byte, ps))
		return uint32(len(pages)), pages[len(pages)-1]
	}
	cell := func(rowid int, payload []byte) []byte {
		const u, x = ps, ps - 35
		local := len(payload)
		if local > x {
			m := (u-12)*32/255 - 23
			if local = m + (len(payload)-m)%(u-4); local > x {
				local = m
			}
		}
		c := append(append(sqliteVarint(uint64(len(payload))), sqliteVarint(uint64(rowid))...), payload[:local]...)
		if local == len(payload) {
			return c
		}
		first, _ := newPage()
		c = be.AppendUint32(c, first)
		for rest, pg := payload[local:], first; len(rest) > 0; {
			n := min(len(rest), u-4)
			p := pages[pg-1]
			copy(p[4:], rest[:n])
			if rest = rest[n:]; len(rest) > 0 {
				pg, _ = newPage()
				be.PutUint32(p, pg)
			}
		}
		return c
	}
	// fill lays out a b-tree page: kind, cells from the end, right child.
	fill := func(p []byte, hdr int, kind byte, cells [][]byte, right uint32) {
		p[hdr] = kind
		ptrs := hdr + 8
		if kind == 0x05 {
			ptrs = hdr + 12
			be.PutUint32(p[hdr+8:], right)
		}
		be.PutUint16(p[hdr+3:], uint16(len(cells)))
		end := ps
		for i, c := range cells {
			end -= len(c)
			copy(p[end:], c)
			be.PutUint16(p[ptrs+2*i:], uint16(end))
		}
		be.PutUint16(p[hdr+5:], uint16(end))
	}
	rootPg, root := newPage()
	var inner, cells [][]byte
	used := 8
	flush := func(lastRow int) {
		pg, leaf := newPage()
		fill(leaf, 0, 0x0d, cells, 0)
		inner = append(inner, append(be.AppendUint32(nil, pg), sqliteVarint(uint64(lastRow))...))
		cells, used = nil, 8
	}
	for i, b := range blobs {
		c := cell(i+1, sqliteRecord(nil, b))
		if len(cells) == perLeaf || used+len(c)+2 > ps {
			flush(i)
		}
		cells, used = append(cells, c), used+len(c)+2
	}
	flush(len(blobs))
	last := inner[len(inner)-1]
	fill(root, 0, 0x05, inner[:len(inner)-1], be.Uint32(last))
	fill(pages[0], 100, 0x0d, [][]byte{cell(1, sqliteRecord("table", "Packages", "Packages", int64(rootPg),
		"CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"))}, 0)
	h := pages[0]
	copy(h, sqliteMagic)
	be.PutUint16(h[16:], ps)
	h[18], h[19], h[21], h[22], h[23] = 1, 1, 64, 32, 32
	be.PutUint32(h[28:], uint32(len(pages)))
	be.PutUint32(h[44:], 4)
	be.PutUint32(h[56:], 1)
	return bytes.Join(pages, nil)
}

// Rows are found again by hnum through interior pages, their blobs
// through overflow chains.
func TestSQLiteBtree(t *testing.T) {
	var blobs [][]byte
	for i := range 9 {
		blobs = append(blobs, buildHeader(tagValue{TagName, fmt.Sprintf("p%d", i)}, tagValue{TagVersion, "1"}, tagValue{TagRelease, strings.Repeat("1", 100*i)}))
	}
	data := makeSQLite(blobs, 2)
	recs, err := scanAll(openSQLiteStorage(bytes.NewReader(data), int64(len(data))))
	if err != nil || len(recs) != len(blobs) {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	for i, r := range recs {
		if !bytes.Equal(r.blob, blobs[i]) || r.loc.key != fmt.Sprintf("hnum %d", i+1) {
			t.Errorf("record %d: %s, %d bytes", i, r.loc.key, len(r.blob))
		}
	}
	st, _ := openSQLiteStorage(bytes.NewReader(data), int64(len(data)))
	if _, err := st.read(location{key: "hnum 42", a: 42}); err == nil || !strings.Contains(err.Error(), "row 42 not found") {
		t.Errorf("a missing row: %v", err)
	}
	for n := 0; n < len(data); n += 97 {
		if _, err := scanAll(openSQLiteStorage(bytes.NewReader(data[:n]), int64(n))); err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(data))
		}
	}
}

// readSizes records the largest single read of a database file.
type readSizes struct {
	r   io.ReaderAt
	max int
}

func (c *readSizes) ReadAt(b []byte, off int64) (int, error) {
	c.max = max(c.max, len(b))
	return c.r.ReadAt(b, off)
}

// The readers read a page or a record at a time, never the whole file:
// Fedora's rpmdb.sqlite is 50-150 MB.
func TestReadOnDemand(t *testing.T) {
	var blobs [][]byte
	for i := range 12 { // as many as one hash page of makeBDB holds
		blobs = append(blobs, buildHeader(tagValue{TagName, fmt.Sprintf("p%d", i)}, tagValue{TagVersion, "1"}, tagValue{TagRelease, strings.Repeat("1", 2000)}))
	}
	largest := len(blobs[0])
	for _, c := range []struct {
		name string
		data []byte
		open func(io.ReaderAt, int64) (storage, error)
		max  int
	}{
		{"sqlite", makeSQLite(blobs, 3), openSQLiteStorage, 512},
		{"bdb", makeBDB(binary.LittleEndian, blobs), openBDB, 512},
		{"ndb", makeNDB(blobs), openNDB, max(ndbPageSize, largest)},
	} {
		r := &readSizes{r: bytes.NewReader(c.data)}
		recs, err := scanAll(c.open(r, int64(len(c.data))))
		if err != nil || len(recs) != len(blobs) {
			t.Fatalf("%s: %d records, %v", c.name, len(recs), err)
		}
		if r.max > c.max {
			t.Errorf("%s: a read of %d bytes in a file of %d; want at most %d", c.name, r.max, len(c.data), c.max)
		}
	}
}
