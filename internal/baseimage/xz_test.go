package baseimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"math/rand"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// xzData is compressible but not trivial: text with random runs.
func xzData(n int) []byte {
	rng := rand.New(rand.NewSource(int64(n)))
	var b bytes.Buffer
	for b.Len() < n {
		if rng.Intn(4) == 0 {
			for i := 0; i < 64; i++ {
				b.WriteByte(byte(rng.Intn(256)))
			}
		} else {
			b.WriteString("etc/config line of a base image ")
		}
	}
	return b.Bytes()[:n]
}

func unxz(data []byte) ([]byte, error) {
	x, err := newXZReader(bufio.NewReader(bytes.NewReader(data)), maxDict)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(x)
}

func xzCLI(t *testing.T, data []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("xz", append([]string{"-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz %v: %v", args, err)
	}
	return out
}

func TestXZMatchesXZUtils(t *testing.T) {
	needTool(t, "xz")
	plain := xzData(400 << 10)
	for _, args := range [][]string{
		{"-0"}, {"-6"}, {"-9"}, {"--check=none"}, {"--check=crc32"}, {"--check=sha256"},
		{"-T2", "--block-size=100000"}, // several blocks, sizes in their headers
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			got, err := unxz(xzCLI(t, plain, args...))
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
		got, err := unxz(two)
		if err != nil || !bytes.Equal(got, plain[:5000]) {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		got, err := unxz(xzCLI(t, nil))
		if err != nil || len(got) != 0 {
			t.Fatalf("%q, %v", got, err)
		}
	})
}

func TestXZCorrupt(t *testing.T) {
	plain := xzData(100 << 10)
	var good bytes.Buffer
	w, err := xz.NewWriter(&good)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	g := good.Bytes()
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
		t.Run(tc.name, func(t *testing.T) {
			got, err := unxz(tc.data)
			if err == nil {
				t.Fatalf("no error, %d bytes", len(got))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// claimHugeDict makes the first block header of an xz file ask for a
// dictionary of 4 GiB - 1.
func claimHugeDict(t testing.TB, b []byte) {
	t.Helper()
	// Stream header (12 bytes), then the block header: size byte, flags,
	// filter id 0x21, properties size 1, dictionary code.
	hdrLen := (int(b[12]) + 1) * 4
	hdr := b[12 : 12+hdrLen]
	i := bytes.Index(hdr, []byte{0x21, 0x01})
	if i < 0 {
		t.Fatalf("no LZMA2 filter in block header % x", hdr)
	}
	hdr[i+2] = 40
	binary.LittleEndian.PutUint32(hdr[hdrLen-4:], crc32.ChecksumIEEE(hdr[:hdrLen-4]))
}

// TestXZDictionaryBound: a block header may ask for a 4 GiB dictionary;
// the reader allocates at most maxDict, and small data still decodes.
func TestXZDictionaryBound(t *testing.T) {
	plain := xzData(200 << 10)
	var buf bytes.Buffer
	w, err := xz.WriterConfig{DictCap: 1 << 20}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	b := buf.Bytes()
	claimHugeDict(t, b)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, err := unxz(b)
	runtime.ReadMemStats(&after)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2*maxDict {
		t.Errorf("allocated %d MiB for a 4 GiB dictionary claim; want at most %d MiB", alloc>>20, 2*maxDict>>20)
	}
}

// TestDetectXZ: Detect decodes a first block with a small dictionary,
// whatever the stream was compressed with or its header asks for.
func TestDetectXZ(t *testing.T) {
	needTool(t, "xz")
	archive := tarWith(t, tar.FormatPAX, reg("./etc/a", string(xzData(200<<10))), reg("./etc/b", string(xzData(100<<10))))
	huge := xzCLI(t, archive, "-6")
	claimHugeDict(t, huge)
	for name, data := range map[string][]byte{
		"-9":             xzCLI(t, archive, "-9"),
		"-0 two threads": xzCLI(t, archive, "-0", "-T2", "--block-size=100000"),
		"4 GiB claim":    huge,
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		base, head, err := Detect(bytes.NewReader(data))
		runtime.ReadMemStats(&after)
		if !base || err != nil || !bytes.Equal(head, data[:blockSize]) {
			t.Errorf("%s: base %v, %v", name, base, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%s: Detect allocated %d KiB", name, alloc>>10)
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
		var buf bytes.Buffer
		w, _ := xz.NewWriter(&buf)
		w.Write(xzData(n))
		w.Close()
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := newXZReader(bufio.NewReader(bytes.NewReader(data)), maxDict)
		if err != nil {
			return
		}
		plain, err := io.ReadAll(io.LimitReader(x, 16<<20))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plain)
		w.Close()
		again, err := unxz(buf.Bytes())
		if err != nil || !bytes.Equal(again, plain) {
			t.Fatalf("round trip: %d bytes, %v; want %d", len(again), err, len(plain))
		}
	})
}
