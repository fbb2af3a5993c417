package initproc

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance/vm/wire"
)

func TestParseCmdlineRun(t *testing.T) {
	for _, tc := range []struct {
		in      string
		run     bool
		console string
	}{
		{"console=ttyS0 root=/dev/vda gosupermin.run=1", true, "ttyS0"},
		{"console=tty0 console=ttyAMA0,115200n8 gosupermin.run=0", false, "ttyAMA0"},
		{"quiet", false, ""},
	} {
		p := parseCmdline(tc.in)
		if p.run != tc.run || p.console != tc.console {
			t.Errorf("%q: run %v console %q, want %v %q", tc.in, p.run, p.console, tc.run, tc.console)
		}
	}
}

func TestFindPort(t *testing.T) {
	sys := t.TempDir()
	for dev, name := range map[string]string{"vport0p0": "org.other", "vport0p1": wire.PortName} {
		os.MkdirAll(filepath.Join(sys, dev), 0o755)
		os.WriteFile(filepath.Join(sys, dev, "name"), []byte(name+"\n"), 0o644)
	}
	if got, err := findPort(sys, wire.PortName, time.Second); err != nil || got != "vport0p1" {
		t.Errorf("findPort = %q, %v", got, err)
	}
	if _, err := findPort(sys, "org.missing", 0); err == nil || !strings.Contains(err.Error(), "virtio_console") {
		t.Errorf("missing port: %v", err)
	}
}

func TestMkdirs(t *testing.T) {
	base := t.TempDir()
	got := mkdirs(filepath.Join(base, "a", "b", "c"))
	want := []string{filepath.Join(base, "a"), filepath.Join(base, "a", "b"), filepath.Join(base, "a", "b", "c")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mkdirs = %q, want %q", got, want)
	}
	if got := mkdirs(base); got != nil {
		t.Errorf("existing dir: %q", got)
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0}, {"exit 1", 1}, {"exit 7", 7}, {"exit 255", 255}, {"kill -TERM $$", 128 + 15},
	} {
		if got := exitStatus(exec.Command("/bin/sh", "-c", tc.script).Run()); got != tc.want {
			t.Errorf("%q: %d, want %d", tc.script, got, tc.want)
		}
	}
	var b bytes.Buffer
	err := exec.Command("/nonexistent/cmd").Start()
	if got := startFailure(&b, "/nonexistent/cmd", err); got != 127 || !strings.Contains(b.String(), "command not found") {
		t.Errorf("not found: %d %q", got, b.String())
	}
	b.Reset()
	if got := startFailure(&b, "x", errors.New("permission denied")); got != 126 {
		t.Errorf("other: %d", got)
	}
}

// feedStdin passes Stdin frames through, closes at the empty frame, and
// keeps reading (and dropping) after that.
func TestFeedStdin(t *testing.T) {
	var port bytes.Buffer
	wire.Write(&port, wire.Stdin, []byte("hello "))
	wire.Write(&port, wire.Stdout, []byte("ignored"))
	wire.Write(&port, wire.Stdin, []byte("world\x00\xff"))
	wire.Write(&port, wire.Stdin, nil)
	wire.Write(&port, wire.Stdin, []byte("after EOF"))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	feedStdin(&port, w)
	if got := <-done; string(got) != "hello world\x00\xff" {
		t.Errorf("stdin got %q", got)
	}
}
