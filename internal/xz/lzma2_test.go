package xz

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/internal/xz/xztest"
	"github.com/ulikunitz/xz/lzma"
)

// TestLZMA2Settings decodes what xz-utils makes with settings its presets
// do not use: every lc, lp and pb corner and dictionaries small enough to
// wrap many times, read in pieces of odd sizes so that matches stop at
// read limits and go on.
func TestLZMA2Settings(t *testing.T) {
	needXZ(t)
	plain := append(xztest.Text(300<<10), codeData(200<<10, 7)...)
	for _, opt := range []string{
		"lc=0,lp=0,pb=0", "lc=4,lp=0,pb=4", "lc=0,lp=4,pb=2", "lc=1,lp=3,pb=1",
		"dict=4KiB", "dict=4KiB,lc=4,lp=0", "dict=12KiB,nice=273,mf=bt4", "preset=9e,dict=64KiB",
	} {
		t.Run(opt, func(t *testing.T) {
			comp := xzCLI(t, plain, "--format=xz", "--lzma2="+opt)
			for _, piece := range []int{1 << 16, 7, 4093} {
				x, err := NewReader(bytes.NewReader(comp), 0)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(&pieceReader{x, piece})
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("reads of %d: %d bytes, %v; first difference at %d", piece, len(got), err, firstDiff(got, plain))
				}
			}
		})
	}
}

// pieceReader reads at most n bytes at a time.
type pieceReader struct {
	r io.Reader
	n int
}

func (p *pieceReader) Read(b []byte) (int, error) { return p.r.Read(b[:min(len(b), p.n)]) }

// TestLZMA2Corrupt: truncations and flipped bytes of a valid stream are
// errors (or, for flips the format cannot see, other bytes), never a
// panic or a hang; and what the chunk rules forbid is refused.
func TestLZMA2Corrupt(t *testing.T) {
	raw := rawLZMA2(t, xztest.Text(50<<10), 1<<16)
	for i := range raw {
		if _, err := io.ReadAll(newLZMA2Reader(bytes.NewReader(raw[:i]), 1<<16)); err == nil {
			t.Fatalf("truncated at %d of %d: no error", i, len(raw))
		}
	}
	for i := 0; i < len(raw); i += 97 {
		b := bytes.Clone(raw)
		b[i] ^= 0x5a
		io.ReadAll(newLZMA2Reader(bytes.NewReader(b), 1<<16))
	}
	for name, stream := range map[string][]byte{
		"no dictionary reset first": {0x02, 0x00, 0x00, 'a', 0x00},
		"bad control":               {0x01, 0x00, 0x00, 'a', 0x03},
		"LZMA without properties":   {0x01, 0x00, 0x00, 'a', 0x80, 0x00, 0x00, 0x00, 0x05, 0, 0, 0, 0, 0, 0},
		"lc + lp over 4":            {0xe0, 0x00, 0x00, 0x00, 0x05, 4 + 9*1, 0, 0, 0, 0, 0, 0},
		"properties out of range":   {0xe0, 0x00, 0x00, 0x00, 0x05, 225, 0, 0, 0, 0, 0, 0},
		"range coder's first byte":  {0xe0, 0x00, 0x00, 0x00, 0x05, 0x5d, 1, 0, 0, 0, 0, 0},
	} {
		got, err := io.ReadAll(newLZMA2Reader(bytes.NewReader(stream), 1<<16))
		if err == nil || !strings.Contains(err.Error(), "LZMA2") {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
}

// rawLZMA2 is plain as a raw LZMA2 stream made by ulikunitz/xz.
func rawLZMA2(t testing.TB, plain []byte, dict int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := lzma.Writer2Config{DictCap: dict}.NewWriter2(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzLZMA2 checks this decoder against ulikunitz/xz's on the streams
// the fuzzer makes, read in pieces of the size it chooses: what this one
// decodes the other decodes the same (this one is the stricter: liblzma's
// chunk rules). Streams of plain data made by an encoder are
// TestLZMA2Settings' and FuzzXZ's: an encoder in each run would make it
// a hundred times slower.
func FuzzLZMA2(f *testing.F) {
	f.Add(rawLZMA2(f, xztest.Text(3000), 4096), uint16(3))
	f.Add(rawLZMA2(f, codeData(5000, 1), 4096), uint16(1000))
	f.Add([]byte{0x01, 0x00, 0x02, 'a', 'b', 'c', 0x00}, uint16(1))
	f.Fuzz(func(t *testing.T, stream []byte, piece uint16) {
		const dict = 1 << 14
		ours, err := io.ReadAll(&pieceReader{newLZMA2Reader(bytes.NewReader(stream), dict), max(1, int(piece))})
		if err != nil {
			return
		}
		r, err := lzma.Reader2Config{DictCap: dict}.NewReader2(bytes.NewReader(stream))
		var theirs []byte
		if err == nil {
			theirs, err = io.ReadAll(r)
		}
		if err != nil || !bytes.Equal(ours, theirs) {
			t.Fatalf("decoded %d bytes; ulikunitz/xz: %d bytes, %v; first difference at %d", len(ours), len(theirs), err, firstDiff(ours, theirs))
		}
	})
}

func TestDictSize(t *testing.T) {
	for code, want := range map[byte]int64{0: 4 << 10, 1: 6 << 10, 2: 8 << 10, 18: 2 << 20, 26: 32 << 20, 39: 3 << 30, 40: 1<<32 - 1} {
		if got, err := dictSize(code); got != want || err != nil {
			t.Errorf("dictSize(%d) = %d, %v; want %d", code, got, err, want)
		}
	}
	if _, err := dictSize(41); err == nil {
		t.Error("dictSize(41): no error")
	}
}
