package baseimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"reflect"
	"testing"
	"time"
)

// member is what a reader made of one archive member, data expanded.
type member struct {
	name, linkname     string
	typ                byte
	mode, uid, gid     int64
	uname, gname       string
	size               int64
	mtime              time.Time
	devmajor, devminor int64
	data               []byte
}

// maxExpand bounds the logical data the tests expand in memory.
const maxExpand = 8 << 20

// readOurs reads a plain tar with our reader; sparse data is expanded
// when the archive's logical total stays under maxExpand.
func readOurs(data []byte) ([]member, error) {
	tr := newTarReader(bytes.NewReader(data))
	var out []member
	var total int64
	for {
		h, err := tr.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		m := member{name: h.name, linkname: h.linkname, typ: h.typ, mode: h.mode, uid: h.uid, gid: h.gid,
			uname: h.uname, gname: h.gname, size: h.size, mtime: h.mtime, devmajor: h.devmajor, devminor: h.devminor}
		if h.typ == '0' {
			if total += h.size; total > maxExpand {
				return out, errTooBig
			}
			m.data = make([]byte, h.size)
			ext := h.sparse
			if ext == nil {
				ext = []extent{{0, h.size}}
			}
			for _, e := range ext {
				if _, err := io.ReadFull(tr, m.data[e.off:e.off+e.len]); err != nil {
					return out, err
				}
			}
		}
		out = append(out, m)
	}
}

var errTooBig = errors.New("too big to expand in a test")

// readGo reads a plain tar with archive/tar, types normalised as ours are.
func readGo(data []byte) ([]member, error) {
	tr := tar.NewReader(bytes.NewReader(data))
	var out []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		typ := h.Typeflag
		switch typ {
		case tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
			typ = tar.TypeReg
		}
		m := member{name: h.Name, linkname: h.Linkname, typ: typ, mode: h.Mode, uid: int64(h.Uid), gid: int64(h.Gid),
			uname: h.Uname, gname: h.Gname, size: h.Size, mtime: h.ModTime, devmajor: h.Devmajor, devminor: h.Devminor}
		if typ == tar.TypeReg {
			if h.Size > maxExpand {
				return out, errTooBig
			}
			if m.data, err = io.ReadAll(tr); err != nil {
				return out, err
			}
		}
		out = append(out, m)
	}
}

func sameMembers(t *testing.T, got, want []member) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d members, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		gd, wd := g.data, w.data
		g.data, w.data = nil, nil
		if !g.mtime.Equal(w.mtime) {
			t.Errorf("member %d %q: mtime %v, want %v", i, g.name, g.mtime, w.mtime)
		}
		g.mtime, w.mtime = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("member %d:\n got %+v\nwant %+v", i, g, w)
		}
		if !bytes.Equal(gd, wd) {
			t.Errorf("member %d %q: data differs (%d bytes, want %d)", i, g.name, len(gd), len(wd))
		}
	}
}

// needTool skips when a tool is missing, but fails under CI, where every
// tool must be there.
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is needed under CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

func run(t testing.TB, dir string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}
