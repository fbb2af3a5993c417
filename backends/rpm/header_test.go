package rpm

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/backends"
)

// tagValue is one entry for buildHeader: string, []string, uint32,
// []uint32 (INT32), []uint16 (INT16).
type tagValue struct {
	tag uint32
	v   any
}

// buildHeader makes a header blob as rpmdb stores it (no magic).
func buildHeader(tags ...tagValue) []byte {
	var index, data []byte
	for _, tv := range tags {
		var typ, count uint32
		align := 1
		var b []byte
		switch v := tv.v.(type) {
		case string:
			typ, count, b = typeString, 1, append([]byte(v), 0)
		case []string:
			typ, count = typeStringArray, uint32(len(v))
			for _, s := range v {
				b = append(append(b, s...), 0)
			}
		case uint32:
			typ, count, align = typeInt32, 1, 4
			b = binary.BigEndian.AppendUint32(nil, v)
		case []uint32:
			typ, count, align = typeInt32, uint32(len(v)), 4
			for _, x := range v {
				b = binary.BigEndian.AppendUint32(b, x)
			}
		case []uint16:
			typ, count, align = typeInt16, uint32(len(v)), 2
			for _, x := range v {
				b = binary.BigEndian.AppendUint16(b, x)
			}
		default:
			panic("buildHeader: unsupported value")
		}
		for len(data)%align != 0 {
			data = append(data, 0)
		}
		index = binary.BigEndian.AppendUint32(index, tv.tag)
		index = binary.BigEndian.AppendUint32(index, typ)
		index = binary.BigEndian.AppendUint32(index, uint32(len(data)))
		index = binary.BigEndian.AppendUint32(index, count)
		data = append(data, b...)
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(len(tags)))
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	return append(append(out, index...), data...)
}

func sampleHeader() []byte {
	return buildHeader(
		tagValue{TagName, "bash"},
		tagValue{TagVersion, "5.2.26"},
		tagValue{TagRelease, "3.fc40"},
		tagValue{TagEpoch, uint32(1)},
		tagValue{TagArch, "x86_64"},
		tagValue{TagRequireName, []string{"/bin/sh", "rpmlib(CompressedFileNames)", "libc.so.6()(64bit)", "(a or b)", "filesystem"}},
		tagValue{TagRequireFlags, []uint32{0, senseRPMLib | senseLess | senseEqual, 0, 0, senseGreater | senseEqual}},
		tagValue{TagRequireVersion, []string{"", "3.0.4-1", "", "", "3"}},
		tagValue{TagProvideName, []string{"/bin/sh", "bash", "bash(x86-64)"}},
		tagValue{TagProvideFlags, []uint32{0, senseEqual, senseEqual}},
		tagValue{TagProvideVersion, []string{"", "1:5.2.26-3.fc40", "1:5.2.26-3.fc40"}},
		tagValue{TagDirNames, []string{"/etc/", "/usr/bin/", "/var/log/"}},
		tagValue{TagBaseNames, []string{"bashrc", "bash", "sh", "bash.log"}},
		tagValue{TagDirIndexes, []uint32{0, 1, 1, 2}},
		tagValue{TagFileFlags, []uint32{FileConfig, 0, 0, FileGhost}},
		tagValue{TagFileModes, []uint16{0o100644, 0o100755, 0o120777, 0o100644}},
		tagValue{TagFileRdevs, []uint16{0, 0, 0, 0}},
		tagValue{TagFileLinkTos, []string{"", "", "bash", ""}},
		tagValue{TagPostIn, "ldconfig\n"},
		tagValue{TagPostInProg, []string{"/bin/sh", "-e"}},
		tagValue{TagPreInProg, "/sbin/ldconfig"},
		tagValue{TagPostTrans, "print(1)"},
		tagValue{TagPostTransProg, "<lua>"},
	)
}

func TestParseHeader(t *testing.T) {
	h, err := ParseHeader(sampleHeader())
	if err != nil {
		t.Fatal(err)
	}
	in, err := h.Info()
	if err != nil {
		t.Fatal(err)
	}
	if in.NEVRA() != "bash-1:5.2.26-3.fc40.x86_64" || in.EVR() != "1:5.2.26-3.fc40" {
		t.Errorf("NEVRA %q", in.NEVRA())
	}
	if len(in.Requires) != 5 || in.Requires[4].Dep().String() != "filesystem (>= 3)" || in.Requires[3].Dep().String() != "a | b" {
		t.Errorf("requires %+v", in.Requires)
	}
	files, err := h.Files()
	if err != nil {
		t.Fatal(err)
	}
	want := []FileInfo{
		{"/etc/bashrc", FileConfig, 0o100644, 0, ""},
		{"/usr/bin/bash", 0, 0o100755, 0, ""},
		{"/usr/bin/sh", 0, 0o120777, 0, "bash"},
		{"/var/log/bash.log", FileGhost, 0o100644, 0, ""},
	}
	if len(files) != len(want) {
		t.Fatalf("files %+v", files)
	}
	for i := range want {
		if files[i] != want[i] {
			t.Errorf("file %d: %+v, want %+v", i, files[i], want[i])
		}
	}
	s, err := h.Scriptlet(TagPostIn, TagPostInProg)
	if err != nil || s == nil || strings.Join(s.Prog, " ") != "/bin/sh -e" || s.Body != "ldconfig\n" {
		t.Errorf("%%post: %+v, %v", s, err)
	}
	s, err = h.Scriptlet(TagPreIn, TagPreInProg)
	if err != nil || s == nil || s.Prog[0] != "/sbin/ldconfig" || s.Body != "" {
		t.Errorf("%%pre: %+v, %v", s, err)
	}
	s, err = h.Scriptlet(TagPostTrans, TagPostTransProg)
	if err != nil || s == nil || s.Prog[0] != "<lua>" {
		t.Errorf("%%posttrans: %+v, %v", s, err)
	}
}

func TestDBScripts(t *testing.T) {
	p := &backends.Package{Name: "bash", ID: "bash"}
	db := &DB{st: memStorage{sampleHeader()}, recs: map[*backends.Package]*pkgRecord{
		p: {loc: location{key: "hnum 1", a: 0}, record: "hnum 1 (bash)", nevra: "bash-1:5.2.26-3.fc40.x86_64"}}}
	sc, err := db.Scripts(p)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sc.List {
		got = append(got, s.Name+"|"+s.Interpreter+"|"+strings.Join(s.Args, ",")+"|"+string(s.Body))
	}
	want := "%pre|/sbin/ldconfig|1|\n%post|/bin/sh -e|1|ldconfig\n\n%posttrans|<lua>|1|print(1)"
	if strings.Join(got, "\n") != want {
		t.Errorf("scripts\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
	files, err := db.Files(p)
	if err != nil || len(files) != 4 || !files[0].Config || !files[3].Ghost || files[1].Config || files[1].Ghost {
		t.Errorf("files %+v, %v", files, err)
	}
}

// memStorage holds blobs in memory; a location's a is the index.
type memStorage [][]byte

func (m memStorage) scan(fn func(location, []byte) error) error {
	for i, b := range m {
		if err := fn(location{key: fmt.Sprintf("blob %d", i), a: int64(i)}, b); err != nil {
			return err
		}
	}
	return nil
}

func (m memStorage) read(loc location) ([]byte, error) { return m[loc.a], nil }

// Every truncation of a header is an error, never a panic.
func TestParseHeaderTruncated(t *testing.T) {
	blob := sampleHeader()
	for n := 0; n < len(blob); n++ {
		if _, err := ParseHeader(blob[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(blob))
		}
	}
}

func TestParseHeaderBad(t *testing.T) {
	blob := sampleHeader()
	bad := func(name string, mutate func(b []byte), want string) {
		b := append([]byte(nil), blob...)
		mutate(b)
		h, err := ParseHeader(b)
		if err == nil {
			_, err = h.Info()
		}
		if err == nil {
			_, err = h.Files()
		}
		if err == nil {
			_, err = h.Scriptlet(TagPostTrans, TagPostTransProg)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", name, err, want)
		}
	}
	bad("index count", func(b []byte) { binary.BigEndian.PutUint32(b, 0x10000000) }, "index count")
	bad("type", func(b []byte) { binary.BigEndian.PutUint32(b[8+4:], 42) }, "unknown type")
	bad("offset", func(b []byte) { binary.BigEndian.PutUint32(b[8+8:], 1<<30) }, "beyond the data store")
	bad("count", func(b []byte) {
		// DIRINDEXES is entry 13: make it overrun.
		binary.BigEndian.PutUint32(b[8+16*13+12:], 1<<20)
	}, "out of range")
	bad("dir index", func(b []byte) {
		off := binary.BigEndian.Uint32(b[8+16*13+8:])
		data := 8 + 16*binary.BigEndian.Uint32(b)
		binary.BigEndian.PutUint32(b[data+off:], 99)
	}, "dir index 99")
	bad("unterminated", func(b []byte) {
		for i := len(b) - 10; i < len(b); i++ {
			b[i] = 'x'
		}
	}, "not terminated")
	h, err := ParseHeader(buildHeader(tagValue{TagVersion, "1"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Info(); err == nil || !strings.Contains(err.Error(), "NAME") {
		t.Errorf("header without a name: %v", err)
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(sampleHeader())
	f.Add(buildHeader(tagValue{TagName, "x"}, tagValue{TagVersion, "1"}, tagValue{TagOldFilenames, []string{"/a", "/b"}}))
	f.Fuzz(func(t *testing.T, blob []byte) {
		h, err := ParseHeader(blob)
		if err != nil {
			return
		}
		if in, err := h.Info(); err == nil {
			in.NEVRA()
			for _, r := range in.Requires {
				r.Dep()
			}
		}
		h.Files()
		h.Scriptlet(TagPostIn, TagPostInProg)
		h.Scriptlet(TagPostTrans, TagPostTransProg)
	})
}
