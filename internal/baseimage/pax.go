package baseimage

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
)

// paxRecords holds the pax records a member's header uses; others
// (atime, ctime, comment, SCHILY.xattr.*...) are read and dropped, as
// supermin's tar -x drops them.
type paxRecords struct {
	m map[string]string
	// sparse00 holds GNU sparse 0.0's GNU.sparse.offset and
	// GNU.sparse.numbytes values in the order they came.
	sparse00 []int64
}

var paxKeys = map[string]bool{
	"path": true, "linkpath": true, "size": true, "uid": true, "gid": true,
	"uname": true, "gname": true, "mtime": true,
	"GNU.sparse.major": true, "GNU.sparse.minor": true, "GNU.sparse.name": true,
	"GNU.sparse.realsize": true, "GNU.sparse.size": true,
	"GNU.sparse.numblocks": true, "GNU.sparse.map": true,
}

// globalKeys are the records a global ('g') header may set for every
// later member; a name or size for all of them makes no sense.
var globalKeys = map[string]bool{"uid": true, "gid": true, "uname": true, "gname": true, "mtime": true}

// parsePAX reads records "LEN KEY=VALUE\n", LEN counting the whole record.
func parsePAX(data []byte) (paxRecords, error) {
	var p paxRecords
	for len(data) > 0 {
		if isZero(data) {
			break // some writers pad the header's data with NULs
		}
		sp := bytes.IndexByte(data, ' ')
		if sp <= 0 || sp > 20 {
			return p, errors.New("record without a length")
		}
		n, err := parseDecimal(string(data[:sp]), "record length")
		if err != nil {
			return p, err
		}
		if n <= int64(sp)+2 || n > int64(len(data)) {
			return p, fmt.Errorf("record length %d out of range", n)
		}
		rec := data[sp+1 : n]
		data = data[n:]
		if rec[len(rec)-1] != '\n' {
			return p, errors.New("record does not end with a newline")
		}
		key, val, ok := strings.Cut(string(rec[:len(rec)-1]), "=")
		if !ok || key == "" {
			return p, fmt.Errorf("record %q has no key", rec)
		}
		switch key {
		case "GNU.sparse.offset", "GNU.sparse.numbytes":
			if (key == "GNU.sparse.offset") != (len(p.sparse00)%2 == 0) {
				return p, errors.New("GNU.sparse.offset and GNU.sparse.numbytes do not alternate")
			}
			if len(p.sparse00) == 2*maxExtents {
				return p, fmt.Errorf("sparse map has more than %d extents", maxExtents)
			}
			v, err := parseDecimal(val, key)
			if err != nil {
				return p, err
			}
			p.sparse00 = append(p.sparse00, v)
		default:
			if paxKeys[key] {
				if p.m == nil {
					p.m = map[string]string{}
				}
				p.m[key] = val
			}
		}
	}
	return p, nil
}

func (p *paxRecords) get(key string) string { return p.m[key] }

func (p *paxRecords) has(key string) bool {
	_, ok := p.m[key]
	return ok
}

// sparse says whether the records describe a GNU sparse file.
func (p *paxRecords) sparse() bool {
	if len(p.sparse00) > 0 {
		return true
	}
	for k := range p.m {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// merge adds a global header's records; an empty value removes one.
func (p *paxRecords) merge(q paxRecords) {
	for k, v := range q.m {
		if !globalKeys[k] {
			continue
		}
		if v == "" {
			delete(p.m, k)
			continue
		}
		if p.m == nil {
			p.m = map[string]string{}
		}
		p.m[k] = v
	}
}

// apply sets h's fields from the records; an empty value leaves the
// header block's field.
func (p *paxRecords) apply(h *header) error {
	for _, key := range []string{"path", "linkpath", "uname", "gname", "size", "uid", "gid", "mtime"} {
		v := p.m[key]
		if v == "" {
			continue
		}
		var err error
		switch key {
		case "path":
			h.name = v
		case "linkpath":
			h.linkname = v
		case "uname":
			h.uname = v
		case "gname":
			h.gname = v
		case "size":
			h.size, err = parseDecimal(v, key)
		case "uid":
			h.uid, err = parseSigned(v, key)
		case "gid":
			h.gid, err = parseSigned(v, key)
		case "mtime":
			h.mtime, err = parsePAXTime(v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseSigned reads a decimal that may be negative, as ids may be in
// archives; whether they are usable is the unpacker's call.
func parseSigned(s, what string) (int64, error) {
	v, err := parseDecimal(strings.TrimPrefix(s, "-"), what)
	if strings.HasPrefix(s, "-") {
		v = -v
	}
	return v, err
}

// parsePAXTime reads "[-]SECONDS[.FRACTION]"; digits past nanoseconds are
// dropped.
func parsePAXTime(s string) (time.Time, error) {
	neg := strings.HasPrefix(s, "-")
	secs, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	sec, err := parseDecimal(secs, "mtime")
	if err != nil {
		return time.Time{}, err
	}
	var nsec int64
	for i := 0; i < 9; i++ {
		nsec *= 10
		if i < len(frac) {
			nsec += int64(frac[i] - '0')
		}
	}
	if strings.Trim(frac, "0123456789") != "" {
		return time.Time{}, fmt.Errorf("mtime: bad number %q", s)
	}
	if neg {
		sec, nsec = -sec, -nsec
	}
	return time.Unix(sec, nsec), nil
}
