package rpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
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

func readBDB(file string) ([]record, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseBDB(data)
}

func parseBDB(data []byte) ([]record, error) {
	if len(data) < 512 {
		return nil, fmt.Errorf("not a Berkeley DB file: %d bytes", len(data))
	}
	var order binary.ByteOrder = binary.LittleEndian
	switch {
	case binary.LittleEndian.Uint32(data[12:16]) == bdbHashMagic:
	case binary.BigEndian.Uint32(data[12:16]) == bdbHashMagic:
		order = binary.BigEndian
	default:
		return nil, errors.New("not a Berkeley DB hash database (bad magic)")
	}
	pageSize := int(order.Uint32(data[20:24]))
	if pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return nil, fmt.Errorf("Berkeley DB page size %d invalid", pageSize)
	}
	if data[24] != 0 {
		return nil, errors.New("encrypted Berkeley DB databases are not supported")
	}
	if data[25] != bdbPageHashMeta {
		return nil, fmt.Errorf("Berkeley DB meta page of type %d, want a hash database", data[25])
	}
	if data[26]&1 != 0 {
		return nil, errors.New("Berkeley DB databases with page checksums are not supported")
	}
	npages := len(data) / pageSize
	if last := int(order.Uint32(data[32:36])); last+1 < npages {
		npages = last + 1
	}
	page := func(n uint32) []byte {
		if n == 0 || int64(n) >= int64(npages) {
			return nil
		}
		return data[int(n)*pageSize : int(n+1)*pageSize]
	}
	var out []record
	for n := 1; n < npages; n++ {
		p := page(uint32(n))
		if p[25] != bdbPageHash && p[25] != bdbPageHashUnsorted {
			continue
		}
		entries := int(order.Uint16(p[20:22]))
		if bdbPageHeader+2*entries > pageSize {
			return nil, fmt.Errorf("page %d: %d entries do not fit", n, entries)
		}
		offs := make([]int, entries)
		for i := range offs {
			offs[i] = int(order.Uint16(p[bdbPageHeader+2*i:]))
		}
		item := func(i int) ([]byte, error) {
			end := pageSize
			if i > 0 {
				end = offs[i-1]
			}
			if offs[i] < bdbPageHeader+2*entries || offs[i] >= end || end > pageSize {
				return nil, fmt.Errorf("page %d item %d: offset %d out of range", n, i, offs[i])
			}
			return p[offs[i]:end], nil
		}
		for i := 0; i+1 < entries; i += 2 {
			key, err := item(i)
			if err != nil {
				return nil, err
			}
			val, err := item(i + 1)
			if err != nil {
				return nil, err
			}
			where := fmt.Sprintf("page %d item %d", n, i+1)
			if key[0] == bdbItemKeyData && len(key) == 5 {
				where = fmt.Sprintf("header %d", order.Uint32(key[1:5]))
				if order.Uint32(key[1:5]) == 0 {
					continue // rpm's record 0 holds the next header number
				}
			}
			var blob []byte
			switch val[0] {
			case bdbItemKeyData:
				blob = val[1:]
			case bdbItemOffPage:
				if len(val) < 12 {
					return nil, fmt.Errorf("%s: truncated overflow reference", where)
				}
				pg, total := order.Uint32(val[4:8]), order.Uint32(val[8:12])
				if int64(total) > int64(len(data)) {
					return nil, fmt.Errorf("%s: value of %d bytes larger than the file", where, total)
				}
				blob = make([]byte, 0, total)
				seen := map[uint32]bool{}
				for uint32(len(blob)) < total {
					op := page(pg)
					if op == nil || seen[pg] || op[25] != bdbPageOverflow {
						return nil, fmt.Errorf("%s: overflow chain broken at page %d after %d of %d bytes", where, pg, len(blob), total)
					}
					seen[pg] = true
					l := int(order.Uint16(op[22:24]))
					if bdbPageHeader+l > pageSize {
						return nil, fmt.Errorf("%s: overflow page %d holds %d bytes", where, pg, l)
					}
					blob = append(blob, op[bdbPageHeader:bdbPageHeader+l]...)
					pg = order.Uint32(op[16:20])
				}
				blob = blob[:total]
			default:
				continue // duplicates are not used by rpm
			}
			out = append(out, record{key: where, blob: blob})
		}
	}
	return out, nil
}
