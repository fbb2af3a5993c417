// Package baseimage unpacks supermin base images (tar, tar.gz, tar.xz)
// into an appliance manifest, streaming, with memory bounded whatever the archive.
//
// It has its own tar reader (ustar, pax, GNU long names, the GNU sparse
// formats) and reads xz with internal/xz, whose dictionary is bounded.
// Small files stay in memory; the rest goes to a Spool, an unnamed
// temporary file, without the archive's holes or its files' all-zero
// 4 KiB blocks.
package baseimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/gosupermin/gosupermin/appliance"
)

const (
	// smallFile is the largest file kept in memory, while memBudget lasts.
	smallFile = 64 << 10
	memBudget = 16 << 20
	// metaBudget bounds what one image's entries cost in memory (names,
	// entries, spool maps): about 100,000 entries. A base image holds
	// config files, a few hundred of them.
	metaBudget = 32 << 20
	// entryCost is what an entry costs besides its names, measured with
	// BenchmarkUnpack/many-files.
	entryCost = 240
	pieceCost = 24
	// holeBlock is the granularity of the zeros left out of the spool.
	holeBlock = 4096
	chunk     = 256 << 10
)

// Unpack adds the entries of the base image file to m, over what is there
// (later images overwrite earlier ones). Data too large for memory goes
// to spool; spool may be nil when the image is known to be small, and a
// file that needs it is then an error. Nothing is written to disk but the
// spool; the checks make sure no entry can reach outside the appliance
// when a writer puts it on disk: absolute names, ".." components and
// entries under a symlink are refused. Errors name the file and the entry.
func Unpack(ctx context.Context, m *appliance.Manifest, file string, spool *Spool) error {
	f, err := OpenFile(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unpack(ctx, m, f, spool, defaultLimits); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// limits are the memory bounds of one image; tests lower them.
type limits struct{ small, mem, meta int64 }

var defaultLimits = limits{small: smallFile, mem: memBudget, meta: metaBudget}

func unpack(ctx context.Context, m *appliance.Manifest, r io.Reader, spool *Spool, lim limits) error {
	zr, _, err := Decompress(r)
	if err != nil {
		return err
	}
	u := &unpacker{m: m, spool: spool, tr: newTarReader(zr), limits: lim}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := u.tr.next()
		if err == io.EOF {
			return u.end()
		}
		if err != nil {
			return err
		}
		if err := u.add(ctx, h); err != nil {
			return fmt.Errorf("entry %q: %w", h.name, err)
		}
		if err := u.drain(ctx); err != nil {
			return fmt.Errorf("entry %q: %w", h.name, err)
		}
	}
}

// drain reads what add left of an entry's data (a "./" with data, say),
// so that skipping a terabyte can be cancelled too.
func (u *unpacker) drain(ctx context.Context) error {
	if u.tr.remain == 0 {
		return nil
	}
	if u.buf == nil {
		u.buf = make([]byte, chunk)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := u.tr.Read(u.buf); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read data: %w", err)
		}
	}
}

type unpacker struct {
	limits
	m     *appliance.Manifest
	spool *Spool
	tr    *tarReader
	inMem int64 // bytes of data kept in memory
	used  int64 // bytes of entries, names and spool maps
	buf   []byte
}

// end reads what follows the end-of-archive blocks, a little of it, so
// that the compressor's own check (gzip's CRC, xz's index) is verified.
func (u *unpacker) end() error {
	_, err := io.CopyN(io.Discard, u.tr.r, 1<<20)
	if err != nil && err != io.EOF {
		return fmt.Errorf("after the end of the archive: %w", err)
	}
	return nil
}

func (u *unpacker) charge(n int64) error {
	u.used += n
	if u.used > u.meta {
		return fmt.Errorf("the archive's entries need more than %d MiB of memory (too many entries or sparse extents)", u.meta>>20)
	}
	return nil
}

func (u *unpacker) add(ctx context.Context, h *header) error {
	if strings.HasPrefix(h.name, "/") {
		return errors.New("absolute name")
	}
	p, err := appliance.CleanPath(h.name)
	if err != nil {
		return err
	}
	if p == "/" {
		return nil // "./": the root directory's own metadata is the host's
	}
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if e, ok := u.m.Get(d); ok && e.Kind != appliance.Dir {
			return fmt.Errorf("would write through %s %s", e.Kind, d)
		}
	}
	if h.uid < 0 || h.gid < 0 || h.uid > 1<<32-1 || h.gid > 1<<32-1 {
		return fmt.Errorf("owner %d:%d out of range", h.uid, h.gid)
	}
	if err := u.charge(entryCost + int64(len(p)+len(h.linkname))); err != nil {
		return err
	}
	e := appliance.Entry{
		Path: p, Mode: uint32(h.mode) & 07777,
		UID: uint32(h.uid), GID: uint32(h.gid), ModTime: h.mtime,
	}
	switch h.typ {
	case '0':
		e.Kind, e.Size = appliance.Regular, h.size
		if e.Data, e.Sparse, err = u.data(ctx, h); err != nil {
			return err
		}
	case '5':
		e.Kind = appliance.Dir
	case '2':
		if h.linkname == "" {
			return errors.New("symlink with an empty target")
		}
		e.Kind, e.Link = appliance.Symlink, h.linkname
	case '1':
		if strings.HasPrefix(h.linkname, "/") {
			return fmt.Errorf("hard link to absolute name %q", h.linkname)
		}
		target, err := appliance.CleanPath(h.linkname)
		if err != nil {
			return fmt.Errorf("hard link: %w", err)
		}
		t, ok := u.m.Get(target)
		if !ok || t.Kind != appliance.Regular {
			return fmt.Errorf("hard link to %q, which is not a regular file of the archive", h.linkname)
		}
		// A base image's link is a copy of the target's data as it is now:
		// the target may come from another layer, so keep it independent.
		e.Kind, e.Size, e.Data, e.Sparse = appliance.Regular, t.Size, t.Data, t.Sparse
		e.Mode, e.UID, e.GID, e.ModTime = t.Mode, t.UID, t.GID, t.ModTime
	case '3', '4':
		e.Kind = appliance.CharDev
		if h.typ == '4' {
			e.Kind = appliance.BlockDev
		}
		if h.devmajor < 0 || h.devminor < 0 || h.devmajor > 1<<32-1 || h.devminor > 1<<32-1 {
			return errors.New("device number out of range")
		}
		e.Major, e.Minor = uint32(h.devmajor), uint32(h.devminor)
	case '6':
		e.Kind = appliance.FIFO
	default:
		return fmt.Errorf("unsupported tar entry type %q", h.typ)
	}
	return u.m.Put(e)
}

// data reads a regular file's data: small files into memory, the rest
// into the spool without its zeros.
func (u *unpacker) data(ctx context.Context, h *header) (appliance.Source, bool, error) {
	if h.size == 0 {
		return nil, false, nil
	}
	ext := h.sparse
	if ext == nil {
		ext = []extent{{0, h.size}}
	}
	if h.size <= u.small && u.inMem+h.size <= u.mem {
		b := make([]byte, h.size)
		for _, e := range ext {
			if _, err := io.ReadFull(u.tr, b[e.off:e.off+e.len]); err != nil {
				return nil, false, fmt.Errorf("read data: %w", err)
			}
		}
		u.inMem += h.size
		return appliance.Bytes(b), false, nil
	}
	if u.spool == nil {
		return nil, false, fmt.Errorf("%d bytes of data and no spool to keep them", h.size)
	}
	if u.buf == nil {
		u.buf = make([]byte, chunk)
	}
	s := &spooled{spool: u.spool, size: h.size}
	for _, e := range ext {
		if err := u.spoolExtent(ctx, s, e); err != nil {
			return nil, false, err
		}
	}
	return s, s.stored() < s.size, nil
}

// spoolExtent copies one stored extent to the spool, leaving out the
// pieces of it that are zeros within each 4 KiB block of the file.
func (u *unpacker) spoolExtent(ctx context.Context, s *spooled, e extent) error {
	for pos, end := e.off, e.off+e.len; pos < end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		// End the chunk on a block boundary, so blocks are whole in it.
		n := min(end-pos, int64(chunk)-pos%holeBlock)
		b := u.buf[:n]
		if _, err := io.ReadFull(u.tr, b); err != nil {
			return fmt.Errorf("read data: %w", err)
		}
		run := -1 // start in b of the data not yet written
		flush := func(i int) error {
			if run < 0 {
				return nil
			}
			err := u.store(s, pos+int64(run), b[run:i])
			run = -1
			return err
		}
		// Holes beyond half the budget would risk it: keep zeros then.
		holes := u.used+pieceCost <= u.meta/2
		for i := 0; i < len(b); {
			j := min(len(b), i+holeBlock-int((pos+int64(i))%holeBlock))
			if holes && isZero(b[i:j]) {
				if err := flush(i); err != nil {
					return err
				}
			} else if run < 0 {
				run = i
			}
			i = j
		}
		if err := flush(len(b)); err != nil {
			return err
		}
		pos += n
	}
	return nil
}

// store writes data of logical offset log to the spool, growing the last
// piece when it continues it.
func (u *unpacker) store(s *spooled, log int64, b []byte) error {
	at, err := u.spool.write(b)
	if err != nil {
		return err
	}
	n := int64(len(b))
	if k := len(s.pieces); k > 0 {
		last := &s.pieces[k-1]
		if last.log+last.n == log && last.at+last.n == at {
			last.n += n
			return nil
		}
	}
	if err := u.charge(pieceCost); err != nil {
		return err
	}
	s.pieces = append(s.pieces, piece{log, n, at})
	return nil
}
