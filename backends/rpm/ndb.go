package rpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A read-only reader of rpm's own "ndb" Packages.db (openSUSE): a header
// page with slot pages after it; each used slot points at a blob of 16-byte
// blocks framed by a "BlbS" head and a "BlbE" tail. All fields are
// little-endian.

const (
	ndbMagic     = 'R' | 'p'<<8 | 'm'<<16 | 'P'<<24
	ndbSlotMagic = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbHeadMagic = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	ndbTailMagic = 'B' | 'l'<<8 | 'b'<<16 | 'E'<<24
	ndbPageSize  = 4096
	ndbSlotSize  = 16
	ndbBlockSize = 16
	ndbHeadSize  = 16
	ndbTailSize  = 12
)

type ndbFile struct {
	f         io.ReaderAt
	size      int64
	slotPages int64
}

func openNDB(f io.ReaderAt, size int64) (storage, error) {
	le := binary.LittleEndian
	var h [16]byte
	if size < ndbPageSize || readAt(f, h[:], 0) != nil || le.Uint32(h[0:4]) != ndbMagic {
		return nil, errors.New("not an ndb Packages.db (bad magic)")
	}
	if v := le.Uint32(h[4:8]); v != 0 {
		return nil, fmt.Errorf("ndb version %d not supported", v)
	}
	slotPages := int64(le.Uint32(h[12:16]))
	if slotPages == 0 || slotPages*ndbPageSize > size {
		return nil, fmt.Errorf("ndb: %d slot pages in a file of %d bytes", slotPages, size)
	}
	return &ndbFile{f: f, size: size, slotPages: slotPages}, nil
}

func (n *ndbFile) scan(fn func(location, []byte) error) error {
	le := binary.LittleEndian
	page := make([]byte, ndbPageSize)
	for pg := int64(0); pg < n.slotPages; pg++ {
		if err := readAt(n.f, page, pg*ndbPageSize); err != nil {
			return fmt.Errorf("slot page %d: %w", pg, err)
		}
		for i := 0; i < ndbPageSize/ndbSlotSize; i++ {
			slot := pg*ndbPageSize/ndbSlotSize + int64(i)
			if slot < 2 {
				continue // the file header takes the first two slots
			}
			s := page[i*ndbSlotSize:]
			if le.Uint32(s[0:4]) != ndbSlotMagic {
				return fmt.Errorf("slot %d: bad magic", slot)
			}
			pkgidx := le.Uint32(s[4:8])
			if pkgidx == 0 {
				continue // free
			}
			loc := location{key: fmt.Sprintf("package index %d", pkgidx),
				a: int64(le.Uint32(s[8:12])) * ndbBlockSize, b: int64(le.Uint32(s[12:16])) * ndbBlockSize, c: int64(pkgidx)}
			blob, err := n.read(loc)
			if err != nil {
				return err
			}
			if err := fn(loc, blob); err != nil {
				return err
			}
		}
	}
	return nil
}

// read reads the blob of loc.b bytes at loc.a, of package index loc.c,
// and checks its frame.
func (n *ndbFile) read(loc location) ([]byte, error) {
	le := binary.LittleEndian
	off, size := loc.a, loc.b
	if size < ndbHeadSize+ndbTailSize || off < n.slotPages*ndbPageSize || off+size > n.size {
		return nil, fmt.Errorf("%s: blob at %d+%d out of the file (%d bytes)", loc.key, off, size, n.size)
	}
	if size > maxBlob+ndbHeadSize+ndbTailSize+ndbBlockSize {
		return nil, fmt.Errorf("%s: blob of %d bytes, more than %d", loc.key, size, maxBlob)
	}
	var head [ndbHeadSize]byte
	if err := readAt(n.f, head[:], off); err != nil {
		return nil, fmt.Errorf("%s: %w", loc.key, err)
	}
	if le.Uint32(head[0:4]) != ndbHeadMagic || int64(le.Uint32(head[4:8])) != loc.c {
		return nil, fmt.Errorf("%s: bad blob head", loc.key)
	}
	blen := int64(le.Uint32(head[12:16]))
	var tail [ndbTailSize]byte
	if err := readAt(n.f, tail[:], off+size-ndbTailSize); err != nil {
		return nil, fmt.Errorf("%s: %w", loc.key, err)
	}
	if blen > size-ndbHeadSize-ndbTailSize || le.Uint32(tail[8:12]) != ndbTailMagic || int64(le.Uint32(tail[4:8])) != blen {
		return nil, fmt.Errorf("%s: bad blob length or tail", loc.key)
	}
	blob := make([]byte, blen)
	if err := readAt(n.f, blob, off+ndbHeadSize); err != nil {
		return nil, fmt.Errorf("%s: %w", loc.key, err)
	}
	return blob, nil
}
