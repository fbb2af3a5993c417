package rpm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// The storage readers read a database file through an io.ReaderAt, a
// page or a record at a time: Fedora's rpmdb.sqlite is 50-150 MB, most of
// it header blobs, and the build keeps none of them. Open scans every
// record once; a package's header is read again, from where the scan
// found it, when its files or scripts are asked for.

// maxBlob bounds one header blob: rpm itself accepts up to 256 MiB of
// header data, but the largest headers of real distributions (kernel-devel
// with 20,000 files) are a few MiB, and the bound is what one record may
// cost in memory.
const maxBlob = 64 << 20

// location is where a storage found a header blob.
type location struct {
	key     string // for messages: "hnum 12", "header 5", "package index 3"
	a, b, c int64  // the format's own coordinates
}

// storage is an opened database file.
type storage interface {
	// scan calls fn with every header blob and its location, in the
	// file's order. The blob is fn's only for the call.
	scan(fn func(loc location, blob []byte) error) error
	// read reads again the blob that scan found at loc.
	read(loc location) ([]byte, error)
}

// readerAt is what the readers need of a database file: fs.File of an
// os.DirFS or of internal/rootfs is an *os.File, which has it.
func readerAt(f fs.File) (io.ReaderAt, int64, error) {
	r, ok := f.(io.ReaderAt)
	if !ok {
		return nil, 0, errors.New("the file system gives no random access to the database file")
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	return r, fi.Size(), nil
}

// readAt reads len(b) bytes at off; a short file is an error.
func readAt(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
