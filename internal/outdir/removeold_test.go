package outdir

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// spawnRemover is what a caller's RemoveOld does: start a process that
// inherits the lock and calls RemoveMoved. The test's own binary is it.
func spawnRemover(t *testing.T, started *[]*exec.Cmd, hold bool) func(string, *os.File) error {
	return func(old string, lock *os.File) error {
		args := []string{old}
		if hold {
			args = append(args, "hold")
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), helperEnv+"=removemoved")
		cmd.ExtraFiles = []*os.File{lock}
		cmd.Stderr = os.Stderr
		var out *bufio.Reader
		if hold {
			p, err := cmd.StdoutPipe()
			if err != nil {
				return err
			}
			out = bufio.NewReader(p)
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		if hold {
			if _, err := out.ReadString('\n'); err != nil {
				return err
			}
		}
		*started = append(*started, cmd)
		return nil
	}
}

func TestRemoveOldDetached(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, content := range []string{"first", "second"} {
		if _, err := Replace(context.Background(), out, Options{}, completeFill(content)); err != nil {
			t.Fatal(err)
		}
	}
	var started []*exec.Cmd
	res, err := Replace(context.Background(), out, Options{RemoveOld: spawnRemover(t, &started, false)}, completeFill("third"))
	if err != nil || !res.Replaced || res.Leftover != "" {
		t.Fatalf("Replace: %+v, %v", res, err)
	}
	if len(started) != 1 {
		t.Fatalf("RemoveOld called %d times, want 1", len(started))
	}
	if err := started[0].Wait(); err != nil {
		t.Fatalf("remover: %v", err)
	}
	if m, _ := filepath.Glob(out + tempMarker + "*"); len(m) != 0 {
		t.Errorf("left after the remover ended: %v", m)
	}
	checkContent(t, out, "third")
}

// TestRemoveOldKilled: a remover killed before it removed anything leaves
// the previous output, which the next build removes as abandoned once the
// dead process's lock is gone.
func TestRemoveOldKilled(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if _, err := Replace(context.Background(), out, Options{}, completeFill("first")); err != nil {
		t.Fatal(err)
	}
	var started []*exec.Cmd
	if _, err := Replace(context.Background(), out, Options{RemoveOld: spawnRemover(t, &started, true)}, completeFill("second")); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(out + tempMarker + "*")
	if len(left) != 1 {
		t.Fatalf("while the remover holds it: %v, want the previous output", left)
	}
	// Held: another build leaves it alone.
	if res, err := Replace(context.Background(), out, Options{}, completeFill("third")); err != nil || len(res.Removed) != 0 {
		t.Fatalf("a build while the remover lives removed %v (%v)", res.Removed, err)
	}
	started[0].Process.Kill()
	started[0].Wait()
	res, err := Replace(context.Background(), out, Options{}, completeFill("fourth"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0] != left[0] {
		t.Errorf("removed %v, want %v", res.Removed, left)
	}
	if m, _ := filepath.Glob(out + tempMarker + "*"); len(m) != 0 {
		t.Errorf("left: %v", m)
	}
	checkContent(t, out, "fourth")
}

// TestRemoveOldFails: when RemoveOld cannot hand the work over, Replace
// removes the previous output itself.
func TestRemoveOldFails(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if _, err := Replace(context.Background(), out, Options{}, completeFill("first")); err != nil {
		t.Fatal(err)
	}
	fail := func(string, *os.File) error { return errors.New("no process") }
	if res, err := Replace(context.Background(), out, Options{RemoveOld: fail}, completeFill("second")); err != nil || res.Leftover != "" {
		t.Fatalf("Replace: %+v, %v", res, err)
	}
	if m, _ := filepath.Glob(out + tempMarker + "*"); len(m) != 0 {
		t.Errorf("left: %v", m)
	}
}

// TestRemoveMovedRefuses: RemoveMoved removes only a previous output
// moved aside, with that directory's lock and no one else's.
func TestRemoveMovedRefuses(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "data")
	if err := os.Mkdir(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, lock, err := makeTemp(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	other, err := os.Open(plain)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// A second description of tmp: the flock is on lock's, not this one.
	second, err := os.Open(tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	for _, c := range []struct {
		name string
		dir  string
		lock *os.File
	}{
		{"not a temporary's name", plain, other},
		{"another directory's lock", tmp, other},
		{"a lock held by another", tmp, second},
	} {
		if err := RemoveMoved(c.dir, c.lock); !errors.Is(err, ErrNotMoved) {
			t.Errorf("%s: %v, want ErrNotMoved", c.name, err)
		}
	}
	for _, d := range []string{plain, tmp} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	if err := RemoveMoved(tmp, lock); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after RemoveMoved: %v", tmp, err)
	}
}

// checkContent fails unless out is completeFill(id)'s whole output.
func checkContent(t *testing.T, out, id string) {
	t.Helper()
	checkComplete(t, out)
	if got, _ := os.ReadFile(filepath.Join(out, "marker")); string(got) != id {
		t.Errorf("%s is %q's output, want %q's", out, got, id)
	}
}
