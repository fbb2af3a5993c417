package baseimage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/gosupermin/gosupermin/internal/xz"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"
)

// OpenFile opens a regular file for reading. Anything else is refused by
// its type before open(2), because opening a FIFO blocks until a writer
// comes (and no signal ends the wait) and opening a device can have
// effects; and again by fstat(2) after an open that cannot block, in case
// the name changed in between. Errors start with the name.
func OpenFile(name string) (*os.File, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, unwrapPath(err))
	}
	if err := regular(fi.Mode()); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if fi, err = f.Stat(); err == nil {
		err = regular(fi.Mode())
	}
	if err == nil {
		// Regular files ignore O_NONBLOCK today; clear it so that no
		// filesystem ever returns EAGAIN to a plain read.
		err = unix.SetNonblock(fd, false)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, unwrapPath(err))
	}
	return f, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func regular(m fs.FileMode) error {
	var what string
	switch {
	case m.IsRegular():
		return nil
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a block device"
	case m.IsDir():
		what = "a directory"
	default:
		what = "of type " + m.Type().String()
	}
	return fmt.Errorf("is %s, not a regular file", what)
}

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicXZ   = []byte(xz.Magic)
)

// Decompress returns the tar stream inside r: gzip (every member) and xz
// (every stream) are undone, anything else is returned as it is. how
// names the compression ("gzip", "xz" or "").
func Decompress(r io.Reader) (tar io.Reader, how string, err error) {
	return decompress(bufio.NewReaderSize(r, 64<<10), xz.DefaultMaxDict)
}

// decompress undoes gzip or xz, giving xz at most dict bytes of
// dictionary.
func decompress(br *bufio.Reader, dict int64) (io.Reader, string, error) {
	head, _ := br.Peek(len(magicXZ))
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, "gzip", fmt.Errorf("gzip: truncated or corrupt: %w", err)
		}
		return zr, "gzip", nil
	case bytes.HasPrefix(head, magicXZ):
		zr, err := xz.NewReader(br, dict)
		if err != nil {
			return nil, "xz", fmt.Errorf("xz: truncated or corrupt: %w", err)
		}
		return zr, "xz", nil
	}
	return br, "", nil
}

// Detect reads the start of r and says whether it is a base image: a tar
// (ustar magic at byte 257), or gzip or xz wrapping one, of which it
// decompresses the first block only. head is r's first bytes (up to 512),
// for the caller's own sniffing of what is not a base image.
func Detect(r io.Reader) (base bool, head []byte, err error) {
	br := bufio.NewReaderSize(r, 4096)
	head, _ = br.Peek(blockSize)
	head = bytes.Clone(head)
	// The first block of output can refer back only within itself:
	// however large a dictionary the xz header asks for, a small one
	// decodes it.
	tr, how, err := decompress(br, xz.MinDict)
	if err != nil {
		return false, head, err
	}
	if how == "" {
		return isTar(head), head, nil
	}
	var blk [blockSize]byte
	n := 0
	for n < len(blk) {
		k, err := tr.Read(blk[n:])
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, head, fmt.Errorf("%s: truncated or corrupt: %w", how, err)
		}
	}
	if !isTar(blk[:n]) {
		return false, head, fmt.Errorf("%s-compressed file is not a tar archive", how)
	}
	return true, head, nil
}

func isTar(b []byte) bool { return len(b) >= 262 && string(b[257:262]) == "ustar" }
