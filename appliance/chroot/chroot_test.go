package chroot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gosupermin/gosupermin/appliance"
)

var testTime = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)

// holes is a sparse file made up as it is read: bytes inside its extents
// are a function of their offset, never zero, and the rest are zeros.
type holes struct {
	size int64
	ext  []appliance.Extent
	seq  bool // its readers can neither seek nor read at an offset
}

func (h *holes) Extents() ([]appliance.Extent, error) { return h.ext, nil }

func (h *holes) Open() (io.ReadCloser, error) {
	r := io.NewSectionReader(holesAt{h}, 0, h.size)
	if h.seq {
		return io.NopCloser(struct{ io.Reader }{r}), nil
	}
	return struct {
		*io.SectionReader
		io.Closer
	}{r, io.NopCloser(nil)}, nil
}

type holesAt struct{ h *holes }

func (r holesAt) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		o := off + int64(i)
		if o >= r.h.size {
			return i, io.EOF
		}
		p[i] = 0
		for _, x := range r.h.ext {
			if o >= x.Off && o < x.Off+x.Len {
				p[i] = byte(o*131>>3) | 1
			}
		}
	}
	return len(p), nil
}

// hostHoles is a host file with holes, so that extents go through
// copy_file_range.
type hostHoles struct {
	path string
	ext  []appliance.Extent
}

func (h hostHoles) Open() (io.ReadCloser, error)         { return os.Open(h.path) }
func (h hostHoles) Extents() ([]appliance.Extent, error) { return h.ext, nil }

// newHostHoles writes the data of h into a file of dir, holes left as holes.
func newHostHoles(t testing.TB, dir string, h *holes) hostHoles {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("holes-%d", h.size))
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, x := range h.ext {
		b := make([]byte, x.Len)
		holesAt{h}.ReadAt(b, x.Off)
		if _, err := f.WriteAt(b, x.Off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(h.size); err != nil {
		t.Fatal(err)
	}
	return hostHoles{p, h.ext}
}

func vfsACL(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

const noID = 1<<32 - 1

var (
	pingCap = []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	// user::rw-, user:1000:r-x, group::r--, mask::r-x, other::r--: mode 0654.
	fileACL = vfsACL([3]uint32{1, 6, noID}, [3]uint32{2, 5, 1000}, [3]uint32{4, 4, noID}, [3]uint32{0x10, 5, noID}, [3]uint32{0x20, 4, noID})
	// user::rwx, group::r-x, group:100:rwx, mask::r-x, other::r-x: mode
	// 0755. (Linux keeps no ACL that says no more than the mode.)
	dirACL = vfsACL([3]uint32{1, 7, noID}, [3]uint32{4, 5, noID}, [3]uint32{8, 7, 100}, [3]uint32{0x10, 5, noID}, [3]uint32{0x20, 5, noID})
)

func file(p string, mode uint32, data string) appliance.Entry {
	return appliance.Entry{Path: p, Kind: appliance.Regular, Mode: mode, ModTime: testTime, Size: int64(len(data)), Data: appliance.Bytes(data)}
}

func dir(p string, mode uint32) appliance.Entry {
	return appliance.Entry{Path: p, Kind: appliance.Dir, Mode: mode, ModTime: testTime.Add(-time.Hour)}
}

func owned(e appliance.Entry, uid, gid uint32) appliance.Entry {
	e.UID, e.GID = uid, gid
	return e
}

func withXattrs(e appliance.Entry, xs ...appliance.Xattr) appliance.Entry {
	e.Xattrs = xs
	return e
}

func sparse(p string, src appliance.SparseSource, size int64) appliance.Entry {
	return appliance.Entry{Path: p, Kind: appliance.Regular, Mode: 0644, ModTime: testTime, Size: size, Data: src, Sparse: true}
}

func devices() []appliance.Entry {
	return []appliance.Entry{
		dir("/", 0755), dir("/dev", 0755),
		{Path: "/dev/null", Kind: appliance.CharDev, Mode: 0666, Major: 1, Minor: 3, ModTime: testTime},
		{Path: "/dev/vda1", Kind: appliance.BlockDev, Mode: 0660, GID: 6, Major: 254, Minor: 1, ModTime: testTime},
		{Path: "/dev/initctl", Kind: appliance.FIFO, Mode: 0600, ModTime: testTime},
		{Path: "/dev/log", Kind: appliance.Socket, Mode: 0666, ModTime: testTime},
	}
}

func xattrEntries() []appliance.Entry {
	return []appliance.Entry{
		withXattrs(dir("/", 0755), appliance.Xattr{Name: "user.root", Value: []byte("/")}),
		dir("/bin", 0755),
		// chown clears the capability: it must be set after.
		withXattrs(owned(file("/bin/ping", 04755, "ping"), 0, 0), appliance.Xattr{Name: "security.capability", Value: pingCap}),
		withXattrs(file("/bin/trusted", 0644, "t"), appliance.Xattr{Name: "trusted.overlay.opaque", Value: []byte("y")},
			appliance.Xattr{Name: "user.empty", Value: []byte{}}),
		withXattrs(dir("/data", 0755),
			appliance.Xattr{Name: "system.posix_acl_access", Value: dirACL},
			appliance.Xattr{Name: "system.posix_acl_default", Value: fileACL},
			appliance.Xattr{Name: "user.dir", Value: []byte("d")}),
		// Created before the default ACL is set: it inherits nothing.
		file("/data/plain", 0644, "plain"),
		withXattrs(file("/data/acl", 0654, "acl"), appliance.Xattr{Name: "system.posix_acl_access", Value: fileACL},
			appliance.Xattr{Name: "user.a", Value: bytes.Repeat([]byte("v"), 1000)}),
		// Read-only: setting user.* needs write permission.
		withXattrs(file("/data/ro", 0444, "ro"), appliance.Xattr{Name: "user.ro", Value: []byte("r")}),
		{Path: "/data/ro-link", Kind: appliance.Hardlink, Link: "/data/ro"},
		withXattrs(dir("/data/ro-dir", 0555), appliance.Xattr{Name: "user.ro", Value: []byte("d")}),
		withXattrs(file("/data/ro-dir/f", 0600, "f"), appliance.Xattr{Name: "user.f", Value: []byte("f")}),
		withXattrs(appliance.Entry{Path: "/data/lnk", Kind: appliance.Symlink, Mode: 0777, Link: "acl", ModTime: testTime},
			appliance.Xattr{Name: "trusted.overlay.redirect", Value: []byte("/x")}),
	}
}

func TestWrite(t *testing.T) {
	tmp := t.TempDir()
	big := &holes{size: 1 << 30, ext: []appliance.Extent{{Off: 0, Len: 10}, {Off: 5000, Len: 100}, {Off: 6000, Len: 3 << 20}, {Off: 1<<30 - 5, Len: 5}}}
	for _, c := range []struct {
		name    string
		owners  bool // Options.Owners: only root may
		user    bool // runs as a user other than root
		entries func(t *testing.T) []appliance.Entry
		warn    []string
	}{
		{name: "modes", entries: func(*testing.T) []appliance.Entry {
			return []appliance.Entry{
				dir("/", 0755), dir("/bin", 0711),
				file("/bin/su", 04755, "su"), file("/bin/wall", 02755, "wall"), file("/bin/both", 06711, "x"),
				file("/bin/none", 0, "no permissions"), file("/bin/empty", 0644, ""),
				dir("/tmp", 01777), dir("/srv", 03775),
				// Read-only directories, filled before they become so.
				dir("/ro", 0555), dir("/ro/sub", 0500), file("/ro/sub/f", 0400, "deep"), file("/ro/f", 0444, "f"),
				{Path: "/zero-time", Kind: appliance.Regular, Mode: 0644},
			}
		}},
		{name: "owners", owners: true, entries: func(*testing.T) []appliance.Entry {
			return []appliance.Entry{
				dir("/", 0755), owned(dir("/home", 0755), 0, 0),
				owned(dir("/home/user", 0700), 1000, 1000),
				owned(file("/home/user/.profile", 0600, "PS1='$ '\n"), 1000, 1000),
				// chown after chmod would clear these bits.
				owned(file("/home/user/suid", 06755, "x"), 1000, 100),
				owned(file("/big-ids", 0644, "x"), 100000, 1<<32-2),
				owned(appliance.Entry{Path: "/home/user/lnk", Kind: appliance.Symlink, Mode: 0777, Link: ".profile", ModTime: testTime}, 1000, 1000),
			}
		}},
		{name: "links", entries: func(*testing.T) []appliance.Entry {
			return []appliance.Entry{
				dir("/", 0755), dir("/a", 0755), dir("/b", 0755),
				file("/a/1", 0640, "three names, one inode\n"),
				{Path: "/a/2", Kind: appliance.Hardlink, Link: "/a/1"},
				{Path: "/b/3", Kind: appliance.Hardlink, Link: "/a/1"},
				{Path: "/b/rel", Kind: appliance.Symlink, Mode: 0777, Link: "../a/1", ModTime: testTime},
				{Path: "/b/abs", Kind: appliance.Symlink, Mode: 0777, Link: "/a/1", ModTime: testTime},
				{Path: "/b/dangling", Kind: appliance.Symlink, Mode: 0777, Link: "/does/not/exist", ModTime: testTime},
				{Path: "/b/todir", Kind: appliance.Symlink, Mode: 0777, Link: "../a", ModTime: testTime},
				{Path: "/b/long", Kind: appliance.Symlink, Mode: 0777, Link: strings.Repeat("x", 4000), ModTime: testTime},
			}
		}},
		{name: "devices-root", owners: true, entries: func(*testing.T) []appliance.Entry { return devices() }},
		{name: "devices-user", user: true, entries: func(*testing.T) []appliance.Entry { return devices() },
			warn: []string{"2 device nodes not created: only root can make them"}},
		{name: "holes", entries: func(t *testing.T) []appliance.Entry {
			return []appliance.Entry{
				dir("/", 0755),
				sparse("/host", newHostHoles(t, tmp, big), big.size),
				sparse("/memory", big, big.size),
				sparse("/sequential", &holes{size: 64 << 20, ext: big.ext[:3], seq: true}, 64<<20),
				sparse("/none", &holes{size: 4 << 30}, 4<<30),
				sparse("/tiny", &holes{size: 3, ext: []appliance.Extent{{Off: 0, Len: 3}}}, 3),
				sparse("/empty", &holes{}, 0),
			}
		}},
		{name: "xattrs-root", owners: true, entries: func(*testing.T) []appliance.Entry { return xattrEntries() }},
		{name: "xattrs-user", user: true, entries: func(*testing.T) []appliance.Entry { return xattrEntries() },
			warn: []string{"3 extended attributes (security.*, trusted.*) not set: only root can set them"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := os.Geteuid() == 0
			switch {
			case c.owners && !root:
				t.Skip("needs root: only root sets owners and makes devices")
			case c.user && root:
				runAsUser(t)
				return
			}
			m := appliance.New()
			for _, e := range c.entries(t) {
				if err := m.Put(e); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.Seal(); err != nil {
				t.Fatal(err)
			}
			out := outDir(t)
			var warn []string
			err := NewWriter(out, Options{Owners: c.owners, Warn: func(s string) { warn = append(warn, s) }}).WriteManifest(context.Background(), m)
			if err != nil {
				if errors.Is(err, unix.EOPNOTSUPP) {
					skipOrFail(t, fmt.Sprintf("the filesystem of %s lacks extended attributes: %v", out, err))
				}
				t.Fatal(err)
			}
			if !slices.Equal(warn, c.warn) {
				t.Errorf("warnings %q, want %q", warn, c.warn)
			}
			compareDir(t, out, m, c.owners)
		})
	}
}

// outDir is an empty directory for a tree, which the test's cleanup can
// remove even where the tree has read-only directories.
func outDir(t *testing.T) string {
	dir := t.TempDir()
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	})
	return dir
}

func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
}

const childEnv = "GOSUPERMIN_CHROOT_TEST_AS_USER"

// runAsUser runs the calling test again in a copy of the test binary as
// nobody, for what a build by a user does where root could do more.
func runAsUser(t *testing.T) {
	t.Helper()
	if os.Getenv(childEnv) != "" {
		t.Fatal("still root in the child process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Test binaries live in directories only their user may enter.
	binDir, err := os.MkdirTemp("", "chroot-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	bin := filepath.Join(binDir, "chroot.test")
	data, err := os.ReadFile(exe)
	if err == nil {
		err = os.WriteFile(bin, data, 0o755)
	}
	if err == nil {
		err = os.Chmod(binDir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	var run []string
	for _, part := range strings.Split(t.Name(), "/") {
		run = append(run, "^"+regexp.QuoteMeta(part)+"$")
	}
	cmd := exec.Command(bin, "-test.run", strings.Join(run, "/"), "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as uid 65534: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("as uid 65534, %s did not pass:\n%s", t.Name(), out)
	}
}

// compareDir checks the tree under dir against the manifest. A user
// cannot make devices or set security.* and trusted.* attributes, and owns
// what it makes.
func compareDir(t *testing.T, dir string, m *appliance.Manifest, owners bool) {
	t.Helper()
	root := os.Geteuid() == 0
	for _, e := range m.Entries() {
		p := filepath.Join(dir, e.Path)
		var st unix.Stat_t
		err := unix.Lstat(p, &st)
		if e.Kind == appliance.Socket || !root && (e.Kind == appliance.CharDev || e.Kind == appliance.BlockDev) {
			if !errors.Is(err, unix.ENOENT) {
				t.Errorf("%s: %v, want it left out", e.Path, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", e.Path, err)
			continue
		}
		if e.Kind == appliance.Hardlink {
			var tst unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, e.Link), &tst); err != nil || tst.Ino != st.Ino {
				t.Errorf("%s: inode %d, target %s has %d (%v)", e.Path, st.Ino, e.Link, tst.Ino, err)
			}
			continue
		}
		if typ := st.Mode & unix.S_IFMT; typ != map[appliance.Kind]uint32{appliance.Regular: unix.S_IFREG, appliance.Dir: unix.S_IFDIR,
			appliance.Symlink: unix.S_IFLNK, appliance.CharDev: unix.S_IFCHR, appliance.BlockDev: unix.S_IFBLK, appliance.FIFO: unix.S_IFIFO}[e.Kind] {
			t.Errorf("%s: type %o, want a %s", e.Path, typ, e.Kind)
			continue
		}
		if e.Kind != appliance.Symlink && st.Mode&07777 != e.Mode {
			t.Errorf("%s: mode %o, want %o", e.Path, st.Mode&07777, e.Mode)
		}
		uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
		if owners {
			uid, gid = e.UID, e.GID
		}
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", e.Path, st.Uid, st.Gid, uid, gid)
		}
		if mt := time.Unix(st.Mtim.Unix()); !e.ModTime.IsZero() && !mt.Equal(e.ModTime) {
			t.Errorf("%s: mtime %v, want %v", e.Path, mt, e.ModTime)
		}
		switch e.Kind {
		case appliance.Regular:
			compareData(t, p, e, &st)
		case appliance.Symlink:
			if target, err := os.Readlink(p); target != e.Link {
				t.Errorf("%s: link to %q (%v), want %q", e.Path, target, err, e.Link)
			}
		case appliance.CharDev, appliance.BlockDev:
			if want := unix.Mkdev(e.Major, e.Minor); st.Rdev != want {
				t.Errorf("%s: device %d:%d, want %d:%d", e.Path, unix.Major(st.Rdev), unix.Minor(st.Rdev), e.Major, e.Minor)
			}
		}
		compareXattrs(t, p, e, root)
	}
}

func compareData(t *testing.T, p string, e *appliance.Entry, st *unix.Stat_t) {
	t.Helper()
	if st.Size != e.Size {
		t.Errorf("%s: size %d, want %d", e.Path, st.Size, e.Size)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if e.Sparse {
		compareExtents(t, f, e, st)
		return
	}
	want, got := sha256.New(), sha256.New()
	if e.Data != nil {
		r, err := e.Data.Open()
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(want, r)
		r.Close()
	}
	io.Copy(got, f)
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Errorf("%s: content differs", e.Path)
	}
}

// compareExtents checks a file marked sparse without reading its holes:
// each extent's bytes, SEEK_DATA finding nothing between the blocks the
// extents touch, and no more blocks on disk than those.
func compareExtents(t *testing.T, f *os.File, e *appliance.Entry, st *unix.Stat_t) {
	t.Helper()
	exts, _ := e.Data.(appliance.SparseSource).Extents()
	var src io.ReaderAt
	switch d := e.Data.(type) {
	case *holes:
		src = holesAt{d}
	case hostHoles:
		hf, err := os.Open(d.path)
		if err != nil {
			t.Fatal(err)
		}
		defer hf.Close()
		src = hf
	default:
		t.Fatalf("%s: no way to read %T", e.Path, e.Data)
	}
	const blk = 4096
	var hole, used int64 // where the hole before the extent starts
	for i := 0; i <= len(exts); i++ {
		next := e.Size // where the hole ends
		if i < len(exts) {
			next = exts[i].Off
		}
		if lo, hi := (hole+blk-1)/blk*blk, next/blk*blk; lo < hi {
			if data, err := unix.Seek(int(f.Fd()), lo, unix.SEEK_DATA); err == nil && data < hi {
				t.Errorf("%s: data at %d, in the hole %d-%d", e.Path, data, lo, hi)
			}
		}
		if i == len(exts) {
			break
		}
		x := exts[i]
		want, got := make([]byte, x.Len), make([]byte, x.Len)
		src.ReadAt(want, x.Off)
		if _, err := f.ReadAt(got, x.Off); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: extent %d+%d differs (%v)", e.Path, x.Off, x.Len, err)
		}
		hole = x.Off + x.Len
		used += ((x.Off+x.Len+blk-1)/blk - x.Off/blk) * blk
	}
	// Some room for the filesystem's own mapping blocks.
	if limit := used + 64<<10; st.Blocks*512 > limit {
		t.Errorf("%s: %d bytes on disk, want at most %d", e.Path, st.Blocks*512, limit)
	}
}

// compareXattrs checks that p has e's attributes, no others (SELinux
// labels that the host gives every file aside), but for what only root
// may set when not root.
func compareXattrs(t *testing.T, p string, e *appliance.Entry, root bool) {
	t.Helper()
	want := map[string][]byte{}
	for _, x := range e.Xattrs {
		if root || !rootOnlyXattr(x.Name) {
			want[x.Name] = x.Value
		}
	}
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Errorf("%s: list attributes: %v", e.Path, err)
		return
	}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || name == "security.selinux" && want[name] == nil {
			continue
		}
		v, ok := want[name]
		if !ok {
			t.Errorf("%s: unexpected attribute %s", e.Path, name)
			continue
		}
		delete(want, name)
		k, err := unix.Lgetxattr(p, name, buf)
		if err != nil || !bytes.Equal(buf[:k], v) {
			t.Errorf("%s: %s = %x (%v), want %x", e.Path, name, buf[:max(k, 0)], err, v)
		}
	}
	for name := range want {
		t.Errorf("%s: attribute %s missing", e.Path, name)
	}
}

func TestWriteErrors(t *testing.T) {
	root := dir("/", 0755)
	x := appliance.Extent{Off: 10, Len: 10}
	for _, c := range []struct {
		name  string
		entry appliance.Entry
		want  string
	}{
		{"short data", appliance.Entry{Path: "/f", Kind: appliance.Regular, Mode: 0644, Size: 10, Data: appliance.Bytes("12345")},
			"chroot: create /f: size changed while reading: 5 bytes, expected 10"},
		{"long data", appliance.Entry{Path: "/f", Kind: appliance.Regular, Mode: 0644, Size: 3, Data: appliance.Bytes("12345")},
			"chroot: create /f: size changed while reading: 4 bytes, expected 3"},
		{"extent past the size", sparse("/f", &holes{size: 15, ext: []appliance.Extent{x}}, 15),
			"chroot: create /f: extent 10+10 out of order or past the size, 15"},
		{"extents out of order", sparse("/f", &holes{size: 100, ext: []appliance.Extent{x, {Off: 0, Len: 5}}}, 100),
			"chroot: create /f: extent 0+5 out of order"},
		{"data ends inside an extent", sparse("/f", &holes{size: 15, ext: []appliance.Extent{x}}, 100),
			"chroot: create /f: data ends at byte 15, inside its extent 10+10"},
		{"sequential data ends before an extent", sparse("/f", &holes{size: 15, ext: []appliance.Extent{{Off: 50, Len: 5}}, seq: true}, 100),
			"chroot: create /f: data ends at byte 15, before its extent 50+5"},
		{"user attribute on a symlink", withXattrs(appliance.Entry{Path: "/l", Kind: appliance.Symlink, Mode: 0777, Link: "x"}, appliance.Xattr{Name: "user.x"}),
			"chroot: set extended attribute user.x of /l: operation not permitted"},
		{"unknown namespace", withXattrs(file("/f", 0644, ""), appliance.Xattr{Name: "nonsense.x"}),
			"chroot: set extended attribute nonsense.x of /f: operation not supported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := appliance.New()
			for _, e := range []appliance.Entry{root, c.entry} {
				if err := m.Put(e); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.Seal(); err != nil {
				t.Fatal(err)
			}
			err := NewWriter(t.TempDir(), Options{}).WriteManifest(context.Background(), m)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("WriteManifest = %v, want an error with %q", err, c.want)
			}
		})
	}

	t.Run("not sealed", func(t *testing.T) {
		if err := NewWriter(t.TempDir(), Options{}).WriteManifest(context.Background(), appliance.New()); !errors.Is(err, appliance.ErrNotSealed) {
			t.Fatalf("WriteManifest = %v, want ErrNotSealed", err)
		}
	})
}

// gate holds every Open until released, counting those that wait.
type gate struct {
	waiting chan struct{}
	release chan struct{}
}

func (g gate) Open() (io.ReadCloser, error) {
	g.waiting <- struct{}{}
	<-g.release
	return io.NopCloser(strings.NewReader("x")), nil
}

// TestCancel: after a cancellation no new entry is started; those under
// way finish.
func TestCancel(t *testing.T) {
	const n = 2000
	build := func(data func(i int) appliance.Source) *appliance.Manifest {
		m := appliance.New()
		m.Put(dir("/", 0755))
		// Spread over directories: each is one worker's.
		for d := range 50 {
			m.Put(dir(fmt.Sprintf("/d%02d", d), 0755))
		}
		for i := range n {
			e := file(fmt.Sprintf("/d%02d/f%04d", i%50, i), 0644, "x")
			e.Data = data(i)
			if err := m.Put(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Seal(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		out := t.TempDir()
		m := build(func(int) appliance.Source { return appliance.Bytes("x") })
		if err := NewWriter(out, Options{}).WriteManifest(ctx, m); !errors.Is(err, context.Canceled) {
			t.Fatalf("WriteManifest = %v, want context.Canceled", err)
		}
		if made := countFiles(t, out); made > 0 {
			t.Errorf("%d files made after the cancellation, want none", made)
		}
	})
	t.Run("while writing", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		g := gate{waiting: make(chan struct{}, n), release: make(chan struct{})}
		m := build(func(int) appliance.Source { return g })
		out := t.TempDir()
		done := make(chan error, 1)
		go func() { done <- NewWriter(out, Options{}).WriteManifest(ctx, m) }()
		// Every worker is inside an entry, waiting for its data.
		for range workers {
			<-g.waiting
		}
		cancel()
		close(g.release)
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("WriteManifest = %v, want context.Canceled", err)
		}
		if made := countFiles(t, out); made != workers {
			t.Errorf("%d files made, want the %d under way when cancelled", made, workers)
		}
	})
}

// countFiles counts the regular files under dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
