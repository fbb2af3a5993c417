package ext2

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
)

// Directory entry file types (the filetype feature).
const (
	ftRegular = 1
	ftDir     = 2
	ftChar    = 3
	ftBlock   = 4
	ftFIFO    = 5
	ftSocket  = 6
	ftSymlink = 7
)

// i_mode file types.
const (
	sIFIFO  = 0x1000
	sIFCHR  = 0x2000
	sIFDIR  = 0x4000
	sIFBLK  = 0x6000
	sIFREG  = 0x8000
	sIFLNK  = 0xA000
	sIFSOCK = 0xC000
)

// node is one inode. Its entry supplies what is only needed while writing
// (data source, link target, device numbers), so that the tree costs little
// memory per entry.
type node struct {
	ino      uint32
	kind     appliance.Kind
	entry    *appliance.Entry // synthesized for a missing root or lost+found
	mode     uint16           // i_mode, type included
	uid, gid uint32
	mtime    time.Time
	links    uint32
	size     uint64 // i_size
	nblocks  uint64 // directory and slow symlink data blocks
	parent   *node  // directories
	children []dirent
	iblock   [15]uint32
	sectors  uint64    // i_blocks
	xattr    *xattrSet // i_file_acl
}

type dirent struct {
	name  string
	ino   uint32
	ftype uint8
}

func (n *node) fastSymlink() bool { return n.kind == appliance.Symlink && n.size < 60 }

// writer holds the state of one WriteManifest.
type writer struct {
	f      *os.File
	opt    Options
	ctx    context.Context
	nodes  []*node // by inode number; nil for unused reserved inodes
	byPath map[string]*node
	lay    layout

	// Block allocation is a cursor moving through the data area of each
	// group in turn, so every group's used blocks are a prefix of it and
	// the bitmaps follow from the final cursor alone.
	group uint64
	cur   uint64

	buf      []byte // pending sequential write starting at block bufStart
	bufStart uint64
	rbuf     []byte
	q        *writeQueue // while the data is written
	ind      [3]indirect

	xattrs  []*xattrSet                   // attribute blocks, in the order they are written
	extents map[uint32][]appliance.Extent // of files marked sparse, by inode
}

func kindMode(k appliance.Kind) (mode uint16, ft uint8) {
	switch k {
	case appliance.Regular:
		return sIFREG, ftRegular
	case appliance.Dir:
		return sIFDIR, ftDir
	case appliance.Symlink:
		return sIFLNK, ftSymlink
	case appliance.CharDev:
		return sIFCHR, ftChar
	case appliance.BlockDev:
		return sIFBLK, ftBlock
	case appliance.FIFO:
		return sIFIFO, ftFIFO
	case appliance.Socket:
		return sIFSOCK, ftSocket
	}
	return 0, 0
}

func (w *writer) newNode(ino uint32, e *appliance.Entry) *node {
	n := &node{ino: ino, entry: e, kind: e.Kind, uid: e.UID, gid: e.GID, mtime: e.ModTime, links: 1}
	m, _ := kindMode(e.Kind)
	n.mode = m | uint16(e.Mode&07777)
	if n.mtime.IsZero() {
		n.mtime = w.opt.Time
	}
	for uint32(len(w.nodes)) <= ino {
		w.nodes = append(w.nodes, nil)
	}
	w.nodes[ino] = n
	return n
}

// build turns the entries into inodes and directory listings, checking
// what the manifest promises since a bad image would only show at boot.
func (w *writer) build(entries []*appliance.Entry) error {
	w.byPath = make(map[string]*node, len(entries)+2)
	w.nodes = make([]*node, firstIno+1, len(entries)+firstIno+1)
	entries, err := w.makeRoot(entries)
	if err != nil {
		return err
	}
	lfSeen := false
	next := uint32(firstIno + 1)
	for _, e := range entries {
		if err := checkPath(e.Path); err != nil {
			return err
		}
		if e.Path == "/lost+found" && !lfSeen {
			lfSeen = true
			if err := w.adoptLostFound(e); err != nil {
				return err
			}
			continue
		}
		parent, name, err := w.parentOf(e.Path)
		if err != nil {
			return err
		}
		if e.Kind == appliance.Hardlink {
			if err := w.link(e, parent, name); err != nil {
				return err
			}
			continue
		}
		n, err := w.makeNode(next, e, parent)
		if err != nil {
			return err
		}
		next++
		parent.list(name, n)
		w.byPath[e.Path] = n
	}
	return nil
}

// makeRoot creates / (from the first entry, or made up) and lost+found,
// which mke2fs always makes, and returns the entries that are left.
func (w *writer) makeRoot(entries []*appliance.Entry) ([]*appliance.Entry, error) {
	rootEntry := &appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0755}
	if len(entries) > 0 && entries[0].Path == "/" {
		if entries[0].Kind != appliance.Dir {
			return nil, fmt.Errorf("ext2: /: must be a directory, not a %s", entries[0].Kind)
		}
		rootEntry, entries = entries[0], entries[1:]
	}
	root := w.newNode(rootIno, rootEntry)
	root.links = 2
	root.parent = root
	w.byPath["/"] = root

	lf := w.newNode(lostFoundIno, &appliance.Entry{Path: "/lost+found", Kind: appliance.Dir, Mode: 0700})
	lf.links, lf.parent = 2, root
	root.links++
	root.list("lost+found", lf)
	w.byPath["/lost+found"] = lf
	return entries, nil
}

// adoptLostFound gives lost+found the metadata of the manifest's entry.
func (w *writer) adoptLostFound(e *appliance.Entry) error {
	if e.Kind != appliance.Dir {
		return fmt.Errorf("ext2: /lost+found: must be a directory, not a %s", e.Kind)
	}
	lf := w.nodes[lostFoundIno]
	lf.entry = e
	lf.mode = sIFDIR | uint16(e.Mode&07777)
	lf.uid, lf.gid, lf.mtime = e.UID, e.GID, e.ModTime
	if lf.mtime.IsZero() {
		lf.mtime = w.opt.Time
	}
	return nil
}

func checkPath(p string) error {
	if p == "" || p[0] != '/' || path.Clean(p) != p || strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("ext2: %q: not an absolute clean path", p)
	}
	return nil
}

// parentOf finds the directory that will list p, and p's name in it.
func (w *writer) parentOf(p string) (*node, string, error) {
	if _, dup := w.byPath[p]; dup {
		return nil, "", fmt.Errorf("ext2: %s: duplicate entry", p)
	}
	dir, name := path.Split(p)
	if len(name) > 255 {
		return nil, "", fmt.Errorf("ext2: %s: name longer than 255 bytes", p)
	}
	dir = path.Clean(dir)
	parent, ok := w.byPath[dir]
	if !ok {
		return nil, "", fmt.Errorf("ext2: %s: parent directory missing (entries must be sorted, parents first)", p)
	}
	if parent.kind != appliance.Dir {
		return nil, "", fmt.Errorf("ext2: %s: parent %s is a %s, not a directory", p, dir, parent.kind)
	}
	return parent, name, nil
}

// link lists another name of an existing regular file.
func (w *writer) link(e *appliance.Entry, parent *node, name string) error {
	t, ok := w.byPath[e.Link]
	switch {
	case !ok:
		return fmt.Errorf("ext2: %s: hard link to missing %s (targets must sort first)", e.Path, e.Link)
	case t.kind != appliance.Regular:
		return fmt.Errorf("ext2: %s: hard link to %s, a %s", e.Path, e.Link, t.kind)
	case t.links >= maxLinks:
		return fmt.Errorf("ext2: %s: more than %d links to %s", e.Path, maxLinks, e.Link)
	}
	t.links++
	parent.list(name, t)
	w.byPath[e.Path] = t
	return nil
}

// makeNode creates inode ino for e, checking what its kind needs.
func (w *writer) makeNode(ino uint32, e *appliance.Entry, parent *node) (*node, error) {
	p := e.Path
	if _, ft := kindMode(e.Kind); ft == 0 {
		return nil, fmt.Errorf("ext2: %s: unknown entry kind %d", p, e.Kind)
	}
	if ino == 0 {
		return nil, fmt.Errorf("ext2: %s: more than 2^32 inodes", p)
	}
	n := w.newNode(ino, e)
	switch e.Kind {
	case appliance.Regular:
		if e.Size < 0 || e.Size > maxFileSize {
			return nil, fmt.Errorf("ext2: %s: size %d out of range (ext2 files hold up to %d bytes)", p, e.Size, int64(maxFileSize))
		}
		n.size = uint64(e.Size)
		if e.Sparse {
			exts, err := extentsOf(e)
			if err != nil {
				return nil, fmt.Errorf("ext2: %s: %w", p, err)
			}
			if w.extents == nil {
				w.extents = map[uint32][]appliance.Extent{}
			}
			w.extents[ino] = exts
		}
	case appliance.Dir:
		if parent.links >= maxLinks {
			return nil, fmt.Errorf("ext2: %s: more than %d subdirectories in %s", p, maxLinks-2, parent.entry.Path)
		}
		n.links, n.parent = 2, parent
		parent.links++
	case appliance.Symlink:
		t := e.Link
		if t == "" || len(t) >= blockSize || strings.IndexByte(t, 0) >= 0 {
			return nil, fmt.Errorf("ext2: %s: bad symlink target %q (must be 1-%d bytes without NUL)", p, t, blockSize-1)
		}
		n.size = uint64(len(t))
		if !n.fastSymlink() {
			n.nblocks = 1
		}
	case appliance.CharDev, appliance.BlockDev:
		if _, _, err := encodeDev(e.Major, e.Minor); err != nil {
			return nil, fmt.Errorf("ext2: %s: %w", p, err)
		}
	}
	return n, nil
}

// list adds an entry for n to directory d's listing.
func (d *node) list(name string, n *node) {
	_, ft := kindMode(n.kind)
	d.children = append(d.children, dirent{name, n.ino, ft})
}

// recLen is the space a directory entry takes: header and name, padded to
// four bytes.
func recLen(name int) int { return (8 + name + 3) &^ 3 }

// dirBlocks counts the blocks of a directory, packing entries as writeDir
// does: an entry never straddles a block.
func dirBlocks(n *node) uint64 {
	blocks := uint64(1)
	off := recLen(1) + recLen(2) // "." and ".."
	for _, c := range n.children {
		r := recLen(len(c.name))
		if off+r > blockSize {
			blocks++
			off = 0
		}
		off += r
	}
	return blocks
}

// plan sizes directories, checks that everything fits, and lays out the
// filesystem. Sizes are known from the manifest, so the answer comes before
// any data is read: files marked sparse count the blocks their extents
// touch, others their whole size. Holes found while writing can only make
// the real need smaller.
func (w *writer) plan() error {
	var need uint64
	for _, n := range w.nodes {
		if n == nil {
			continue
		}
		switch n.kind {
		case appliance.Dir:
			n.nblocks = dirBlocks(n)
			if n.ino == lostFoundIno {
				n.nblocks = max(n.nblocks, lostFoundBlocks)
			}
			n.size = n.nblocks * blockSize
			if n.size >= 1<<32 {
				return fmt.Errorf("ext2: %s: directory too large (%d bytes)", n.entry.Path, n.size)
			}
			need += n.nblocks + indirectBlocks(n.nblocks)
		case appliance.Symlink:
			need += n.nblocks
		case appliance.Regular:
			runs := []run{{0, (n.size + blockSize - 1) / blockSize}}
			if exts, ok := w.extents[n.ino]; ok {
				runs = blockRuns(exts)
			}
			need += runBlocks(runs) + runIndirect(runs)
		}
	}
	need += uint64(len(w.xattrs))
	inodes := uint64(len(w.nodes) - 1)
	blocks := uint64(w.opt.Size) / blockSize
	if blocks > maxBlocks {
		return fmt.Errorf("ext2: image size %d exceeds the ext2 limit of %d bytes", w.opt.Size, uint64(maxBlocks)*blockSize)
	}
	l, ok := newLayout(blocks, inodes)
	if !ok || l.dataBlocks() < need {
		return &noSpaceError{need: int64(minBlocks(need, inodes)) * blockSize, have: w.opt.Size}
	}
	w.lay = l
	w.cur = l.dataStart(0)
	return nil
}
