package baseimage

import (
	"archive/tar"
	"bytes"
	"runtime"
	"testing"

	"github.com/gosupermin/gosupermin/internal/xz/xztest"
)

func xzCLI(t *testing.T, data []byte, args ...string) []byte {
	t.Helper()
	out, err := xztest.CLI(data, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// claimHugeDict makes the first block header of an xz file ask for a
// dictionary of 4 GiB - 1.
func claimHugeDict(t testing.TB, b []byte) {
	t.Helper()
	if err := xztest.ClaimHugeDict(b); err != nil {
		t.Fatal(err)
	}
}

// TestDetectXZ: Detect decodes a first block with a small dictionary,
// whatever the stream was compressed with or its header asks for.
func TestDetectXZ(t *testing.T) {
	needTool(t, "xz")
	archive := tarWith(t, tar.FormatPAX, reg("./etc/a", string(xztest.Text(200<<10))), reg("./etc/b", string(xztest.Text(100<<10))))
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
