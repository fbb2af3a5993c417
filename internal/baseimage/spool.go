package baseimage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"

	"github.com/gosupermin/gosupermin/appliance"
	"golang.org/x/sys/unix"
)

// Spool is an unnamed temporary file holding the data of base-image files
// too large to keep in memory. It has no name from the start (O_TMPFILE),
// or loses it at once, so nothing is left behind even after SIGKILL.
// The sources it hands out read it until Close.
type Spool struct {
	mu  sync.Mutex
	f   *os.File
	end int64
}

// NewSpool creates a spool in dir.
func NewSpool(dir string) (*Spool, error) {
	if dir == "" {
		return nil, errors.New("spool: no directory given")
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return &Spool{f: os.NewFile(uintptr(fd), dir+"/(spool)")}, nil
	}
	// Kernels before 3.11 and some filesystems (NFS, ...) have no O_TMPFILE.
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("spool in %s: %w", dir, err)
	}
	return newUnlinkedSpool(dir)
}

// newUnlinkedSpool is the way without O_TMPFILE: a file removed as soon
// as it is made.
func newUnlinkedSpool(dir string) (*Spool, error) {
	f, err := os.CreateTemp(dir, ".gosupermin-spool-")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	return &Spool{f: f}, nil
}

// Size is the number of bytes stored.
func (s *Spool) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end
}

// Close releases the file; the sources of the spool fail from then on.
func (s *Spool) Close() error { return s.f.Close() }

// write appends p and returns where it went.
func (s *Spool) write(p []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := s.end
	n, err := s.f.WriteAt(p, off)
	s.end += int64(n)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	return off, nil
}

// piece maps n bytes of a file's data at logical offset log to the spool
// at offset at.
type piece struct{ log, n, at int64 }

// spooled is a file's data kept in the spool: the pieces hold every
// non-zero byte, and the rest reads as zeros. It implements
// appliance.SparseSource and io.ReaderAt, and may be opened any number
// of times, concurrently.
type spooled struct {
	spool  *Spool
	size   int64
	pieces []piece // sorted by log, disjoint
}

type sectionCloser struct{ *io.SectionReader }

func (sectionCloser) Close() error { return nil }

func (s *spooled) Open() (io.ReadCloser, error) {
	return sectionCloser{io.NewSectionReader(s, 0, s.size)}, nil
}

func (s *spooled) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("spool: negative offset")
	}
	if off >= s.size {
		return 0, io.EOF
	}
	want := len(p)
	if rest := s.size - off; int64(want) > rest {
		p = p[:rest]
	}
	i := sort.Search(len(s.pieces), func(i int) bool { return s.pieces[i].log+s.pieces[i].n > off })
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		if i == len(s.pieces) || s.pieces[i].log > pos {
			hole := len(p) - done
			if i < len(s.pieces) {
				hole = int(min(int64(hole), s.pieces[i].log-pos))
			}
			clear(p[done : done+hole])
			done += hole
			continue
		}
		pc := s.pieces[i]
		k := int(min(int64(len(p)-done), pc.log+pc.n-pos))
		if _, err := s.spool.f.ReadAt(p[done:done+k], pc.at+pos-pc.log); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, fmt.Errorf("spool: %w", err)
		}
		done += k
		i++
	}
	if done < want {
		return done, io.EOF
	}
	return done, nil
}

// Extents returns the regions with data, neighbours merged.
func (s *spooled) Extents() ([]appliance.Extent, error) {
	var out []appliance.Extent
	for _, pc := range s.pieces {
		if n := len(out); n > 0 && out[n-1].Off+out[n-1].Len == pc.log {
			out[n-1].Len += pc.n
			continue
		}
		out = append(out, appliance.Extent{Off: pc.log, Len: pc.n})
	}
	return out, nil
}

// stored is the number of bytes the pieces hold.
func (s *spooled) stored() int64 {
	var n int64
	for _, pc := range s.pieces {
		n += pc.n
	}
	return n
}
