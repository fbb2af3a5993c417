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

	mu       sync.Mutex
	cond     *sync.Cond
	ring     ring  // heads are carved from it in entry order
	taken    int   // slots given a span so far
	freed    int   // slots before it have given theirs back
	released int64 // bytes of the entries the writer has given back
	wg       sync.WaitGroup
}

type slot struct {
	done     chan struct{}
	f        Fetched
	err      error
	span     span
	released bool
}

// Fetched is one entry's data: Head, then Rest (nil when Head is all of
// it). Close releases it.
type Fetched struct {
	Entry *Entry
	Head  []byte
	Rest  io.ReadCloser
	p     *Prefetcher
	i     int // its slot
}

// Close releases the data's memory for more reading ahead.
func (f *Fetched) Close() error {
	f.Head = nil // its memory is the Prefetcher's again
	var err error
	if f.Rest != nil {
		err = f.Rest.Close()
		f.Rest = nil
	}
	if f.p != nil {
		f.p.release(f.i)
		f.p = nil
	}
	return err
}

// PrefetchOptions bound a Prefetcher.
type PrefetchOptions struct {
	// Workers read at once (16 when 0): enough requests in flight for a
	// disk, few enough for the page cache.
	Workers int
	// Budget is how many bytes may be read ahead (24 MiB when 0): the
	// only memory the Prefetcher allocates for data, once.
	Budget int64
	// Head is how much of one entry is read ahead (512 KiB when 0); the
	// rest of a larger file is read when the writer gets to it, with the
	// kernel asked to read it ahead (posix_fadvise WILLNEED).
	Head int64
	// Hint is how far ahead of the writer, in bytes of file data, the
	// kernel is asked to read whole files into the page cache
	// (posix_fadvise WILLNEED) beyond what Budget holds (128 MiB when 0,
	// none when negative): on a cold cache the disk then always has
	// plenty of requests, at the cost of no memory of ours.
	Hint int64
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
	if o.Hint == 0 {
		o.Hint = 128 << 20
	}
	o.Head = min(o.Head, o.Budget)
	// The ring need not be larger than all the heads together.
	var heads int64
	for _, e := range entries {
		heads += headCost(e, o.Head)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Prefetcher{ctx: ctx, cancel: cancel, entries: entries, head: o.Head,
		ring: ring{buf: make([]byte, min(o.Budget, heads))}, slots: make([]slot, len(entries))}
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
	if o.Hint > 0 {
		p.wg.Add(1)
		go p.hint(o.Hint)
	}
	// The feeder takes memory in entry order, so the entries the writer
	// waits for are never starved by later ones, and the writer gives it
	// back in the same order: a ring.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(jobs)
		for i, e := range entries {
			if !p.take(i, headCost(e, p.head)) {
				return
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	return p
}

// hint asks the kernel to read the entries' files ahead of the writer,
// window bytes at most beyond what it has given back.
func (p *Prefetcher) hint(window int64) {
	defer p.wg.Done()
	var hinted int64
	for i, e := range p.entries {
		n := dataCost(e)
		if n == 0 {
			continue
		}
		p.mu.Lock()
		for hinted > p.released+window && p.ctx.Err() == nil {
			p.cond.Wait()
		}
		// Behind the readers (a warm cache) a hint is no use.
		behind := i < p.taken
		p.mu.Unlock()
		if behind {
			hinted += n
			continue
		}
		if p.ctx.Err() != nil {
			return
		}
		hinted += n
		r, err := e.Data.Open()
		if err != nil {
			continue // the reader that opens it next reports it
		}
		if f, ok := r.(*os.File); ok {
			_ = unix.Fadvise(int(f.Fd()), 0, n, unix.FADV_WILLNEED)
		}
		r.Close()
	}
}

// dataCost is how much data of e the writer reads.
func dataCost(e *Entry) int64 {
	if e.Kind != Regular || e.Data == nil || e.Sparse {
		return 0
	}
	return e.Size
}

// headCost is how much of e is read ahead.
func headCost(e *Entry, head int64) int64 { return min(dataCost(e), head) }

// take waits for n bytes of the ring for slot i; false when the
// prefetcher stops.
func (p *Prefetcher) take(i int, n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.ctx.Err() != nil {
			return false
		}
		if sp, ok := p.ring.alloc(int(n)); ok {
			p.slots[i].span = sp
			p.slots[i].released = n == 0 // nothing to wait for
			p.taken = i + 1
			p.reclaim()
			return true
		}
		p.cond.Wait()
	}
}

// release gives slot i's memory back; the ring reclaims it once every
// earlier slot has given its own.
func (p *Prefetcher) release(i int) {
	p.mu.Lock()
	p.slots[i].released = true
	p.released += dataCost(p.entries[i])
	p.reclaim()
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *Prefetcher) reclaim() {
	for p.freed < p.taken && p.slots[p.freed].released {
		p.ring.free(p.slots[p.freed].span)
		p.freed++
	}
}

// ring hands out spans of buf in order and takes them back in the same
// order.
type ring struct {
	buf        []byte
	head, tail int // next span starts at head; the oldest in use at tail
	used       int // bytes from tail to head, wasted ends included
}

// span is a piece of the ring, after waste bytes left unused at the end
// of the ring when it did not fit there.
type span struct{ start, n, waste int }

func (r *ring) alloc(n int) (span, bool) {
	if n == 0 {
		return span{start: r.head}, true
	}
	if r.used == 0 {
		r.head, r.tail = 0, 0
	}
	switch {
	case r.used == len(r.buf):
	case r.head >= r.tail && len(r.buf)-r.head >= n:
		sp := span{start: r.head, n: n}
		r.head += n
		r.used += n
		return sp, true
	case r.head >= r.tail && r.tail >= n:
		sp := span{start: 0, n: n, waste: len(r.buf) - r.head}
		r.head = n
		r.used += sp.waste + n
		return sp, true
	case r.head < r.tail && r.tail-r.head >= n:
		sp := span{start: r.head, n: n}
		r.head += n
		r.used += n
		return sp, true
	}
	return span{}, false
}

func (r *ring) free(sp span) {
	if sp.n == 0 {
		return
	}
	r.tail = sp.start + sp.n
	r.used -= sp.waste + sp.n
}

func (r *ring) bytes(sp span) []byte { return r.buf[sp.start : sp.start+sp.n : sp.start+sp.n] }

func (p *Prefetcher) fetch(i int) {
	s := &p.slots[i]
	defer close(s.done)
	e := p.entries[i]
	s.f = Fetched{Entry: e, p: p, i: i}
	if e.Kind != Regular || e.Data == nil || e.Sparse || e.Size == 0 {
		return // the writer reads a sparse file by its extents
	}
	r, err := e.Data.Open()
	if err != nil {
		s.err = err
		return
	}
	// Only this goroutine writes the span until done is closed.
	p.mu.Lock()
	buf := p.ring.bytes(s.span)
	p.mu.Unlock()
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
	s.err = err
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
		p.release(p.next - 1)
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
