package ext2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/gosupermin/gosupermin/appliance"
)

const (
	writeBuf = 4 << 20 // large sequential writes are what makes streaming fast
	readBuf  = 1 << 20
)

var zeroBlock [blockSize]byte

// indirect is the indirect block at one depth of the chain that maps the
// block being written. Files are written in logical order, so an indirect
// block is complete, and written out, once the file moves past its range;
// three of them bound the memory whatever the file size.
type indirect struct {
	live  bool
	slot  int    // i_block slot: 12, 13 or 14
	start uint64 // first logical block it maps, directly or not
	phys  uint64
	ptr   [ptrsPerBlock]uint32
}

// alloc takes the next free data block.
func (w *writer) alloc() (uint64, error) {
	for w.cur >= w.lay.groupEnd(w.group) {
		w.group++
		if w.group >= w.lay.groups {
			// plan() counted every block, so this means a bug.
			return 0, fmt.Errorf("out of blocks after planning: %w", ErrNoSpace)
		}
		w.cur = w.lay.dataStart(w.group)
	}
	b := w.cur
	w.cur++
	return b, nil
}

// put queues one block for writing, merging contiguous blocks into one
// large write.
func (w *writer) put(blk uint64, data []byte) error {
	if len(w.buf) > 0 && (blk != w.bufStart+uint64(len(w.buf))/blockSize || len(w.buf)+blockSize > cap(w.buf)) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if len(w.buf) == 0 {
		w.bufStart = blk
	}
	w.buf = append(w.buf, data...)
	return nil
}

// patch replaces a block already queued or written.
func (w *writer) patch(blk uint64, data []byte) error {
	if n := uint64(len(w.buf)) / blockSize; blk >= w.bufStart && blk < w.bufStart+n {
		copy(w.buf[(blk-w.bufStart)*blockSize:], data)
		return nil
	}
	return w.writeAt(data, blk*blockSize)
}

func (w *writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if w.q == nil {
		err := w.writeAt(w.buf, w.bufStart*blockSize)
		w.buf = w.buf[:0]
		return err
	}
	next, err := w.q.write(w.buf, w.bufStart*blockSize)
	w.buf = next[:0]
	return err
}

func (w *writer) writeAt(b []byte, off uint64) error {
	if w.q != nil {
		// Behind the queued writes, which may cover the same blocks.
		_, err := w.q.write(append([]byte(nil), b...), off)
		return err
	}
	_, err := w.f.WriteAt(b, int64(off))
	return err
}

// writeQueue writes buffers in order on its own goroutine, so that the
// kernel's copy into the image overlaps reading and checking the next
// buffer's data. Two large buffers take turns.
type writeQueue struct {
	f    *os.File
	reqs chan writeReq
	free chan []byte // large buffers back from the writer
	done chan struct{}
	err  error // the first write error; read after done, or through failed
	bad  atomic.Bool
}

type writeReq struct {
	b     []byte
	off   uint64
	large bool // give b back on free
}

func newWriteQueue(f *os.File, size int) *writeQueue {
	q := &writeQueue{f: f, reqs: make(chan writeReq, 64), free: make(chan []byte, 2), done: make(chan struct{})}
	q.free <- make([]byte, 0, size)
	go func() {
		defer close(q.done)
		for r := range q.reqs {
			if !q.bad.Load() {
				if _, err := f.WriteAt(r.b, int64(r.off)); err != nil {
					q.err = err
					q.bad.Store(true)
				}
			}
			if r.large {
				q.free <- r.b
			}
		}
	}()
	return q
}

// write queues b at off and returns an empty large buffer to fill next
// (nil when b is not a large one). An earlier write's error stops it.
func (q *writeQueue) write(b []byte, off uint64) ([]byte, error) {
	if q.bad.Load() {
		return b, q.err // set before bad
	}
	large := cap(b) == writeBuf
	q.reqs <- writeReq{b: b, off: off, large: large}
	if !large {
		return nil, nil
	}
	return <-q.free, nil
}

// close waits for every queued write and returns the first error.
func (q *writeQueue) close() error {
	select {
	case <-q.done:
	default:
		close(q.reqs)
		<-q.done
	}
	return q.err
}

// addBlock allocates and queues data block lbn of n, allocating the
// indirect blocks that lead to it first, as Linux does, so a file's
// metadata sits just before the data it maps. Calls for one node must come
// in increasing lbn order, followed by finish.
func (w *writer) addBlock(n *node, lbn uint64, data []byte) error {
	var slot *uint32
	if lbn < nDirect {
		slot = &n.iblock[lbn]
	} else {
		rel, span, depth := lbn-nDirect, uint64(ptrsPerBlock), 1
		for rel >= span {
			rel -= span
			span *= ptrsPerBlock
			depth++
		}
		if depth > 3 {
			return fmt.Errorf("block %d beyond triple indirect range", lbn)
		}
		base := lbn - rel // first block mapped through this i_block slot
		slot = &n.iblock[nDirect+depth-1]
		for j := range depth {
			// span is what the indirect block at depth j maps.
			start := base + rel/span*span
			ind := &w.ind[j]
			if !ind.live || ind.slot != nDirect+depth-1 || ind.start != start {
				if err := w.closeIndirect(j); err != nil {
					return err
				}
				p, err := w.alloc()
				if err != nil {
					return err
				}
				// Queued as zeros to keep the write contiguous;
				// closeIndirect fills it in.
				if err := w.put(p, zeroBlock[:]); err != nil {
					return err
				}
				*slot = uint32(p)
				n.sectors += sectorsPerBlk
				*ind = indirect{live: true, slot: nDirect + depth - 1, start: start, phys: p}
			}
			span /= ptrsPerBlock
			slot = &ind.ptr[(lbn-start)/span]
		}
	}
	p, err := w.alloc()
	if err != nil {
		return err
	}
	*slot = uint32(p)
	n.sectors += sectorsPerBlk
	return w.put(p, data)
}

func (w *writer) closeIndirect(j int) error {
	ind := &w.ind[j]
	if !ind.live {
		return nil
	}
	var b [blockSize]byte
	for i, p := range ind.ptr {
		binary.LittleEndian.PutUint32(b[4*i:], p)
	}
	ind.live = false
	return w.patch(ind.phys, b[:])
}

// finish writes out the indirect blocks of the node just written.
func (w *writer) finish() error {
	for j := range w.ind {
		if err := w.closeIndirect(j); err != nil {
			return err
		}
	}
	return nil
}

// writeData allocates and writes every data block: directories first, so
// that path lookups at boot read one compact area, then attribute blocks,
// read with their inodes, then symlinks and files in manifest order.
func (w *writer) writeData() (err error) {
	w.buf = make([]byte, 0, writeBuf)
	w.q = newWriteQueue(w.f, writeBuf)
	defer func() {
		if qerr := w.q.close(); err == nil && qerr != nil {
			err = fmt.Errorf("ext2: write: %w", qerr)
		}
		w.q = nil // the metadata is written directly, after all the data
	}()
	for _, n := range w.nodes {
		if n != nil && n.kind == appliance.Dir {
			if err := w.writeDir(n); err != nil {
				return fmt.Errorf("ext2: write %s: %w", n.entry.Path, err)
			}
		}
	}
	if err := w.writeXattrs(); err != nil {
		return fmt.Errorf("ext2: write extended attributes: %w", err)
	}
	// Files' data is read ahead by a few goroutines, in the order it is
	// written: allocation stays sequential, so the image is the same.
	var files []*appliance.Entry
	for _, n := range w.nodes {
		if n != nil && n.kind == appliance.Regular {
			files = append(files, n.entry)
		}
	}
	pf := appliance.NewPrefetcher(w.ctx, files, w.opt.Prefetch)
	defer pf.Close()
	for i, n := range w.nodes {
		if n == nil {
			continue
		}
		if i%256 == 0 {
			if err := w.ctx.Err(); err != nil {
				return err
			}
		}
		var err error
		switch {
		case n.kind == appliance.Regular:
			var f *appliance.Fetched
			if f, err = pf.Next(); err == nil {
				err = w.writeFile(n, f)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
		case n.kind == appliance.Symlink && !n.fastSymlink():
			var b [blockSize]byte
			copy(b[:], n.entry.Link)
			if err = w.addBlock(n, 0, b[:]); err == nil {
				err = w.finish()
			}
		}
		if err != nil {
			return fmt.Errorf("ext2: write %s: %w", n.entry.Path, err)
		}
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("ext2: write: %w", err)
	}
	return nil
}

func (w *writer) writeDir(n *node) error {
	var b [blockSize]byte
	var lbn uint64
	off, last := 0, 0
	var err error
	emit := func(ino uint32, name string, ft uint8) {
		r := recLen(len(name))
		if off+r > blockSize {
			// The last entry of a block owns the rest of it.
			binary.LittleEndian.PutUint16(b[last+4:], uint16(blockSize-last))
			if err == nil {
				err = w.addBlock(n, lbn, b[:])
			}
			lbn++
			b = [blockSize]byte{}
			off = 0
		}
		binary.LittleEndian.PutUint32(b[off:], ino)
		binary.LittleEndian.PutUint16(b[off+4:], uint16(r))
		b[off+6] = uint8(len(name))
		b[off+7] = ft
		copy(b[off+8:], name)
		last = off
		off += r
	}
	emit(n.ino, ".", ftDir)
	emit(n.parent.ino, "..", ftDir)
	for _, c := range n.children {
		emit(c.ino, c.name, c.ftype)
	}
	binary.LittleEndian.PutUint16(b[last+4:], uint16(blockSize-last))
	if err == nil {
		err = w.addBlock(n, lbn, b[:])
	}
	lbn++
	// Spare blocks (lost+found) hold one empty entry spanning the block.
	var empty [blockSize]byte
	binary.LittleEndian.PutUint16(empty[4:], blockSize)
	for ; lbn < n.nblocks && err == nil; lbn++ {
		err = w.addBlock(n, lbn, empty[:])
	}
	if err == nil && lbn != n.nblocks {
		err = fmt.Errorf("directory took %d blocks, planned %d", lbn, n.nblocks)
	}
	if err != nil {
		return err
	}
	return w.finish()
}

// writeFile writes a regular file from its data read ahead (f). All-zero
// blocks are left as holes.
func (w *writer) writeFile(n *node, f *appliance.Fetched) error {
	e := n.entry
	if e.Data == nil {
		if n.size != 0 {
			return fmt.Errorf("no data for %d bytes", n.size)
		}
		return nil
	}
	if exts, ok := w.extents[n.ino]; ok {
		r, err := e.Data.Open()
		if err != nil {
			return err
		}
		err = w.writeExtents(n, r, exts)
		if cerr := r.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	} else if err := w.copyFile(n, f); err != nil {
		return err
	}
	if w.opt.Progress != nil {
		w.opt.Progress(e.Size)
	}
	return w.finish()
}

// copyFile writes f's head, then what its reader has left.
func (w *writer) copyFile(n *node, f *appliance.Fetched) error {
	var lbn, done uint64
	if err := w.addData(n, &lbn, f.Head); err != nil {
		return err
	}
	done = uint64(len(f.Head))
	if f.Rest == nil && done < n.size {
		return fmt.Errorf("data is %d bytes, the manifest says %d", done, n.size)
	}
	if w.rbuf == nil {
		w.rbuf = make([]byte, readBuf)
	}
	for done < n.size {
		chunk := min(n.size-done, readBuf)
		k, err := io.ReadFull(f.Rest, w.rbuf[:chunk])
		done += uint64(k)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("data is %d bytes, the manifest says %d", done, n.size)
		}
		if err != nil {
			return err
		}
		if err := w.addData(n, &lbn, w.rbuf[:k]); err != nil {
			return err
		}
	}
	if f.Rest != nil {
		var one [1]byte
		switch k, err := io.ReadFull(f.Rest, one[:]); {
		case k > 0:
			return fmt.Errorf("data is longer than the %d bytes the manifest says", n.size)
		case err != nil && !errors.Is(err, io.EOF):
			return err
		}
	}
	return nil
}

// addData adds the blocks of data, the file's next bytes from block *lbn
// on, skipping the all-zero ones. Only the last piece of a file may end
// inside a block: its tail reads as zeros.
func (w *writer) addData(n *node, lbn *uint64, data []byte) error {
	for len(data) > 0 {
		blk := data[:min(len(data), blockSize)]
		if len(blk) < blockSize {
			var b [blockSize]byte
			copy(b[:], blk)
			blk = b[:]
		}
		if !bytes.Equal(blk, zeroBlock[:]) {
			if err := w.addBlock(n, *lbn, blk); err != nil {
				return err
			}
		}
		*lbn++
		data = data[min(len(data), blockSize):]
	}
	return nil
}
