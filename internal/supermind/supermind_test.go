package supermind

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ulikunitz/xz"
)

func tarOf(t testing.TB, name, data string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(tw, data)
	tw.Close()
	return buf.Bytes()
}

func gz(data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

func xzOf(data []byte) []byte {
	var buf bytes.Buffer
	zw, _ := xz.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

func TestSniff(t *testing.T) {
	tarData := tarOf(t, "./etc/x", "hi")
	for _, tc := range []struct {
		name string
		data []byte
		kind Kind
		err  string
	}{
		{"empty", nil, Empty, ""},
		{"tar", tarData, BaseImage, ""},
		{"tar.gz", gz(tarData), BaseImage, ""},
		{"tar.xz", xzOf(tarData), BaseImage, ""},
		{"hostfiles", []byte("/etc/hosts\n"), HostFiles, ""},
		{"excludes", []byte("-/usr/share/doc/*\n"), Excludes, ""},
		{"packages", []byte("bash\ncoreutils\n"), Packages, ""},
		{"packages digit", []byte("0ad\n"), Packages, ""},
		{"truncated gzip", gz(tarData)[:40], 0, "gzip: truncated"},
		{"gzip header only", gz(tarData)[:5], 0, "gzip: truncated"},
		{"gzip not tar", gz([]byte("hello")), 0, "gzip-compressed file is not a tar archive"},
		{"xz not tar", xzOf([]byte("hello")), 0, "xz-compressed file is not a tar archive"},
		{"truncated xz", xzOf(tarData)[:30], 0, "xz: truncated"},
		{"cpio", []byte("070701000000"), 0, "cpio"},
		{"old cpio", []byte("070707000000"), 0, "cpio"},
		{"binary", []byte{0x7f, 'E', 'L', 'F'}, 0, "unknown file type"},
		{"space", []byte(" bash\n"), 0, "unknown file type"},
		{"short ustar", []byte(strings.Repeat("\x00", 257) + "ustar"), BaseImage, ""},
	} {
		kind, err := Sniff(bytes.NewReader(tc.data))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || kind != tc.kind {
			t.Errorf("%s: kind %v err %v, want %v", tc.name, kind, err, tc.kind)
		}
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "supermin.d")
	write(t, filepath.Join(d, "b-packages"), "zeta\n")
	write(t, filepath.Join(d, "a-packages"), "alpha\n beta \r\n\n")
	write(t, filepath.Join(d, "sub", "x"), "-/a*\n-/b\n")
	write(t, filepath.Join(d, "sub", "empty"), "")
	write(t, filepath.Join(d, "c-hostfiles"), "/etc/hosts\n/etc/*.conf")
	write(t, filepath.Join(d, "base.tar.gz"), string(gz(tarOf(t, "./etc/x", "x"))))
	write(t, filepath.Join(d, "a.tar"), string(tarOf(t, "./etc/y", "y")))
	write(t, filepath.Join(dir, "outside"), "gamma\n")
	if err := os.Symlink("../outside", filepath.Join(d, "d-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("supermin.d", filepath.Join(dir, "link.d")); err != nil {
		t.Fatal(err)
	}
	for _, input := range []string{d, filepath.Join(dir, "link.d")} {
		in, err := Read([]string{input, filepath.Join(dir, "outside")})
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join([]string{
			strings.Join(in.Packages, ","), strings.Join(in.Excludes, ","),
			strings.Join(in.HostFiles, ","), strings.Join(in.BaseImages, ","),
			strings.Join(in.Files, ","),
		}, "|")
		got = strings.ReplaceAll(got, input+"/", "")
		got = strings.ReplaceAll(got, dir+"/", "")
		want := "alpha, beta ,zeta,gamma,gamma|/a*,/b|/etc/hosts,/etc/*.conf|a.tar,base.tar.gz|" +
			"a-packages,a.tar,b-packages,base.tar.gz,c-hostfiles,d-link,sub/empty,sub/x,outside"
		if got != want {
			t.Errorf("Read(%s):\n got %s\nwant %s", input, got, want)
		}
	}
}

// readWithin fails rather than hangs when Read blocks.
func readWithin(t *testing.T, paths ...string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := Read(paths)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("Read(%v) hangs", paths)
		return nil
	}
}

func TestReadRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, d string) string // returns the path the error names
		want  string
	}{
		{"fifo", func(t *testing.T, d string) string {
			p := filepath.Join(d, "fifo")
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, "is a named pipe (FIFO), not a regular file"},
		{"socket", func(t *testing.T, d string) string {
			p := filepath.Join(d, "sock")
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return p
		}, "is a socket, not a regular file"},
		{"dotdot symlink", func(t *testing.T, d string) string {
			p := filepath.Join(d, "up")
			if err := os.Symlink("..", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "a symlink to a directory"},
		{"symlink to a directory", func(t *testing.T, d string) string {
			p := filepath.Join(d, "etc")
			if err := os.Symlink("/etc", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "a symlink to a directory"},
		{"symlink to a FIFO", func(t *testing.T, d string) string {
			if err := syscall.Mkfifo(filepath.Join(d, "..", "fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(d, "pipe")
			if err := os.Symlink("../fifo", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "is a named pipe (FIFO)"},
		{"symlink to a device", func(t *testing.T, d string) string {
			p := filepath.Join(d, "null")
			if err := os.Symlink("/dev/null", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "is a character device"},
		{"dangling symlink", func(t *testing.T, d string) string {
			p := filepath.Join(d, "gone")
			if err := os.Symlink("nothing", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "no such file"},
		{"excludefiles line", func(t *testing.T, d string) string {
			p := filepath.Join(d, "ex")
			write(t, p, "-/a\n/b\n")
			return p
		}, `excludefiles line "/b" does not start with -`},
		{"list too large", func(t *testing.T, d string) string {
			p := filepath.Join(d, "big")
			write(t, p, "a"+strings.Repeat("\n", MaxList))
			return p
		}, "a packages file larger than 16 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "supermin.d")
			write(t, filepath.Join(d, "packages"), "bash\n")
			named := tc.setup(t, d)
			err := readWithin(t, d)
			want := "input " + named + ": "
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q...%q", err, want, tc.want)
			}
		})
	}
	t.Run("fifo named as an input", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "fifo")
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := readWithin(t, p); err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Fatalf("error %v", err)
		}
	})
}

// bomb writes a tar.gz whose one member is size bytes of zeros, streaming.
func bomb(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "./zeros", Typeflag: tar.TypeReg, Size: size, Mode: 0o644})
	zero := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(zero)) {
		tw.Write(zero)
	}
	tw.Close()
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestSniffReadsLittle: a gzip bomb is recognised from its first bytes.
func TestSniffReadsLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 1 GiB gzip bomb (1 MiB on disk)")
	}
	p := filepath.Join(t.TempDir(), "bomb.tar.gz")
	bomb(t, p, 1<<30)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cr := &countingReader{r: f}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	kind, err := Sniff(cr)
	runtime.ReadMemStats(&after)
	if err != nil || kind != BaseImage {
		t.Fatalf("kind %v, %v", kind, err)
	}
	if cr.n > 64<<10 {
		t.Errorf("Sniff read %d bytes of the file; it needs its first block only", cr.n)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("Sniff allocated %d bytes", alloc)
	}
	in, err := Read([]string{p})
	if err != nil || len(in.BaseImages) != 1 {
		t.Fatalf("Read: %+v, %v", in, err)
	}
}

func FuzzSniff(f *testing.F) {
	tarData := tarOf(f, "./etc/x", "hi")
	f.Add(gz(tarData))
	f.Add(xzOf(tarData))
	f.Add(tarData)
	f.Add([]byte("/etc/*\n"))
	f.Add([]byte("-/usr/share/doc/*\n"))
	f.Add([]byte("bash\n"))
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, err := Sniff(bytes.NewReader(data))
		if err != nil {
			return
		}
		var ok bool
		switch kind {
		case Empty:
			ok = len(data) == 0
		case BaseImage:
			ok = bytes.HasPrefix(data, []byte{0x1f, 0x8b}) || bytes.HasPrefix(data, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) ||
				len(data) >= 262 && string(data[257:262]) == "ustar"
		case HostFiles:
			ok = data[0] == '/'
		case Excludes:
			ok = data[0] == '-'
		case Packages:
			c := data[0]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		}
		if !ok {
			t.Fatalf("%q sniffed as %v", data[:min(len(data), 64)], kind)
		}
		// The same bytes read in two pieces sniff the same.
		again, err := Sniff(io.MultiReader(bytes.NewReader(data[:len(data)/2]), bytes.NewReader(data[len(data)/2:])))
		if err != nil || again != kind {
			t.Fatalf("split reads: %v, %v; want %v", again, err, kind)
		}
	})
}
