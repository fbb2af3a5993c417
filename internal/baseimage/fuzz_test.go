package baseimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
)

// FuzzReaderRoundTrip writes a member with archive/tar's Writer in each
// format, then reads the archive with our reader and with archive/tar's:
// every field and every byte must agree.
func FuzzReaderRoundTrip(f *testing.F) {
	f.Add(uint8(0), "./etc/passwd", "", uint8(0), int64(0o644), 0, 0, "root", "root", int64(1700000000), int64(0), int64(0), int64(0), []byte("root:x:0:0\n"))
	f.Add(uint8(1), strings.Repeat("long/", 40), strings.Repeat("t", 150), uint8(2), int64(0o777), 1<<30, 5, "ü", "", int64(-5), int64(999999999), int64(0), int64(0), []byte(nil))
	f.Add(uint8(2), "dev/x", "", uint8(3), int64(0o600), 1<<32-2, 1<<33, "", "g", int64(1)<<40, int64(0), int64(1)<<33, int64(255), []byte(nil))
	f.Add(uint8(3), "file", "", uint8(7), int64(0o4755), 0, 0, "", "", int64(0), int64(0), int64(0), int64(0), bytes.Repeat([]byte("x"), 3000))
	f.Fuzz(func(t *testing.T, format uint8, name, link string, typ uint8, mode int64, uid, gid int,
		uname, gname string, sec, nsec, major, minor int64, data []byte) {
		types := []byte{'0', '1', '2', '3', '4', '5', '6', '7'}
		h := tar.Header{
			Name: name, Linkname: link, Typeflag: types[int(typ)%len(types)], Mode: mode, Uid: uid, Gid: gid,
			Uname: uname, Gname: gname, ModTime: time.Unix(sec, nsec),
			Format: []tar.Format{tar.FormatUnknown, tar.FormatUSTAR, tar.FormatPAX, tar.FormatGNU}[format%4],
		}
		if h.Typeflag == '3' || h.Typeflag == '4' {
			h.Devmajor, h.Devminor = major, minor
		}
		if h.Typeflag == '0' || h.Typeflag == '7' {
			h.Size = int64(len(data))
		} else {
			data = nil
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&h); err != nil {
			return // a header archive/tar will not write
		}
		tw.Write(data)
		tw.WriteHeader(&tar.Header{Name: "after", Typeflag: tar.TypeReg, Size: 5, Mode: 0o644})
		io.WriteString(tw, "after")
		if err := tw.Close(); err != nil {
			return
		}
		want, err := readGo(buf.Bytes())
		if err != nil {
			t.Skipf("archive/tar cannot read its own archive: %v", err)
		}
		got, err := readOurs(buf.Bytes())
		if err != nil {
			t.Fatalf("our reader: %v", err)
		}
		sameMembers(t, got, want)
		if !bytes.Equal(got[0].data, data) {
			t.Fatalf("data differs from what was written")
		}
	})
}

// fuzzSeeds are archives to start from: GNU tar's sparse formats, and
// bomb-shaped ones that promise far more than they hold.
func fuzzSeeds(f *testing.F) [][]byte {
	seeds := [][]byte{
		tarWith(f, tar.FormatPAX, reg("./etc/a", "alpha"), entry{tar.Header{Name: "./etc/h", Typeflag: tar.TypeLink, Linkname: "./etc/a"}, ""}),
		tarWith(f, tar.FormatGNU, reg("./"+strings.Repeat("n", 120), "long")),
		// 1 TiB promised, nothing stored.
		concat(rawHeader("huge", '0', 1<<40, nil)),
		concat(paxHeader('x', "size=1099511627776"), rawHeader("huge", '0', 0, nil)),
		// Sparse 1.0 of 1 TiB, one byte at its end; and a map claiming 2^20 extents.
		concat(paxHeader('x', "GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.name=s", "GNU.sparse.realsize=1099511627776"),
			rawHeader("GNUSparseFile/s", '0', blockSize+blockSize, nil), padded("1\n1099511627775\n1\n"), padded("z")),
		concat(paxHeader('x', "GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.realsize=10"),
			rawHeader("s", '0', blockSize, nil), padded("1048576\n0\n1\n")),
		// Old GNU sparse promising extension blocks that never come.
		concat(rawHeader("s", 'S', 0, map[int]string{257: "ustar  \x00", 386: "00000000000\x0000000000000\x00", 482: "\x01", 483: "77777777777\x00"})),
		// A long name header promising a megabyte.
		concat(rawHeader("././@LongLink", 'L', maxSpecial, nil)),
	}
	for _, name := range []string{"sparse-gnu", "sparse-pax0.0", "sparse-pax0.1", "sparse-pax1.0"} {
		seeds = append(seeds, gunzipFile(f, filepath.Join("testdata", name+".tar.gz")))
	}
	return seeds
}

// withChecksums lets the fuzzer past header checksums: when the first
// byte is odd, every block of the rest gets a valid one (data blocks too:
// it changes nothing but the bytes read).
func withChecksums(data []byte) []byte {
	if len(data) == 0 {
		return data
	}
	fix, data := data[0]&1 == 1, bytes.Clone(data[1:])
	for off := 0; fix && off+blockSize <= len(data); off += blockSize {
		setChecksum(data[off : off+blockSize])
	}
	return data
}

func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(append([]byte{0}, s...))
		f.Add(append([]byte{1}, s...))
	}
}

// FuzzReader reads raw bytes; an archive it accepts is written again with
// archive/tar (sparse files expanded) and must read back the same.
func FuzzReader(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := readOurs(withChecksums(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for i := range got {
			m := &got[i]
			if m.typ != '0' {
				m.size = 0 // data of other types is skipped, not kept
			}
			h := &tar.Header{Name: m.name, Linkname: m.linkname, Typeflag: m.typ, Mode: m.mode, Uid: int(m.uid), Gid: int(m.gid),
				Uname: m.uname, Gname: m.gname, Size: m.size, ModTime: m.mtime, Devmajor: m.devmajor, Devminor: m.devminor,
				Format: tar.FormatPAX}
			if err := tw.WriteHeader(h); err != nil {
				return // fields PAX cannot hold (negative ids, NUL in names)
			}
			tw.Write(m.data)
		}
		if err := tw.Close(); err != nil {
			return
		}
		again, err := readOurs(buf.Bytes())
		if err != nil {
			t.Fatalf("reading what was written back: %v", err)
		}
		sameMembers(t, again, got)
	})
}

// FuzzUnpack unpacks raw bytes (plain, gzip or xz; the first byte as for
// FuzzReader) into a manifest, with
// small budgets so that the spool is used; whatever it accepts must read
// back whole, holes as zeros.
func FuzzUnpack(f *testing.F) {
	addSeeds(f)
	var zeros bytes.Buffer // a small gzip bomb: 8 MiB of zeros
	zw := gzip.NewWriter(&zeros)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "./zeros", Typeflag: tar.TypeReg, Size: 8 << 20})
	tw.Write(make([]byte, 8<<20))
	tw.Close()
	zw.Close()
	f.Add(append([]byte{0}, zeros.Bytes()...))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		spool, err := NewSpool(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer spool.Close()
		m := appliance.New()
		lim := limits{small: 1024, mem: 64 << 10, meta: 1 << 20}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := unpack(ctx, m, bytes.NewReader(withChecksums(data)), spool, lim); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%d bytes took more than 10 s", len(data))
			}
			return
		}
		for _, e := range m.Entries() {
			if e.Kind != appliance.Regular || e.Size > 64<<20 {
				continue
			}
			if e.Sparse {
				ext, err := e.Data.(appliance.SparseSource).Extents()
				if err != nil {
					t.Fatal(err)
				}
				for i, x := range ext {
					if x.Len <= 0 || x.Off+x.Len > e.Size || i > 0 && x.Off <= ext[i-1].Off+ext[i-1].Len {
						t.Fatalf("%s: bad extents %v", e.Path, ext)
					}
				}
			}
			var n int64
			if e.Data != nil {
				rc, err := e.Data.Open()
				if err != nil {
					t.Fatal(err)
				}
				n, err = io.Copy(io.Discard, rc)
				rc.Close()
				if err != nil {
					t.Fatalf("%s: %v", e.Path, err)
				}
			}
			if n != e.Size {
				t.Fatalf("%s: %d bytes read, size %d", e.Path, n, e.Size)
			}
		}
	})
}
