package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestReqRoundTrip(t *testing.T) {
	for _, r := range []*Req{
		{},
		{Args: []string{"sh", "-c", "echo \"$1\"", "a b", "quote'\"", "new\nline", "\xff\xfe not UTF-8", ""}, Dir: "/home/a b",
			Env: []string{"TERM=xterm"}, Shares: []Share{{Tag: "gs0", Path: "/home/a b"}, {Tag: "gs1", Path: "/x\ny", ReadOnly: true}},
			Terminal: true, Rows: 50, Cols: 132},
		{Args: []string{strings.Repeat("x", 1<<20)}},
	} {
		got, err := ParseReq(r.Marshal())
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip:\n%+v\nwant\n%+v", got, r)
		}
	}
}

func TestParseReqBad(t *testing.T) {
	good := (&Req{Args: []string{"a", "bc"}, Dir: "/", Shares: []Share{{Tag: "t", Path: "/p"}}}).Marshal()
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"other magic", []byte("xxxx")},
		{"huge count", append([]byte(reqMagic), 0xff, 0xff, 0xff, 0xff, 0x0f)},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"bad flag", func() []byte { b := append([]byte(nil), good...); b[len(b)-5] = 7; return b }()},
	} {
		if _, err := ParseReq(tc.in); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	// Every truncation of a good request is an error, never a panic.
	for i := range good {
		if _, err := ParseReq(good[:i]); err == nil {
			t.Errorf("truncated at %d: no error", i)
		}
	}
}

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	for _, f := range []struct {
		t Type
		p []byte
	}{{Hello, []byte(Version)}, {Stdout, []byte("\x00\xffout")}, {Stdin, nil}, {Exit, ExitPayload(255)}} {
		if err := Write(&b, f.t, f.p); err != nil {
			t.Fatal(err)
		}
	}
	want := []Type{Hello, Stdout, Stdin, Exit}
	for i, w := range want {
		typ, p, err := Read(&b)
		if err != nil || typ != w {
			t.Fatalf("frame %d: %c %q %v", i, typ, p, err)
		}
		if typ == Exit {
			if st, err := ParseExit(p); err != nil || st != 255 {
				t.Errorf("exit %d %v", st, err)
			}
		}
	}
	if _, _, err := Read(&b); err != io.EOF {
		t.Errorf("end: %v, want EOF", err)
	}
	if _, _, err := Read(bytes.NewReader([]byte{'O', 0, 0, 0, 9, 'a'})); err != io.ErrUnexpectedEOF {
		t.Errorf("cut frame: %v", err)
	}
	if _, _, err := Read(bytes.NewReader([]byte{'O', 0xff, 0xff, 0xff, 0xff})); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge frame: %v", err)
	}
	if _, err := ParseExit([]byte{1}); err == nil {
		t.Error("short exit payload accepted")
	}
}

func FuzzParseReq(f *testing.F) {
	f.Add((&Req{Args: []string{"a"}, Dir: "/", Env: []string{"A=b"}, Shares: []Share{{Tag: "t", Path: "/p"}}}).Marshal())
	f.Add([]byte(reqMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReq(b)
		if err != nil {
			return
		}
		if again, err := ParseReq(r.Marshal()); err != nil || !reflect.DeepEqual(again, r) {
			t.Errorf("re-encoding %+v: %+v %v", r, again, err)
		}
	})
}
