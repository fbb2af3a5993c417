package outdir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLockInsideOutput(t *testing.T) {
	dir := t.TempDir()
	mkTree(t, dir, -1, "out/", "out/sub/")
	os.Symlink("out", filepath.Join(dir, "alias"))
	p := func(s string) string { return filepath.Join(dir, s) }
	for _, tc := range []struct {
		name, file, out string
		refused         bool
	}{
		{"beside", p("lock"), p("out"), false},
		{"a name sharing the output's start", p("out-lock"), p("out"), false},
		{"no output given", p("out/lock"), "", false},
		{"inside, by name", p("out/lock"), p("out"), true},
		{"inside an output still to be made", p("new/lock"), p("new"), true},
		{"the output itself", p("out"), p("out"), true},
		{"inside, through a symlink", p("alias/sub/lock"), p("out"), true},
		{"inside, the output named through a symlink", p("out/lock"), p("alias"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unlock, err := Lock(tc.file, tc.out)
			if !tc.refused {
				if err != nil {
					t.Fatal(err)
				}
				unlock()
				return
			}
			if err == nil {
				unlock()
				t.Fatal("locked a file inside the output")
			}
			if !strings.Contains(err.Error(), "must not be inside the output") || strings.Contains(err.Error(), "--") {
				t.Errorf("error %q", err)
			}
		})
	}
}

// TestLockExcludes: the lock is an fcntl lock, which supermin 5 takes as
// well, held by this process until unlock.
func TestLockExcludes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "lock")
	probe := func() string {
		out, err := helperCmd(t, "trylock", file).Output()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	unlock, err := Lock(file, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := probe(); got != "held" {
		t.Errorf("while locked, another process sees %q", got)
	}
	unlock()
	if got := probe(); got != "free" {
		t.Errorf("after unlock, another process sees %q", got)
	}
}
