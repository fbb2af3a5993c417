package appliance

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Prefetcher reads the data of regular entries ahead of a writer that
// takes them one after the other, from a few goroutines at once: with
// several reads in flight the disk is kept busy when the files are not in
// the page cache, and reading overlaps writing when they are. What is
// read ahead but not yet taken is bounded.
type Prefetcher struct {
	ctx     context.Context
	cancel  context.CancelFunc
	entries []*Entry
	head    int64 // bytes read ahead of an entry; the rest streams
	slots   []slot
	next    int // the entry Next returns next

	mu     sync.Mutex
	cond   *sync.Cond
	budget int64 // bytes that may still be read ahead
	wg     sync.WaitGroup
}

type slot struct {
	done chan struct{}
	f    Fetched
	err  error
	cost int64
}

// Fetched is one entry's data: Head, then Rest (nil when Head is all of
// it). Close releases it.
type Fetched struct {
	Entry *Entry
	Head  []byte
	Rest  io.ReadCloser
	p     *Prefetcher
	cost  int64
}

// Close releases the data's memory for more reading ahead.
func (f *Fetched) Close() error {
	if f.Head != nil {
		putBuf(f.Head)
		f.Head = nil // the Prefetcher keeps the Fetched: let the data go
	}
	var err error
	if f.Rest != nil {
		err = f.Rest.Close()
		f.Rest = nil
	}
	if f.p != nil {
		f.p.give(f.cost)
		f.p = nil
	}
	return err
}

// PrefetchOptions bound a Prefetcher.
type PrefetchOptions struct {
	// Workers read at once (16 when 0): enough requests in flight for a
	// disk, few enough for the page cache.
	Workers int
	// Budget is how many bytes may be read ahead (24 MiB when 0).
	Budget int64
	// Head is how much of one entry is read ahead (512 KiB when 0); the
	// rest of a larger file is read when the writer gets to it, with the
	// kernel asked to read it ahead (posix_fadvise WILLNEED).
	Head int64
}

// NewPrefetcher starts reading the data of entries (regular files; others
// give an empty Fetched) in order. Next returns them in the same order.
// Close stops it.
func NewPrefetcher(ctx context.Context, entries []*Entry, o PrefetchOptions) *Prefetcher {
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.Budget <= 0 {
		o.Budget = 24 << 20
	}
	if o.Head <= 0 {
		o.Head = 512 << 10
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Prefetcher{ctx: ctx, cancel: cancel, entries: entries, head: o.Head, budget: o.Budget,
		slots: make([]slot, len(entries))}
	p.cond = sync.NewCond(&p.mu)
	for i := range p.slots {
		p.slots[i].done = make(chan struct{})
	}
	jobs := make(chan int)
	for range min(o.Workers, len(entries)) {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for i := range jobs {
				p.fetch(i)
			}
		}()
	}
	// The feeder takes budget in entry order, so the entries the writer
	// waits for are never starved by later ones.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(jobs)
		for i, e := range entries {
			cost := min(e.Size, p.head)
			if e.Kind != Regular || e.Data == nil || e.Sparse {
				cost = 0
			}
			if !p.take(cost) {
				return
			}
			p.slots[i].cost = cost
			select {
			case jobs <- i:
			case <-ctx.Done():
				p.give(cost)
				return
			}
		}
	}()
	return p
}

// take waits for n bytes of budget; false when the prefetcher stops.
func (p *Prefetcher) take(n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.budget < n && p.ctx.Err() == nil {
		p.cond.Wait()
	}
	if p.ctx.Err() != nil {
		return false
	}
	p.budget -= n
	return true
}

func (p *Prefetcher) give(n int64) {
	p.mu.Lock()
	p.budget += n
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *Prefetcher) fetch(i int) {
	s := &p.slots[i]
	defer close(s.done)
	e := p.entries[i]
	s.f = Fetched{Entry: e, p: p, cost: s.cost}
	if e.Kind != Regular || e.Data == nil || e.Sparse || e.Size == 0 {
		return // the writer reads a sparse file by its extents
	}
	r, err := e.Data.Open()
	if err != nil {
		s.err = err
		return
	}
	buf := getBuf(int(min(e.Size, p.head)))
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil && int64(n) < e.Size:
		s.f.Head, s.f.Rest = buf, r
		if f, ok := r.(*os.File); ok {
			_ = unix.Fadvise(int(f.Fd()), int64(n), e.Size-int64(n), unix.FADV_WILLNEED)
		}
		return
	case err == nil || errors.Is(err, io.ErrUnexpectedEOF):
		// The whole file, or less than the manifest says: the writer
		// finds out from the length, as when it reads itself.
		s.f.Head, s.f.Rest = buf[:n], r
		return
	}
	r.Close()
	putBuf(buf)
	s.err = err
}

// Buffers are reused by size class (powers of two from 4 KiB): fresh
// memory for every file costs page faults and collections.
var bufPools [12]sync.Pool // 4 KiB << 0 ... 4 KiB << 11 (8 MiB)

func sizeClass(n int) int {
	c := 0
	for 4096<<c < n && c < len(bufPools)-1 {
		c++
	}
	return c
}

func getBuf(n int) []byte {
	c := sizeClass(n)
	if 4096<<c < n {
		return make([]byte, n)
	}
	if b, ok := bufPools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 4096<<c)
}

func putBuf(b []byte) {
	c := sizeClass(cap(b))
	if cap(b) != 4096<<c {
		return // not one of ours
	}
	b = b[:cap(b)]
	bufPools[c].Put(&b)
}

// Next waits for the next entry's data. After an error the writer stops.
func (p *Prefetcher) Next() (*Fetched, error) {
	if p.next >= len(p.slots) {
		return nil, io.EOF
	}
	s := &p.slots[p.next]
	p.next++
	select {
	case <-s.done:
	case <-p.ctx.Done():
		return nil, p.ctx.Err()
	}
	if s.err != nil {
		p.give(s.cost)
		return nil, s.err
	}
	return &s.f, nil
}

// Close stops reading ahead and releases what was read and not taken.
func (p *Prefetcher) Close() {
	p.cancel()
	p.cond.Broadcast()
	p.wg.Wait()
	for i := p.next; i < len(p.slots); i++ {
		select {
		case <-p.slots[i].done:
			if r := p.slots[i].f.Rest; r != nil {
				r.Close()
			}
		default:
		}
	}
}
