package ext2

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
)

var le = binary.LittleEndian

// Superblock feature bits.
const (
	incompatFiletype   = 0x0002
	roCompatSparse     = 0x0001
	roCompatLargeFile  = 0x0002
	flagsSignedHash    = 0x0001 // what mke2fs records on x86, where char is signed
	hashHalfMD4        = 1
	stateClean         = 1
	errorsContinue     = 1
	revDynamic         = 1
	creatorLinux       = 0
	superMagic         = 0xEF53
	superOffset        = 1024
	superSize          = 1024
	groupDescsPerBlock = blockSize / descSize
)

// encodeDev packs a device number into i_block as Linux does: the old
// 16-bit form in i_block[0] when it fits, else the new 32-bit form in
// i_block[1].
func encodeDev(major, minor uint32) (b0, b1 uint32, err error) {
	if major < 256 && minor < 256 {
		return major<<8 | minor, 0, nil
	}
	if major > 0xfff || minor > 0xfffff {
		return 0, 0, fmt.Errorf("device %d:%d out of range (major < 4096, minor < 1048576)", major, minor)
	}
	return 0, minor&0xff | major<<8 | (minor&^0xff)<<12, nil
}

// encodeTime splits t into a 32-bit seconds field and the "extra" field of
// large inodes: two epoch bits extending the range to 2446, and
// nanoseconds. Times outside that range are clamped.
func encodeTime(t time.Time) (sec, extra uint32) {
	s, ns := t.Unix(), uint32(t.Nanosecond())
	const lo, hi = -1 << 31, 1<<34 - 1<<31 - 1
	if s < lo || s > hi {
		s, ns = min(max(s, lo), hi), 0
	}
	epoch := uint32((s - int64(int32(uint32(s)))) >> 32)
	return uint32(s), epoch | ns<<2
}

// superTime is a superblock time: 32 bits plus a high byte.
func superTime(b []byte, lo, hi int, t time.Time) {
	s := max(t.Unix(), 0)
	le.PutUint32(b[lo:], uint32(s))
	b[hi] = uint8(s >> 32)
}

func (w *writer) encodeInode(b []byte, n *node) {
	le.PutUint16(b[0:], n.mode)
	le.PutUint16(b[2:], uint16(n.uid))
	le.PutUint32(b[4:], uint32(n.size))
	sec, extra := encodeTime(n.mtime)
	le.PutUint32(b[8:], sec)  // atime
	le.PutUint32(b[12:], sec) // ctime
	le.PutUint32(b[16:], sec) // mtime
	le.PutUint16(b[24:], uint16(n.gid))
	le.PutUint16(b[26:], uint16(n.links))
	le.PutUint32(b[28:], uint32(n.sectors))
	switch {
	case n.fastSymlink():
		copy(b[40:100], n.entry.Link)
	case n.kind == appliance.CharDev || n.kind == appliance.BlockDev:
		b0, b1, _ := encodeDev(n.entry.Major, n.entry.Minor)
		le.PutUint32(b[40:], b0)
		le.PutUint32(b[44:], b1)
	default:
		for i, p := range n.iblock {
			le.PutUint32(b[40+4*i:], p)
		}
	}
	if n.xattr != nil {
		le.PutUint32(b[104:], uint32(n.xattr.blk))
	}
	if n.kind == appliance.Regular {
		le.PutUint32(b[108:], uint32(n.size>>32)) // large_file
	}
	le.PutUint16(b[120:], uint16(n.uid>>16))
	le.PutUint16(b[122:], uint16(n.gid>>16))
	le.PutUint16(b[128:], extraIsize)
	le.PutUint32(b[132:], extra) // ctime
	le.PutUint32(b[136:], extra) // mtime
	le.PutUint32(b[140:], extra) // atime
	// The inode was created when the filesystem was, as with mke2fs -d.
	crt, crtExtra := encodeTime(w.opt.Time)
	le.PutUint32(b[144:], crt)
	le.PutUint32(b[148:], crtExtra)
}

// groupUsage is what a group's bitmaps and descriptor record.
type groupUsage struct {
	blocks, inodes, dirs uint64
}

func (w *writer) usage() []groupUsage {
	l := w.lay
	u := make([]groupUsage, l.groups)
	maxIno := uint64(len(w.nodes) - 1)
	for g := range l.groups {
		switch {
		case g < w.group:
			u[g].blocks = l.groupBlocks(g)
		case g == w.group:
			u[g].blocks = w.cur - l.groupStart(g)
		default:
			u[g].blocks = l.overhead(g)
		}
		if first := g * l.ipg; maxIno > first {
			u[g].inodes = min(maxIno-first, l.ipg)
		}
	}
	for _, n := range w.nodes {
		if n != nil && n.kind == appliance.Dir {
			u[uint64(n.ino-1)/l.ipg].dirs++
		}
	}
	return u
}

// bitmap returns a bitmap block whose first used bits are set, as are the
// bits past size, which stand for blocks or inodes that do not exist.
func bitmap(b []byte, used, size uint64) []byte {
	clear(b)
	set := func(from, to uint64) {
		for i := from; i < to; {
			if i%8 == 0 && i+8 <= to {
				b[i/8] = 0xff
				i += 8
				continue
			}
			b[i/8] |= 1 << (i % 8)
			i++
		}
	}
	set(0, used)
	set(size, 8*blockSize)
	return b
}

// writeMetadata writes what depends on the final allocation: bitmaps,
// inode tables, descriptors and superblocks.
func (w *writer) writeMetadata() error {
	if err := w.writeGroups(); err != nil {
		return fmt.Errorf("ext2: write metadata: %w", err)
	}
	return nil
}

func (w *writer) writeGroups() error {
	l := w.lay
	u := w.usage()
	gdt := make([]byte, l.gdt*blockSize)
	var freeBlocks, freeInodes uint64
	b := make([]byte, blockSize)
	for g := range l.groups {
		d := gdt[g*descSize:]
		le.PutUint32(d[0:], uint32(l.blockBitmap(g)))
		le.PutUint32(d[4:], uint32(l.inodeBitmap(g)))
		le.PutUint32(d[8:], uint32(l.inodeTable(g)))
		le.PutUint16(d[12:], uint16(l.groupBlocks(g)-u[g].blocks))
		le.PutUint16(d[14:], uint16(l.ipg-u[g].inodes))
		le.PutUint16(d[16:], uint16(u[g].dirs))
		freeBlocks += l.groupBlocks(g) - u[g].blocks
		freeInodes += l.ipg - u[g].inodes

		if err := w.writeAt(bitmap(b, u[g].blocks, l.groupBlocks(g)), l.blockBitmap(g)*blockSize); err != nil {
			return err
		}
		if err := w.writeAt(bitmap(b, u[g].inodes, l.ipg), l.inodeBitmap(g)*blockSize); err != nil {
			return err
		}
		if err := w.writeInodes(g, u[g].inodes); err != nil {
			return err
		}
	}
	sb := w.superblock(freeBlocks, freeInodes)
	for g := range l.groups {
		if !hasSuper(g) {
			continue
		}
		off := l.groupStart(g) * blockSize
		if g == 0 {
			off = superOffset
		}
		le.PutUint16(sb[90:], uint16(g)) // s_block_group_nr
		if err := w.writeAt(sb, off); err != nil {
			return err
		}
		if err := w.writeAt(gdt, (l.groupStart(g)+1)*blockSize); err != nil {
			return err
		}
	}
	return nil
}

// writeInodes writes the first count inodes of group g's table; the rest
// stay zero, which is how unused inodes look.
func (w *writer) writeInodes(g, count uint64) error {
	const chunk = 4096
	buf := make([]byte, min(count, chunk)*inodeSize)
	first := g*w.lay.ipg + 1
	for i := uint64(0); i < count; i += chunk {
		k := min(count-i, chunk)
		b := buf[:k*inodeSize]
		clear(b)
		for j := range k {
			ino := first + i + j
			if n := w.nodes[ino]; n != nil {
				w.encodeInode(b[j*inodeSize:(j+1)*inodeSize], n)
			}
		}
		if err := w.writeAt(b, w.lay.inodeTable(g)*blockSize+i*inodeSize); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) superblock(freeBlocks, freeInodes uint64) []byte {
	l := w.lay
	b := make([]byte, superSize)
	le.PutUint32(b[0:], uint32(l.ipg*l.groups))
	le.PutUint32(b[4:], uint32(l.blocks))
	le.PutUint32(b[8:], 0) // no blocks reserved for root: nothing in an appliance needs them
	le.PutUint32(b[12:], uint32(freeBlocks))
	le.PutUint32(b[16:], uint32(freeInodes))
	le.PutUint32(b[20:], 0) // first data block
	le.PutUint32(b[24:], 2) // log2(block size) - 10
	le.PutUint32(b[28:], 2) // cluster size = block size
	le.PutUint32(b[32:], blocksPerGroup)
	le.PutUint32(b[36:], blocksPerGroup)
	le.PutUint32(b[40:], uint32(l.ipg))
	superTime(b, 48, 0x274, w.opt.Time) // wtime
	le.PutUint16(b[54:], 0xffff)        // max mount count -1: no forced checks
	le.PutUint16(b[56:], superMagic)
	le.PutUint16(b[58:], stateClean)
	le.PutUint16(b[60:], errorsContinue)
	superTime(b, 64, 0x277, w.opt.Time) // last check
	le.PutUint32(b[72:], creatorLinux)
	le.PutUint32(b[76:], revDynamic)
	le.PutUint32(b[84:], firstIno)
	le.PutUint16(b[88:], inodeSize)
	if len(w.xattrs) > 0 {
		// Only then, so that images without attributes stay as they
		// were; the kernel sets it itself when it first writes one.
		le.PutUint32(b[92:], compatExtAttr)
	}
	le.PutUint32(b[96:], incompatFiletype)
	le.PutUint32(b[100:], roCompatSparse|roCompatLargeFile)
	copy(b[104:120], w.opt.UUID[:])
	copy(b[120:136], w.opt.Label)
	// A fixed seed keeps the image reproducible should dir_index be
	// turned on later; deriving it from the UUID keeps images distinct.
	seed := sha256.Sum256(append([]byte("ext2 hash seed "), w.opt.UUID[:]...))
	copy(b[236:252], seed[:16])
	b[252] = hashHalfMD4
	superTime(b, 264, 0x276, w.opt.Time) // mkfs time
	le.PutUint16(b[348:], extraIsize)    // min extra isize
	le.PutUint16(b[350:], extraIsize)    // want extra isize
	le.PutUint32(b[352:], flagsSignedHash)
	return b
}
