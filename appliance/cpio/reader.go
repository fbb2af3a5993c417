package cpio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Reader reads a newc archive (tests, and looking into an initrd).
type Reader struct {
	r      *bufio.Reader
	remain int64
	pad    int
	done   bool
}

// NewReader reads a newc archive from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReader(r)} }

// maxName bounds the names Next accepts (PATH_MAX).
const maxName = 4096

// Next skips what is left of the current entry and returns the next
// header, or io.EOF after the trailer.
func (r *Reader) Next() (*Header, error) {
	if r.done {
		return nil, io.EOF
	}
	if _, err := io.CopyN(io.Discard, r.r, r.remain+int64(r.pad)); err != nil {
		return nil, unexpected(err)
	}
	r.remain, r.pad = 0, 0
	var buf [headerLen]byte
	if _, err := io.ReadFull(r.r, buf[:]); err != nil {
		if err == io.EOF {
			return nil, errors.New("cpio: archive ends without a trailer")
		}
		return nil, unexpected(err)
	}
	if string(buf[:6]) != magic && string(buf[:6]) != "070702" {
		return nil, fmt.Errorf("cpio: bad magic %q (only newc is supported)", buf[:6])
	}
	var f [13]uint32
	for i := range f {
		v, err := strconv.ParseUint(string(buf[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("cpio: bad header field %q", buf[6+8*i:14+8*i])
		}
		f[i] = uint32(v)
	}
	namesize := int(f[11])
	if namesize < 1 || namesize > maxName+1 {
		return nil, fmt.Errorf("cpio: bad name size %d", namesize)
	}
	name := make([]byte, namesize+pad4(headerLen+namesize))
	if _, err := io.ReadFull(r.r, name); err != nil {
		return nil, unexpected(err)
	}
	if name[namesize-1] != 0 {
		return nil, errors.New("cpio: name not NUL-terminated")
	}
	h := &Header{
		Name: string(name[:namesize-1]), Ino: f[0], Mode: f[1], UID: f[2], GID: f[3], Nlink: f[4],
		Mtime: int64(f[5]), Size: int64(f[6]), DevMajor: f[7], DevMinor: f[8], RdevMajor: f[9], RdevMinor: f[10],
	}
	if h.Name == trailer {
		r.done = true
		return nil, io.EOF
	}
	r.remain, r.pad = h.Size, pad4(int(h.Size&3))
	return h, nil
}

// Read reads the data of the current entry.
func (r *Reader) Read(p []byte) (int, error) {
	if r.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	n, err := r.r.Read(p)
	r.remain -= int64(n)
	if err == io.EOF && r.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
