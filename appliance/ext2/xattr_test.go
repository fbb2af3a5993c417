package ext2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/appliance"
)

// vfsACL builds an ACL in the VFS xattr format: entries of tag,
// permissions and id, short ones with the id getxattr gives them (-1).
func vfsACL(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclXattrVersion)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

var (
	// ping's cap_net_raw=ep (VFS_CAP_REVISION_2, effective).
	pingCap = []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	// user::rw-, user:1000:r-x, group::r--, group:100:r--, mask::r-x, other::r--
	fileACL = vfsACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclUser, 5, 1000}, [3]uint32{aclGroupObj, 4, aclNoID},
		[3]uint32{aclGroup, 4, 100}, [3]uint32{aclMask, 5, aclNoID}, [3]uint32{aclOther, 4, aclNoID})
	// The same on disk: version 1, short entries without ids.
	fileACLDisk = []byte{1, 0, 0, 0, 1, 0, 6, 0, 2, 0, 5, 0, 0xe8, 3, 0, 0, 4, 0, 4, 0, 8, 0, 4, 0, 100, 0, 0, 0, 0x10, 0, 5, 0, 0x20, 0, 4, 0}
	dirACL      = vfsACL([3]uint32{aclUserObj, 7, aclNoID}, [3]uint32{aclGroupObj, 5, aclNoID}, [3]uint32{aclOther, 5, aclNoID})
)

func label(s string) []appliance.Xattr {
	return []appliance.Xattr{{Name: "security.selinux", Value: []byte(s + "\x00")}}
}

// sharedN files have the same attributes: more than one block can serve.
const sharedN = xattrRefMax + 6

// xattrTree is a manifest with attributes on every kind of inode, ACLs,
// blocks shared and a full block.
func xattrTree(t testing.TB) *appliance.Manifest {
	m := appliance.New()
	put := func(e appliance.Entry) {
		t.Helper()
		if e.Mode == 0 {
			e.Mode = 0644
		}
		if e.Kind == appliance.Regular && e.Data == nil {
			e.Data = appliance.Bytes(e.Path + "\n")
			e.Size = int64(len(e.Path) + 1)
		}
		mustPut(t, m, e)
	}
	put(appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0755, Xattrs: label("system_u:object_r:root_t:s0")})
	put(appliance.Entry{Path: "/bin", Kind: appliance.Dir, Mode: 0755})
	put(appliance.Entry{Path: "/bin/ping", Kind: appliance.Regular, Mode: 0755, Xattrs: []appliance.Xattr{{Name: "security.capability", Value: pingCap}}})
	put(appliance.Entry{Path: "/data", Kind: appliance.Dir, Mode: 0755, Xattrs: []appliance.Xattr{
		{Name: "system.posix_acl_access", Value: dirACL}, {Name: "system.posix_acl_default", Value: fileACL}}})
	put(appliance.Entry{Path: "/data/acl", Kind: appliance.Regular, Mode: 0654, Xattrs: []appliance.Xattr{
		{Name: "system.posix_acl_access", Value: fileACL}, {Name: "user.test", Value: []byte("hello")}}})
	put(appliance.Entry{Path: "/data/acl-link", Kind: appliance.Hardlink, Link: "/data/acl"})
	// A full block: header, one entry, the end mark and the value.
	full := 4096 - xattrHeaderSize - 4 - xattrEntryLen("big")
	put(appliance.Entry{Path: "/data/full", Kind: appliance.Regular, Xattrs: []appliance.Xattr{{Name: "user.big", Value: bytes.Repeat([]byte{0xa5}, full)}}})
	var many []appliance.Xattr
	for i := range 40 {
		// Values of 0 to 6 bytes: empty ones, and every padding.
		many = append(many, appliance.Xattr{Name: fmt.Sprintf("user.%0*d", 1+i%3, i), Value: bytes.Repeat([]byte{byte('a' + i%26)}, i%7)})
	}
	sort.Slice(many, func(i, j int) bool { return many[i].Name < many[j].Name })
	put(appliance.Entry{Path: "/data/many", Kind: appliance.Regular, Xattrs: many})
	put(appliance.Entry{Path: "/data/mixed", Kind: appliance.Regular, Xattrs: []appliance.Xattr{
		{Name: "security.selinux", Value: []byte("system_u:object_r:bin_t:s0\x00")},
		{Name: "system.data", Value: []byte{}},
		{Name: "trusted.overlay.opaque", Value: []byte("y")},
		{Name: "user.\xc3\xa9t\xc3\xa9", Value: []byte("high bytes in the name")},
	}})
	put(appliance.Entry{Path: "/dev", Kind: appliance.Dir, Mode: 0755})
	put(appliance.Entry{Path: "/dev/null", Kind: appliance.CharDev, Mode: 0666, Major: 1, Minor: 3, Xattrs: label("system_u:object_r:null_device_t:s0")})
	put(appliance.Entry{Path: "/dev/fifo", Kind: appliance.FIFO, Mode: 0600, Xattrs: label("system_u:object_r:device_t:s0")})
	put(appliance.Entry{Path: "/lnk", Kind: appliance.Symlink, Mode: 0777, Link: "bin/ping", Xattrs: label("system_u:object_r:bin_t:s0")})
	put(appliance.Entry{Path: "/slowlnk", Kind: appliance.Symlink, Mode: 0777, Link: strings.Repeat("x/", 40) + "y", Xattrs: label("system_u:object_r:bin_t:s0")})
	put(appliance.Entry{Path: "/shared", Kind: appliance.Dir, Mode: 0755})
	for i := range sharedN {
		put(appliance.Entry{Path: fmt.Sprintf("/shared/%04d", i), Kind: appliance.Regular, Xattrs: label("system_u:object_r:usr_t:s0")})
	}
	return m
}

var eaListRE = regexp.MustCompile(`(?m)^  (.+?) +\(\d+\)`)

// eaListName is how debugfs's ea_list shows a name: as it is when
// printable, else as hex bytes.
func eaListName(name string) string {
	for _, c := range []byte(name) {
		if c < 0x20 || c > 0x7e {
			return strings.TrimSpace(fmt.Sprintf("% x", name))
		}
	}
	return name
}

func TestXattrs(t *testing.T) {
	needTools(t)
	m := xattrTree(t)
	entries := m.Entries()
	img := writeImage(t, entries, Options{Size: 64 << 20, UUID: UUIDFor([]byte("xattrs")), Time: testTime})
	fsck(t, img)
	compareTree(t, img, entries, "")

	// compareTree has read every attribute back as it is stored; ACLs
	// also through e2fsprogs' conversion to the VFS format, and the names
	// of each inode's attributes, none more.
	dir := t.TempDir()
	type check struct {
		path, name string
		want       []byte
	}
	var checks []check
	var paths []string
	for _, e := range entries {
		x := e
		if e.Kind == appliance.Hardlink {
			x, _ = m.Get(e.Link)
		}
		if len(x.Xattrs) == 0 {
			continue
		}
		paths = append(paths, e.Path)
		for _, a := range x.Xattrs {
			if a.Name == "system.posix_acl_access" || a.Name == "system.posix_acl_default" {
				checks = append(checks, check{e.Path, a.Name, zeroShortIDs(a.Value)})
			}
		}
	}
	var cmds []string
	for i, c := range checks {
		cmds = append(cmds, fmt.Sprintf("ea_get -f %s %s %s", quote(filepath.Join(dir, strconv.Itoa(i))), quote(c.path), quote(c.name)))
	}
	for _, p := range paths {
		cmds = append(cmds, "ea_list "+quote(p))
	}
	out := debugfs(t, img, cmds)
	for i, c := range checks {
		got, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %s = %x (%v), want %x", c.path, c.name, got, err, c.want)
		}
	}
	if !bytes.Equal(fileACLDisk, mustDiskACL(t, fileACL)) {
		t.Errorf("file ACL on disk = %x, want %x", mustDiskACL(t, fileACL), fileACLDisk)
	}
	for i, p := range paths {
		var names []string
		for _, m := range eaListRE.FindAllStringSubmatch(out[len(checks)+i], -1) {
			names = append(names, m[1])
		}
		e, _ := m.Get(p)
		if e.Kind == appliance.Hardlink {
			e, _ = m.Get(e.Link)
		}
		var want []string
		for _, a := range e.Xattrs {
			want = append(want, eaListName(a.Name))
		}
		sort.Strings(names)
		sort.Strings(want)
		if strings.Join(names, " ") != strings.Join(want, " ") {
			t.Errorf("%s: ea_list gives %q, want %q", p, names, want)
		}
	}

	// Sharing: the first xattrRefMax files share a block, the rest take
	// another; each counts its block in i_blocks. e2fsck has checked
	// the reference counts.
	statPaths := []string{"/shared/0000", fmt.Sprintf("/shared/%04d", xattrRefMax-1), fmt.Sprintf("/shared/%04d", xattrRefMax), "/data/acl", "/lnk", "/slowlnk", "/dev/null"}
	cmds = cmds[:0]
	for _, p := range statPaths {
		cmds = append(cmds, "stat "+quote(p))
	}
	stats := debugfs(t, img, cmds)
	acl := func(i int) int64 { return statField(t, stats[i], "File ACL:") }
	if acl(0) == 0 || acl(0) != acl(1) || acl(2) == acl(0) || acl(2) == 0 {
		t.Errorf("attribute blocks of /shared: %d, %d, %d; want the first two the same, the third another", acl(0), acl(1), acl(2))
	}
	for i, want := range []int64{8 + 8, 8 + 8, 8 + 8, 8 + 8, 8, 8 + 8, 8} {
		if got := statField(t, stats[i], "Blockcount:"); got != want {
			t.Errorf("%s: Blockcount %d, want %d", statPaths[i], got, want)
		}
	}
	if !strings.Contains(debugfs(t, img, []string{"stats"})[0], "Filesystem features:      ext_attr filetype") {
		t.Error("ext_attr feature not set")
	}
}

// zeroShortIDs is what e2fsprogs gives back for an ACL: the ids of
// entries that have none read as 0.
func zeroShortIDs(acl []byte) []byte {
	b := bytes.Clone(acl)
	for off := 4; off+8 <= len(b); off += 8 {
		if tag := binary.LittleEndian.Uint16(b[off:]); tag != aclUser && tag != aclGroup {
			binary.LittleEndian.PutUint32(b[off+4:], 0)
		}
	}
	return b
}

func mustDiskACL(t testing.TB, v []byte) []byte {
	t.Helper()
	d, err := diskACL(v)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestXattrBlockLikeKernel compares our attribute blocks with ones Linux
// 6.18's ext2 driver wrote (testdata/kernel-xattr-*.blk, made by setfattr
// and setfacl on a loop-mounted image): the same entries in the same
// order, entry hashes, block hash (which e2fsck does not check and the
// kernel uses to share blocks) and values, ACLs converted as the kernel
// converts them. Only where the values sit may differ: the kernel puts
// them in the order they were set.
func TestXattrBlockLikeKernel(t *testing.T) {
	for _, c := range []struct {
		file  string
		attrs []appliance.Xattr
	}{
		{"kernel-xattr-f.blk", []appliance.Xattr{
			{Name: "security.capability", Value: pingCap},
			{Name: "system.posix_acl_access", Value: fileACL},
			{Name: "trusted.t", Value: []byte("0123456")},
			{Name: "user.a", Value: []byte("1")},
			{Name: "user.bb", Value: []byte{}},
			{Name: "user.c", Value: []byte("three")},
		}},
		{"kernel-xattr-g.blk", []appliance.Xattr{
			{Name: "security.selinux", Value: []byte("system_u:object_r:bin_t:s0")},
			{Name: "user.\xc3\xa9t\xc3\xa9", Value: []byte("high bytes in the name")},
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			kernel, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			w := &writer{nodes: []*node{{entry: &appliance.Entry{Path: "/f", Xattrs: c.attrs}}}}
			if err := w.collectXattrs(); err != nil {
				t.Fatal(err)
			}
			ours := w.xattrs[0].block()
			if !bytes.Equal(ours[:xattrHeaderSize], kernel[:xattrHeaderSize]) {
				t.Errorf("header %x, kernel's %x", ours[:xattrHeaderSize], kernel[:xattrHeaderSize])
			}
			if o, k := blockEntries(ours), blockEntries(kernel); o != k {
				t.Errorf("entries differ from the kernel's:\n ours   %s\n kernel %s", o, k)
			}
		})
	}
}

// blockEntries describes the entries of an attribute block with their
// values, not where the values sit.
func blockEntries(b []byte) string {
	var out []string
	le := binary.LittleEndian
	for off := xattrHeaderSize; off+4 <= len(b) && le.Uint32(b[off:]) != 0; {
		e := b[off:]
		nlen, voff, vlen := int(e[0]), int(le.Uint16(e[2:])), int(le.Uint32(e[8:]))
		if off+xattrEntrySize+nlen > len(b) || voff+vlen > len(b) {
			return fmt.Sprintf("%s bad entry at %d", out, off)
		}
		out = append(out, fmt.Sprintf("%d:%q=%x hash %#x block %d", e[1], e[xattrEntrySize:xattrEntrySize+nlen], b[voff:voff+vlen], le.Uint32(e[12:]), le.Uint32(e[4:])))
		off += pad4(xattrEntrySize + nlen)
	}
	return strings.Join(out, ", ")
}

func TestXattrErrors(t *testing.T) {
	root := &appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0755}
	file := func(xs ...appliance.Xattr) []*appliance.Entry {
		return []*appliance.Entry{root, {Path: "/f", Kind: appliance.Regular, Mode: 0644, Xattrs: xs}}
	}
	acl := func(v []byte) []*appliance.Entry {
		return file(appliance.Xattr{Name: "system.posix_acl_access", Value: v})
	}
	e := func(tag, perm, id uint32) [3]uint32 { return [3]uint32{tag, perm, id} }
	uo, gobj, oth := e(aclUserObj, 6, aclNoID), e(aclGroupObj, 4, aclNoID), e(aclOther, 4, aclNoID)
	for _, c := range []struct {
		name    string
		entries []*appliance.Entry
		want    string
	}{
		{"too large", file(appliance.Xattr{Name: "user.big", Value: make([]byte, 4041)}), "ext2: /f: extended attributes take 4100 bytes, more than the 4096 of one block"},
		{"too large together", file(appliance.Xattr{Name: "user.a", Value: make([]byte, 2000)}, appliance.Xattr{Name: "user.b", Value: make([]byte, 2100)}), "/f: extended attributes take"},
		{"unknown prefix", file(appliance.Xattr{Name: "lustre.lov", Value: []byte("x")}), `/f: extended attribute "lustre.lov": ext2 stores only`},
		{"no prefix", file(appliance.Xattr{Name: "plain", Value: []byte("x")}), `/f: extended attribute "plain"`},
		{"empty name", file(appliance.Xattr{Name: "user.", Value: []byte("x")}), `/f: extended attribute "user.": no name`},
		{"long name", file(appliance.Xattr{Name: "user." + strings.Repeat("n", 256)}), "name longer than 255 bytes"},
		{"NUL in name", file(appliance.Xattr{Name: "user.a\x00b"}), "NUL in the name"},
		{"unsorted", file(appliance.Xattr{Name: "user.b"}, appliance.Xattr{Name: "user.a"}), `/f: extended attributes not sorted by name, or "user.a" twice`},
		{"twice", file(appliance.Xattr{Name: "user.a"}, appliance.Xattr{Name: "user.a"}), `or "user.a" twice`},
		{"ACL short", acl([]byte{2, 0}), "system.posix_acl_access: not a POSIX ACL: 2 bytes"},
		{"ACL ragged", acl(append(vfsACL(uo, gobj, oth), 0)), "not a POSIX ACL: 29 bytes"},
		{"ACL version", acl(append([]byte{1, 0, 0, 0}, vfsACL(uo, gobj, oth)[4:]...)), "POSIX ACL version 1, want 2"},
		{"ACL empty", acl(vfsACL()), "POSIX ACL without entries"},
		{"ACL unknown tag", acl(vfsACL(uo, e(0x40, 4, 0), gobj, oth)), "entry 1: unknown tag 0x40"},
		{"ACL permissions", acl(vfsACL(e(aclUserObj, 8, aclNoID), gobj, oth)), "entry 0: permissions 010 beyond rwx"},
		{"ACL order", acl(vfsACL(gobj, uo, oth)), "entry 1: tag 0x1 out of order"},
		{"ACL twice", acl(vfsACL(uo, uo, gobj, oth)), "entry 1: tag 0x1 out of order"},
		{"ACL named after mask", acl(vfsACL(uo, gobj, e(aclMask, 4, aclNoID), e(aclGroup, 4, 5), oth)), "entry 3: tag 0x8 out of order"},
		{"ACL no other", acl(vfsACL(uo, gobj)), "without its owner, group and other entries"},
		{"ACL no mask", acl(vfsACL(uo, e(aclUser, 4, 5), gobj, oth)), "named users or groups but no mask"},
		{"ACL bad id", acl(vfsACL(uo, e(aclUser, 4, aclNoID), gobj, e(aclMask, 4, aclNoID), oth)), "entry 1: id 4294967295 is not a valid id"},
		{"default ACL", file(appliance.Xattr{Name: "system.posix_acl_default", Value: []byte("junk")}), "system.posix_acl_default: POSIX ACL version 1802401130, want 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if size := wantWriteError(t, c.entries, Options{Size: 16 << 20}, c.want); size != 0 {
				t.Errorf("image is %d bytes after the error, want untouched", size)
			}
		})
	}
}

func TestDiskACL(t *testing.T) {
	e := func(tag, perm, id uint32) [3]uint32 { return [3]uint32{tag, perm, id} }
	for _, c := range []struct {
		name string
		vfs  []byte
		want []byte
	}{
		{"minimal", vfsACL(e(aclUserObj, 7, aclNoID), e(aclGroupObj, 5, aclNoID), e(aclOther, 0, aclNoID)),
			[]byte{1, 0, 0, 0, 1, 0, 7, 0, 4, 0, 5, 0, 0x20, 0, 0, 0}},
		{"mask without named entries", vfsACL(e(aclUserObj, 7, 0), e(aclGroupObj, 5, 0), e(aclMask, 1, 0), e(aclOther, 0, 0)),
			[]byte{1, 0, 0, 0, 1, 0, 7, 0, 4, 0, 5, 0, 0x10, 0, 1, 0, 0x20, 0, 0, 0}},
		{"named", fileACL, fileACLDisk},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := diskACL(c.vfs)
			if err != nil || !bytes.Equal(got, c.want) {
				t.Fatalf("diskACL = %x, %v; want %x", got, err, c.want)
			}
		})
	}
}
