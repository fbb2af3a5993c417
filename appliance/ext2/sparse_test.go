package ext2

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/gosupermin/gosupermin/appliance"
)

// indirectKeys names the indirect blocks that map block b, for counting
// them one block at a time.
func indirectKeys(b uint64) []string {
	const p1, p2 = ptrsPerBlock, ptrsPerBlock * ptrsPerBlock
	switch {
	case b < nDirect:
		return nil
	case b < nDirect+p1:
		return []string{"s"}
	case b < nDirect+p1+p2:
		r := b - nDirect - p1
		return []string{"d", "d" + strconv.FormatUint(r/p1, 10)}
	}
	r := b - nDirect - p1 - p2
	return []string{"t", "t" + strconv.FormatUint(r/p2, 10), "t" + strconv.FormatUint(r/p2, 10) + "/" + strconv.FormatUint(r/p1, 10)}
}

func TestRunIndirect(t *testing.T) {
	const p1, p2 = ptrsPerBlock, ptrsPerBlock * ptrsPerBlock
	triple := uint64(nDirect + p1 + p2)
	cases := map[string][]run{}
	for _, n := range []uint64{0, 1, 12, 13, 1035, 1036, 1037, 1036 + p1, 1036 + p1 + 1, triple - 1, triple, triple + 1, triple + p1 + 7} {
		cases[fmt.Sprintf("dense %d", n)] = []run{{0, n}}
	}
	cases["one block per range"] = []run{{5, 6}, {20, 21}, {2000, 2001}, {triple + 3, triple + 4}, {triple + 5*p2, triple + 5*p2 + 1}}
	cases["runs sharing indirect blocks"] = []run{{1030, 1040}, {1040 + 3, 1040 + p1}, {triple - 2, triple + 2}, {triple + p2 - 1, triple + p2 + 1}}
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 20 {
		var runs []run
		at := uint64(r.IntN(40))
		for range 1 + r.IntN(30) {
			at += uint64(r.Int64N(int64(triple + 40*p2)))
			n := 1 + uint64(r.IntN(3000))
			runs = append(runs, run{at, at + n})
			at += n
		}
		cases[fmt.Sprintf("random %d", i)] = runs
	}
	for name, runs := range cases {
		t.Run(name, func(t *testing.T) {
			keys := map[string]bool{}
			for _, r := range runs {
				for b := r.start; b < r.end; b++ {
					for _, k := range indirectKeys(b) {
						keys[k] = true
					}
				}
			}
			if got := runIndirect(runs); got != uint64(len(keys)) {
				t.Errorf("runIndirect(%v) = %d, want %d", runs, got, len(keys))
			}
		})
	}
}

func TestBlockRuns(t *testing.T) {
	for _, c := range []struct {
		exts []int64 // offset, length, ...
		want string
	}{
		{nil, "[]"},
		{[]int64{0, 1}, "[{0 1}]"},
		{[]int64{0, 0, 4096, 0}, "[]"},
		{[]int64{0, 4096, 4096, 1}, "[{0 2}]"},
		{[]int64{10, 10, 100, 10, 4095, 2}, "[{0 2}]"},
		{[]int64{0, 10, 8192, 10}, "[{0 1} {2 3}]"},
		{[]int64{1 << 40, 1 << 20}, "[{268435456 268435712}]"},
	} {
		var exts []appliance.Extent
		for i := 0; i < len(c.exts); i += 2 {
			exts = append(exts, appliance.Extent{Off: c.exts[i], Len: c.exts[i+1]})
		}
		if got := fmt.Sprint(blockRuns(exts)); got != c.want {
			t.Errorf("blockRuns(%v) = %s, want %s", exts, got, c.want)
		}
	}
}

const bigSparse = 100 << 30

// sparseTree holds files marked sparse: one of 100 GiB whose few extents
// reach every level of indirection, and smaller ones read back whole.
// seq makes every source sequential only.
func sparseTree(t testing.TB, seq bool) *appliance.Manifest {
	r := rand.New(rand.NewPCG(8, 9))
	m := appliance.New()
	mustPut(t, m, appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0755})
	sparse := func(p string, size int64, chunks ...chunk) {
		mustPut(t, m, appliance.Entry{Path: p, Kind: appliance.Regular, Mode: 0644, Size: size, Sparse: true,
			Data: &sparseSource{size: size, chunks: chunks, seq: seq}})
	}
	sparse("/big", bigSparse,
		chunk{0, []byte("head")},
		chunk{5000, randBytes(r, 100)}, // two extents in block 1
		chunk{6000, randBytes(r, 50)},
		chunk{12*blockSize - 10, randBytes(r, 20)}, // blocks 11 and 12: the single indirect block
		chunk{2<<30 + 3, randBytes(r, 10000)},      // 3 blocks through the double indirect block
		chunk{50 << 30, randBytes(r, 3*blockSize)}, // triple indirect
		chunk{80 << 30, make([]byte, blockSize)},   // zeros: planned, left a hole
		chunk{bigSparse - 5, randBytes(r, 5)},      // the last block
	)
	mid := randBytes(r, 3<<20)
	clear(mid[1<<20 : 1<<20+3*blockSize]) // zero blocks inside an extent
	sparse("/mid", 40<<20, chunk{7, mid[:1000]}, chunk{1 << 20, mid}, chunk{30<<20 + 1, mid[:blockSize]})
	sparse("/none", 64<<20)
	sparse("/tiny", 10, chunk{0, []byte("0123456789")})
	sparse("/tail", 3*blockSize+1, chunk{3 * blockSize, []byte("!")})
	return m
}

func TestSparse(t *testing.T) {
	needTools(t)
	entries := sparseTree(t, false).Entries()
	opt := Options{Size: 64 << 20, UUID: UUIDFor([]byte("sparse")), Time: testTime}
	img := writeImage(t, entries, opt)
	fsck(t, img)
	compareTree(t, img, entries, "/big")

	// The big file: its size, the blocks it took (data and indirect, the
	// zero block left out), and each block read from the image.
	out := debugfs(t, img, []string{"stat /big", "stat /none", "stat /tail"})
	if got := statField(t, out[0], "Size:"); got != bigSparse {
		t.Errorf("/big: size %d, want %d", got, int64(bigSparse))
	}
	// 11 data blocks; the single indirect block, the double and one below
	// it, the triple, two below it and one below each of those.
	if got := statField(t, out[0], "Blockcount:"); got != (11+1+2+5)*8 {
		t.Errorf("/big: Blockcount %d, want %d", got, (11+1+2+5)*8)
	}
	if got := statField(t, out[1], "Blockcount:"); got != 0 {
		t.Errorf("/none: Blockcount %d, want 0", got)
	}
	if got := statField(t, out[2], "Blockcount:"); got != 8 {
		t.Errorf("/tail: Blockcount %d, want 8", got)
	}
	src := entries[indexOf(entries, "/big")].Data.(*sparseSource)
	checkBlocks(t, img, "/big", src, []int64{0, 1, 2, 11, 12, 13, 524288, 524289, 524290, 524291,
		50 << 18, 50<<18 + 2, 50<<18 + 3, 80 << 18, bigSparse/blockSize - 1})

	// Sources that can only be read in order give the same image.
	seq := writeImage(t, sparseTree(t, true).Entries(), opt)
	if hashFile(t, seq) != hashFile(t, img) {
		t.Error("sequential sources give another image")
	}
}

func TestSparseErrors(t *testing.T) {
	root := &appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0755}
	sparse := func(size int64, src appliance.Source) []*appliance.Entry {
		return []*appliance.Entry{root, {Path: "/f", Kind: appliance.Regular, Mode: 0644, Size: size, Sparse: true, Data: src}}
	}
	ext := func(size int64, chunks ...chunk) []*appliance.Entry {
		return sparse(size, &sparseSource{size: size, chunks: chunks})
	}
	x := []byte("0123456789")
	for _, c := range []struct {
		name    string
		entries []*appliance.Entry
		want    string
	}{
		{"no extents", sparse(3, appliance.Bytes("abc")), "ext2: /f: marked sparse, but its data has no extents"},
		{"extents fail", sparse(3, &sparseSource{size: 3, extErr: errors.New("no SEEK_DATA")}), "ext2: /f: extents: no SEEK_DATA"},
		{"negative offset", ext(100, chunk{-1, x}), "ext2: /f: extent -1+10: negative"},
		{"unsorted", ext(100, chunk{50, x}, chunk{20, x}), "ext2: /f: extent 20+10: not after the one before, which ends at 60"},
		{"overlapping", ext(100, chunk{20, x}, chunk{25, x}), "extent 25+10: not after the one before, which ends at 30"},
		{"beyond the size", ext(100, chunk{95, x}), "ext2: /f: extent 95+10: beyond the size, 100"},
		{"data too short", sparse(100, &sparseSource{size: 20, chunks: []chunk{{15, x}}}), "ext2: write /f: data ends before byte 25, which its extents hold"},
		{"sequential data too short", sparse(100, &sparseSource{size: 20, chunks: []chunk{{15, x}}, seq: true}), "ext2: write /f: data ends before byte 25"},
		{"sequential data ends before an extent", sparse(100, &sparseSource{size: 20, chunks: []chunk{{0, x}, {50, x}}, seq: true}), "ext2: write /f: data ends before byte 60"},
		{"logical size too large", ext(3 << 40), "/f: size 3298534883328 out of range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantWriteError(t, c.entries, Options{Size: 16 << 20}, c.want)
		})
	}
}

// TestExtentsLikeDense writes generated files once from their extents and
// once read whole: the zero blocks the whole read skips are the holes
// between the extents, so the images must be the same.
func TestExtentsLikeDense(t *testing.T) {
	needTools(t)
	s := shapes[indexOfShape(t, "extents")]
	for seed := range uint64(2) {
		entries := genTree(t, rand.New(rand.NewPCG(seed, 99)), s).Entries()
		dense := make([]*appliance.Entry, len(entries))
		sparse := 0
		for i, e := range entries {
			d := *e
			if d.Sparse {
				d.Sparse = false
				sparse++
			}
			dense[i] = &d
		}
		if sparse == 0 {
			t.Fatal("no file marked sparse")
		}
		opt := Options{Size: imageSize(entries), Time: testTime}
		img := writeImage(t, entries, opt)
		fsck(t, img)
		if hashFile(t, img) != hashFile(t, writeImage(t, dense, opt)) {
			t.Errorf("seed %d: the image from extents differs from the one from whole reads", seed)
		}
	}
}

func indexOfShape(t testing.TB, name string) int {
	for i, s := range shapes {
		if s.name == name {
			return i
		}
	}
	t.Fatalf("no shape %q", name)
	return -1
}
