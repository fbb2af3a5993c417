package baseimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/ulikunitz/xz"
)

// unpackFile writes data to dir/base.tar.gz and unpacks it into m.
func unpackFile(t testing.TB, m *appliance.Manifest, data []byte, spool *Spool) (string, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "base.tar.gz")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return file, Unpack(context.Background(), m, file, spool)
}

func newSpool(t testing.TB) *Spool {
	t.Helper()
	s, err := NewSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func read(t testing.TB, e *appliance.Entry) []byte {
	t.Helper()
	if e.Data == nil {
		return nil
	}
	rc, err := e.Data.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reg(name, data string) entry {
	return entry{tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: epoch}, data}
}

func TestUnpackRules(t *testing.T) {
	dumpdir := concat(rawHeader("./d", 'D', 0, nil))
	volume := concat(rawHeader("label", 'V', 0, nil))
	for _, tc := range []struct {
		name  string
		data  []byte
		entry string // the entry the error names
		want  string
	}{
		{"dotdot", tarWith(t, tar.FormatPAX, reg("./etc/../../escape", "x")), "./etc/../../escape", ".. component"},
		{"absolute", tarWith(t, tar.FormatPAX, reg("/etc/passwd", "x")), "/etc/passwd", "absolute name"},
		{"through symlink", tarWith(t, tar.FormatPAX,
			entry{tar.Header{Name: "./etc/link", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}, ""},
			reg("./etc/link/evil", "x")), "./etc/link/evil", "would write through symlink /etc/link"},
		{"through a file", tarWith(t, tar.FormatPAX, reg("./etc/f", "x"), reg("./etc/f/g/h", "x")), "./etc/f/g/h", "would write through file /etc/f"},
		{"hard link outside", tarWith(t, tar.FormatPAX,
			entry{tar.Header{Name: "./etc/h", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}, ""}), "./etc/h", ".. component"},
		{"hard link absolute", tarWith(t, tar.FormatPAX,
			entry{tar.Header{Name: "./etc/h", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}, ""}), "./etc/h", "hard link to absolute name"},
		{"hard link missing", tarWith(t, tar.FormatPAX,
			entry{tar.Header{Name: "./etc/h", Typeflag: tar.TypeLink, Linkname: "etc/nothing"}, ""}), "./etc/h", "not a regular file"},
		{"hard link to a directory", tarWith(t, tar.FormatPAX,
			entry{tar.Header{Name: "./etc/", Typeflag: tar.TypeDir}, ""},
			entry{tar.Header{Name: "./h", Typeflag: tar.TypeLink, Linkname: "./etc"}, ""}), "./h", "not a regular file"},
		{"empty symlink", tarWith(t, tar.FormatGNU, entry{tar.Header{Name: "./l", Typeflag: tar.TypeSymlink}, ""}), "./l", "empty target"},
		{"owner -1", tarWith(t, tar.FormatPAX, entry{tar.Header{Name: "./f", Typeflag: tar.TypeReg, Uid: 1<<32 - 1}, ""}), "./f", "4294967295 ((uid_t)-1) is not a valid owner"},
		{"owner too big", tarWith(t, tar.FormatPAX, entry{tar.Header{Name: "./f", Typeflag: tar.TypeReg, Gid: 1 << 33}, ""}), "./f", "out of range"},
		{"device too big", tarWith(t, tar.FormatGNU, entry{tar.Header{Name: "./c", Typeflag: tar.TypeChar, Devmajor: 1 << 33}, ""}), "./c", "device number out of range"},
		{"dumpdir", dumpdir, "./d", "unsupported tar entry type 'D'"},
		{"volume label", volume, "label", "unsupported tar entry type 'V'"},
		{"NUL in a pax name", concat(paxHeader('x', "path=a\x00b"), rawHeader("x", '0', 0, nil)), "a\x00b", "NUL"},
		{"directory replaced", tarWith(t, tar.FormatPAX,
			entry{tar.Header{Name: "./d/", Typeflag: tar.TypeDir}, ""}, reg("./d/f", ""), reg("./d", "")), "./d", "cannot replace a non-empty directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file, err := unpackFile(t, appliance.New(), tc.data, nil)
			prefix := fmt.Sprintf("%s: entry %q: ", file, tc.entry)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("error %v, want one starting %q and saying %q", err, prefix, tc.want)
			}
		})
	}
}

func TestUnpackEntries(t *testing.T) {
	m := appliance.New()
	if err := m.Put(appliance.Entry{Path: "/usr/bin/host", Kind: appliance.Regular, Size: 4, Data: appliance.Bytes("host")}); err != nil {
		t.Fatal(err)
	}
	data := tarWith(t, tar.FormatPAX,
		entry{tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o700}, ""},
		entry{tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}, ""},
		entry{tar.Header{Name: "./etc/passwd", Typeflag: tar.TypeReg, Mode: 0o104644, Uid: 5, Gid: 6, ModTime: epoch.Add(5e8)}, "first"},
		reg("./etc/passwd", "second"),
		entry{tar.Header{Name: "etc/hard", Typeflag: tar.TypeLink, Linkname: "./etc/passwd", Mode: 0o600, Uid: 9}, ""},
		entry{tar.Header{Name: "./etc/layer", Typeflag: tar.TypeLink, Linkname: "usr/bin/host"}, ""},
		entry{tar.Header{Name: "./etc/sym", Typeflag: tar.TypeSymlink, Linkname: "../x"}, ""},
		entry{tar.Header{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}, ""},
		entry{tar.Header{Name: "./dev/sda", Typeflag: tar.TypeBlock, Devmajor: 8, Devminor: 1 << 20}, ""},
		entry{tar.Header{Name: "./run/p", Typeflag: tar.TypeFifo, Mode: 0o1777}, ""},
		reg("./empty", ""),
	)
	if _, err := unpackFile(t, m, data, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Get("/"); ok {
		t.Error(`"./" made a root entry; the root's metadata is the host's`)
	}
	want := map[string]string{
		"/etc":          "directory 755 0:0",
		"/etc/passwd":   "file 644 0:0 second",
		"/etc/hard":     "file 644 0:0 second",
		"/etc/layer":    "file 0 0:0 host",
		"/etc/sym":      "symlink 0 0:0 ../x",
		"/dev/null":     "char device 666 0:0 1,3",
		"/dev/sda":      "block device 0 0:0 8,1048576",
		"/run/p":        "fifo 1777 0:0",
		"/empty":        "file 644 0:0",
		"/usr/bin/host": "file 0 0:0 host",
	}
	if m.Len() != len(want) {
		t.Errorf("%d entries, want %d", m.Len(), len(want))
	}
	for p, w := range want {
		e, ok := m.Get(p)
		if !ok {
			t.Errorf("%s missing", p)
			continue
		}
		got := fmt.Sprintf("%s %o %d:%d", e.Kind, e.Mode, e.UID, e.GID)
		switch e.Kind {
		case appliance.Regular:
			if e.Size != int64(len(read(t, e))) {
				t.Errorf("%s: size %d, data %d bytes", p, e.Size, len(read(t, e)))
			}
			if e.Size > 0 {
				got += " " + string(read(t, e))
			}
		case appliance.Symlink:
			got += " " + e.Link
		case appliance.CharDev, appliance.BlockDev:
			got += fmt.Sprintf(" %d,%d", e.Major, e.Minor)
		}
		if got != w {
			t.Errorf("%s: %s, want %s", p, got, w)
		}
	}
	if e, _ := m.Get("/etc/passwd"); !e.ModTime.Equal(epoch) {
		t.Errorf("mtime %v, want %v", e.ModTime, epoch)
	}
}

// zeroBlocks is 40 KiB: data, a zero block, data with zeros inside,
// two zero blocks, then a partly zero block.
func zeroBlocks() []byte {
	b := make([]byte, 40<<10)
	fill := func(off, n int) {
		for i := off; i < off+n; i++ {
			b[i] = byte(i%251 + 1)
		}
	}
	fill(0, 4096)
	fill(8192, 100)
	fill(12188, 4)
	fill(7*4096, 4096)
	fill(9*4096, 10)
	return b
}

func TestUnpackSpoolsWithoutZeros(t *testing.T) {
	content := zeroBlocks()
	data := tarWith(t, tar.FormatPAX, reg("./f", string(content)), reg("./z", string(make([]byte, 1<<20))))
	spool := newSpool(t)
	m := appliance.New()
	lim := limits{small: 1024, mem: 1 << 20, meta: metaBudget}
	if err := unpack(context.Background(), m, bytes.NewReader(data), spool, lim); err != nil {
		t.Fatal(err)
	}
	e, _ := m.Get("/f")
	if !e.Sparse || e.Size != int64(len(content)) {
		t.Fatalf("entry %+v: want a sparse %d-byte file", e, len(content))
	}
	ext, err := e.Data.(appliance.SparseSource).Extents()
	if err != nil {
		t.Fatal(err)
	}
	// Zero blocks are left out whole; zeros inside a block with data stay.
	wantExt := "[{0 4096} {8192 4096} {28672 4096} {36864 4096}]"
	if fmt.Sprint(ext) != wantExt {
		t.Errorf("extents %v, want %s", ext, wantExt)
	}
	if !bytes.Equal(read(t, e), content) {
		t.Error("data differs")
	}
	z, _ := m.Get("/z")
	if ext, _ := z.Data.(appliance.SparseSource).Extents(); !z.Sparse || len(ext) != 0 || z.Size != 1<<20 {
		t.Errorf("all-zero file: sparse %v extents %v size %d", z.Sparse, ext, z.Size)
	}
	if !bytes.Equal(read(t, z), make([]byte, 1<<20)) {
		t.Error("all-zero file reads wrong")
	}
	if spool.Size() != 4*4096 {
		t.Errorf("spool holds %d bytes, want %d", spool.Size(), 4*4096)
	}
}

func TestUnpackSparseEntries(t *testing.T) {
	want := expandSparse()
	for _, name := range []string{"sparse-gnu", "sparse-pax0.0", "sparse-pax0.1", "sparse-pax1.0"} {
		t.Run(name, func(t *testing.T) {
			data := gunzipFile(t, filepath.Join("testdata", name+".tar.gz"))
			m := appliance.New()
			lim := limits{small: 1024, mem: 1 << 20, meta: metaBudget}
			if err := unpack(context.Background(), m, bytes.NewReader(data), newSpool(t), lim); err != nil {
				t.Fatal(err)
			}
			e, ok := m.Get("/sparse")
			if !ok || !e.Sparse || e.Size != 64<<10 {
				t.Fatalf("entry %+v", e)
			}
			ext, _ := e.Data.(appliance.SparseSource).Extents()
			if len(ext) != 6 || ext[5] != (appliance.Extent{Off: 40960, Len: 4096}) {
				t.Errorf("extents %v", ext)
			}
			if !bytes.Equal(read(t, e), want) {
				t.Error("data differs")
			}
		})
	}
}

func TestUnpackMemoryBudget(t *testing.T) {
	var entries []entry
	for i := 0; i < 20; i++ {
		entries = append(entries, reg(fmt.Sprintf("./f%02d", i), strings.Repeat(string(rune('a'+i)), 1000)))
	}
	entries = append(entries, reg("./big", strings.Repeat("x", 2000)))
	data := tarWith(t, tar.FormatPAX, entries...)
	m := appliance.New()
	lim := limits{small: 1000, mem: 10000, meta: metaBudget}
	if err := unpack(context.Background(), m, bytes.NewReader(data), newSpool(t), lim); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		e, _ := m.Get(fmt.Sprintf("/f%02d", i))
		_, inMem := e.Data.(appliance.Bytes)
		if inMem != (i < 10) {
			t.Errorf("f%02d in memory: %v", i, inMem)
		}
		if string(read(t, e)) != strings.Repeat(string(rune('a'+i)), 1000) {
			t.Errorf("f%02d: data differs", i)
		}
	}
	if e, _ := m.Get("/big"); e.Sparse || string(read(t, e)) != strings.Repeat("x", 2000) {
		t.Errorf("big: sparse %v or data wrong", e.Sparse)
	}

	err := unpack(context.Background(), appliance.New(), bytes.NewReader(data), nil, lim)
	if err == nil || !strings.Contains(err.Error(), "no spool") {
		t.Errorf("without a spool: %v", err)
	}
	lim.meta = 10 * entryCost
	err = unpack(context.Background(), appliance.New(), bytes.NewReader(data), nil, lim)
	if err == nil || !strings.Contains(err.Error(), "more than 0 MiB") || !strings.HasPrefix(err.Error(), `entry "./f09"`) {
		t.Errorf("over the entry budget: %v", err)
	}
}

func TestUnpackCompressions(t *testing.T) {
	plain := tarWith(t, tar.FormatGNU, reg("./etc/a", "alpha"), reg("./etc/b", strings.Repeat("beta", 30000)))
	var gz2 bytes.Buffer // two gzip members, split inside the archive
	for _, part := range [][]byte{plain[:700], plain[700:]} {
		zw := gzip.NewWriter(&gz2)
		zw.Write(part)
		zw.Close()
	}
	var xzb bytes.Buffer
	xw, _ := xz.NewWriter(&xzb)
	xw.Write(plain)
	xw.Close()
	badCRC := bytes.Clone(gz2.Bytes())
	badCRC[len(badCRC)-6] ^= 1
	for _, tc := range []struct {
		name string
		data []byte
		err  string
	}{
		{"plain", plain, ""},
		{"gzip members", gz2.Bytes(), ""},
		{"xz", xzb.Bytes(), ""},
		{"gzip checksum", badCRC, "after the end of the archive: gzip: invalid checksum"},
		{"truncated xz", xzb.Bytes()[:xzb.Len()/2], "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := appliance.New()
			_, err := unpackFile(t, m, tc.data, newSpool(t))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a, _ := m.Get("/etc/a")
			b, _ := m.Get("/etc/b")
			if a == nil || b == nil || string(read(t, a)) != "alpha" || string(read(t, b)) != strings.Repeat("beta", 30000) {
				t.Error("entries differ")
			}
		})
	}
}

// endless is a tar member of 1 TiB whose data never ends.
type endless struct{ head []byte }

func (e *endless) Read(p []byte) (int, error) {
	if len(e.head) > 0 {
		n := copy(p, e.head)
		e.head = e.head[n:]
		return n, nil
	}
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestUnpackCancel(t *testing.T) {
	// A file's data is read in chunks; the data of "./", skipped, too.
	for _, name := range []string{"big", "./"} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- unpack(ctx, appliance.New(), &endless{head: rawHeader(name, '0', 1<<40, nil)}, newSpool(t), defaultLimits)
		}()
		time.Sleep(50 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: error %v, want context.Canceled", name, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: Unpack did not stop when cancelled", name)
		}
	}
}

func TestSpool(t *testing.T) {
	dir := t.TempDir()
	s, err := NewSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 300<<10)
	for i := range data {
		if (i/4096)%3 != 1 {
			data[i] = byte(i*7 + 1)
		}
	}
	m := appliance.New()
	lim := limits{small: 1024, mem: 1 << 20, meta: metaBudget}
	if err := unpack(context.Background(), m, bytes.NewReader(tarWith(t, tar.FormatPAX, reg("./f", string(data)))), s, lim); err != nil {
		t.Fatal(err)
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Errorf("the spool has a name in %s: %v", dir, names)
	}
	e, _ := m.Get("/f")
	src := e.Data.(*spooled)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			off := int64(g * 12345)
			buf := make([]byte, 50000)
			n, err := src.ReadAt(buf, off)
			if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
				t.Errorf("ReadAt at %d: %d bytes, %v", off, n, err)
			}
			if got := read(t, e); !bytes.Equal(got, data) {
				t.Errorf("reader %d: data differs", g)
			}
		}(g)
	}
	wg.Wait()
	if n, err := src.ReadAt(make([]byte, 10), int64(len(data)-4)); n != 4 || err != io.EOF {
		t.Errorf("ReadAt across the end: %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rc, _ := e.Data.Open()
	if _, err := io.ReadAll(rc); err == nil {
		t.Error("reading a closed spool worked")
	}
	if _, err := NewSpool(filepath.Join(dir, "missing")); err == nil {
		t.Error("a spool in a missing directory")
	}
	old, err := newUnlinkedSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if at, err := old.write([]byte("data")); err != nil || at != 0 {
		t.Fatalf("write: %d, %v", at, err)
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Errorf("the unlinked spool left %v in %s", names, dir)
	}
}

func TestOpenFileRefuses(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	link := filepath.Join(dir, "link")
	if err := os.Symlink("fifo", link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{fifo, "is a named pipe (FIFO), not a regular file"},
		{link, "is a named pipe (FIFO), not a regular file"},
		{sock, "is a socket, not a regular file"},
		{"/dev/null", "is a character device, not a regular file"},
		{dir, "is a directory, not a regular file"},
		{filepath.Join(dir, "missing"), "no such file or directory"},
	} {
		done := make(chan error, 1)
		go func() { done <- Unpack(context.Background(), appliance.New(), tc.path, nil) }()
		select {
		case err := <-done:
			if err == nil || err.Error() != tc.path+": "+tc.want {
				t.Errorf("Unpack(%s): %v, want %q", tc.path, err, tc.path+": "+tc.want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Unpack(%s) hangs", tc.path)
		}
	}
}

// TestUnpackReproducible: the same image gives the same entries, the same
// extents and the same spool layout.
func TestUnpackReproducible(t *testing.T) {
	data := tarWith(t, tar.FormatPAX, reg("./a", string(zeroBlocks())), reg("./b", strings.Repeat("b", 70000)), reg("./c", "small"))
	data = append(data[:len(data)-2*blockSize], gunzipFile(t, filepath.Join("testdata", "sparse-pax1.0.tar.gz"))...)
	var runs []string
	for i := 0; i < 2; i++ {
		m := appliance.New()
		lim := limits{small: 1024, mem: 1 << 20, meta: metaBudget}
		if err := unpack(context.Background(), m, bytes.NewReader(data), newSpool(t), lim); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, e := range m.Entries() {
			fmt.Fprintf(&b, "%s %d %v %x", e.Path, e.Size, e.Sparse, read(t, e))
			if s, ok := e.Data.(*spooled); ok {
				fmt.Fprintf(&b, " %v", s.pieces)
			}
			b.WriteString("\n")
		}
		runs = append(runs, b.String())
	}
	if runs[0] != runs[1] {
		t.Errorf("two runs differ:\n%.500s\n%.500s", runs[0], runs[1])
	}
	if !strings.Contains(runs[0], "/sparse 65536 true") || !strings.Contains(runs[0], "/a 40960 true") {
		t.Errorf("unexpected entries:\n%.300s", runs[0])
	}
}
