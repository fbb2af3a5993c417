package ext2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
)

var testTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32()) | 1 // never zero, so no block is a hole by chance
	}
	return b
}

// sparseSource is a large file that is zero but for a few chunks, produced
// without memory proportional to its size. It is an appliance.SparseSource
// whose extents are the chunks.
type sparseSource struct {
	size   int64
	chunks []chunk // sorted, disjoint
	seq    bool    // its readers can neither seek nor read at an offset
	extErr error   // what Extents returns
}

type chunk struct {
	off  int64
	data []byte
}

func (s *sparseSource) Open() (io.ReadCloser, error) {
	r := io.NewSectionReader(sparseAt{s}, 0, s.size)
	if s.seq {
		return io.NopCloser(struct{ io.Reader }{r}), nil
	}
	return struct {
		*io.SectionReader
		io.Closer
	}{r, io.NopCloser(nil)}, nil
}

func (s *sparseSource) Extents() ([]appliance.Extent, error) {
	var exts []appliance.Extent
	for _, c := range s.chunks {
		exts = append(exts, appliance.Extent{Off: c.off, Len: int64(len(c.data))})
	}
	return exts, s.extErr
}

// sparseAt reads a sparseSource at any offset.
type sparseAt struct{ s *sparseSource }

func (r sparseAt) ReadAt(p []byte, off int64) (int, error) {
	n := int(max(0, min(int64(len(p)), r.s.size-off)))
	clear(p[:n])
	for _, c := range r.s.chunks {
		lo, hi := max(c.off, off), min(c.off+int64(len(c.data)), off+int64(n))
		if lo < hi {
			copy(p[lo-off:hi-off], c.data[lo-c.off:hi-c.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func mustPut(t testing.TB, m *appliance.Manifest, e appliance.Entry) {
	t.Helper()
	if err := m.Put(e); err != nil {
		t.Fatal(err)
	}
}

// writeImage writes entries to a new image file and returns its path.
func writeImage(t testing.TB, entries []*appliance.Entry, opt Options) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "root.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := write(context.Background(), f, entries, opt); err != nil {
		t.Fatal(err)
	}
	return img
}

const (
	hugeSize = 4<<30 + 8<<20 + 100 // reaches the triple indirect block
	manyN    = 20000
)

// allKinds builds a manifest with every kind of entry and the corner cases
// of the format.
func allKinds(t testing.TB) *appliance.Manifest {
	r := rand.New(rand.NewPCG(1, 2))
	m := appliance.New()
	dir := func(p string, mode, uid, gid uint32) {
		mustPut(t, m, appliance.Entry{Path: p, Kind: appliance.Dir, Mode: mode, UID: uid, GID: gid, ModTime: testTime.Add(-time.Hour)})
	}
	file := func(p string, mode, uid, gid uint32, data []byte) {
		var src appliance.Source
		if data != nil {
			src = appliance.Bytes(data)
		}
		mustPut(t, m, appliance.Entry{Path: p, Kind: appliance.Regular, Mode: mode, UID: uid, GID: gid,
			ModTime: testTime.Add(-2 * time.Hour), Size: int64(len(data)), Data: src})
	}
	dir("/", 0755, 0, 0)
	dir("/bin", 0755, 0, 0)
	file("/bin/empty", 0644, 0, 0, nil)
	file("/bin/small", 0644, 1000, 1000, []byte("hello, world\n"))
	// Blocks 0-2 data, 3-10 a hole, 11 data, 12 a partial block.
	holey := randBytes(r, 13*blockSize-3096)
	clear(holey[3*blockSize : 11*blockSize])
	file("/bin/holey", 0644, 0, 0, holey)
	// 1281 blocks: the whole single-indirect range (blocks 12-1035) is a
	// hole, the rest goes through the double indirect block.
	double := randBytes(r, 5<<20+123)
	clear(double[12*blockSize : 1036*blockSize])
	file("/bin/double", 0644, 0, 0, double)
	file("/bin/dense", 0755, 0, 0, randBytes(r, 5<<20))
	file("/bin/su", 04755, 0, 0, []byte("#!/bin/sh\n"))
	file("/bin/wall", 02755, 0, 5, []byte("#!/bin/sh\n"))
	file("/bin/both", 06711, 100000, 100000, []byte("x"))

	dir("/dev", 0755, 0, 0)
	for _, d := range []struct {
		name         string
		kind         appliance.Kind
		major, minor uint32
	}{
		{"null", appliance.CharDev, 1, 3},
		{"sda1", appliance.BlockDev, 8, 1},
		{"nvme0n1p1", appliance.BlockDev, 259, 65536},
		{"wide", appliance.CharDev, 4095, 1<<20 - 1},
		{"zero", appliance.CharDev, 0, 0},
		{"minor256", appliance.CharDev, 10, 256},
	} {
		mustPut(t, m, appliance.Entry{Path: "/dev/" + d.name, Kind: d.kind, Mode: 0660, GID: 6, Major: d.major, Minor: d.minor, ModTime: testTime})
	}

	dir("/home", 0755, 0, 0)
	dir("/home/user", 0700, 100000, 100000)
	file("/home/user/.profile", 0600, 100000, 100000, []byte("export PS1='$ '\n"))
	file("/home/user/"+strings.Repeat("n", 255), 0600, 1000, 100000, []byte("long name\n"))

	dir("/huge", 0755, 0, 0)
	mustPut(t, m, appliance.Entry{Path: "/huge/sparse", Kind: appliance.Regular, Mode: 0644, ModTime: testTime, Size: hugeSize,
		Data: &sparseSource{size: hugeSize, chunks: []chunk{
			{0, []byte("head")},
			{2<<30 + 10, randBytes(r, 5000)},
			{hugeSize - 100, randBytes(r, 100)},
		}}})

	dir("/links", 0755, 0, 0)
	file("/links/a", 0644, 1000, 1000, []byte("three names, one inode\n"))
	mustPut(t, m, appliance.Entry{Path: "/links/b", Kind: appliance.Hardlink, Link: "/links/a"})

	mustPut(t, m, appliance.Entry{Path: "/lnk", Kind: appliance.Dir, Mode: 0755})
	for name, target := range map[string]string{
		"fast": "../bin/small",
		"59":   "/" + strings.Repeat("a", 58), // longest fast symlink
		"60":   "/" + strings.Repeat("b", 59), // shortest slow symlink
		"slow": strings.Repeat("dir/", 50) + "file",
		"max":  strings.Repeat("c", 4095),
		"dang": "/does/not/exist",
	} {
		mustPut(t, m, appliance.Entry{Path: "/lnk/" + name, Kind: appliance.Symlink, Mode: 0777, Link: target, UID: 1000, GID: 1000})
	}

	dir("/many", 0755, 0, 0)
	for i := range manyN {
		p := fmt.Sprintf("/many/entry-%05d", i)
		switch {
		case i%500 == 0:
			dir(p, 0755, 0, 0)
		case i%97 == 0:
			file(p, 0644, 0, 0, []byte(strconv.Itoa(i)+"\n"))
		default:
			file(p, 0644, 0, 0, nil)
		}
	}

	dir("/nested", 0755, 0, 0)
	p := "/nested"
	for _, c := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		p += "/" + c
		dir(p, 0750, 1000, 1000)
	}
	mustPut(t, m, appliance.Entry{Path: p + "/hl", Kind: appliance.Hardlink, Link: "/links/a"})
	file(p+"/file", 0640, 1000, 1000, []byte("deep\n"))

	dir("/run", 0755, 0, 0)
	mustPut(t, m, appliance.Entry{Path: "/run/fifo", Kind: appliance.FIFO, Mode: 0620, ModTime: testTime})
	mustPut(t, m, appliance.Entry{Path: "/run/sock", Kind: appliance.Socket, Mode: 0777, ModTime: testTime})
	dir("/tmp", 01777, 0, 0)
	dir("/srv", 03775, 0, 1000)
	mustPut(t, m, appliance.Entry{Path: "/with space", Kind: appliance.Regular, Mode: 0644, Size: 3, Data: appliance.Bytes("sp\n")})
	mustPut(t, m, appliance.Entry{Path: "/zero-time", Kind: appliance.Regular, Mode: 0644})
	mustPut(t, m, appliance.Entry{Path: "/future", Kind: appliance.Regular, Mode: 0644,
		ModTime: time.Date(2100, 1, 2, 3, 4, 5, 123456789, time.UTC)})
	mustPut(t, m, appliance.Entry{Path: "/past", Kind: appliance.Regular, Mode: 0644,
		ModTime: time.Date(1960, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWriteAllKinds(t *testing.T) {
	needTools(t)
	m := allKinds(t)
	entries := m.Entries()
	opt := Options{Size: 4<<30 + 128<<20, UUID: UUIDFor([]byte("all kinds")), Label: "appliance", Time: testTime}
	img := writeImage(t, entries, opt)
	if used, ok := allocatedBytes(img); ok && used > 64<<20 {
		t.Errorf("image uses %d MiB on disk; holes should stay holes", used>>20)
	}
	fsck(t, img)
	compareTree(t, img, entries, "/huge")

	paths := []string{"/", "/lost+found", "/many", "/links/a", "/bin/holey", "/bin/double", "/bin/dense",
		"/huge/sparse", "/zero-time", "/future", "/past", "/bin/small", "/lnk/60", "/lnk/59"}
	cmds := []string{"stats"}
	for _, p := range paths {
		cmds = append(cmds, "stat "+quote(p))
	}
	out := debugfs(t, img, cmds)
	stats, out := out[0], out[1:]
	stat := map[string]string{}
	for i, p := range paths {
		stat[p] = out[i]
	}

	for _, want := range []string{"Filesystem volume name:   appliance", "Filesystem features:      filetype sparse_super large_file",
		"Filesystem UUID:          " + uuidString(opt.UUID), "Block size:               4096", "Inode size:\t          256",
		"Filesystem state:         clean", "Maximum mount count:      -1", "Check interval:           0", "Filesystem OS type:       Linux"} {
		if !strings.Contains(stats, want) {
			t.Errorf("stats lack %q:\n%s", want, stats)
		}
	}

	subdirs := manyN/500 + 0
	for _, c := range []struct {
		path, field string
		want        int64
	}{
		{"/", "Links:", 2 + 12}, // lost+found and 11 directories
		{"/lost+found", "Links:", 2},
		{"/lost+found", "Size:", 16384},
		{"/many", "Links:", int64(2 + subdirs)},
		{"/links/a", "Links:", 3},
		{"/bin/holey", "Blockcount:", (5 + 1) * 8},               // block 12 needs the indirect block
		{"/bin/double", "Blockcount:", (12 + 245 + 2) * 8},       // no single indirect block
		{"/bin/dense", "Blockcount:", (1280 + 1 + 2) * 8},        // indirect, double indirect and one below it
		{"/huge/sparse", "Blockcount:", (1 + 2 + 1 + 2 + 3) * 8}, // data and indirect blocks
		{"/huge/sparse", "Size:", hugeSize},
		{"/bin/small", "Blockcount:", 8},
		{"/lnk/59", "Blockcount:", 0},
		{"/lnk/60", "Blockcount:", 8},
	} {
		if got := statField(t, stat[c.path], c.field); got != c.want {
			t.Errorf("%s: %s %d, want %d", c.path, c.field, got, c.want)
		}
	}
	if n := statField(t, stat["/many"], "Size:"); n <= 12*blockSize {
		t.Errorf("/many: size %d, want a directory beyond the direct blocks", n)
	}

	for _, c := range []struct {
		path, field string
		want        time.Time
	}{
		{"/", "mtime", testTime.Add(-time.Hour)},
		{"/bin/small", "mtime", testTime.Add(-2 * time.Hour)},
		{"/bin/small", "atime", testTime.Add(-2 * time.Hour)},
		{"/bin/small", "ctime", testTime.Add(-2 * time.Hour)},
		{"/bin/small", "crtime", testTime},
		{"/zero-time", "mtime", testTime},
		{"/future", "mtime", time.Date(2100, 1, 2, 3, 4, 5, 123456789, time.UTC)},
		{"/past", "mtime", time.Date(1960, 1, 2, 3, 4, 5, 0, time.UTC)},
	} {
		if got := statTime(t, stat[c.path], c.field); !got.Equal(c.want) {
			t.Errorf("%s: %s %v, want %v", c.path, c.field, got, c.want)
		}
	}

	// The huge file's data blocks hold the chunks; the rest are holes.
	src := entries[indexOf(entries, "/huge/sparse")].Data.(*sparseSource)
	checkBlocks(t, img, "/huge/sparse", src, []int64{0, 1, 524288, 524289, 524290, hugeSize / blockSize})
}

// checkBlocks reads blocks lbns of file p from the image, where debugfs
// maps them, and compares them with src: a block of zeros must be a hole.
func checkBlocks(t testing.TB, img, p string, src *sparseSource, lbns []int64) {
	t.Helper()
	cmds := make([]string, len(lbns))
	for i, lbn := range lbns {
		cmds[i] = fmt.Sprintf("bmap %s %d", quote(p), lbn)
	}
	bmaps := debugfs(t, img, cmds)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, lbn := range lbns {
		phys, err := strconv.ParseInt(strings.TrimSpace(bmaps[i]), 10, 64)
		if err != nil {
			t.Fatalf("bmap %d: %q", lbn, bmaps[i])
		}
		want := make([]byte, blockSize)
		sparseAt{src}.ReadAt(want, lbn*blockSize)
		if bytes.Equal(want, zeroBlock[:]) {
			if phys != 0 {
				t.Errorf("%s block %d: allocated (%d), want a hole", p, lbn, phys)
			}
			continue
		}
		got := make([]byte, blockSize)
		if _, err := f.ReadAt(got, phys*blockSize); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s block %d (at %d): content differs", p, lbn, phys)
		}
	}
}

func indexOf(entries []*appliance.Entry, p string) int {
	for i, e := range entries {
		if e.Path == p {
			return i
		}
	}
	return -1
}

func uuidString(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}

func TestUUIDFor(t *testing.T) {
	a, b := UUIDFor([]byte("x")), UUIDFor([]byte("y"))
	if a == b || a != UUIDFor([]byte("x")) {
		t.Fatalf("UUIDFor is not a function of its seed: %x %x", a, b)
	}
	if a[6]>>4 != 4 || a[8]>>6 != 2 {
		t.Errorf("UUIDFor = %x, not version 4, RFC 4122 variant", a)
	}
}

func TestReproducible(t *testing.T) {
	needTools(t)
	for _, c := range []struct {
		name string
		m    func(testing.TB) *appliance.Manifest
	}{
		{"generated", func(t testing.TB) *appliance.Manifest { return genTree(t, rand.New(rand.NewPCG(7, 7)), shapes[0]) }},
		{"extended attributes", xattrTree},
		{"sparse", func(t testing.TB) *appliance.Manifest { return sparseTree(t, false) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			entries := c.m(t).Entries()
			opt := Options{Size: imageSize(entries), UUID: UUIDFor([]byte("same")), Time: testTime}
			// Each write from a manifest of its own: nothing may depend on
			// memory addresses or map order.
			a, b := writeImage(t, entries, opt), writeImage(t, c.m(t).Entries(), opt)
			fsck(t, a)
			if hashFile(t, a) != hashFile(t, b) {
				t.Fatal("two writes of the same entries differ")
			}
		})
	}
}

func TestNoSpace(t *testing.T) {
	needTools(t)
	big := func(size int64) []*appliance.Entry {
		m := appliance.New()
		mustPut(t, m, appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0755})
		mustPut(t, m, appliance.Entry{Path: "/f", Kind: appliance.Regular, Mode: 0644, Size: size, Data: &sparseSource{size: size}})
		return m.Entries()
	}
	many := func(n int) []*appliance.Entry {
		m := appliance.New()
		mustPut(t, m, appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0755})
		for i := range n {
			mustPut(t, m, appliance.Entry{Path: fmt.Sprintf("/f%06d", i), Kind: appliance.Regular, Mode: 0644})
		}
		return m.Entries()
	}
	sparse := func(size int64, chunks ...chunk) []*appliance.Entry {
		m := appliance.New()
		mustPut(t, m, appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0755})
		mustPut(t, m, appliance.Entry{Path: "/f", Kind: appliance.Regular, Mode: 0644, Size: size, Sparse: true, Data: &sparseSource{size: size, chunks: chunks}})
		return m.Entries()
	}
	labelled := func(n int) []*appliance.Entry {
		m := appliance.New()
		mustPut(t, m, appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0755})
		for i := range n {
			mustPut(t, m, appliance.Entry{Path: fmt.Sprintf("/f%06d", i), Kind: appliance.Regular, Mode: 0644,
				Xattrs: []appliance.Xattr{{Name: "user.n", Value: []byte(strconv.Itoa(i))}}})
		}
		return m.Entries()
	}
	for _, c := range []struct {
		name    string
		entries []*appliance.Entry
		size    int64
	}{
		{"zero size", big(0), 0},
		{"smaller than metadata", big(0), 16 << 10},
		{"file larger than image", big(8 << 20), 4 << 20},
		// The data is all zeros, but holes only show while writing.
		{"sparse file larger than image", big(40 << 20), 32 << 20},
		// More inodes than one group's bitmap can track.
		{"inodes", many(40000), 64 << 20},
		{"one group short", big(130 << 20), 128 << 20},
		// Files marked sparse need the blocks of their extents.
		{"sparse extents larger than image", sparse(1<<40, chunk{1 << 30, bytes.Repeat([]byte{1}, 40<<20)}), 32 << 20},
		{"sparse extents far apart", sparse(1<<40, chunk{0, []byte{1}}, chunk{1 << 39, []byte{1}}, chunk{1<<40 - 1, []byte{1}}), 64 << 10},
		// Empty files, but each with its own attribute block.
		{"attribute blocks", labelled(3000), 8 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "root.img")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			err = write(context.Background(), f, c.entries, Options{Size: c.size, Time: testTime})
			if !errors.Is(err, ErrNoSpace) {
				t.Fatalf("Write = %v, want ErrNoSpace", err)
			}
			m := regexp.MustCompile(`^ext2: the appliance needs at least (\d+) MiB but the image is (\d+) MiB$`).FindStringSubmatch(err.Error())
			if m == nil {
				t.Fatalf("error %q does not say what is needed", err)
			}
			if fi, _ := f.Stat(); fi.Size() != 0 {
				t.Errorf("image is %d bytes after ErrNoSpace, want untouched", fi.Size())
			}
			// The size the error asks for must be enough.
			need, _ := strconv.ParseInt(m[1], 10, 64)
			if need<<20 <= c.size {
				t.Errorf("needs %d MiB, but the image of %d bytes did not do", need, c.size)
			}
			f2, err := os.Create(img + "2")
			if err != nil {
				t.Fatal(err)
			}
			defer f2.Close()
			if err := write(context.Background(), f2, c.entries, Options{Size: need << 20, Time: testTime}); err != nil {
				t.Fatalf("with the %d MiB the error asked for: %v", need, err)
			}
			fsck(t, f2.Name())
		})
	}
}

// source is a Source with a fixed reader, for bad data.
type source func() (io.ReadCloser, error)

func (s source) Open() (io.ReadCloser, error) { return s() }

func TestWriteErrors(t *testing.T) {
	root := &appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0755}
	reg := func(p string, size int64, data appliance.Source) *appliance.Entry {
		return &appliance.Entry{Path: p, Kind: appliance.Regular, Mode: 0644, Size: size, Data: data}
	}
	for _, c := range []struct {
		name    string
		entries []*appliance.Entry
		opt     Options
		want    string
	}{
		{"parent missing", []*appliance.Entry{root, reg("/a/b", 0, nil)}, Options{}, "/a/b: parent directory missing"},
		{"unsorted", []*appliance.Entry{root, reg("/a/b", 0, nil), {Path: "/a", Kind: appliance.Dir}}, Options{}, "/a/b: parent directory missing"},
		{"parent not a directory", []*appliance.Entry{root, reg("/a", 0, nil), reg("/a/b", 0, nil)}, Options{}, "/a/b: parent /a is a file"},
		{"root not a directory", []*appliance.Entry{reg("/", 0, nil)}, Options{}, "/: must be a directory"},
		{"duplicate", []*appliance.Entry{root, reg("/a", 0, nil), reg("/a", 0, nil)}, Options{}, "/a: duplicate"},
		{"unclean path", []*appliance.Entry{root, reg("/a/../b", 0, nil)}, Options{}, "not an absolute clean path"},
		{"relative path", []*appliance.Entry{root, reg("a", 0, nil)}, Options{}, "not an absolute clean path"},
		{"hard link to missing", []*appliance.Entry{root, {Path: "/l", Kind: appliance.Hardlink, Link: "/x"}}, Options{}, "/l: hard link to missing /x"},
		{"hard link to directory", []*appliance.Entry{root, {Path: "/d", Kind: appliance.Dir}, {Path: "/l", Kind: appliance.Hardlink, Link: "/d"}}, Options{}, "/l: hard link to /d, a directory"},
		{"lost+found not a directory", []*appliance.Entry{root, reg("/lost+found", 0, nil)}, Options{}, "/lost+found: must be a directory"},
		{"empty symlink", []*appliance.Entry{root, {Path: "/s", Kind: appliance.Symlink}}, Options{}, "/s: bad symlink target"},
		{"long symlink", []*appliance.Entry{root, {Path: "/s", Kind: appliance.Symlink, Link: strings.Repeat("x", 4096)}}, Options{}, "/s: bad symlink target"},
		{"device out of range", []*appliance.Entry{root, {Path: "/c", Kind: appliance.CharDev, Major: 4096}}, Options{}, "/c: device 4096:0 out of range"},
		{"long name", []*appliance.Entry{root, reg("/"+strings.Repeat("x", 256), 0, nil)}, Options{}, "name longer than 255 bytes"},
		{"unknown kind", []*appliance.Entry{root, {Path: "/k", Kind: 99}}, Options{}, "/k: unknown entry kind"},
		{"negative size", []*appliance.Entry{root, reg("/f", -1, nil)}, Options{}, "/f: size -1 out of range"},
		{"file too large for ext2", []*appliance.Entry{root, reg("/f", 3<<40, nil)}, Options{}, "/f: size 3298534883328 out of range"},
		{"short data", []*appliance.Entry{root, reg("/f", 10, appliance.Bytes("12345"))}, Options{}, "ext2: write /f: data is 5 bytes, the manifest says 10"},
		{"long data", []*appliance.Entry{root, reg("/f", 3, appliance.Bytes("12345"))}, Options{}, "ext2: write /f: data is longer than the 3 bytes"},
		{"nil data", []*appliance.Entry{root, reg("/f", 3, nil)}, Options{}, "ext2: write /f: no data for 3 bytes"},
		{"open fails", []*appliance.Entry{root, reg("/f", 3, source(func() (io.ReadCloser, error) { return nil, errors.New("gone") }))}, Options{}, "ext2: write /f: gone"},
		{"read fails", []*appliance.Entry{root, reg("/f", 3, source(func() (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(strings.NewReader("1"), errReader{})), nil
		}))}, Options{}, "ext2: write /f: broken"},
		{"long label", []*appliance.Entry{root}, Options{Label: strings.Repeat("l", 17)}, "label"},
		{"negative size option", []*appliance.Entry{root}, Options{Size: -1}, "negative image size"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.opt.Size == 0 {
				c.opt.Size = 16 << 20
			}
			wantWriteError(t, c.entries, c.opt, c.want)
		})
	}

	t.Run("image not empty", func(t *testing.T) {
		f, err := os.Create(filepath.Join(t.TempDir(), "root.img"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.WriteString("x")
		if err := write(context.Background(), f, []*appliance.Entry{root}, Options{Size: 16 << 20}); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("Write = %v, want a not-empty error", err)
		}
	})
}

// wantWriteError writes entries into a new image, checks that this fails
// with an error that says want, and returns the image's size after it.
func wantWriteError(t testing.TB, entries []*appliance.Entry, opt Options, want string) int64 {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "root.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = write(context.Background(), f, entries, opt)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Write = %v, want an error with %q", err, want)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("broken") }

// TestMinimal checks the smallest trees: no entries at all (a root is
// made up), and a root alone.
func TestMinimal(t *testing.T) {
	needTools(t)
	for _, c := range []struct {
		name    string
		entries []*appliance.Entry
	}{
		{"no entries", nil},
		{"root only", []*appliance.Entry{{Path: "/", Kind: appliance.Dir, Mode: 0700, UID: 5, GID: 6}}},
		{"lost+found given", []*appliance.Entry{{Path: "/", Kind: appliance.Dir, Mode: 0755},
			{Path: "/lost+found", Kind: appliance.Dir, Mode: 0700},
			{Path: "/lost+found/x", Kind: appliance.Regular, Mode: 0600, Size: 1, Data: appliance.Bytes("x")}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := writeImage(t, c.entries, Options{Size: 1 << 20, Time: testTime})
			fsck(t, img)
			compareTree(t, img, c.entries, "")
		})
	}
}

// memSource is data in memory that, unlike appliance.Bytes, is not copied
// on Open, so that the benchmark measures the writer.
type memSource []byte

func (m memSource) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(m)), nil }

// BenchmarkWriteManifest writes 10,000 small files in 100 directories and
// four large ones, all from memory, so that it measures the writer and the
// image's filesystem. MB/s counts file bytes.
func BenchmarkWriteManifest(b *testing.B) {
	needTools(b)
	r := rand.New(rand.NewPCG(3, 4))
	pool := randBytes(r, 32<<20)
	m := appliance.New()
	mustPut(b, m, appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0755})
	var total int64
	file := func(p string, size int) {
		off := r.IntN(len(pool) - size + 1)
		mustPut(b, m, appliance.Entry{Path: p, Kind: appliance.Regular, Mode: 0644, Size: int64(size), Data: memSource(pool[off : off+size])})
		total += int64(size)
	}
	for i := range 10000 {
		if i%100 == 0 {
			mustPut(b, m, appliance.Entry{Path: fmt.Sprintf("/d%02d", i/100), Kind: appliance.Dir, Mode: 0755})
		}
		// Sizes as in /usr: most files under 8 KiB, some up to 128 KiB.
		size := r.IntN(8 << 10)
		if r.IntN(10) == 0 {
			size = r.IntN(128 << 10)
		}
		file(fmt.Sprintf("/d%02d/f%04d", i/100, i), size)
	}
	mustPut(b, m, appliance.Entry{Path: "/large", Kind: appliance.Dir, Mode: 0755})
	for i := range 4 {
		file(fmt.Sprintf("/large/%d", i), 32<<20)
	}
	if err := m.Seal(); err != nil {
		b.Fatal(err)
	}
	opt := Options{Size: imageSize(m.Entries()), Time: testTime}
	img := filepath.Join(b.TempDir(), "bench.img")
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		os.Remove(img)
		f, err := os.Create(img)
		if err != nil {
			b.Fatal(err)
		}
		if err := NewWriter(f, opt).WriteManifest(context.Background(), m); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	fsck(b, img)
}
