package ext2

const (
	blockSize      = 4096
	sectorsPerBlk  = blockSize / 512
	inodeSize      = 256
	inodesPerBlock = blockSize / inodeSize
	blocksPerGroup = 8 * blockSize // one bitmap block covers the group
	maxInodesGroup = 8 * blockSize
	ptrsPerBlock   = blockSize / 4
	descSize       = 32
	bytesPerInode  = 16384 // mke2fs's default ratio
	extraIsize     = 32    // what mke2fs gives 256-byte inodes
	nDirect        = 12

	badIno       = 1
	rootIno      = 2
	firstIno     = 11 // first inode not reserved by the filesystem
	lostFoundIno = 11

	// mke2fs grows lost+found to 16 KiB so that e2fsck can reconnect
	// orphans without allocating blocks on a damaged filesystem.
	lostFoundBlocks = 4

	// mke2fs drops a last group that cannot hold its metadata plus this
	// many blocks, since such a group would be almost all overhead.
	minLastGroupData = 50

	maxLinks  = 65000
	maxBlocks = 1<<32 - 1 // s_blocks_count is 32 bits without the 64bit feature
)

// maxFileSize is the largest regular file whose i_blocks (512-byte sectors
// of data and indirect blocks, 32 bits without huge_file) cannot overflow;
// the Linux ext2 driver refuses larger files.
const maxFileSize = ((1<<32-1)/sectorsPerBlk - (1 + 1 + ptrsPerBlock + 1 + ptrsPerBlock + ptrsPerBlock*ptrsPerBlock)) * blockSize

// layout is the geometry of the filesystem: block groups of blocksPerGroup
// blocks, each starting with (if it holds a backup) the superblock and
// descriptor table, then its two bitmaps and its inode table; the rest of
// each group holds data.
type layout struct {
	blocks uint64 // s_blocks_count
	groups uint64
	ipg    uint64 // inodes per group
	itb    uint64 // inode table blocks per group
	gdt    uint64 // blocks of the group descriptor table
}

// newLayout plans a filesystem of at most blocks blocks with room for
// inodes inodes (reserved ones included). ok is false when that is
// impossible at this size.
func newLayout(blocks, inodes uint64) (l layout, ok bool) {
	if blocks > maxBlocks {
		blocks = maxBlocks
	}
	for blocks > 0 {
		l = layout{blocks: blocks, groups: (blocks + blocksPerGroup - 1) / blocksPerGroup}
		// Headroom beyond the entries lets the running appliance create
		// files even when the image is small.
		want := max(blocks*blockSize/bytesPerInode, inodes+inodes/4+64)
		ipg := (want + l.groups - 1) / l.groups
		ipg = (ipg + inodesPerBlock - 1) / inodesPerBlock * inodesPerBlock
		ipg = min(ipg, maxInodesGroup)
		for ipg*l.groups > 1<<32-1 {
			ipg -= inodesPerBlock
		}
		if ipg*l.groups < inodes {
			return l, false
		}
		l.ipg, l.itb = ipg, ipg/inodesPerBlock
		l.gdt = (l.groups*descSize + blockSize - 1) / blockSize
		last := l.groups - 1
		size := l.groupBlocks(last)
		switch {
		case size >= l.overhead(last)+minLastGroupData:
			return l, true
		case l.groups == 1:
			return l, size > l.overhead(last)
		}
		blocks -= size
	}
	return l, false
}

func (l layout) groupStart(g uint64) uint64 { return g * blocksPerGroup }

func (l layout) groupBlocks(g uint64) uint64 {
	return min(blocksPerGroup, l.blocks-l.groupStart(g))
}

// hasSuper tells the groups that hold a superblock backup under
// sparse_super: 0, 1 and the powers of 3, 5 and 7.
func hasSuper(g uint64) bool {
	if g <= 1 {
		return true
	}
	for _, b := range []uint64{3, 5, 7} {
		p := b
		for p < g {
			p *= b
		}
		if p == g {
			return true
		}
	}
	return false
}

func (l layout) superBlocks(g uint64) uint64 {
	if hasSuper(g) {
		return 1 + l.gdt
	}
	return 0
}

func (l layout) blockBitmap(g uint64) uint64 { return l.groupStart(g) + l.superBlocks(g) }
func (l layout) inodeBitmap(g uint64) uint64 { return l.blockBitmap(g) + 1 }
func (l layout) inodeTable(g uint64) uint64  { return l.blockBitmap(g) + 2 }
func (l layout) overhead(g uint64) uint64    { return l.superBlocks(g) + 2 + l.itb }
func (l layout) dataStart(g uint64) uint64   { return l.groupStart(g) + l.overhead(g) }
func (l layout) groupEnd(g uint64) uint64    { return l.groupStart(g) + l.groupBlocks(g) }

// dataBlocks is the number of blocks left for files and directories.
func (l layout) dataBlocks() uint64 {
	var n uint64
	for g := range l.groups {
		n += l.groupBlocks(g) - l.overhead(g)
	}
	return n
}

// minBlocks finds a filesystem size that holds need data blocks and inodes
// inodes, for telling the user how large the image must be.
func minBlocks(need, inodes uint64) uint64 {
	n := need + 1
	for range 1000 {
		l, ok := newLayout(n, inodes)
		if !ok {
			n += n/2 + 16
			continue
		}
		have := l.dataBlocks()
		if have >= need {
			return n
		}
		n += need - have
	}
	return n
}

// indirectBlocks is the number of indirect blocks that map n dense data
// blocks.
func indirectBlocks(n uint64) uint64 { return runIndirect([]run{{0, n}}) }
