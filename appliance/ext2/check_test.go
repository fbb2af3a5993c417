package ext2

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
)

// The readback goes through e2fsprogs, an implementation independent of
// ours, so that a shared misreading of the format cannot hide.

func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed (e2fsprogs): %v", name, err)
	}
	return p
}

func needTools(t testing.TB) {
	tool(t, "e2fsck")
	tool(t, "debugfs")
}

// fsck runs e2fsck -fn and fails on any finding.
func fsck(t testing.TB, img string) {
	t.Helper()
	cmd := exec.Command(tool(t, "e2fsck"), "-fn", img)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var bad []string
	for _, line := range strings.Split(out.String(), "\n") {
		switch {
		case line == "", strings.HasPrefix(line, "e2fsck "), strings.HasPrefix(line, "Pass "),
			regexp.MustCompile(`^\S*: \d+/\d+ files \(`).MatchString(line):
		default:
			bad = append(bad, line)
		}
	}
	if err != nil || len(bad) > 0 {
		t.Fatalf("e2fsck -fn %s: %v\n%s", img, err, out.String())
	}
}

// quote makes a path one debugfs argument.
func quote(p string) string { return `"` + p + `"` }

// debugfs runs the commands in one debugfs process and returns each
// command's output.
func debugfs(t testing.TB, img string, cmds []string) []string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "cmds")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, strings.Join(cmds, "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(tool(t, "debugfs"), "-f", f.Name(), img)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("debugfs: %v\n%s", err, stderr.String())
	}
	// Errors go to stderr, unattributed; no command here should fail.
	if e := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stderr.String()), "debugfs")); e != "" && !regexp.MustCompile(`^\d+\.\d+\.\d+ \(.*\)$`).MatchString(e) {
		t.Fatalf("debugfs complained:\n%s", stderr.String())
	}
	var outs []string
	for _, part := range strings.Split("\n"+stdout.String(), "\ndebugfs: ")[1:] {
		_, body, _ := strings.Cut(part, "\n")
		outs = append(outs, body)
	}
	if len(outs) != len(cmds) {
		t.Fatalf("debugfs: %d outputs for %d commands", len(outs), len(cmds))
	}
	return outs
}

type fsEntry struct {
	ino      uint64
	mode     uint32 // type and permissions
	uid, gid uint32
	size     int64 // -1 for directories
}

// listTree walks the image with "ls -p", one debugfs run per depth.
func listTree(t testing.TB, img string) map[string]fsEntry {
	t.Helper()
	out := map[string]fsEntry{}
	level := []string{"/"}
	for len(level) > 0 {
		cmds := make([]string, len(level))
		for i, d := range level {
			cmds[i] = "ls -p " + quote(d)
		}
		var next []string
		for i, res := range debugfs(t, img, cmds) {
			for _, line := range strings.Split(res, "\n") {
				if line == "" {
					continue
				}
				f := strings.Split(line, "/")
				if len(f) != 8 || f[0] != "" || f[7] != "" {
					t.Fatalf("ls -p %s: bad line %q", level[i], line)
				}
				var e fsEntry
				var err [5]error
				e.ino, err[0] = strconv.ParseUint(f[1], 10, 32)
				mode, err1 := strconv.ParseUint(f[2], 8, 32)
				// debugfs prints owners as signed numbers.
				uid, err2 := strconv.ParseInt(f[3], 10, 64)
				gid, err3 := strconv.ParseInt(f[4], 10, 64)
				err[1], err[2], err[3] = err1, err2, err3
				e.mode, e.uid, e.gid, e.size = uint32(mode), uint32(uid), uint32(gid), -1
				if f[6] != "" {
					e.size, err[4] = strconv.ParseInt(f[6], 10, 64)
				}
				for _, err := range err {
					if err != nil {
						t.Fatalf("ls -p %s: bad line %q: %v", level[i], line, err)
					}
				}
				name := f[5]
				if e.ino == 0 {
					continue // the empty entry of a spare directory block
				}
				switch name {
				case ".":
					out[level[i]] = e
					continue
				case "..":
					continue
				}
				p := path.Join(level[i], name)
				if _, dup := out[p]; dup {
					t.Fatalf("%s listed twice", p)
				}
				out[p] = e
				if e.mode&0170000 == 040000 {
					next = append(next, p)
				}
			}
		}
		level = next
	}
	return out
}

var typeBits = map[appliance.Kind]uint32{
	appliance.Regular: 0100000, appliance.Dir: 040000, appliance.Symlink: 0120000,
	appliance.CharDev: 020000, appliance.BlockDev: 060000, appliance.FIFO: 010000, appliance.Socket: 0140000,
}

func hashSource(t testing.TB, s appliance.Source) [32]byte {
	t.Helper()
	h := sha256.New()
	if s != nil {
		r, err := s.Open()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(h, r); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	return [32]byte(h.Sum(nil))
}

func hashFile(t testing.TB, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

var devRE = regexp.MustCompile(`Device major/minor number: (\d+):(\d+)`)

// compareTree reads the whole image back and compares it with entries.
// Regular files under skip are not dumped (they are checked otherwise).
func compareTree(t testing.TB, img string, entries []*appliance.Entry, skip string) {
	t.Helper()
	got := listTree(t, img)
	byPath := map[string]*appliance.Entry{}
	for _, e := range entries {
		byPath[e.Path] = e
	}
	want := len(entries)
	for _, p := range []string{"/", "/lost+found"} {
		if _, ok := byPath[p]; !ok {
			want++
		}
	}
	if len(got) != want {
		var extra []string
		for p := range got {
			if byPath[p] == nil && p != "/" && p != "/lost+found" {
				extra = append(extra, p)
			}
		}
		t.Errorf("image has %d paths, want %d; not in the manifest: %q", len(got), want, extra)
	}
	var devs []*appliance.Entry
	for _, e := range entries {
		g, ok := got[e.Path]
		if !ok {
			t.Errorf("%s: missing from the image", e.Path)
			continue
		}
		m := e
		if e.Kind == appliance.Hardlink {
			m = byPath[e.Link]
			if got[m.Path].ino != g.ino {
				t.Errorf("%s: inode %d, but its target %s has %d", e.Path, g.ino, m.Path, got[m.Path].ino)
			}
		}
		if wm := typeBits[m.Kind] | m.Mode; g.mode != wm {
			t.Errorf("%s: mode %o, want %o", e.Path, g.mode, wm)
		}
		if g.uid != m.UID || g.gid != m.GID {
			t.Errorf("%s: owner %d:%d, want %d:%d", e.Path, g.uid, g.gid, m.UID, m.GID)
		}
		switch m.Kind {
		case appliance.Regular:
			if g.size != m.Size {
				t.Errorf("%s: size %d, want %d", e.Path, g.size, m.Size)
			}
		case appliance.Symlink:
			if g.size != int64(len(m.Link)) {
				t.Errorf("%s: size %d, want %d", e.Path, g.size, len(m.Link))
			}
		case appliance.CharDev, appliance.BlockDev:
			devs = append(devs, m)
		}
	}
	if len(devs) > 0 {
		cmds := make([]string, len(devs))
		for i, e := range devs {
			cmds[i] = "stat " + quote(e.Path)
		}
		for i, res := range debugfs(t, img, cmds) {
			m := devRE.FindStringSubmatch(res)
			if m == nil {
				t.Errorf("%s: no device number in\n%s", devs[i].Path, res)
				continue
			}
			major, _ := strconv.ParseUint(m[1], 10, 32)
			minor, _ := strconv.ParseUint(m[2], 10, 32)
			if uint32(major) != devs[i].Major || uint32(minor) != devs[i].Minor {
				t.Errorf("%s: device %d:%d, want %d:%d", devs[i].Path, major, minor, devs[i].Major, devs[i].Minor)
			}
		}
	}

	compareXattrs(t, img, entries, byPath)

	// Contents and link targets, through rdump of each top-level entry.
	// debugfs reads command lines into a small buffer, so a root with
	// many entries takes many commands.
	dir := t.TempDir()
	var cmds []string
	args := ""
	for _, e := range entries {
		if e.Path != "/" && path.Dir(e.Path) == "/" && e.Path != skip {
			args += " " + quote(e.Path)
		}
		if len(args) > 1000 {
			cmds = append(cmds, "rdump"+args+" "+quote(dir))
			args = ""
		}
	}
	if args != "" {
		cmds = append(cmds, "rdump"+args+" "+quote(dir))
	}
	if len(cmds) == 0 {
		return
	}
	debugfs(t, img, cmds)
	for _, e := range entries {
		if e.Path == "/" || skip != "" && (e.Path == skip || strings.HasPrefix(e.Path, skip+"/")) {
			continue
		}
		m := e
		if e.Kind == appliance.Hardlink {
			m = byPath[e.Link]
		}
		host := filepath.Join(dir, filepath.FromSlash(e.Path))
		switch m.Kind {
		case appliance.Regular:
			if hashFile(t, host) != hashSource(t, m.Data) {
				t.Errorf("%s: content differs", e.Path)
			}
		case appliance.Symlink:
			target, err := os.Readlink(host)
			if err != nil || target != m.Link {
				t.Errorf("%s: link target %q (%v), want %q", e.Path, target, err, m.Link)
			}
		}
	}
}

// statField returns a number from "debugfs stat" output, such as the one
// after "Links:" or "Blockcount:".
func statField(t testing.TB, stat, field string) int64 {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(field) + `\s*(\d+)`).FindStringSubmatch(stat)
	if m == nil {
		t.Fatalf("no %s in\n%s", field, stat)
	}
	v, _ := strconv.ParseInt(m[1], 10, 64)
	return v
}

// statTime returns a time ("mtime", "crtime") from "debugfs stat" output,
// decoding the epoch bits of the extra field.
func statTime(t testing.TB, stat, field string) time.Time {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*` + field + `: 0x([0-9a-f]+):([0-9a-f]+)`).FindStringSubmatch(stat)
	if m == nil {
		t.Fatalf("no %s in\n%s", field, stat)
	}
	lo, _ := strconv.ParseUint(m[1], 16, 32)
	extra, _ := strconv.ParseUint(m[2], 16, 32)
	sec := int64(int32(uint32(lo))) + int64(extra&3)<<32
	return time.Unix(sec, int64(extra>>2))
}

// compareXattrs reads every extended attribute back as it is stored
// (ea_get -r): ACLs in ext2's format, the rest as given. A hard link has
// its target's attributes.
func compareXattrs(t testing.TB, img string, entries []*appliance.Entry, byPath map[string]*appliance.Entry) {
	t.Helper()
	type check struct {
		path, name string
		want       []byte
	}
	var checks []check
	for _, e := range entries {
		m := e
		if e.Kind == appliance.Hardlink {
			m = byPath[e.Link]
		}
		for _, x := range m.Xattrs {
			want := x.Value
			if x.Name == "system.posix_acl_access" || x.Name == "system.posix_acl_default" {
				var err error
				if want, err = diskACL(x.Value); err != nil {
					t.Fatalf("%s: %s: %v", e.Path, x.Name, err)
				}
			}
			checks = append(checks, check{e.Path, x.Name, want})
		}
	}
	if len(checks) == 0 {
		return
	}
	dir := t.TempDir()
	cmds := make([]string, len(checks))
	for i, c := range checks {
		cmds[i] = fmt.Sprintf("ea_get -r -f %s %s %s", quote(filepath.Join(dir, strconv.Itoa(i))), quote(c.path), quote(c.name))
	}
	debugfs(t, img, cmds)
	for i, c := range checks {
		got, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %s = %x (%v), want %x", c.path, c.name, got, err, c.want)
		}
	}
}
