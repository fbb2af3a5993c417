package ext2

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
)

// shape steers the random tree generator.
type shape struct {
	name             string
	entries          int
	maxDepth         int
	dir, hard, sym   float64 // chances of each kind; the rest are files and specials
	special          float64
	maxFile          int     // bytes
	hole             float64 // chance that a file has holes
	minName, maxName int
	xattr            float64 // chance that an inode has extended attributes
	extents          bool    // files are marked sparse, with the extents a host would report
}

var shapes = []shape{
	{name: "mixed", entries: 400, maxDepth: 6, dir: 0.15, hard: 0.08, sym: 0.1, special: 0.05, maxFile: 64 << 10, hole: 0.2, minName: 1, maxName: 20},
	{name: "flat", entries: 3000, maxDepth: 0, hard: 0.02, sym: 0.05, special: 0.02, maxFile: 2 << 10, minName: 1, maxName: 60},
	{name: "deep", entries: 300, maxDepth: 60, dir: 0.6, sym: 0.1, maxFile: 8 << 10, minName: 1, maxName: 8},
	{name: "links", entries: 300, maxDepth: 3, dir: 0.1, hard: 0.5, maxFile: 16 << 10, minName: 1, maxName: 12},
	{name: "sparse", entries: 30, maxDepth: 2, dir: 0.1, maxFile: 6 << 20, hole: 0.8, minName: 1, maxName: 12},
	{name: "long names", entries: 500, maxDepth: 3, dir: 0.1, sym: 0.2, maxFile: 1 << 10, minName: 100, maxName: 255},
	{name: "extents", entries: 30, maxDepth: 2, dir: 0.1, maxFile: 6 << 20, hole: 0.8, minName: 1, maxName: 12, extents: true},
	{name: "xattrs", entries: 400, maxDepth: 4, dir: 0.15, hard: 0.05, sym: 0.1, special: 0.05, maxFile: 16 << 10, minName: 1, maxName: 20, xattr: 0.6},
}

// genXattrs picks attributes as hosts have them: a few labels and ACLs
// that many inodes share, and values of their own.
func genXattrs(r *rand.Rand, k appliance.Kind) []appliance.Xattr {
	labels := []string{"system_u:object_r:bin_t:s0", "system_u:object_r:etc_t:s0", "unconfined_u:object_r:user_home_t:s0"}
	xs := []appliance.Xattr{{Name: "security.selinux", Value: []byte(labels[r.IntN(len(labels))] + "\x00")}}
	dataOrDir := k == appliance.Regular || k == appliance.Dir
	if k == appliance.Regular && r.IntN(4) == 0 {
		xs = append(xs, appliance.Xattr{Name: "security.capability", Value: []byte{1, 0, 0, 2, byte(r.IntN(256)), 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}})
	}
	if dataOrDir && r.IntN(3) == 0 {
		acl := vfsACL([3]uint32{aclUserObj, 7, aclNoID}, [3]uint32{aclUser, uint32(r.IntN(8)), uint32(r.IntN(3000))},
			[3]uint32{aclGroupObj, 5, aclNoID}, [3]uint32{aclMask, 7, aclNoID}, [3]uint32{aclOther, uint32(r.IntN(8)), aclNoID})
		xs = append(xs, appliance.Xattr{Name: "system.posix_acl_access", Value: acl})
		if k == appliance.Dir {
			xs = append(xs, appliance.Xattr{Name: "system.posix_acl_default", Value: acl})
		}
	}
	if dataOrDir && r.IntN(3) == 0 {
		for i := range 1 + r.IntN(5) {
			xs = append(xs, appliance.Xattr{Name: fmt.Sprintf("user.%d", i), Value: randBytes(r, r.IntN(300))})
		}
	}
	if r.IntN(5) == 0 {
		xs = append(xs, appliance.Xattr{Name: "trusted.overlay.opaque", Value: []byte("y")})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].Name < xs[j].Name })
	return xs
}

const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+,=@~ é"

func genName(r *rand.Rand, s shape) string {
	for {
		n := s.minName + r.IntN(s.maxName-s.minName+1)
		var b strings.Builder
		for b.Len() < n {
			c := string([]rune(nameChars)[r.IntN(len([]rune(nameChars)))])
			if b.Len()+len(c) > n {
				c = "x"
			}
			b.WriteString(c)
		}
		name := b.String()
		if name != "." && name != ".." && name != "lost+found" && strings.TrimSpace(name) == name {
			return name
		}
	}
}

func genData(r *rand.Rand, s shape) []byte {
	var size int
	switch x := r.IntN(10); {
	case x == 0:
		return nil
	case x < 3:
		size = blockSize * (1 + r.IntN(4)) // block aligned
	case x < 8:
		size = r.IntN(min(s.maxFile, 16<<10) + 1)
	default:
		size = r.IntN(s.maxFile + 1)
	}
	data := randBytes(r, size)
	if r.Float64() < s.hole && size > 0 {
		// Holes of a few blocks, sometimes whole indirect ranges.
		for range 1 + r.IntN(4) {
			start := r.IntN(size)
			end := min(size, start+blockSize*(1+r.IntN(max(1, size/blockSize))))
			clear(data[start:end])
		}
	}
	return data
}

var owners = []uint32{0, 0, 0, 1000, 65534, 65535, 65536, 100000, 1<<32 - 2}

// genTree makes a random but deterministic manifest of the given shape.
func genTree(t testing.TB, r *rand.Rand, s shape) *appliance.Manifest {
	m := appliance.New()
	mode := func() uint32 {
		m := uint32(r.IntN(01000))
		if r.IntN(8) == 0 {
			m |= uint32(r.IntN(8)) << 9 // setuid, setgid, sticky
		}
		return m
	}
	owner := func() uint32 { return owners[r.IntN(len(owners))] }
	mtime := func() time.Time {
		if r.IntN(10) == 0 {
			return time.Time{}
		}
		return time.Unix(r.Int64N(4<<30), r.Int64N(1e9))
	}
	mustPut(t, m, appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0755, ModTime: mtime()})
	dirs := []string{"/"}
	var files []string
	for range s.entries {
		parent := dirs[r.IntN(len(dirs))]
		p := path.Join(parent, genName(r, s))
		if _, dup := m.Get(p); dup {
			continue
		}
		e := appliance.Entry{Path: p, Mode: mode(), UID: owner(), GID: owner(), ModTime: mtime()}
		depth := strings.Count(p, "/")
		switch x := r.Float64(); {
		case x < s.dir && depth <= s.maxDepth:
			e.Kind = appliance.Dir
			dirs = append(dirs, p)
		case x < s.dir+s.hard && len(files) > 0:
			e.Kind = appliance.Hardlink
			e.Link = files[r.IntN(len(files))]
			if e.Link >= p {
				continue // Entries must list the target first
			}
		case x < s.dir+s.hard+s.sym:
			e.Kind = appliance.Symlink
			e.Link = strings.Repeat("../", r.IntN(4)) + strings.Repeat(genName(r, s)+"/", r.IntN(3)) + genName(r, s)
			if r.IntN(4) == 0 {
				e.Link = strings.Repeat("long/", 20+r.IntN(100))
			}
			e.Link = e.Link[:min(len(e.Link), blockSize-1)]
		case x < s.dir+s.hard+s.sym+s.special:
			e.Kind = []appliance.Kind{appliance.CharDev, appliance.BlockDev, appliance.FIFO, appliance.Socket}[r.IntN(4)]
			if r.IntN(2) == 0 {
				e.Major, e.Minor = uint32(r.IntN(256)), uint32(r.IntN(256))
			} else {
				e.Major, e.Minor = uint32(r.IntN(4096)), uint32(r.IntN(1<<20))
			}
		default:
			e.Kind = appliance.Regular
			if data := genData(r, s); data != nil {
				e.Size, e.Data = int64(len(data)), appliance.Bytes(data)
				if s.extents {
					e.Data, e.Sparse = dataExtents(data), true
				}
			}
			files = append(files, p)
		}
		if s.xattr > 0 && e.Kind != appliance.Hardlink && r.Float64() < s.xattr {
			e.Xattrs = genXattrs(r, e.Kind)
		}
		mustPut(t, m, e)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	return m
}

// dataExtents makes data a sparse source whose extents are its blocks
// that are not all zeros, as SEEK_DATA finds them in a host file.
func dataExtents(data []byte) *sparseSource {
	s := &sparseSource{size: int64(len(data))}
	for off := 0; off < len(data); off += blockSize {
		end := min(off+blockSize, len(data))
		if bytes.Equal(data[off:end], zeroBlock[:end-off]) {
			continue
		}
		if k := len(s.chunks) - 1; k >= 0 && s.chunks[k].off+int64(len(s.chunks[k].data)) == int64(off) {
			s.chunks[k].data = data[s.chunks[k].off:end]
			continue
		}
		s.chunks = append(s.chunks, chunk{int64(off), data[off:end]})
	}
	return s
}

// imageSize is a generous size for entries: files marked sparse count
// their extents.
func imageSize(entries []*appliance.Entry) int64 {
	size := int64(16 << 20)
	for _, e := range entries {
		data := e.Size
		if e.Sparse {
			data = 0
			exts, _ := e.Data.(appliance.SparseSource).Extents()
			for _, x := range exts {
				data += x.Len + 2*blockSize
			}
		}
		size += (data+blockSize-1)/blockSize*blockSize*102/100 + 2*blockSize
	}
	return size
}

func TestGeneratedTrees(t *testing.T) {
	needTools(t)
	for _, s := range shapes {
		for seed := range uint64(2) {
			t.Run(fmt.Sprintf("%s/%d", s.name, seed), func(t *testing.T) {
				t.Parallel()
				r := rand.New(rand.NewPCG(seed, uint64(len(s.name))))
				entries := genTree(t, r, s).Entries()
				img := writeImage(t, entries, Options{Size: imageSize(entries), UUID: UUIDFor([]byte(s.name)), Time: testTime})
				fsck(t, img)
				compareTree(t, img, entries, "")
			})
		}
	}
}
