package outdir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// withoutRenameat2 makes Replace take the path of file systems without
// renameat2's flags, until the test ends.
func withoutRenameat2(t *testing.T) {
	renameat2 = func(int, string, int, string, uint) error { return unix.EINVAL }
	t.Cleanup(func() { renameat2 = unix.Renameat2 })
}

func TestReplace(t *testing.T) {
	fillErr := errors.New("fill failed")
	for _, tc := range []struct {
		name      string
		previous  bool // OUT exists, with a file "previous"
		asFile    bool // OUT exists as a file
		fallback  bool // no renameat2 flags
		fill      func(cancel func()) func(string) error
		wantErr   error
		wantRepl  bool
		wantWrite bool
	}{
		{name: "new", wantWrite: true},
		{name: "replaces", previous: true, wantRepl: true, wantWrite: true},
		{name: "new, plain renames", fallback: true, wantWrite: true},
		{name: "replaces, plain renames", previous: true, fallback: true, wantRepl: true, wantWrite: true},
		{name: "fill fails", previous: true, wantErr: fillErr,
			fill: func(func()) func(string) error {
				return func(tmp string) error {
					os.WriteFile(filepath.Join(tmp, "half"), nil, 0o644)
					return fillErr
				}
			}},
		{name: "cancelled during fill", previous: true, wantErr: context.Canceled,
			fill: func(cancel func()) func(string) error {
				return func(tmp string) error {
					cancel()
					return os.WriteFile(filepath.Join(tmp, "marker"), nil, 0o644)
				}
			}},
		{name: "output is a file", asFile: true, wantErr: errors.New("not a directory")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fallback {
				withoutRenameat2(t)
			}
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			switch {
			case tc.previous:
				mkTree(t, out, -1, "previous", "sub/", "sub/x")
			case tc.asFile:
				os.WriteFile(out, []byte("file"), 0o644)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fill := completeFill("new")
			if tc.fill != nil {
				fill = tc.fill(cancel)
			}
			start := Now().Add(-time.Minute) // unlike any time the fill makes
			syscall.Umask(0o077)
			res, err := Replace(ctx, out, Options{Start: start}, fill)
			syscall.Umask(0o022)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatal(err)
			case tc.wantErr != nil && (err == nil || !errors.Is(err, tc.wantErr) && !strings.Contains(err.Error(), tc.wantErr.Error())):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if res.Replaced != tc.wantRepl || res.Leftover != "" {
				t.Errorf("result %+v, want Replaced %v", res, tc.wantRepl)
			}
			if m := temps(t, out); len(m) > 0 {
				t.Errorf("left behind: %v", m)
			}
			if tc.asFile {
				if b, _ := os.ReadFile(out); string(b) != "file" {
					t.Errorf("the file at OUT became %q", b)
				}
			}
			if !tc.wantWrite {
				if tc.previous {
					if _, err := os.Stat(filepath.Join(out, "previous")); err != nil {
						t.Errorf("previous output lost: %v", err)
					}
				}
				return
			}
			checkComplete(t, out)
			if _, err := os.Stat(filepath.Join(out, "previous")); err == nil {
				t.Error("OUT still has the previous output's file")
			}
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("OUT's mode is %v, want 0755", fi.Mode().Perm())
			}
			if !fi.ModTime().Equal(start) {
				t.Errorf("OUT's mtime is %v, want the start %v", fi.ModTime(), start)
			}
		})
	}
}

// TestReplaceRemovesAbandoned (8): a build killed with SIGKILL leaves its
// temporary; the next Replace into the same OUT removes it but keeps the
// live temporary of a build in progress and those of other outputs.
func TestReplaceRemovesAbandoned(t *testing.T) {
	long := strings.Repeat("a", 240)
	for _, tc := range []struct{ name, out, other string }{
		{"short name", "out", "out2"},
		{"250 bytes", long + "0123456789", long + "9876543210"}, // the same cut base
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out, other := filepath.Join(dir, tc.out), filepath.Join(dir, tc.other)
			mkTree(t, out, -1, "previous")
			// Live first: its own start would remove the abandoned one.
			live := startHang(t, out)
			liveTemp := temps(t, out)
			if len(liveTemp) != 1 {
				t.Fatalf("live temporary: %v", liveTemp)
			}
			killed := startHang(t, out)
			killed.Process.Kill()
			killed.Wait()
			abandoned := slices.DeleteFunc(temps(t, out), func(p string) bool { return p == liveTemp[0] })
			if len(abandoned) != 1 {
				t.Fatalf("after SIGKILL: temporaries %v, want one", abandoned)
			}
			// Another output's abandoned temporary, of the same cut base.
			otherTemp := tempName(other)
			mkTree(t, otherTemp, -1, "x")

			res, err := Replace(context.Background(), out, Options{Start: Now()}, completeFill("new"))
			if err != nil {
				t.Fatal(err)
			}
			checkComplete(t, out)
			if !slices.Equal(res.Removed, abandoned) || res.CleanErr != nil {
				t.Errorf("removed %v (%v), want %v", res.Removed, res.CleanErr, abandoned)
			}
			if got, want := temps(t, out), []string{liveTemp[0], otherTemp}; !sameSet(got, want) {
				t.Errorf("temporaries %v, want the live one and the other output's %v", got, want)
			}
			if _, err := os.Stat(filepath.Join(liveTemp[0], "partial")); err != nil {
				t.Errorf("the live build's temporary was emptied: %v", err)
			}

			live.Process.Kill()
			live.Wait()
			removed, err := RemoveAbandoned(out)
			if err != nil || !slices.Equal(removed, liveTemp) {
				t.Errorf("once killed: removed %v %v, want %v", removed, err, liveTemp)
			}
			if got := temps(t, out); !slices.Equal(got, []string{otherTemp}) {
				t.Errorf("left %v, want only the other output's", got)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestReplaceConcurrent (10): builds racing into one new OUT all succeed,
// and OUT is only ever absent or one complete output.
func TestReplaceConcurrent(t *testing.T) {
	const racers, rounds = 4, 25
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain renames %v", fallback), func(t *testing.T) {
			if fallback {
				withoutRenameat2(t)
			}
			dir := t.TempDir()
			for r := range rounds {
				out := filepath.Join(dir, fmt.Sprintf("out-%d", r))
				var wg sync.WaitGroup
				errs := make([]error, racers)
				begin := make(chan struct{})
				// All filled before any swaps: the swaps race.
				var filled sync.WaitGroup
				filled.Add(racers)
				for i := range racers {
					wg.Go(func() {
						<-begin
						_, errs[i] = Replace(context.Background(), out, Options{Start: Now()}, func(tmp string) error {
							err := completeFill(fmt.Sprint(i))(tmp)
							filled.Done()
							filled.Wait()
							return err
						})
					})
				}
				done := make(chan struct{})
				torn := make(chan string, 1)
				go func() {
					defer close(torn)
					for {
						select {
						case <-done:
							return
						default:
						}
						if msg := observe(out); msg != "" {
							torn <- msg
							return
						}
					}
				}()
				close(begin)
				wg.Wait()
				close(done)
				if msg := <-torn; msg != "" {
					t.Fatalf("round %d: %s", r, msg)
				}
				if err := errors.Join(errs...); err != nil {
					t.Fatalf("round %d: %v", r, err)
				}
				checkComplete(t, out)
				if m := temps(t, out); len(m) > 0 {
					t.Fatalf("round %d: left behind %v", r, m)
				}
			}
		})
	}
}

// observe looks at out once: "" unless it sees an incomplete output there.
// The tree it opened may be swapped out and removed as it reads: what it
// misses only counts if that tree is still out afterwards, for a tree
// never comes back to out once gone.
func observe(out string) string {
	fd, err := unix.Open(out, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	var marker, held, now unix.Stat_t
	if unix.Fstatat(fd, "marker", &marker, 0) == nil {
		return ""
	}
	if unix.Fstat(fd, &held) != nil || unix.Stat(out, &now) != nil {
		return ""
	}
	if held.Ino == now.Ino && held.Dev == now.Dev {
		return fmt.Sprintf("%s was there without its marker", out)
	}
	return ""
}

// TestReplaceRacerInBetween (10): another build changes OUT between
// Replace's look at it and its rename, each way, with and without
// renameat2's flags: Replace looks again and ends with one whole output.
func TestReplaceRacerInBetween(t *testing.T) {
	for _, tc := range []struct {
		name     string
		previous bool
		racer    func(t *testing.T, out string)
		wantRepl bool
	}{
		{"OUT appears", false, func(t *testing.T, out string) {
			mkTree(t, out, -1, "racer")
		}, true},
		{"OUT goes away", true, func(t *testing.T, out string) {
			if err := os.Rename(out, out+"-moved"); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		for _, fallback := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, plain renames %v", tc.name, fallback), func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out")
				if tc.previous {
					mkTree(t, out, -1, "previous")
				}
				raced := false
				renameat2 = func(fromFD int, from string, toFD int, to string, flags uint) error {
					if !raced {
						raced = true
						tc.racer(t, out)
					}
					if fallback {
						return unix.EINVAL
					}
					return unix.Renameat2(fromFD, from, toFD, to, flags)
				}
				t.Cleanup(func() { renameat2 = unix.Renameat2 })
				res, err := Replace(context.Background(), out, Options{Start: Now()}, completeFill("new"))
				if err != nil {
					t.Fatal(err)
				}
				checkComplete(t, out)
				if res.Replaced != tc.wantRepl || res.Leftover != "" {
					t.Errorf("result %+v, want Replaced %v", res, tc.wantRepl)
				}
				if m := temps(t, out); len(m) > 0 {
					t.Errorf("left behind: %v", m)
				}
			})
		}
	}
}

// TestReplaceConcurrentProcesses (10): the same across processes, which
// share no memory; each fills out-0, out-1... in turn, all starting at once.
func TestReplaceConcurrentProcesses(t *testing.T) {
	const racers, rounds = 4, 20
	dir := t.TempDir()
	prefix := filepath.Join(dir, "out")
	var cmds []*exec.Cmd
	var gates []io.Closer
	for i := range racers {
		cmd := helperCmd(t, "race", prefix, fmt.Sprint(rounds), fmt.Sprint(i))
		gate, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, gates = append(cmds, cmd), append(gates, gate)
	}
	for _, g := range gates {
		g.Close()
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("racer %d: %v", i, err)
		}
	}
	for r := range rounds {
		checkComplete(t, fmt.Sprintf("%s-%d", prefix, r))
	}
	if m := temps(t, prefix); len(m) > 0 {
		t.Errorf("left behind: %v", m)
	}
}

// TestReplaceLeftover (11): as a user who can swap OUT but not remove all
// of the previous output (a directory of root's inside it), the new output
// is in place and the result says where the previous one is and why. A
// previous output of root's in a sticky directory cannot be swapped at all:
// a clear error, nothing changed.
func TestReplaceLeftover(t *testing.T) {
	n := asNobody(t)
	sticky := filepath.Join(n.dir, "sticky")
	if err := os.Mkdir(sticky, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(sticky, "out")
	mkTree(t, out, n.uid, "previous")
	mkTree(t, filepath.Join(out, "roots"), 0, "file")
	hr := n.replace(t, out)
	if hr.Err != "" {
		t.Fatalf("failed although the new output is in place: %s", hr.Err)
	}
	checkComplete(t, out)
	if !hr.Replaced || hr.Leftover == "" || !strings.Contains(hr.LeftoverErr, "permission denied") {
		t.Fatalf("result %+v, want the previous output left over for permission denied", hr)
	}
	if _, err := os.Stat(filepath.Join(hr.Leftover, "roots", "file")); err != nil {
		t.Errorf("the leftover %s is not the previous output: %v", hr.Leftover, err)
	}
	if len(hr.Warnings) != 1 || !strings.Contains(hr.Warnings[0], hr.Leftover) {
		t.Errorf("warnings %q do not say where the previous output is", hr.Warnings)
	}

	rootOut := filepath.Join(sticky, "root-out")
	mkTree(t, rootOut, 0, "previous")
	leftover := hr.Leftover
	hr = n.replace(t, rootOut)
	if !strings.Contains(hr.Err, "operation not permitted") || !strings.Contains(hr.Err, rootOut) {
		t.Errorf("root's output in a sticky directory: %+v", hr)
	}
	if _, err := os.Stat(filepath.Join(rootOut, "previous")); err != nil {
		t.Errorf("root's output was changed: %v", err)
	}
	if m := temps(t, rootOut); !slices.Equal(m, []string{leftover}) {
		t.Errorf("temporaries %v, want only the first leftover", m)
	}
}

// TestReplaceReadOnlyDirs: a previous output with read-only directories,
// which a non-root user can only empty after making them writable.
func TestReplaceReadOnlyDirs(t *testing.T) {
	spec := []string{"ro/", "ro/file", "ro/sub/", "ro/sub/file"}
	readOnly := func(t *testing.T, out string) {
		for _, d := range []string{"ro/sub", "ro"} {
			if err := os.Chmod(filepath.Join(out, d), 0o555); err != nil {
				t.Fatal(err)
			}
		}
	}
	if os.Geteuid() != 0 {
		out := filepath.Join(t.TempDir(), "out")
		mkTree(t, out, -1, spec...)
		readOnly(t, out)
		res, err := Replace(context.Background(), out, Options{Start: Now()}, completeFill("new"))
		if err != nil || res.Leftover != "" {
			t.Fatalf("%+v %v", res, err)
		}
		checkComplete(t, out)
		if m := temps(t, out); len(m) > 0 {
			t.Errorf("left behind: %v", m)
		}
		return
	}
	n := asNobody(t)
	out := filepath.Join(n.dir, "out")
	os.Chown(n.dir, n.uid, n.gid)
	mkTree(t, out, n.uid, spec...)
	readOnly(t, out)
	hr := n.replace(t, out)
	if hr.Err != "" || hr.Leftover != "" || !hr.Replaced {
		t.Fatalf("%+v", hr)
	}
	checkComplete(t, out)
	if m := temps(t, out); len(m) > 0 {
		t.Errorf("left behind: %v", m)
	}
}

// TestTempNames (14): a temporary's name fits NAME_MAX for any OUT name,
// stays valid UTF-8, and is recognised as that OUT's and no other's.
func TestTempNames(t *testing.T) {
	cut := strings.Repeat("x", nameMax-len(tempMarker)-hashLen-1-randLen)
	for _, base := range []string{
		"o", "appliance.d", cut, cut + "y", strings.Repeat("b", 250), strings.Repeat("c", 255),
		cut[:len(cut)-1] + "é-and-more", // the cut falls inside é
	} {
		out := filepath.Join("/cache", base)
		tmp := filepath.Base(tempName(out))
		if len(tmp) > nameMax || !utf8.ValidString(tmp) {
			t.Errorf("%d-byte base: temporary %q (%d bytes)", len(base), tmp, len(tmp))
		}
		if !isTemp(out, tmp) {
			t.Errorf("%d-byte base: %q not recognised", len(base), tmp)
		}
		for _, otherBase := range []string{base + "2", base[:len(base)-1], "z" + base} {
			if isTemp(filepath.Join("/cache", otherBase), tmp) {
				t.Errorf("%q taken for a temporary of %q", tmp, otherBase)
			}
		}
	}
	for _, name := range []string{"out.gosupermin-tmp-123456", "out" + tempMarker + "0000000-12345678"} {
		if isTemp("/cache/out", name) {
			t.Errorf("%q taken for ours", name)
		}
	}
}

// TestReplaceLongName (14): a 250-byte output name, new and replaced.
func TestReplaceLongName(t *testing.T) {
	out := filepath.Join(t.TempDir(), strings.Repeat("n", 250))
	for i := range 2 {
		var tmpLen int
		res, err := Replace(context.Background(), out, Options{Start: Now()}, func(tmp string) error {
			tmpLen = len(filepath.Base(tmp))
			return completeFill(fmt.Sprint(i))(tmp)
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Replaced != (i == 1) || tmpLen > nameMax {
			t.Errorf("run %d: %+v, temporary of %d bytes", i, res, tmpLen)
		}
		checkComplete(t, out)
	}
	if m := temps(t, out); len(m) > 0 {
		t.Errorf("left behind: %v", m)
	}
}
