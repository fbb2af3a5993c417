package supermin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/appliance"
)

func tarOf(t testing.TB, hdrs ...*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Linkname))
		}
		data := h.Linkname
		if h.Typeflag == tar.TypeReg {
			h.Linkname = ""
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(data))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func gz(data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

func TestSniff(t *testing.T) {
	tarData := tarOf(t, &tar.Header{Name: "./etc/x", Typeflag: tar.TypeReg, Linkname: "hi", Mode: 0o644})
	for _, tc := range []struct {
		name string
		data []byte
		kind FileKind
		err  string
	}{
		{"empty", nil, KindEmpty, ""},
		{"tar", tarData, KindBaseImage, ""},
		{"tar.gz", gz(tarData), KindBaseImage, ""},
		{"hostfiles", []byte("/etc/hosts\n"), KindHostFiles, ""},
		{"excludes", []byte("-/usr/share/doc/*\n"), KindExcludes, ""},
		{"packages", []byte("bash\ncoreutils\n"), KindPackages, ""},
		{"truncated gzip", gz(tarData)[:40], 0, "gzip: truncated"},
		{"gzip not tar", gz([]byte("hello")), 0, "not a tar"},
		{"cpio", []byte("070701000000"), 0, "cpio"},
		{"binary", []byte{0x7f, 'E', 'L', 'F'}, 0, "unknown file type"},
	} {
		kind, _, err := Sniff(tc.data)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || kind != tc.kind {
			t.Errorf("%s: kind %v err %v, want %v", tc.name, kind, err, tc.kind)
		}
	}
}

func FuzzSniff(f *testing.F) {
	f.Add(gz(tarOf(f, &tar.Header{Name: "./etc/x", Typeflag: tar.TypeReg, Linkname: "hi", Mode: 0o644})))
	f.Add([]byte("/etc/*\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, payload, err := Sniff(data)
		if err != nil || kind != KindBaseImage {
			return
		}
		_ = unpackBase(appliance.New(), BaseImage{File: "fuzz", Tar: payload})
	})
}

func TestReadInputsOrder(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "b-packages"), []byte("zeta\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a-packages"), []byte("alpha\n beta \n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "x"), []byte("-/a*\n"), 0o644)
	in, err := ReadInputs([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(in.Packages, ",") != "alpha, beta ,zeta" || strings.Join(in.Excludes, ",") != "/a*" {
		t.Errorf("got %+v", in)
	}
}

func TestUnpackBaseHostile(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdrs []*tar.Header
		want string
	}{
		{"dotdot", []*tar.Header{{Name: "./etc/../../escape", Typeflag: tar.TypeReg, Linkname: "x"}}, ".. component"},
		{"absolute", []*tar.Header{{Name: "/etc/passwd", Typeflag: tar.TypeReg, Linkname: "x"}}, "absolute name"},
		{"through symlink", []*tar.Header{
			{Name: "./etc/link", Typeflag: tar.TypeSymlink, Linkname: "/tmp"},
			{Name: "./etc/link/evil", Typeflag: tar.TypeReg, Linkname: "x"},
		}, "would write through symlink /etc/link"},
		{"hard link outside", []*tar.Header{{Name: "./etc/h", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}}, ".. component"},
		{"hard link missing", []*tar.Header{{Name: "./etc/h", Typeflag: tar.TypeLink, Linkname: "etc/nothing"}}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := unpackBase(appliance.New(), BaseImage{File: "base.tar.gz", Tar: tarOf(t, tc.hdrs...)})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "base.tar.gz: entry") {
				t.Fatalf("error %v, want one naming the file and %q", err, tc.want)
			}
		})
	}
}
