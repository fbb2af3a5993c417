package rpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
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

func readNDB(file string) ([]record, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseNDB(data)
}

func parseNDB(data []byte) ([]record, error) {
	le := binary.LittleEndian
	if len(data) < ndbPageSize || le.Uint32(data[0:4]) != ndbMagic {
		return nil, errors.New("not an ndb Packages.db (bad magic)")
	}
	if v := le.Uint32(data[4:8]); v != 0 {
		return nil, fmt.Errorf("ndb version %d not supported", v)
	}
	slotPages := uint64(le.Uint32(data[12:16]))
	if slotPages == 0 || slotPages*ndbPageSize > uint64(len(data)) {
		return nil, fmt.Errorf("ndb: %d slot pages in a file of %d bytes", slotPages, len(data))
	}
	nslots := int(slotPages * ndbPageSize / ndbSlotSize)
	var out []record
	for i := 2; i < nslots; i++ { // the file header takes the first two slots
		s := data[i*ndbSlotSize:]
		if le.Uint32(s[0:4]) != ndbSlotMagic {
			return nil, fmt.Errorf("slot %d: bad magic", i)
		}
		pkgidx := le.Uint32(s[4:8])
		if pkgidx == 0 {
			continue // free
		}
		where := fmt.Sprintf("package index %d", pkgidx)
		off := uint64(le.Uint32(s[8:12])) * ndbBlockSize
		n := uint64(le.Uint32(s[12:16])) * ndbBlockSize
		if n < ndbHeadSize+ndbTailSize || off+n > uint64(len(data)) || off < slotPages*ndbPageSize {
			return nil, fmt.Errorf("%s: blob at %d+%d out of the file (%d bytes)", where, off, n, len(data))
		}
		b := data[off : off+n]
		if le.Uint32(b[0:4]) != ndbHeadMagic || le.Uint32(b[4:8]) != pkgidx {
			return nil, fmt.Errorf("%s: bad blob head", where)
		}
		blen := uint64(le.Uint32(b[12:16]))
		t := b[n-ndbTailSize:]
		if blen > n-ndbHeadSize-ndbTailSize || le.Uint32(t[8:12]) != ndbTailMagic || uint64(le.Uint32(t[4:8])) != blen {
			return nil, fmt.Errorf("%s: bad blob length or tail", where)
		}
		out = append(out, record{key: where, blob: b[ndbHeadSize : ndbHeadSize+blen]})
	}
	return out, nil
}
