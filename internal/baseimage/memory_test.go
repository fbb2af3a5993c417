package baseimage

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/appliance"
)

// maxRSS is the peak memory a child unpacking any of the hostile images
// below may reach, Go runtime and test binary included.
const maxRSS = 100 << 20

// writeBomb writes a tar.gz, streaming: its one member is size bytes of
// what fill puts in each 1 MiB.
func writeBomb(t testing.TB, path string, size int64, fill func([]byte)) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "./bomb", Typeflag: tar.TypeReg, Size: size, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	fill(buf)
	for n := int64(0); n < size; n += int64(len(buf)) {
		tw.Write(buf[:min(int64(len(buf)), size-n)])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
}

// writeXZBomb writes, with xz, a tar.xz whose one member is size bytes
// of zeros, and makes its block header ask for a 4 GiB dictionary.
func writeXZBomb(t testing.TB, path string, size int64) {
	t.Helper()
	needTool(t, "xz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("xz", "-0", "-T1", "-c")
	cmd.Stdout = f
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(w)
	tw.WriteHeader(&tar.Header{Name: "./bomb", Typeflag: tar.TypeReg, Size: size, Mode: 0o644})
	zero := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(zero)) {
		tw.Write(zero)
	}
	tw.Close()
	w.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1024)
	if _, err := f.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	claimHugeDict(t, head)
	if _, err := f.WriteAt(head, 0); err != nil {
		t.Fatal(err)
	}
}

// writeSparse makes, with GNU tar, a pax archive of a file of 100 GiB
// holding 5 bytes at 50 GiB.
func writeSparse(t testing.TB, dir string) string {
	t.Helper()
	needTool(t, "tar")
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(src, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100 << 30); err != nil {
		t.Skipf("no 100 GiB sparse file here: %v", err)
	}
	if _, err := f.WriteAt([]byte("hello"), 50<<30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "sparse.tar")
	run(t, src, "tar", "--sparse", "--format=posix", "-cf", out, "big")
	if fi, err := os.Stat(out); err != nil || fi.Size() > 1<<20 {
		t.Skipf("tar could not find the holes here (%v): a %d-byte archive", err, fi.Size())
	}
	return out
}

// writeManyEntries writes a tar.gz of n empty files with long names: a
// bomb of metadata.
func writeManyEntries(t testing.TB, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	dir := strings.Repeat("d", 200)
	for i := 0; i < n; i++ {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("./%s/%s%09d", dir, dir, i), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestUnpackMemory unpacks hostile images in a child process each and
// checks its peak memory (max RSS), whatever the image expands to.
func TestUnpackMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and unpacks gigabyte bombs")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		make func() string
		want string // the child's report
	}{
		{"sparse 100 GiB", func() string { return writeSparse(t, dir) }, "/big: 107374182400 bytes, sparse, 4096 stored"},
		{"gzip bomb 1 GiB of zeros", func() string {
			p := filepath.Join(dir, "zeros.tar.gz")
			writeBomb(t, p, 1<<30, func([]byte) {})
			return p
		}, "/bomb: 1073741824 bytes, sparse, 0 stored"},
		{"gzip bomb 256 MiB of data", func() string {
			p := filepath.Join(dir, "data.tar.gz")
			writeBomb(t, p, 256<<20, func(b []byte) {
				for i := range b {
					b[i] = byte(i%251 + 1)
				}
			})
			return p
		}, "/bomb: 268435456 bytes, dense, 268435456 stored"},
		{"xz asking for a 4 GiB dictionary, 256 MiB of zeros", func() string {
			p := filepath.Join(dir, "zeros.tar.xz")
			writeXZBomb(t, p, 256<<20)
			return p
		}, "/bomb: 268435456 bytes, sparse, 0 stored"},
		{"100,000 entries", func() string {
			p := filepath.Join(dir, "many.tar.gz")
			writeManyEntries(t, p, 100000)
			return p
		}, "the archive's entries need more than 32 MiB of memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.make()
			cmd := exec.Command(os.Args[0], "-test.run=^TestUnpackMemoryChild$", "-test.v")
			cmd.Env = append(os.Environ(), "BASEIMAGE_MEMORY_CHILD="+file)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("child reported:\n%s\nwant %q", out, tc.want)
			}
			// The child's own peak: ru_maxrss would start from the
			// parent's, as Go's vfork shares its memory until exec.
			var hwm int64
			if _, err := fmt.Sscanf(string(out[strings.Index(string(out), "VmHWM:"):]), "VmHWM: %d kB", &hwm); err != nil {
				t.Fatalf("no peak in the child's report: %v\n%s", err, out)
			}
			rss := hwm << 10
			t.Logf("peak RSS %d MiB", rss>>20)
			if rss > maxRSS {
				t.Errorf("peak RSS %d MiB, want at most %d MiB", rss>>20, maxRSS>>20)
			}
		})
	}
}

// TestUnpackMemoryChild is TestUnpackMemory's child: it unpacks the file
// named by BASEIMAGE_MEMORY_CHILD and reports what it made.
func TestUnpackMemoryChild(t *testing.T) {
	file := os.Getenv("BASEIMAGE_MEMORY_CHILD")
	if file == "" {
		t.Skip("run by TestUnpackMemory")
	}
	spool, err := NewSpool(filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	defer func() {
		status, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				fmt.Println(strings.Join(strings.Fields(l), " "))
			}
		}
	}()
	m := appliance.New()
	if err := Unpack(context.Background(), m, file, spool); err != nil {
		fmt.Println("error:", err)
		return
	}
	for _, e := range m.Entries() {
		kind, stored := "dense", e.Size
		if ss, ok := e.Data.(*spooled); ok {
			stored = ss.stored()
		}
		if e.Sparse {
			kind = "sparse"
		}
		fmt.Printf("%s: %d bytes, %s, %d stored\n", e.Path, e.Size, kind, stored)
		// Read it all, as a writer would: holes cost no memory either.
		if e.Size < 2<<30 {
			rc, _ := e.Data.Open()
			if n, err := io.Copy(io.Discard, rc); err != nil || n != e.Size {
				t.Errorf("%s: read %d bytes, %v", e.Path, n, err)
			}
		}
	}
}

// BenchmarkUnpack: a typical base image (config files), a large file
// spooled, a sparse file, and many entries (it reports what one costs).
func BenchmarkUnpack(b *testing.B) {
	dir := b.TempDir()
	config := filepath.Join(dir, "config.tar.gz")
	{
		f, _ := os.Create(config)
		zw := gzip.NewWriter(f)
		tw := tar.NewWriter(zw)
		for i := 0; i < 500; i++ {
			data := strings.Repeat(fmt.Sprintf("option%d = value\n", i), 100)
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("./etc/conf%d/file", i), Typeflag: tar.TypeReg, Size: int64(len(data)), Mode: 0o644})
			io.WriteString(tw, data)
		}
		tw.Close()
		zw.Close()
		f.Close()
	}
	large := filepath.Join(dir, "large.tar.gz")
	writeBomb(b, large, 64<<20, func(p []byte) {
		for i := range p {
			p[i] = byte(i*i>>3 + 1)
		}
	})
	many := filepath.Join(dir, "many.tar.gz")
	writeManyEntries(b, many, 20000)
	for _, bc := range []struct {
		name, file string
		bytes      int64
	}{
		{"config-files", config, 0},
		{"large-file", large, 64 << 20},
		{"many-entries", many, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			spool := newSpool(b)
			b.SetBytes(bc.bytes)
			b.ReportAllocs()
			for b.Loop() {
				m := appliance.New()
				if err := Unpack(context.Background(), m, bc.file, spool); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
