package rpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A read-only reader of rpm's BerkeleyDB "Packages" file: a Berkeley DB
// hash database whose keys are header numbers and whose values are header
// blobs, nearly always on overflow pages. Every page is scanned in order;
// hash pages give key/value pairs.

const (
	bdbHashMagic  = 0x061561
	bdbPageHeader = 26

	bdbPageOverflow     = 7
	bdbPageHashMeta     = 8
	bdbPageHashUnsorted = 2
	bdbPageHash         = 13

	bdbItemKeyData = 1
	bdbItemOffPage = 3
)

type bdbFile struct {
	f        io.ReaderAt
	size     int64
	order    binary.ByteOrder
	pageSize int
	npages   int64
}

// A location of a Berkeley DB blob: a is its first overflow page and b its
// length, or, when c is 1, the blob is item b of hash page a.
const bdbInline = 1

func openBDB(f io.ReaderAt, size int64) (storage, error) {
	var meta [36]byte
	if size < 512 || readAt(f, meta[:], 0) != nil {
		return nil, fmt.Errorf("not a Berkeley DB file: %d bytes", size)
	}
	var order binary.ByteOrder = binary.LittleEndian
	switch {
	case binary.LittleEndian.Uint32(meta[12:16]) == bdbHashMagic:
	case binary.BigEndian.Uint32(meta[12:16]) == bdbHashMagic:
		order = binary.BigEndian
	default:
		return nil, errors.New("not a Berkeley DB hash database (bad magic)")
	}
	pageSize := int(order.Uint32(meta[20:24]))
	if pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return nil, fmt.Errorf("Berkeley DB page size %d invalid", pageSize)
	}
	if meta[24] != 0 {
		return nil, errors.New("encrypted Berkeley DB databases are not supported")
	}
	if meta[25] != bdbPageHashMeta {
		return nil, fmt.Errorf("Berkeley DB meta page of type %d, want a hash database", meta[25])
	}
	if meta[26]&1 != 0 {
		return nil, errors.New("Berkeley DB databases with page checksums are not supported")
	}
	npages := size / int64(pageSize)
	if last := int64(order.Uint32(meta[32:36])); last+1 < npages {
		npages = last + 1
	}
	return &bdbFile{f: f, size: size, order: order, pageSize: pageSize, npages: npages}, nil
}

// page reads page n; nil when n is out of the file.
func (d *bdbFile) page(n uint32, buf []byte) ([]byte, error) {
	if n == 0 || int64(n) >= d.npages {
		return nil, nil
	}
	if err := readAt(d.f, buf[:d.pageSize], int64(n)*int64(d.pageSize)); err != nil {
		return nil, fmt.Errorf("page %d: %w", n, err)
	}
	return buf[:d.pageSize], nil
}

// items returns the byte ranges of the items of hash page p (page n).
func (d *bdbFile) items(n uint32, p []byte) ([][]byte, error) {
	entries := int(d.order.Uint16(p[20:22]))
	if bdbPageHeader+2*entries > d.pageSize {
		return nil, fmt.Errorf("page %d: %d entries do not fit", n, entries)
	}
	out := make([][]byte, entries)
	end := d.pageSize
	for i := range out {
		off := int(d.order.Uint16(p[bdbPageHeader+2*i:]))
		if off < bdbPageHeader+2*entries || off >= end {
			return nil, fmt.Errorf("page %d item %d: offset %d out of range", n, i, off)
		}
		out[i], end = p[off:end], off
	}
	return out, nil
}

func (d *bdbFile) scan(fn func(location, []byte) error) error {
	var hdr [bdbPageHeader]byte
	buf := make([]byte, d.pageSize)
	for n := int64(1); n < d.npages; n++ {
		if err := readAt(d.f, hdr[:], n*int64(d.pageSize)); err != nil {
			return fmt.Errorf("page %d: %w", n, err)
		}
		if hdr[25] != bdbPageHash && hdr[25] != bdbPageHashUnsorted {
			continue
		}
		p, err := d.page(uint32(n), buf)
		if err != nil {
			return err
		}
		items, err := d.items(uint32(n), p)
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(items); i += 2 {
			key, val := items[i], items[i+1]
			loc := location{key: fmt.Sprintf("page %d item %d", n, i+1)}
			if key[0] == bdbItemKeyData && len(key) == 5 {
				hnum := d.order.Uint32(key[1:5])
				if hnum == 0 {
					continue // rpm's record 0 holds the next header number
				}
				loc.key = fmt.Sprintf("header %d", hnum)
			}
			var blob []byte
			switch val[0] {
			case bdbItemKeyData:
				loc.a, loc.b, loc.c = n, int64(i+1), bdbInline
				blob = val[1:]
			case bdbItemOffPage:
				if len(val) < 12 {
					return fmt.Errorf("%s: truncated overflow reference", loc.key)
				}
				loc.a, loc.b = int64(d.order.Uint32(val[4:8])), int64(d.order.Uint32(val[8:12]))
				if blob, err = d.overflow(loc); err != nil {
					return err
				}
			default:
				continue // duplicates are not used by rpm
			}
			if err := fn(loc, blob); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *bdbFile) read(loc location) ([]byte, error) {
	if loc.c != bdbInline {
		return d.overflow(loc)
	}
	p, err := d.page(uint32(loc.a), make([]byte, d.pageSize))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc.key, err)
	}
	if p == nil {
		return nil, fmt.Errorf("%s: page %d out of the file", loc.key, loc.a)
	}
	items, err := d.items(uint32(loc.a), p)
	if err != nil {
		return nil, err
	}
	if loc.b < 0 || loc.b >= int64(len(items)) || items[loc.b][0] != bdbItemKeyData {
		return nil, fmt.Errorf("%s: no longer on page %d", loc.key, loc.a)
	}
	return append([]byte(nil), items[loc.b][1:]...), nil
}

// overflow reads the loc.b bytes of the overflow chain from page loc.a.
func (d *bdbFile) overflow(loc location) ([]byte, error) {
	total := loc.b
	if total > d.size || total > maxBlob {
		return nil, fmt.Errorf("%s: value of %d bytes larger than the file or %d", loc.key, total, maxBlob)
	}
	blob := make([]byte, 0, total)
	buf := make([]byte, d.pageSize)
	pg := uint32(loc.a)
	for visited := int64(0); int64(len(blob)) < total; visited++ {
		op, err := d.page(pg, buf)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", loc.key, err)
		}
		// A chain longer than the file has pages is a loop.
		if op == nil || visited >= d.npages || op[25] != bdbPageOverflow {
			return nil, fmt.Errorf("%s: overflow chain broken at page %d after %d of %d bytes", loc.key, pg, len(blob), total)
		}
		l := int(d.order.Uint16(op[22:24]))
		if bdbPageHeader+l > d.pageSize {
			return nil, fmt.Errorf("%s: overflow page %d holds %d bytes", loc.key, pg, l)
		}
		blob = append(blob, op[bdbPageHeader:bdbPageHeader+l]...)
		pg = d.order.Uint32(op[16:20])
	}
	return blob[:total], nil
}
