package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// countingSource is in-memory data that counts how many are open at once.
type countingSource struct {
	data       []byte
	open, peak *atomic.Int64
	err        error
}

func (c countingSource) Open() (io.ReadCloser, error) {
	if c.err != nil {
		return nil, c.err
	}
	if n := c.open.Add(1); n > c.peak.Load() {
		c.peak.Store(n)
	}
	return struct {
		io.Reader
		io.Closer
	}{bytes.NewReader(c.data), closer(func() error { c.open.Add(-1); return nil })}, nil
}

type closer func() error

func (f closer) Close() error { return f() }

func TestPrefetcher(t *testing.T) {
	var open, peak atomic.Int64
	var entries []*Entry
	for i := range 200 {
		size := (i * 7919) % 300000 // some over Head, most under
		data := bytes.Repeat([]byte{byte(i)}, size)
		entries = append(entries, &Entry{Path: fmt.Sprintf("/f%03d", i), Kind: Regular, Size: int64(size),
			Data: countingSource{data: data, open: &open, peak: &peak}})
		if i%50 == 0 {
			entries = append(entries, &Entry{Path: fmt.Sprintf("/d%03d", i), Kind: Dir})
		}
	}
	p := NewPrefetcher(context.Background(), entries, PrefetchOptions{Workers: 4, Budget: 1 << 20, Head: 64 << 10})
	for _, e := range entries {
		f, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		if f.Entry != e {
			t.Fatalf("got %s, want %s: out of order", f.Entry.Path, e.Path)
		}
		var got []byte
		got = append(got, f.Head...)
		if f.Rest != nil {
			rest, err := io.ReadAll(f.Rest)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rest...)
		}
		if int64(len(got)) != e.Size || e.Size > 0 && got[0] != got[len(got)-1] {
			t.Errorf("%s: %d bytes, want %d", e.Path, len(got), e.Size)
		}
		f.Close()
		p.mu.Lock()
		if p.ring.used < 0 || p.ring.used > len(p.ring.buf) || len(p.ring.buf) > 1<<20 {
			t.Errorf("ring: %d of %d bytes in use, budget 1 MiB", p.ring.used, len(p.ring.buf))
		}
		p.mu.Unlock()
	}
	if _, err := p.Next(); err != io.EOF {
		t.Errorf("after the last: %v", err)
	}
	p.Close() // waits for the hinter too
	if n := open.Load(); n != 0 {
		t.Errorf("%d sources left open", n)
	}
}

// TestPrefetcherHint: the files are opened (for the kernel to read them
// ahead) up to Hint bytes beyond what the writer gave back, not more,
// and each is closed (TestPrefetcher); a negative Hint opens each file
// once, to read it.
func TestPrefetcherHint(t *testing.T) {
	const size, n, hint = 64 << 10, 100, 10 * (64 << 10)
	mk := func(opens *atomic.Int64) []*Entry {
		var open, peak atomic.Int64
		var entries []*Entry
		for i := range n {
			entries = append(entries, &Entry{Path: fmt.Sprintf("/f%03d", i), Kind: Regular, Size: size,
				Data: openCounter{countingSource{data: make([]byte, size), open: &open, peak: &peak}, opens}})
		}
		return entries
	}
	var opens atomic.Int64
	entries := mk(&opens)
	// One worker and room for one head: the readers open 2 entries at
	// most while the writer takes none.
	p := NewPrefetcher(context.Background(), entries, PrefetchOptions{Workers: 1, Budget: size, Head: size, Hint: hint})
	bound := int64(hint/size + 1 + 2)
	deadline := time.Now().Add(10 * time.Second)
	for opens.Load() < hint/size && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // for one that would go too far
	if got := opens.Load(); got < hint/size || got > bound {
		t.Errorf("%d opens before the writer took anything; want the %d-byte window (%d files) and at most %d", got, hint, hint/size, bound)
	}
	drain(t, p, n)
	// Files the readers took before the hinter came are not hinted.
	if got := opens.Load(); got < n+hint/size || got > 2*n {
		t.Errorf("%d opens of %d files, want each once to read, at most once more to hint", got, n)
	}
	opens.Store(0)
	p = NewPrefetcher(context.Background(), mk(&opens), PrefetchOptions{Hint: -1})
	drain(t, p, n)
	if got := opens.Load(); got != n {
		t.Errorf("Hint -1: %d opens of %d files", got, n)
	}
}

// drain takes n entries from p as a writer does, then closes it.
func drain(t *testing.T, p *Prefetcher, n int) {
	t.Helper()
	for range n {
		f, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	p.Close()
}

// openCounter counts the opens of a source.
type openCounter struct {
	countingSource
	n *atomic.Int64
}

func (o openCounter) Open() (io.ReadCloser, error) {
	o.n.Add(1)
	return o.countingSource.Open()
}

func TestPrefetcherError(t *testing.T) {
	boom := errors.New("boom")
	var open, peak atomic.Int64
	entries := []*Entry{
		{Path: "/a", Kind: Regular, Size: 1, Data: countingSource{data: []byte("a"), open: &open, peak: &peak}},
		{Path: "/b", Kind: Regular, Size: 1, Data: countingSource{err: boom}},
		{Path: "/c", Kind: Regular, Size: 1, Data: countingSource{data: []byte("c"), open: &open, peak: &peak}},
	}
	p := NewPrefetcher(context.Background(), entries, PrefetchOptions{})
	f, err := p.Next()
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := p.Next(); !errors.Is(err, boom) {
		t.Errorf("second: %v, want boom", err)
	}
	// Stopping early releases what was read ahead.
	p.Close()
	if n := open.Load(); n != 0 {
		t.Errorf("%d sources left open after Close", n)
	}
}

// TestRing allocates and frees spans in order, as the Prefetcher does,
// and checks that the spans in use never overlap and that memory is
// never refused while enough of it is free in one piece.
func TestRing(t *testing.T) {
	const size = 1000
	r := ring{buf: make([]byte, size)}
	var live []span
	seed := uint32(1)
	rnd := func(n int) int { seed = seed*1664525 + 1013904223; return int(seed>>8) % n }
	for step := range 100000 {
		if len(live) > 0 && rnd(2) == 0 {
			r.free(live[0])
			live = live[1:]
		} else {
			n := rnd(size/3) + 1
			sp, ok := r.alloc(n)
			if !ok {
				if len(live) == 0 {
					t.Fatalf("step %d: %d bytes refused by an empty ring", step, n)
				}
				continue
			}
			if sp.start < 0 || sp.start+sp.n > size || sp.n != n {
				t.Fatalf("step %d: span %+v out of the ring", step, sp)
			}
			for _, o := range live {
				if sp.start < o.start+o.n && o.start < sp.start+sp.n {
					t.Fatalf("step %d: span %+v overlaps %+v", step, sp, o)
				}
			}
			live = append(live, sp)
		}
		inUse := 0
		for _, o := range live {
			inUse += o.n + o.waste
		}
		if inUse != r.used || r.used > size {
			t.Fatalf("step %d: ring counts %d bytes used, spans hold %d", step, r.used, inUse)
		}
	}
}
