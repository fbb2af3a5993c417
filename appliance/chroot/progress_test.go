package chroot

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/gosupermin/gosupermin/appliance"
)

// Progress is told each regular file's size once, from the writer's
// goroutines: hard links and directories add nothing.
func TestProgress(t *testing.T) {
	m := appliance.New()
	put := func(e appliance.Entry) {
		e.ModTime, e.Mode = testTime, 0o644
		if err := m.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	put(appliance.Entry{Path: "/", Kind: appliance.Dir})
	var want int64
	for _, name := range []string{"/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h", "/i", "/j"} {
		data := []byte(name + " holds some bytes")
		put(appliance.Entry{Path: name, Kind: appliance.Regular, Size: int64(len(data)), Data: appliance.Bytes(data)})
		want += int64(len(data))
	}
	put(appliance.Entry{Path: "/link", Kind: appliance.Hardlink, Link: "/a"})
	put(appliance.Entry{Path: "/sym", Kind: appliance.Symlink, Link: "a"})
	if err := m.Seal(); err != nil {
		t.Fatal(err)
	}
	var sum, calls atomic.Int64
	opt := Options{Progress: func(n int64) { sum.Add(n); calls.Add(1) }}
	if err := NewWriter(t.TempDir(), opt).WriteManifest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if sum.Load() != want || calls.Load() != 10 {
		t.Errorf("progress told %d bytes in %d calls, want %d in 10", sum.Load(), calls.Load(), want)
	}
}
