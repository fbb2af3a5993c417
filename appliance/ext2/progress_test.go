package ext2

import (
	"sync/atomic"
	"testing"

	"github.com/gosupermin/gosupermin/appliance"
)

// Progress is told each regular file's size once: hard links and
// directories add nothing, a sparse file its whole size.
func TestProgress(t *testing.T) {
	m := appliance.New()
	mustPut(t, m, appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0o755, ModTime: testTime})
	mustPut(t, m, appliance.Entry{Path: "/a", Kind: appliance.Regular, Mode: 0o644, ModTime: testTime, Size: 5000, Data: appliance.Bytes(make([]byte, 5000))})
	mustPut(t, m, appliance.Entry{Path: "/b", Kind: appliance.Regular, Mode: 0o644, ModTime: testTime, Size: 3, Data: appliance.Bytes("abc")})
	mustPut(t, m, appliance.Entry{Path: "/empty", Kind: appliance.Regular, Mode: 0o644, ModTime: testTime})
	mustPut(t, m, appliance.Entry{Path: "/link", Kind: appliance.Hardlink, Link: "/b", ModTime: testTime})
	src := &sparseSource{size: 1 << 20, chunks: []chunk{{off: 8192, data: []byte("data")}}}
	mustPut(t, m, appliance.Entry{Path: "/sparse", Kind: appliance.Regular, Mode: 0o644, ModTime: testTime, Size: 1 << 20, Data: src, Sparse: true})
	if err := m.Seal(); err != nil {
		t.Fatal(err)
	}
	var sum, calls atomic.Int64
	writeImage(t, m.Entries(), Options{Size: 16 << 20, Time: testTime, Progress: func(n int64) { sum.Add(n); calls.Add(1) }})
	if sum.Load() != 5000+3+1<<20 || calls.Load() != 3 {
		t.Errorf("progress told %d bytes in %d calls, want %d in 3", sum.Load(), calls.Load(), 5000+3+1<<20)
	}
}
