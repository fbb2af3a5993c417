// Package cpio writes (and reads back) "newc" cpio archives, the format of
// Linux initramfs images (magic 070701).
//
// The writer records device numbers (rdevmajor/rdevminor), writes symlink
// targets as the entry's data, and stores a hard-linked file once: every
// name of it shares one inode number and the link count, and the data goes
// with the first name (the Linux initramfs unpacker, GNU cpio and libarchive
// all take it from there; the following names have size 0). Inode numbers are
// assigned in order from 1 and nothing depends on the host, so the same
// entries give the same bytes.
package cpio

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
)

// Mode bits of the newc c_mode field.
const (
	TypeMask    = 0o170000
	TypeSocket  = 0o140000
	TypeSymlink = 0o120000
	TypeRegular = 0o100000
	TypeBlock   = 0o060000
	TypeDir     = 0o040000
	TypeChar    = 0o020000
	TypeFIFO    = 0o010000
)

const (
	magic     = "070701"
	headerLen = 110
	trailer   = "TRAILER!!!"
)

// Header is one newc header. Name is stored as given ("." for the root,
// "usr/bin/bash" for the rest, as initramfs images name them).
type Header struct {
	Name                 string
	Ino                  uint32
	Mode                 uint32 // type and permission bits
	UID, GID             uint32
	Nlink                uint32
	Mtime                int64 // seconds; clamped to 0..2^32-1
	Size                 int64 // bytes of data that follow
	DevMajor, DevMinor   uint32
	RdevMajor, RdevMinor uint32
}

// Writer writes a newc archive.
type Writer struct {
	w      *bufio.Writer
	remain int64 // data bytes still owed by the current entry
	pad    int   // padding after them
	closed bool
	// entry state for WriteEntry
	ino   uint32
	links map[string]uint32 // path of a regular file with hard links -> its inode
	nlink map[string]uint32 // path of a regular file -> number of names
}

// NewWriter returns a writer to w. Close writes the trailer and flushes.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 1<<16)}
}

func hex8(b []byte, v uint32) {
	const digits = "0123456789abcdef"
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
}

// WriteHeader writes h; exactly h.Size bytes of data must follow through
// Write before the next header.
func (w *Writer) WriteHeader(h *Header) error {
	if w.closed {
		return errors.New("cpio: write after close")
	}
	if w.remain != 0 {
		return fmt.Errorf("cpio: %d bytes of the previous entry missing", w.remain)
	}
	if err := w.writePad(); err != nil {
		return err
	}
	if h.Name == "" || strings.IndexByte(h.Name, 0) >= 0 {
		return fmt.Errorf("cpio: bad name %q", h.Name)
	}
	if h.Size < 0 || h.Size > math.MaxUint32 {
		return fmt.Errorf("cpio: %s: size %d does not fit in newc (4 GiB - 1 at most)", h.Name, h.Size)
	}
	mtime := h.Mtime
	if mtime < 0 {
		mtime = 0
	} else if mtime > math.MaxUint32 {
		mtime = math.MaxUint32
	}
	namesize := len(h.Name) + 1
	var buf [headerLen]byte
	copy(buf[:], magic)
	for i, v := range []uint32{h.Ino, h.Mode, h.UID, h.GID, h.Nlink, uint32(mtime), uint32(h.Size),
		h.DevMajor, h.DevMinor, h.RdevMajor, h.RdevMinor, uint32(namesize), 0} {
		hex8(buf[6+8*i:], v)
	}
	if _, err := w.w.Write(buf[:]); err != nil {
		return err
	}
	if _, err := w.w.WriteString(h.Name); err != nil {
		return err
	}
	// NUL, then pad header+name to a multiple of 4.
	n := pad4(headerLen+namesize) + 1
	if _, err := w.w.Write(zeros[:n]); err != nil {
		return err
	}
	w.remain, w.pad = h.Size, pad4(int(h.Size&3))
	return nil
}

var zeros [4]byte

func pad4(n int) int { return (4 - n&3) & 3 }

func (w *Writer) writePad() error {
	if w.pad == 0 {
		return nil
	}
	_, err := w.w.Write(zeros[:w.pad])
	w.pad = 0
	return err
}

// Write writes data of the current entry.
func (w *Writer) Write(p []byte) (int, error) {
	if int64(len(p)) > w.remain {
		n, _ := w.w.Write(p[:w.remain])
		w.remain -= int64(n)
		return n, errors.New("cpio: write beyond the entry's size")
	}
	n, err := w.w.Write(p)
	w.remain -= int64(n)
	return n, err
}

// Close writes the trailer and flushes; it does not close the underlying
// writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	if err := w.WriteHeader(&Header{Name: trailer, Nlink: 1}); err != nil {
		return err
	}
	w.closed = true
	return w.w.Flush()
}

// Name is the archive name of an appliance path: "." for "/", else the
// path without its leading slash.
func Name(p string) string {
	if p == "/" || p == "" {
		return "."
	}
	return strings.TrimPrefix(p, "/")
}

var typeOf = map[appliance.Kind]uint32{
	appliance.Regular:  TypeRegular,
	appliance.Dir:      TypeDir,
	appliance.Symlink:  TypeSymlink,
	appliance.Hardlink: TypeRegular,
	appliance.CharDev:  TypeChar,
	appliance.BlockDev: TypeBlock,
	appliance.FIFO:     TypeFIFO,
	appliance.Socket:   TypeSocket,
}

// CountLinks records the hard links among entries so that WriteEntry can
// give every name of a file its link count. Call it once with all the
// entries before the first WriteEntry when there are Hardlink entries.
func (w *Writer) CountLinks(entries []*appliance.Entry) {
	w.nlink = map[string]uint32{}
	for _, e := range entries {
		if e.Kind == appliance.Hardlink {
			if w.nlink[e.Link] == 0 {
				w.nlink[e.Link] = 1
			}
			w.nlink[e.Link]++
		}
	}
}

// WriteEntry writes e with its data. Entries must come in the order of
// appliance.Manifest.Entries: a hard link after the file it names.
func (w *Writer) WriteEntry(e *appliance.Entry) error {
	typ, ok := typeOf[e.Kind]
	if !ok {
		return fmt.Errorf("cpio: %s: unknown kind %v", e.Path, e.Kind)
	}
	if w.links == nil {
		w.links = map[string]uint32{}
	}
	h := &Header{
		Name:  Name(e.Path),
		Mode:  typ | e.Mode&0o7777,
		UID:   e.UID,
		GID:   e.GID,
		Nlink: 1,
		Mtime: mtime(e.ModTime),
	}
	var data io.Reader
	switch e.Kind {
	case appliance.Dir:
		h.Nlink = 2
	case appliance.Symlink:
		h.Size = int64(len(e.Link))
		data = strings.NewReader(e.Link)
	case appliance.CharDev, appliance.BlockDev:
		h.RdevMajor, h.RdevMinor = e.Major, e.Minor
	case appliance.Regular:
		h.Size = e.Size
		if n := w.nlink[e.Path]; n > 1 {
			h.Nlink = n
		}
	case appliance.Hardlink:
		ino, ok := w.links[e.Link]
		if !ok {
			return fmt.Errorf("cpio: %s: hard link to %s, which was not written before it", e.Path, e.Link)
		}
		h.Ino, h.Nlink = ino, w.nlink[e.Link]
		if h.Nlink < 2 {
			h.Nlink = 2
		}
		return w.WriteHeader(h)
	}
	w.ino++
	h.Ino = w.ino
	if e.Kind == appliance.Regular {
		w.links[e.Path] = h.Ino
	}
	if err := w.WriteHeader(h); err != nil {
		return err
	}
	if e.Kind == appliance.Regular && e.Size > 0 {
		if e.Data == nil {
			return fmt.Errorf("cpio: %s: no data for %d bytes", e.Path, e.Size)
		}
		rc, err := e.Data.Open()
		if err != nil {
			return fmt.Errorf("cpio: %w", err)
		}
		defer rc.Close()
		data = rc
	}
	if data != nil {
		n, err := io.Copy(w, io.LimitReader(data, h.Size))
		if err != nil {
			return fmt.Errorf("cpio: %s: %w", e.Path, err)
		}
		if n < h.Size {
			return fmt.Errorf("cpio: %s: %d bytes expected, %d read (did the file change during the build?)", e.Path, h.Size, n)
		}
	}
	return nil
}

func mtime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

var _ appliance.Writer = (*Writer)(nil)

// WriteManifest writes every entry of the sealed manifest m with its data,
// then the trailer (Close).
func (w *Writer) WriteManifest(ctx context.Context, m *appliance.Manifest) error {
	if !m.Sealed() {
		return appliance.ErrNotSealed
	}
	entries := m.Entries()
	w.CountLinks(entries)
	for i, e := range entries {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := w.WriteEntry(e); err != nil {
			return err
		}
	}
	return w.Close()
}
