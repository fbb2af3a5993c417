package xz

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/gosupermin/gosupermin/internal/xz/xztest"
	uxz "github.com/ulikunitz/xz"
)

// needXZ skips a test that compares with xz-utils when its xz is not
// installed, and fails it under CI, where it must be.
func needXZ(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("xz (xz-utils) is needed under CI: %v", err)
		}
		t.Skipf("xz (xz-utils) not installed, nothing to compare with: %v", err)
	}
}

// codeData looks like x86 code to the BCJ filter, and then some: E8 and
// E9 bytes are frequent, often next to each other, and the top bytes of
// their operands are often 0x00 or 0xFF, so every rule of the filter
// (branches 1, 2 and 3 bytes apart, the re-conversion loop, the sign
// extension, branches cut by the end of the data) is taken many times.
func codeData(n int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	b := make([]byte, n)
	for i := range b {
		switch r := rng.Intn(16); {
		case r < 3:
			b[i] = 0xe8 + byte(r&1)
		case r < 7:
			b[i] = []byte{0x00, 0xff, 0x01, 0xfe}[r-3]
		default:
			b[i] = byte(rng.Intn(256))
		}
	}
	return b
}

func decode(data []byte) ([]byte, error) {
	x, err := NewReader(bytes.NewReader(data), 0)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(x)
}

// compress is plain in xz as ulikunitz/xz writes it (LZMA2 alone, CRC64).
func compress(t testing.TB, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := uxz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func xzCLI(t *testing.T, data []byte, args ...string) []byte {
	t.Helper()
	out, err := xztest.CLI(data, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMatchesXZUtils(t *testing.T) {
	needXZ(t)
	plain := xztest.Text(400 << 10)
	for _, args := range [][]string{
		{"-0"}, {"-6"}, {"-9"}, {"--check=none"}, {"--check=crc32"}, {"--check=sha256"},
		{"-T2", "--block-size=100000"}, // several blocks, sizes in their headers
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			got, err := decode(xzCLI(t, plain, args...))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("decoded %d bytes, differ from the %d compressed", len(got), len(plain))
			}
		})
	}
	t.Run("two streams and padding", func(t *testing.T) {
		two := append(xzCLI(t, plain[:1000]), 0, 0, 0, 0)
		two = append(two, xzCLI(t, plain[1000:5000], "--check=crc64")...)
		got, err := decode(two)
		if err != nil || !bytes.Equal(got, plain[:5000]) {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		got, err := decode(xzCLI(t, nil))
		if err != nil || len(got) != 0 {
			t.Fatalf("%q, %v", got, err)
		}
	})
}

// selfCode is the start of this test's own executable: real x86-64 code
// on the machines that run the x86 tests.
func selfCode(t *testing.T, n int) []byte {
	t.Helper()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "386" {
		return codeData(n, 7)
	}
	b, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatalf("read the test's executable: %v", err)
	}
	return b[:min(n, len(b))]
}

// TestX86MatchesXZUtils decodes what xz --x86 makes, as Linux's
// scripts/xz_wrap.sh calls it for a compressed kernel, from data chosen
// to take every path of the filter.
func TestX86MatchesXZUtils(t *testing.T) {
	needXZ(t)
	code := codeData(300<<10, 1)
	for _, tc := range []struct {
		name string
		data []byte
		args []string
	}{
		{"kernel's options", selfCode(t, 2<<20), []string{"--check=crc32", "--x86", "--lzma2=dict=1MiB"}},
		{"random branches", code, []string{"--x86", "--lzma2=preset=0"}},
		{"start offset", code, []string{"--x86=start=305419895", "--lzma2=preset=0"}},
		{"start near 2^32", code, []string{"--x86=start=4294967291", "--lzma2=preset=0"}},
		{"several blocks", code, []string{"-T2", "--block-size=70001", "--x86", "--lzma2=preset=0"}},
		{"short", code[:7], []string{"--x86", "--lzma2"}},
		{"4 bytes", []byte{0xe8, 0, 0, 0}, []string{"--x86", "--lzma2"}},
		{"empty", nil, []string{"--x86", "--lzma2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			comp := xzCLI(t, tc.data, tc.args...)
			got, err := decode(comp)
			if err != nil {
				t.Fatal(err)
			}
			if i := firstDiff(got, tc.data); i >= 0 {
				t.Fatalf("decoded %d bytes, differ from the %d compressed at %d", len(got), len(tc.data), i)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestX86Boundaries feeds the x86 decoder what xz --x86 made before
// LZMA2 (got back by decoding LZMA2 alone) in pieces of every few sizes,
// so that branches are cut at every place by the end of a read.
func TestX86Boundaries(t *testing.T) {
	needXZ(t)
	plain := codeData(64<<10, 2)
	const start = 0x1000
	comp := xzCLI(t, plain, "-F", "raw", fmt.Sprintf("--x86=start=%d", start), "--lzma2=preset=0")
	filtered := xzCLI(t, comp, "-d", "-F", "raw", "--lzma2=preset=0")
	if bytes.Equal(filtered, plain) {
		t.Fatal("xz --x86 left the data as it was: nothing to test")
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":     func(r io.Reader) io.Reader { return r },
		"one byte":  iotest.OneByteReader,
		"half":      iotest.HalfReader,
		"data+EOF":  iotest.DataErrReader,
		"5 7 11...": func(r io.Reader) io.Reader { return &oddReader{r: r} },
	}
	for name, wrap := range readers {
		t.Run(name, func(t *testing.T) {
			got, err := io.ReadAll(newX86Reader(wrap(bytes.NewReader(filtered)), start))
			if err != nil {
				t.Fatal(err)
			}
			if i := firstDiff(got, plain); i >= 0 {
				t.Fatalf("%d bytes, differ from the %d filtered at %d", len(got), len(plain), i)
			}
		})
	}
}

// oddReader returns reads of sizes 1, 2, ... 13, again and again.
type oddReader struct {
	r io.Reader
	n int
}

func (o *oddReader) Read(p []byte) (int, error) {
	o.n = o.n%13 + 1
	return o.r.Read(p[:min(len(p), o.n)])
}

func TestCorrupt(t *testing.T) {
	plain := xztest.Text(100 << 10)
	g := compress(t, plain)
	flip := func(off int) []byte {
		b := bytes.Clone(g)
		if off < 0 {
			off += len(b)
		}
		b[off] ^= 0x20
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"header flags", flip(7), "checksum mismatch"},
		{"block header", flip(14), "block header"},
		{"data", flip(len(g) / 2), "xz"},
		{"footer", flip(-3), "stream footer"},
		{"index", flip(-14), "index"},
		{"truncated", g[:len(g)-20], "xz"},
		{"trailing garbage", append(bytes.Clone(g), 1, 2), "garbage"},
		{"bad padding", append(bytes.Clone(g), 0, 0, 0), "garbage"},
	} {
		t.Run(tc.name, func(t *testing.T) { decodeFails(t, tc.data, tc.want) })
	}
}

// decodeFails checks that data does not decode, with an error that says
// want.
func decodeFails(t *testing.T, data []byte, want string) {
	t.Helper()
	got, err := decode(data)
	if err == nil {
		t.Fatalf("no error, %d bytes", len(got))
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}

// blockHeader builds a stream header and the block header with the
// given filter flags, for the filter chains a reader must refuse.
func blockHeader(flags byte, filters ...byte) []byte {
	b := []byte(Magic + "\x00\x01")
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b[6:8]))
	h := append([]byte{0, flags}, filters...)
	for len(h)%4 != 0 {
		h = append(h, 0)
	}
	h[0] = byte(len(h) / 4) // the header's size with its CRC, /4, -1
	h = binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(h))
	return append(b, h...)
}

func TestFilterChains(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"three filters", blockHeader(2, 4, 0, 4, 0, 0x21, 1, 8), "chain of 3"},
		{"delta then LZMA2", blockHeader(1, 3, 1, 0, 0x21, 1, 8), "only x86 BCJ"},
		{"x86 last", blockHeader(0, 4, 0), "only LZMA2"},
		{"x86 twice", blockHeader(1, 4, 0, 4, 0), "only LZMA2"},
		{"x86 properties of 3 bytes", blockHeader(1, 4, 3, 0, 0, 0, 0x21, 1, 8), "x86 BCJ properties"},
		{"x86 properties cut", blockHeader(1, 4, 4, 1, 2), "block header"},
		{"LZMA2 properties size", blockHeader(1, 4, 0, 0x21, 2, 8, 8), "LZMA2 properties"},
	} {
		t.Run(tc.name, func(t *testing.T) { decodeFails(t, tc.data, tc.want) })
	}
}

// claimHugeDict makes the first block header of an xz file ask for a
// dictionary of 4 GiB - 1.
func claimHugeDict(t testing.TB, b []byte) {
	t.Helper()
	if err := xztest.ClaimHugeDict(b); err != nil {
		t.Fatal(err)
	}
}

// TestDictionaryBound: a block header may ask for a 4 GiB dictionary;
// the reader allocates at most its bound, and small data still decodes.
func TestDictionaryBound(t *testing.T) {
	plain := xztest.Text(200 << 10)
	var buf bytes.Buffer
	w, err := uxz.WriterConfig{DictCap: 1 << 20}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	b := buf.Bytes()
	claimHugeDict(t, b)

	for _, bound := range []int64{DefaultMaxDict, 1 << 20} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		x, err := NewReader(bytes.NewReader(b), bound)
		var got []byte
		if err == nil {
			got, err = io.ReadAll(x)
		}
		runtime.ReadMemStats(&after)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("bound %d: %d bytes, %v", bound, len(got), err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(2*bound) {
			t.Errorf("allocated %d MiB for a 4 GiB dictionary claim; want at most %d MiB", alloc>>20, 2*bound>>20)
		}
	}
}

func TestReadVLI(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want uint64
		err  bool
	}{
		{[]byte{0}, 0, false},
		{[]byte{0x7f}, 127, false},
		{[]byte{0x80, 0x01}, 128, false},
		{[]byte{0x80, 0x00}, 0, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 1<<63 - 1, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 0, true},
		{[]byte{0x80}, 0, true},
	} {
		got, err := readVLI(bytes.NewReader(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("readVLI(% x) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// FuzzXZ decodes raw bytes; what decodes is compressed again and must
// decode to the same bytes.
func FuzzXZ(f *testing.F) {
	for _, n := range []int{0, 1, 5000} {
		f.Add(compress(f, xztest.Text(n)))
	}
	// x86 BCJ then LZMA2, as xz --x86 makes it, of "\xe8\x01\x02\x03\x00".
	f.Add([]byte("\xfd\x37\x7a\x58\x5a\x00\x00\x04\xe6\xd6\xb4\x46\x02\x01\x04\x00\x21\x01\x16\x00\x0d\x86\x35\x1f\x01\x00\x04\xe8\x06\x02\x03\x00\x00\x00\x00\x00\xf7\x4b\xa6\xee\xb9\x3b\x79\xc0\x00\x01\x1d\x05\xb8\x2d\x80\xaf\x1f\xb6\xf3\x7d\x01\x00\x00\x00\x00\x04\x59\x5a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := NewReader(bytes.NewReader(data), 1<<20)
		if err != nil {
			return
		}
		plain, err := io.ReadAll(io.LimitReader(x, 16<<20))
		if err != nil {
			return
		}
		again, err := decode(compress(t, plain))
		if err != nil || !bytes.Equal(again, plain) {
			t.Fatalf("round trip: %d bytes, %v; want %d", len(again), err, len(plain))
		}
	})
}

// FuzzX86 decodes bytes with the x86 BCJ filter whole and in pieces of
// the sizes the fuzzer chooses: the result must not depend on where
// reads end.
func FuzzX86(f *testing.F) {
	f.Add(codeData(300, 3), uint32(0), []byte{1, 2, 3})
	f.Add([]byte{0xe8, 0xe8, 0, 0, 0, 0xff, 0xe9, 0, 0, 0, 0, 0}, uint32(1<<32-3), []byte{5})
	f.Fuzz(func(t *testing.T, data []byte, start uint32, cuts []byte) {
		whole, err := io.ReadAll(newX86Reader(bytes.NewReader(data), start))
		if err != nil || len(whole) != len(data) {
			t.Fatalf("whole: %d bytes of %d, %v", len(whole), len(data), err)
		}
		if len(cuts) == 0 {
			cuts = []byte{1}
		}
		r := &cutReader{r: bytes.NewReader(data), cuts: cuts}
		pieces, err := io.ReadAll(newX86Reader(r, start))
		if err != nil || !bytes.Equal(pieces, whole) {
			t.Fatalf("in pieces %v: %v; differ at %d", cuts, err, firstDiff(pieces, whole))
		}
	})
}

// cutReader returns reads of the sizes in cuts (0 counting as 1), in
// turn.
type cutReader struct {
	r    io.Reader
	cuts []byte
	i    int
}

func (c *cutReader) Read(p []byte) (int, error) {
	n := max(int(c.cuts[c.i%len(c.cuts)]), 1)
	c.i++
	return c.r.Read(p[:min(len(p), n)])
}
