package ext2

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/gosupermin/gosupermin/appliance"
)

// Files marked sparse are planned and written from their extents: only the
// blocks the extents touch are counted and read, so a 100 GiB file with a
// few MiB of data costs a few MiB.

// run is the logical blocks [start, end) of a file.
type run struct{ start, end uint64 }

// extentsOf returns the checked extents of e, a file marked sparse.
func extentsOf(e *appliance.Entry) ([]appliance.Extent, error) {
	s, ok := e.Data.(appliance.SparseSource)
	if !ok {
		return nil, errors.New("marked sparse, but its data has no extents")
	}
	exts, err := s.Extents()
	if err != nil {
		return nil, fmt.Errorf("extents: %w", err)
	}
	var end int64
	for _, x := range exts {
		switch {
		case x.Off < 0 || x.Len < 0:
			return nil, fmt.Errorf("extent %d+%d: negative", x.Off, x.Len)
		case x.Off < end:
			return nil, fmt.Errorf("extent %d+%d: not after the one before, which ends at %d", x.Off, x.Len, end)
		case x.Len > e.Size-x.Off:
			return nil, fmt.Errorf("extent %d+%d: beyond the size, %d", x.Off, x.Len, e.Size)
		}
		end = x.Off + x.Len
	}
	return exts, nil
}

// blockRuns returns the blocks that extents touch, in order and merged.
func blockRuns(exts []appliance.Extent) []run {
	var runs []run
	for _, x := range exts {
		if x.Len == 0 {
			continue
		}
		r := run{uint64(x.Off) / blockSize, (uint64(x.Off+x.Len) + blockSize - 1) / blockSize}
		if k := len(runs) - 1; k >= 0 && r.start <= runs[k].end {
			runs[k].end = max(runs[k].end, r.end)
			continue
		}
		runs = append(runs, r)
	}
	return runs
}

// runBlocks counts the blocks of runs.
func runBlocks(runs []run) uint64 {
	var n uint64
	for _, r := range runs {
		n += r.end - r.start
	}
	return n
}

// runIndirect counts the indirect blocks that map the blocks of runs: the
// single indirect block, the double one and each block below it that maps
// a block of runs, the same for the triple one.
func runIndirect(runs []run) uint64 {
	const (
		p1     = ptrsPerBlock
		p2     = p1 * p1
		single = nDirect
		double = single + p1
		triple = double + p2
		end    = triple + p2*p1
	)
	// touched counts the spans of span blocks, counted from lo, that runs
	// touch within [lo, hi).
	touched := func(lo, hi, span uint64) uint64 {
		var n uint64
		last := uint64(0)
		for _, r := range runs {
			s, e := max(r.start, lo), min(r.end, hi)
			if s >= e {
				continue
			}
			first, final := (s-lo)/span, (e-1-lo)/span
			if n > 0 && first == last {
				first++
			}
			if final >= first {
				n += final - first + 1
			}
			last = final
		}
		return n
	}
	return touched(single, double, p1) +
		touched(double, triple, p2) + touched(double, triple, p1) +
		touched(triple, end, p2*p1) + touched(triple, end, p2) + touched(triple, end, p1)
}

// writeExtents writes the blocks the extents of n touch; those that hold
// only zeros stay holes, as in writeFile.
func (w *writer) writeExtents(n *node, r io.Reader, exts []appliance.Extent) error {
	if w.rbuf == nil {
		w.rbuf = make([]byte, readBuf)
	}
	src := &offsetReader{r: r}
	next := 0 // the first extent not wholly read yet
	for _, run := range blockRuns(exts) {
		for lbn := run.start; lbn < run.end; {
			k := min(run.end-lbn, readBuf/blockSize)
			buf := w.rbuf[:k*blockSize]
			clear(buf)
			lo, hi := int64(lbn*blockSize), int64((lbn+k)*blockSize)
			for i := next; i < len(exts) && exts[i].Off < hi; i++ {
				s, e := max(exts[i].Off, lo), min(exts[i].Off+exts[i].Len, hi)
				if s >= e {
					continue
				}
				if err := src.readAt(buf[s-lo:e-lo], s); err != nil {
					return err
				}
			}
			for next < len(exts) && exts[next].Off+exts[next].Len <= hi {
				next++
			}
			for off := 0; off < len(buf); off += blockSize {
				if blk := buf[off : off+blockSize]; !bytes.Equal(blk, zeroBlock[:]) {
					if err := w.addBlock(n, lbn, blk); err != nil {
						return err
					}
				}
				lbn++
			}
		}
	}
	return nil
}

// offsetReader reads a source at increasing offsets: in place when it can
// (files, memory), else by reading on and dropping the bytes between.
type offsetReader struct {
	r   io.Reader
	pos int64
}

func (o *offsetReader) readAt(p []byte, off int64) error {
	short := func() error {
		return fmt.Errorf("data ends before byte %d, which its extents hold", off+int64(len(p)))
	}
	if ra, ok := o.r.(io.ReaderAt); ok {
		k, err := ra.ReadAt(p, off)
		if k == len(p) {
			return nil
		}
		if err == nil || errors.Is(err, io.EOF) {
			return short()
		}
		return err
	}
	if off != o.pos {
		if s, ok := o.r.(io.Seeker); ok {
			if _, err := s.Seek(off, io.SeekStart); err != nil {
				return err
			}
		} else if k, err := io.CopyN(io.Discard, o.r, off-o.pos); err != nil {
			if errors.Is(err, io.EOF) && k < off-o.pos {
				return short()
			}
			return err
		}
	}
	k, err := io.ReadFull(o.r, p)
	o.pos = off + int64(k)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return short()
	}
	return err
}
