package rpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/backends"
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

func checkRecords(t *testing.T, what string, recs []record, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var names []string
	for _, r := range recs {
		h, err := ParseHeader(r.blob)
		if err != nil {
			t.Fatalf("%s %s: %v", what, r.key, err)
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
		if !Detect(root) {
			t.Fatalf("%s not detected", c.path)
		}
		db, err := Open(root)
		if err != nil {
			t.Fatal(err)
		}
		if len(db.Packages()) != 3 || db.Packages()[0].ID != "a-1-"+strings.Repeat("1", 700) {
			t.Errorf("%s: packages %v", c.path, db.Packages())
		}
		if got := db.DBFiles(); len(got) != 1 || got[0] != filepath.FromSlash(c.path) {
			t.Errorf("DBFiles %v", got)
		}
		os.WriteFile(f, data[:len(data)-100], 0o644)
		_, err = Open(root)
		var ce *backends.CorruptError
		if !errors.As(err, &ce) {
			t.Errorf("%s truncated: %v", c.driver, err)
		}
	}
	if Detect(t.TempDir()) {
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
		if !bytes.Equal(got[i].blob, want[i].blob) || got[i].key != want[i].key {
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
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		switch kind % 3 {
		case 0:
			parseNDB(data)
		case 1:
			parseBDB(data)
		case 2:
			if db, err := openSQLite(bytes.NewReader(data), int64(len(data))); err == nil {
				db.packages()
			}
		}
	})
}
