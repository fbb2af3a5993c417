package baseimage

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand"
	"os/exec"
	"runtime"
	"testing"
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
