package cpio_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/cpio"
)

var when = time.Unix(1700000000, 0)

func sample(t *testing.T) *appliance.Manifest {
	t.Helper()
	m := appliance.New()
	for _, e := range []appliance.Entry{
		{Path: "/", Kind: appliance.Dir, Mode: 0o755},
		{Path: "/bin", Kind: appliance.Symlink, Link: "usr/bin", Mode: 0o777},
		{Path: "/data", Kind: appliance.Dir, Mode: 0o1777},
		{Path: "/data/a", Kind: appliance.Regular, Mode: 0o4755, Size: 6, Data: appliance.Bytes("hello\n")},
		{Path: "/data/b", Kind: appliance.Hardlink, Link: "/data/a", Mode: 0o4755},
		{Path: "/data/c", Kind: appliance.Hardlink, Link: "/data/a", Mode: 0o4755},
		{Path: "/data/empty", Kind: appliance.Regular, Mode: 0o600, UID: 1000, GID: 100000},
		{Path: "/data/odd", Kind: appliance.Regular, Mode: 0o644, Size: 3, Data: appliance.Bytes("xyz")},
		{Path: "/dev", Kind: appliance.Dir, Mode: 0o755},
		{Path: "/dev/console", Kind: appliance.CharDev, Mode: 0o600, Major: 5, Minor: 1},
		{Path: "/dev/nvme0n1", Kind: appliance.BlockDev, Mode: 0o660, GID: 6, Major: 259, Minor: 300000},
		{Path: "/dev/big", Kind: appliance.CharDev, Mode: 0o600, Major: 4095, Minor: 1048575},
		{Path: "/dev/fifo", Kind: appliance.FIFO, Mode: 0o644},
		{Path: "/dev/sock", Kind: appliance.Socket, Mode: 0o755},
		{Path: "/usr/bin/long-target", Kind: appliance.Symlink, Link: strings.Repeat("x/", 100) + "end", Mode: 0o777},
	} {
		e.ModTime = when
		if err := m.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.AddParents(func(string) appliance.Entry { return appliance.Entry{Mode: 0o755, ModTime: when} }); err != nil {
		t.Fatal(err)
	}
	if err := m.Seal(); err != nil {
		t.Fatal(err)
	}
	return m
}

// writeAll writes entries one by one, without the checks a sealed
// manifest has passed, as a manifest's would be.
func writeAll(out io.Writer, entries []*appliance.Entry) error {
	w := cpio.NewWriter(out)
	w.CountLinks(entries)
	for _, e := range entries {
		if err := w.WriteEntry(e); err != nil {
			return err
		}
	}
	return w.Close()
}

func write(t *testing.T, m *appliance.Manifest) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "x.cpio")
	var buf bytes.Buffer
	if err := cpio.NewWriter(&buf).WriteManifest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed", name)
		}
		t.Skipf("%s is not installed", name)
	}
	cmd := exec.Command(name, args...)
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdin = f
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return string(out)
}

// TestGNUCpio lists the archive with GNU cpio: types, modes, owners, link
// counts, sizes, device numbers and symlink targets.
func TestGNUCpio(t *testing.T) {
	f := write(t, sample(t))
	out := run(t, f, "cpio", "-itvn", "--quiet")
	for _, want := range []string{
		`drwxr-xr-x +2 0 +0 +0 .* \.$`,
		`lrwxrwxrwx +1 0 +0 +7 .* bin -> usr/bin$`,
		`drwxrwxrwt +2 0 +0 +0 .* data$`,
		`-rwsr-xr-x +3 0 +0 +6 .* data/a$`,
		`-rwsr-xr-x +3 0 +0 +0 .* data/b$`,
		`-rwsr-xr-x +3 0 +0 +0 .* data/c$`,
		`-rw------- +1 1000 +100000 +0 .* data/empty$`,
		`crw------- +1 0 +0 +5, +1 .* dev/console$`,
		`brw-rw---- +1 0 +6 +259, +300000 .* dev/nvme0n1$`,
		`crw------- +1 0 +0 +4095, +1048575 .* dev/big$`,
		`prw-r--r-- +1 0 +0 +0 .* dev/fifo$`,
		`srwxr-xr-x +1 0 +0 +0 .* dev/sock$`,
		`lrwxrwxrwx +1 0 +0 +203 .* usr/bin/long-target -> (x/){100}end$`,
		`drwxr-xr-x +2 0 +0 +0 .* usr$`,
	} {
		if !regexp.MustCompile(`(?m)^` + want).MatchString(out) {
			t.Errorf("cpio -itv: no line matches %q in\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 17 {
		t.Errorf("cpio -itv lists %d entries, want 17:\n%s", n, out)
	}
}

// TestBsdtar lists the archive with libarchive, which also reports hard
// links by name.
func TestBsdtar(t *testing.T) {
	f := write(t, sample(t))
	out := run(t, "", "bsdtar", "--numeric-owner", "-tvf", f)
	for _, want := range []string{
		`-rwsr-xr-x +3 0 +0 +6 .* data/a$`,
		`-rwsr-xr-x +3 0 +0 +0 .* data/b link to data/a$`,
		`-rwsr-xr-x +3 0 +0 +0 .* data/c link to data/a$`,
		`crw------- +1 0 +0 +5,1 .* dev/console$`,
		`brw-rw---- +1 0 +6 +259,300000 .* dev/nvme0n1$`,
		`lrwxrwxrwx +1 0 +0 +7 .* bin -> usr/bin$`,
	} {
		if !regexp.MustCompile(`(?m)^` + want).MatchString(out) {
			t.Errorf("bsdtar -tv: no line matches %q in\n%s", want, out)
		}
	}
}

// TestExtract unpacks the regular files with GNU cpio: contents, one inode
// for the hard links, modification times.
func TestExtract(t *testing.T) {
	f := write(t, sample(t))
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--quiet", "--no-absolute-filenames", "data/*", "bin")
	cmd.Dir = dir
	in, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd.Stdin = in
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("GNU cpio is not installed")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v\n%s", err, out)
	}
	var inodes []uint64
	for _, n := range []string{"a", "b", "c"} {
		p := filepath.Join(dir, "data", n)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != "hello\n" {
			t.Errorf("%s: %q, %v", n, b, err)
			continue
		}
		fi, _ := os.Stat(p)
		inodes = append(inodes, fi.Sys().(*syscall.Stat_t).Ino)
		if !fi.ModTime().Equal(when) {
			t.Errorf("%s: mtime %v, want %v", n, fi.ModTime(), when)
		}
	}
	if len(inodes) == 3 && (inodes[0] != inodes[1] || inodes[0] != inodes[2]) {
		t.Errorf("hard links have inodes %v, want one", inodes)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "data", "odd")); string(b) != "xyz" {
		t.Errorf("odd: %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "bin")); l != "usr/bin" {
		t.Errorf("bin -> %q", l)
	}
}

// TestRoundTrip reads the archive back with Reader.
func TestRoundTrip(t *testing.T) {
	m := sample(t)
	entries := m.Entries()
	var buf bytes.Buffer
	if err := cpio.NewWriter(&buf).WriteManifest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}
	r := cpio.NewReader(&buf)
	ino := map[string]uint32{}
	for i := 0; ; i++ {
		h, err := r.Next()
		if err == io.EOF {
			if i != len(entries) {
				t.Errorf("read %d entries, wrote %d", i, len(entries))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		e := entries[i]
		if h.Name != cpio.Name(e.Path) || h.Mode&0o7777 != e.Mode || h.UID != e.UID || h.GID != e.GID ||
			h.Mtime != when.Unix() || h.RdevMajor != e.Major || h.RdevMinor != e.Minor {
			t.Errorf("entry %d: %+v, wrote %+v", i, h, e)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		switch e.Kind {
		case appliance.Symlink:
			if string(data) != e.Link || h.Mode&cpio.TypeMask != cpio.TypeSymlink {
				t.Errorf("%s: symlink %q mode %o", e.Path, data, h.Mode)
			}
		case appliance.Regular:
			if int64(len(data)) != e.Size {
				t.Errorf("%s: %d bytes, want %d", e.Path, len(data), e.Size)
			}
			ino[e.Path] = h.Ino
		case appliance.Hardlink:
			if len(data) != 0 || h.Ino != ino[e.Link] || h.Nlink != 3 {
				t.Errorf("%s: hard link ino %d nlink %d size %d, target ino %d", e.Path, h.Ino, h.Nlink, len(data), ino[e.Link])
			}
		}
	}
}

func TestReproducible(t *testing.T) {
	var a, b bytes.Buffer
	if err := cpio.NewWriter(&a).WriteManifest(context.Background(), sample(t)); err != nil {
		t.Fatal(err)
	}
	if err := cpio.NewWriter(&b).WriteManifest(context.Background(), sample(t)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two archives of the same entries differ")
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []*appliance.Entry
		want    string
	}{
		{"short data", []*appliance.Entry{{Path: "/f", Kind: appliance.Regular, Size: 10, Data: appliance.Bytes("abc")}}, "10 bytes expected, 3 read"},
		{"no data", []*appliance.Entry{{Path: "/f", Kind: appliance.Regular, Size: 1}}, "no data"},
		{"dangling hard link", []*appliance.Entry{{Path: "/h", Kind: appliance.Hardlink, Link: "/nowhere"}}, "not written before"},
		{"too big", []*appliance.Entry{{Path: "/f", Kind: appliance.Regular, Size: 1 << 32, Data: appliance.Bytes("")}}, "does not fit"},
		{"missing host file", []*appliance.Entry{{Path: "/f", Kind: appliance.Regular, Size: 1, Data: appliance.HostFile("/nonexistent/x")}}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := writeAll(io.Discard, tc.entries)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLongData(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 100001)
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	if err := w.WriteHeader(&cpio.Header{Name: "big", Mode: cpio.TypeRegular | 0o644, Nlink: 1, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte{1}); err == nil {
		t.Error("writing beyond the size succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r := cpio.NewReader(&buf)
	h, err := r.Next()
	if err != nil || h.Name != "big" {
		t.Fatal(h, err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read %d bytes, %v", len(got), err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last entry: %v, want EOF", err)
	}
}

func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	_ = writeAll(&buf, []*appliance.Entry{
		{Path: "/", Kind: appliance.Dir, Mode: 0o755},
		{Path: "/a", Kind: appliance.Regular, Mode: 0o644, Size: 3, Data: appliance.Bytes("abc")},
	})
	f.Add(buf.Bytes())
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := cpio.NewReader(bytes.NewReader(data))
		for i := 0; i < 1000; i++ {
			if _, err := r.Next(); err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
		}
	})
}
