package ext2

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gosupermin/gosupermin/appliance"
)

// Extended attributes are kept in one block per inode (i_file_acl), laid
// out as fs/ext2/xattr.c lays it out, so that the kernel can share and
// change it later. They are never put in the inode's spare space: that is
// ext4's format, which the ext2 driver does not read.
const (
	xattrMagic      = 0xEA020000
	xattrHeaderSize = 32
	xattrEntrySize  = 16 // before the name
	// The kernel stops sharing a block at this many users; sharing no
	// further keeps our images like the ones it makes.
	xattrRefMax   = 1024
	compatExtAttr = 0x0008

	xattrACLAccess  = 2
	xattrACLDefault = 3
)

// xattrIndexes maps the prefixes of attribute names to the e_name_index
// that stands for them on disk; the ACL names are whole names.
var xattrIndexes = []struct {
	prefix string
	index  uint8
}{
	{"system.posix_acl_access", xattrACLAccess},
	{"system.posix_acl_default", xattrACLDefault},
	{"user.", 1},
	{"trusted.", 4},
	{"security.", 6},
	{"system.", 7},
}

// xattr is one attribute as it is stored.
type xattr struct {
	index uint8
	name  string // without the prefix
	value []byte // ACLs in ext2's own format
}

// xattrSet is the content of one attribute block and the inodes that
// share it.
type xattrSet struct {
	attrs []xattr
	refs  uint32
	blk   uint64 // once written
}

func pad4(n int) int { return (n + 3) &^ 3 }

func xattrEntryLen(name string) int { return pad4(xattrEntrySize + len(name)) }

// toDisk splits a full attribute name into its index and the rest, and
// converts ACL values to ext2's format.
func toDisk(x appliance.Xattr) (xattr, error) {
	for _, p := range xattrIndexes {
		rest, ok := strings.CutPrefix(x.Name, p.prefix)
		if !ok {
			continue
		}
		if p.index == xattrACLAccess || p.index == xattrACLDefault {
			if rest != "" {
				continue // "system.posix_acl_accessX" is a system. name
			}
			v, err := diskACL(x.Value)
			if err != nil {
				return xattr{}, fmt.Errorf("extended attribute %s: %w", x.Name, err)
			}
			return xattr{index: p.index, value: v}, nil
		}
		switch {
		case rest == "":
			return xattr{}, fmt.Errorf("extended attribute %q: no name after the prefix", x.Name)
		case len(rest) > 255:
			return xattr{}, fmt.Errorf("extended attribute %.40q...: name longer than 255 bytes after the prefix", x.Name)
		case strings.IndexByte(rest, 0) >= 0:
			return xattr{}, fmt.Errorf("extended attribute %q: NUL in the name", x.Name)
		}
		return xattr{index: p.index, name: rest, value: x.Value}, nil
	}
	return xattr{}, fmt.Errorf("extended attribute %q: ext2 stores only user., trusted., security. and system. attributes", x.Name)
}

// xattrLess is the kernel's order of entries in a block, on which its
// lookups rely: by index, then name length, then name.
func xattrLess(a, b xattr) bool {
	if a.index != b.index {
		return a.index < b.index
	}
	if len(a.name) != len(b.name) {
		return len(a.name) < len(b.name)
	}
	return a.name < b.name
}

// xattrBlockBytes is the space attrs take in a block: header, entries,
// the four zero bytes that end them, and values padded to four bytes.
func xattrBlockBytes(attrs []xattr) int {
	n := xattrHeaderSize + 4
	for _, a := range attrs {
		n += xattrEntryLen(a.name) + pad4(len(a.value))
	}
	return n
}

// collectXattrs gives each inode with extended attributes its block,
// sharing one block among inodes whose attributes are the same. Inodes
// are visited in order, so the sharing is the same for the same entries.
// A hard link has the attributes of the inode it names.
func (w *writer) collectXattrs() error {
	shared := map[string]*xattrSet{}
	var key strings.Builder
	for _, n := range w.nodes {
		if n == nil || len(n.entry.Xattrs) == 0 {
			continue
		}
		attrs := make([]xattr, len(n.entry.Xattrs))
		for i, x := range n.entry.Xattrs {
			// Distinct names make distinct entries.
			if i > 0 && n.entry.Xattrs[i-1].Name >= x.Name {
				return fmt.Errorf("ext2: %s: extended attributes not sorted by name, or %q twice", n.entry.Path, x.Name)
			}
			a, err := toDisk(x)
			if err != nil {
				return fmt.Errorf("ext2: %s: %w", n.entry.Path, err)
			}
			attrs[i] = a
		}
		sort.Slice(attrs, func(i, j int) bool { return xattrLess(attrs[i], attrs[j]) })
		if size := xattrBlockBytes(attrs); size > blockSize {
			return fmt.Errorf("ext2: %s: extended attributes take %d bytes, more than the %d of one block", n.entry.Path, size, blockSize)
		}
		key.Reset()
		for _, a := range attrs {
			fmt.Fprintf(&key, "%d %d %s %d ", a.index, len(a.name), a.name, len(a.value))
			key.Write(a.value)
		}
		s := shared[key.String()]
		if s == nil || s.refs >= xattrRefMax {
			s = &xattrSet{attrs: attrs}
			shared[key.String()] = s
			w.xattrs = append(w.xattrs, s)
		}
		s.refs++
		n.xattr = s
		n.sectors += sectorsPerBlk
	}
	return nil
}

// writeXattrs allocates and writes the attribute blocks.
func (w *writer) writeXattrs() error {
	for _, s := range w.xattrs {
		b, err := w.alloc()
		if err != nil {
			return err
		}
		s.blk = b
		if err := w.put(b, s.block()); err != nil {
			return err
		}
	}
	return nil
}

// block renders the attribute block: entries after the header, values
// from the end of the block down, in entry order.
func (s *xattrSet) block() []byte {
	b := make([]byte, blockSize)
	le.PutUint32(b[0:], xattrMagic)
	le.PutUint32(b[4:], s.refs)
	le.PutUint32(b[8:], 1) // h_blocks
	off, end := xattrHeaderSize, blockSize
	hashes := make([]uint32, len(s.attrs))
	for i, a := range s.attrs {
		e := b[off:]
		e[0] = uint8(len(a.name))
		e[1] = a.index
		var value []byte
		if len(a.value) > 0 {
			end -= pad4(len(a.value))
			copy(b[end:], a.value)
			value = b[end : end+pad4(len(a.value))]
			le.PutUint16(e[2:], uint16(end))
		}
		le.PutUint32(e[8:], uint32(len(a.value)))
		hashes[i] = xattrHash(a.name, value)
		le.PutUint32(e[12:], hashes[i])
		copy(e[xattrEntrySize:], a.name)
		off += xattrEntryLen(a.name)
	}
	le.PutUint32(b[12:], blockHash(hashes))
	return b
}

// blockHash is the block hash of ext2_xattr_rehash, over the entry
// hashes. An entry whose hash is zero makes it zero: such a block is
// never shared.
func blockHash(entries []uint32) uint32 {
	var h uint32
	for _, e := range entries {
		if e == 0 {
			return 0
		}
		h = h<<16 ^ h>>16 ^ e
	}
	return h
}

// xattrHash is the entry hash of ext2_xattr_hash_entry: over the name's
// bytes, then the padded value as little-endian words. Names are hashed
// as unsigned bytes, as Linux (built with -funsigned-char since 6.2) and
// e2fsprogs 1.47 do; e2fsck also accepts the signed hash of older x86
// kernels.
func xattrHash(name string, value []byte) uint32 {
	var h uint32
	for i := 0; i < len(name); i++ {
		h = h<<5 ^ h>>27 ^ uint32(name[i])
	}
	for i := 0; i+4 <= len(value); i += 4 {
		h = h<<16 ^ h>>16 ^ le.Uint32(value[i:])
	}
	return h
}

// POSIX ACL tags, as in <linux/posix_acl.h>.
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20

	aclXattrVersion = 2 // the VFS format, as getxattr returns it
	aclDiskVersion  = 1 // ext2's format
	aclNoID         = 1<<32 - 1
)

// diskACL converts an ACL from the VFS xattr format (version, then 8-byte
// entries of tag, permissions and id) to ext2's, where entries without an
// id take 4 bytes. It refuses what the kernel would refuse to set, since
// the kernel trusts what it reads.
func diskACL(v []byte) ([]byte, error) {
	if len(v) < 4 || (len(v)-4)%8 != 0 {
		return nil, fmt.Errorf("not a POSIX ACL: %d bytes", len(v))
	}
	if ver := le.Uint32(v); ver != aclXattrVersion {
		return nil, fmt.Errorf("POSIX ACL version %d, want %d", ver, aclXattrVersion)
	}
	n := (len(v) - 4) / 8
	if n == 0 {
		return nil, fmt.Errorf("POSIX ACL without entries")
	}
	out := make([]byte, 4, 4+8*n)
	le.PutUint32(out, aclDiskVersion)
	// Entries come in the order of the tags' values; the single ones
	// once, a mask when there are named entries.
	var seen, last uint16
	named := false
	for i := range n {
		e := v[4+8*i:]
		tag, perm, id := le.Uint16(e), le.Uint16(e[2:]), le.Uint32(e[4:])
		if perm&^7 != 0 {
			return nil, fmt.Errorf("POSIX ACL entry %d: permissions %#o beyond rwx", i, perm)
		}
		switch tag {
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			if seen&tag != 0 || tag < last {
				return nil, fmt.Errorf("POSIX ACL entry %d: tag %#x out of order", i, tag)
			}
			out = le.AppendUint16(le.AppendUint16(out, tag), perm)
		case aclUser, aclGroup:
			if tag < last {
				return nil, fmt.Errorf("POSIX ACL entry %d: tag %#x out of order", i, tag)
			}
			if id == aclNoID {
				return nil, fmt.Errorf("POSIX ACL entry %d: id %d is not a valid id", i, id)
			}
			named = true
			out = le.AppendUint32(le.AppendUint16(le.AppendUint16(out, tag), perm), id)
		default:
			return nil, fmt.Errorf("POSIX ACL entry %d: unknown tag %#x", i, tag)
		}
		seen |= tag
		last = tag
	}
	const required = aclUserObj | aclGroupObj | aclOther
	if seen&required != required {
		return nil, fmt.Errorf("POSIX ACL without its owner, group and other entries")
	}
	if named && seen&aclMask == 0 {
		return nil, fmt.Errorf("POSIX ACL with named users or groups but no mask")
	}
	return out, nil
}
