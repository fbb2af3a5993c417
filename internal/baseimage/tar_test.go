package baseimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// entry is a member to write with archive/tar.
type entry struct {
	hdr  tar.Header
	data string
}

func tarWith(t testing.TB, format tar.Format, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.Format = format
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var epoch = time.Unix(1700000000, 0)

func TestReaderMatchesArchiveTar(t *testing.T) {
	long := strings.Repeat("d/", 80) + "file"
	common := []entry{
		{tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}, ""},
		{tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Uname: "root", Gname: "root"}, ""},
		{tar.Header{Name: "./etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 0, Gid: 0, ModTime: epoch}, "root:x:0:0::/root:/bin/sh\n"},
		{tar.Header{Name: "./etc/shadow", Typeflag: tar.TypeReg, Mode: 0o4640, Uid: 1000, Gid: 42, ModTime: epoch.Add(-1e6 * time.Second)}, ""},
		{tar.Header{Name: "./etc/link", Typeflag: tar.TypeSymlink, Linkname: "passwd", Mode: 0o777, ModTime: epoch}, ""},
		{tar.Header{Name: "./etc/hard", Typeflag: tar.TypeLink, Linkname: "./etc/passwd", ModTime: epoch}, ""},
		{tar.Header{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: epoch}, ""},
		{tar.Header{Name: "./dev/sda", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 8, Devminor: 0, ModTime: epoch}, ""},
		{tar.Header{Name: "./run/fifo", Typeflag: tar.TypeFifo, Mode: 0o600, ModTime: epoch}, ""},
		{tar.Header{Name: "./blocks", Typeflag: tar.TypeReg, Mode: 0o600, ModTime: epoch}, strings.Repeat("x", 3*blockSize+7)},
	}
	for _, tc := range []struct {
		name    string
		format  tar.Format
		entries []entry
	}{
		{"ustar", tar.FormatUSTAR, append(common,
			entry{tar.Header{Name: strings.Repeat("p/", 70) + "name", Typeflag: tar.TypeReg, ModTime: epoch}, "prefix split"})},
		{"pax", tar.FormatPAX, append(common,
			entry{tar.Header{Name: "./" + long, Typeflag: tar.TypeReg, ModTime: epoch.Add(123456789), Uid: 1 << 30, Uname: strings.Repeat("u", 40)}, "long"},
			entry{tar.Header{Name: "./ünïcode", Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("t", 200), ModTime: epoch}, ""},
			entry{tar.Header{Name: "./big-ids", Typeflag: tar.TypeReg, Uid: 1<<32 - 2, Gid: 1<<32 - 2, ModTime: time.Unix(-5, -5e8)}, "ids"},
			entry{tar.Header{Name: "./frac", Typeflag: tar.TypeReg, ModTime: time.Unix(1, 5)}, ""})},
		{"gnu", tar.FormatGNU, append(common,
			entry{tar.Header{Name: "./" + long, Typeflag: tar.TypeReg, ModTime: epoch}, "long"},
			entry{tar.Header{Name: "./longlink", Typeflag: tar.TypeSymlink, Linkname: long, ModTime: epoch}, ""},
			entry{tar.Header{Name: "./base256", Typeflag: tar.TypeReg, Uid: 1<<32 - 2, Gid: 1 << 40, ModTime: time.Unix(1<<40, 0)}, "b"},
			entry{tar.Header{Name: "./negative", Typeflag: tar.TypeReg, ModTime: time.Unix(-1<<40, 0)}, ""},
			entry{tar.Header{Name: "./dev/huge", Typeflag: tar.TypeChar, Devmajor: 1 << 33, Devminor: 1 << 21, ModTime: epoch}, ""})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tarWith(t, tc.format, tc.entries...)
			want, err := readGo(data)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readOurs(data)
			if err != nil {
				t.Fatal(err)
			}
			sameMembers(t, got, want)
		})
	}
}

// expandSparse is the content of testdata/sparse-*: 64 KiB, 4 KiB of 'A'
// at 0, of 'B' at 8 KiB... of 'F' at 40 KiB, zeros elsewhere.
func expandSparse() []byte {
	b := make([]byte, 64<<10)
	for i := 0; i < 6; i++ {
		copy(b[i*8192:], bytes.Repeat([]byte{byte('A' + i)}, 4096))
	}
	return b
}

func gunzipFile(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestReaderSparseFormats(t *testing.T) {
	want := expandSparse()
	var wantMap []extent
	for i := 0; i < 6; i++ {
		wantMap = append(wantMap, extent{int64(i) * 8192, 4096})
	}
	for _, name := range []string{"sparse-gnu", "sparse-pax0.0", "sparse-pax0.1", "sparse-pax1.0"} {
		t.Run(name, func(t *testing.T) {
			data := gunzipFile(t, filepath.Join("testdata", name+".tar.gz"))
			tr := newTarReader(bytes.NewReader(data))
			h, err := tr.next()
			if err != nil {
				t.Fatal(err)
			}
			if h.name != "sparse" || h.size != 64<<10 || h.typ != '0' || !h.mtime.Equal(epoch) {
				t.Errorf("header %+v", h)
			}
			if fmt.Sprint(h.sparse) != fmt.Sprint(wantMap) {
				t.Errorf("map %v, want %v", h.sparse, wantMap)
			}
			got, err := readOurs(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !bytes.Equal(got[0].data, want) {
				t.Errorf("data differs")
			}
			if h, err := tr.next(); err != io.EOF {
				t.Errorf("after the file: %v %v", h, err)
			}
		})
	}
}

func TestParseNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"0000644\x00", 0o644, false},
		{" 644 \x00", 0o644, false},
		{"\x00\x00\x00\x00\x00\x00\x00\x00", 0, false},
		{"        ", 0, false},
		{"0000779\x00", 0, true},
		{"12 34\x00\x00\x00", 0, true},
		{"\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00", 256, false},
		{"\x80\x00\x00\x00\x00\x00\x01\x00", 256, false},
		{"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", -1, false},
		{"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00", -256, false},
		{"\x80\x00\x00\x00\x7f\xff\xff\xff\xff\xff\xff\xff", 1<<63 - 1, false},
		{"\x80\x00\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00", 0, true},
		{"\x80\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", 0, true},
		{"\xff\xff\xff\xff\x80\x00\x00\x00\x00\x00\x00\x00", -1 << 63, false},
		{"\xff\xff\xfe\x80\x00\x00\x00\x00\x00\x00\x00\x00", 0, true},
		{"\xc0\x00\x00\x00\x00\x00\x00\x00", -1 << 62, false},
	} {
		got, err := parseNumber([]byte(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseNumber(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParsePAX(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"11 path=ab\n", "map[path:ab] []", ""},
		{"12 path=a=b\n17 comment=hello\n", "map[path:a=b] []", ""},
		{"9 uid=10\n\x00\x00\x00", "map[uid:10] []", ""},
		{"25 GNU.sparse.offset=100\n26 GNU.sparse.numbytes=10\n", "map[] [100 10]", ""},
		{"26 GNU.sparse.numbytes=10\n", "", "do not alternate"},
		{"11 path=ab", "", "out of range"},
		{"11 path=abc", "", "newline"},
		{"5 x=\n", "map[] []", ""},
		{"7 =abc\n", "", "no key"},
		{"path=ab\n", "", "without a length"},
		{"-1 path=ab\n", "", "bad number"},
		{"99999999999999999999 a=b\n", "", "bad number"},
	} {
		p, err := parsePAX([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parsePAX(%q): error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if got := fmt.Sprint(p.m, p.sparse00); err != nil || got != tc.want {
			t.Errorf("parsePAX(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestParsePAXTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"1700000000", time.Unix(1700000000, 0), false},
		{"1700000000.5", time.Unix(1700000000, 5e8), false},
		{"1.0000000019", time.Unix(1, 1), false},
		{"-1.5", time.Unix(-1, -5e8), false},
		{"1.", time.Unix(1, 0), false},
		{"1.x", time.Time{}, true},
		{"", time.Time{}, true},
		{"+1", time.Time{}, true},
		{"1e9", time.Time{}, true},
	} {
		got, err := parsePAXTime(tc.in)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("parsePAXTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// rawHeader builds a header block by hand, for what archive/tar will not
// write; fields are set by offset, the checksum computed last.
func rawHeader(name string, typ byte, size int64, fields map[int]string) []byte {
	b := make([]byte, blockSize)
	copy(b, name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "14500000000\x00")
	b[156] = typ
	copy(b[257:], "ustar\x0000")
	for off, v := range fields {
		copy(b[off:], v)
	}
	setChecksum(b)
	return b
}

func setChecksum(b []byte) {
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b[:blockSize] {
		sum += int64(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
}

func padded(s string) []byte {
	b := []byte(s)
	return append(b, make([]byte, -len(b)&(blockSize-1))...)
}

func paxRecord(r string) string {
	n := len(r) + 2
	l := n + len(strconv.Itoa(n))
	if len(strconv.Itoa(l)) > len(strconv.Itoa(n)) {
		l++
	}
	return fmt.Sprintf("%d %s\n", l, r)
}

func paxHeader(typ byte, records ...string) []byte {
	var rec string
	for _, r := range records {
		rec += paxRecord(r)
	}
	return append(rawHeader("PaxHeaders/x", typ, int64(len(rec)), nil), padded(rec)...)
}

func concat(parts ...[]byte) []byte {
	return bytes.Join(append(parts, make([]byte, 2*blockSize)), nil)
}

func TestReaderRules(t *testing.T) {
	signed := rawHeader("signed\xff", '0', 0, nil)
	copy(signed[148:156], "        ")
	var sum int64
	for _, c := range signed {
		sum += int64(int8(c))
	}
	copy(signed[148:], fmt.Sprintf("%06o\x00 ", sum))
	badSum := rawHeader("x", '0', 0, nil)
	badSum[0] = 'y'
	for _, tc := range []struct {
		name string
		data []byte
		want string // the first member's name, or the error
		err  bool
	}{
		{"signed checksum", concat(signed), "signed\xff", false},
		{"bad checksum", concat(badSum), "checksum mismatch", true},
		{"v7 directory", concat(rawHeader("olddir/", 0, 0, map[int]string{257: "\x00\x00\x00\x00\x00\x00"})), "olddir/", false},
		{"contiguous", concat(rawHeader("c", '7', 5, nil), padded("hello")), "c", false},
		{"global header", concat(paxHeader('g', "uid=77", "path=ignored"), rawHeader("g", '0', 0, nil)), "g", false},
		{"pax empty value keeps the field", concat(paxHeader('x', "path="), rawHeader("keep", '0', 0, nil)), "keep", false},
		{"no end blocks", rawHeader("eof", '5', 0, nil), "eof", false},
		{"truncated header", rawHeader("x", '0', 0, nil)[:300], "truncated in a header", true},
		{"truncated data", append(rawHeader("x", '0', 1000, nil), padded("abc")...), "unexpected EOF", true},
		{"pax then end", concat(paxHeader('x', "path=a")), "ends after an extended header", true},
		{"long name then end", concat(rawHeader("././@LongLink", 'L', 2, nil), padded("a\x00")), "ends after an extended header", true},
		{"global header then end", concat(paxHeader('g', "uid=1")), "", false},
		{"pax too big", concat(rawHeader("x", 'x', maxSpecial+1, nil)), "more than", true},
		{"long name too big", concat(rawHeader("././@LongLink", 'L', 1<<40, nil)), "more than", true},
		{"negative size", concat(rawHeader("x", '0', 0, map[int]string{124: "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"})), "negative size", true},
		{"bad octal", concat(rawHeader("x", '0', 0, map[int]string{100: "09"})), "mode field", true},
		{"bad pax number", concat(paxHeader('x', "uid=1x"), rawHeader("x", '0', 0, nil)), "uid: bad number", true},
		{"negative pax size", concat(paxHeader('x', "size=-1"), rawHeader("x", '0', 0, nil)), "size: bad number", true},
		{"sparse on a symlink", concat(paxHeader('x', "GNU.sparse.map=0,1"), rawHeader("x", '2', 0, nil)), "sparse records on an entry of type '2'", true},
		{"sparse version 2", concat(paxHeader('x', "GNU.sparse.major=2", "GNU.sparse.minor=0", "GNU.sparse.realsize=1"), rawHeader("x", '0', 0, nil)), "unsupported GNU sparse format 2.0", true},
		{"sparse beyond the file", concat(paxHeader('x', "GNU.sparse.size=10", "GNU.sparse.map=8,4"), rawHeader("x", '0', 4, nil), padded("abcd")), "outside the file", true},
		{"sparse overlapping", concat(paxHeader('x', "GNU.sparse.size=10", "GNU.sparse.map=0,4,2,1"), rawHeader("x", '0', 5, nil), padded("abcde")), "overlapping", true},
		{"sparse map odd", concat(paxHeader('x', "GNU.sparse.size=10", "GNU.sparse.map=0,4,2"), rawHeader("x", '0', 4, nil)), "offset without a length", true},
		{"sparse numblocks", concat(paxHeader('x', "GNU.sparse.size=10", "GNU.sparse.numblocks=2", "GNU.sparse.map=0,4"), rawHeader("x", '0', 4, nil), padded("abcd")), "numblocks is 2", true},
		{"sparse size mismatch", concat(paxHeader('x', "GNU.sparse.size=10", "GNU.sparse.map=0,4"), rawHeader("x", '0', 5, nil), padded("abcde")), "holds 4 bytes, the archive stores 5", true},
		{"sparse 1.0 count too big", concat(paxHeader('x', "GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.realsize=1"), rawHeader("x", '0', blockSize, nil), padded("99999999\n")), "more than 1048576", true},
		{"sparse 1.0 truncated map", concat(paxHeader('x', "GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.realsize=1"), rawHeader("x", '0', 4, nil), padded("2\n0\n")), "sparse map truncated", true},
		{"sparse 1.0 long number", concat(paxHeader('x', "GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.realsize=1"), rawHeader("x", '0', blockSize, nil), padded(strings.Repeat("1", 30)+"\n")), "too long", true},
		{"old GNU sparse without GNU magic", concat(rawHeader("x", 'S', 0, nil)), "without the GNU magic", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTarReader(bytes.NewReader(tc.data))
			h, err := tr.next()
			first := ""
			if err == io.EOF {
				err = nil // an archive of no member
			} else if err == nil {
				first = h.name
				if _, err = io.Copy(io.Discard, tr); err == nil {
					if _, err = tr.next(); err == io.EOF {
						err = nil
					}
				}
			}
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				if first == "" && !strings.Contains(err.Error(), "tar header at byte 0") {
					t.Errorf("error %v does not say where", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if first != tc.want {
				t.Errorf("name %q, want %q", first, tc.want)
			}
		})
	}
}

func TestReaderGlobalAndTypes(t *testing.T) {
	data := concat(paxHeader('g', "uid=77", "mtime=5.25"), rawHeader("g", '0', 0, nil),
		rawHeader("olddir/", 0, 0, nil), rawHeader("c", '7', 2, nil), padded("hi"))
	got, err := readOurs(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].uid != 77 || !got[0].mtime.Equal(time.Unix(5, 25e7)) {
		t.Fatalf("global header not applied: %+v", got)
	}
	if got[1].typ != '5' || got[2].typ != '0' || string(got[2].data) != "hi" || got[2].uid != 77 {
		t.Errorf("types: %+v", got[1:])
	}
}

// sparseExtensionBlocks is an old GNU sparse member whose extension
// blocks never end, each holding 21 one-byte extents.
type sparseExtensionBlocks struct {
	head []byte
	next int64
	buf  []byte
}

func (s *sparseExtensionBlocks) Read(p []byte) (int, error) {
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		return n, nil
	}
	if len(s.buf) == 0 {
		s.buf = make([]byte, blockSize)
		for i := 0; i < 21; i++ {
			copy(s.buf[i*24:], fmt.Sprintf("%011o\x00%011o\x00", s.next, 1))
			s.next += 2
		}
		s.buf[504] = 1
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

func TestReaderBoundsSparseMap(t *testing.T) {
	h := rawHeader("s", 'S', 0, map[int]string{257: "ustar  \x00", 386: "00000000000\x0000000000001\x00", 482: "\x01", 483: "77777777777\x00"})
	tr := newTarReader(&sparseExtensionBlocks{head: h})
	_, err := tr.next()
	if err == nil || !strings.Contains(err.Error(), "more than 1048576 extents") {
		t.Fatalf("error %v, want the extent bound", err)
	}
}
