package rootfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sys/unix"
)

const canary = "HOST-CANARY-must-never-be-read"

// hostile makes a tree whose symlinks all point out of it (by absolute
// targets, by "..", through directories) at a canary file on the host,
// and gives the tree its own file at each place a link should land.
func hostile(t *testing.T) (root, host string) {
	t.Helper()
	base := t.TempDir()
	host = filepath.Join(base, "host")
	root = filepath.Join(base, "root")
	for _, d := range []string{host + "/etc", root + "/etc", root + "/usr/bin", root + "/var/lib/dpkg/info", root + "/deep/a/b"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(host+"/etc/shadow", canary)
	write(root+"/etc/shadow", "tree's own shadow")
	write(root+"/usr/bin/bash", "bash")
	link := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	link(host+"/etc/shadow", "var/lib/dpkg/info/bar.postinst") // absolute, to the host's canary
	link("../../../../../../../../"+host+"/etc/shadow", "deep/a/b/up")
	link(host+"/etc", "hostetc") // a directory symlink out
	link("/usr/bin", "bin")      // usrmerge: stays in the tree
	link("loop2", "loop1")
	link("loop1", "loop2")
	link("/", "rootlink")
	return root, host
}

func modes(t *testing.T) []bool {
	if useOpenat2 {
		return []bool{true, false}
	}
	t.Log("this kernel has no openat2: only the component walk is tested")
	return []bool{false}
}

func open(t *testing.T, root string, withOpenat2 bool) *FS {
	t.Helper()
	f, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	f.openat2 = withOpenat2
	t.Cleanup(func() { f.Close() })
	return f
}

func TestEscapes(t *testing.T) {
	root, host := hostile(t)
	for _, o2 := range modes(t) {
		t.Run(fmt.Sprintf("openat2=%v", o2), func(t *testing.T) {
			f := open(t, root, o2)
			for _, tc := range []struct {
				name string
				want string // content ReadFile gives, "" for an error
			}{
				{"var/lib/dpkg/info/bar.postinst", "tree's own shadow"}, // /host/... is the tree's /host/...: missing
				{"/etc/shadow", "tree's own shadow"},
				{"../../../../etc/shadow", "tree's own shadow"},
				{"deep/a/b/up", ""},
				{"hostetc/shadow", ""},
				{"bin/bash", "bash"},
				{"/bin/../usr/bin/bash", "bash"},
				{"rootlink/etc/shadow", "tree's own shadow"},
				{"loop1", ""},
				{"/usr/bin", ""},
			} {
				data, err := f.ReadFile(tc.name)
				if bytes.Contains(data, []byte(canary)) {
					t.Fatalf("ReadFile(%q) read the host's file", tc.name)
				}
				if tc.name == "var/lib/dpkg/info/bar.postinst" {
					// The link names a host path that the tree lacks.
					if err == nil {
						t.Errorf("ReadFile(%q) = %q, want an error: %s is not in the tree", tc.name, data, host)
					}
					continue
				}
				if tc.want == "" && err == nil || tc.want != "" && (err != nil || string(data) != tc.want) {
					t.Errorf("ReadFile(%q) = %q, %v; want %q", tc.name, data, err, tc.want)
				}
				if err != nil && !strings.HasPrefix(err.Error(), "open "+root) && !strings.HasPrefix(err.Error(), "read "+root) {
					t.Errorf("ReadFile(%q): error %q does not name the tree's path", tc.name, err)
				}
			}
			// OpenFile never follows the last component.
			for _, name := range []string{"var/lib/dpkg/info/bar.postinst", "bin", "deep/a/b/up"} {
				if file, err := f.OpenFile(name); err == nil {
					file.Close()
					t.Errorf("OpenFile(%q) opened a symlink", name)
				}
			}
			// Through a directory symlink inside the tree it works.
			if file, err := f.OpenFile("/bin/bash"); err != nil {
				t.Errorf("OpenFile(/bin/bash): %v", err)
			} else {
				file.Close()
			}
			if fi, err := f.Lstat("var/lib/dpkg/info/bar.postinst"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				t.Errorf("Lstat of a link: %v %v", fi, err)
			}
			if l, err := f.ReadLink("var/lib/dpkg/info/bar.postinst"); err != nil || l != host+"/etc/shadow" {
				t.Errorf("ReadLink = %q, %v", l, err)
			}
			if _, err := f.Lstat("hostetc/shadow"); err == nil {
				t.Error("Lstat through a directory link out of the tree")
			}
			if ents, err := f.ReadDir("hostetc"); err == nil {
				t.Errorf("ReadDir through a link out of the tree: %v", ents)
			}
			if fi, err := f.Stat("rootlink"); err != nil || !fi.IsDir() {
				t.Errorf("Stat(rootlink) = %v, %v", fi, err)
			}
		})
	}
}

// TestNotRegular: FIFOs, sockets and devices are refused by type, never
// opened for reading (a FIFO would block forever).
func TestNotRegular(t *testing.T) {
	root := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Symlink("fifo", filepath.Join(root, "tofifo"))
	names := []string{"fifo", "tofifo"}
	if os.Geteuid() == 0 {
		if err := unix.Mknod(filepath.Join(root, "zero"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))); err == nil {
			names = append(names, "zero")
		}
	}
	for _, o2 := range modes(t) {
		f := open(t, root, o2)
		for _, name := range names {
			done := make(chan error, 3)
			go func() {
				_, err := f.ReadFile(name)
				done <- err
				_, err = f.Open(name)
				done <- err
				_, err = f.OpenFile(name)
				done <- err
			}()
			for range 3 {
				select {
				case err := <-done:
					if !errors.Is(err, ErrNotRegular) && !(name == "tofifo" && errors.Is(err, syscall.ELOOP)) {
						t.Errorf("openat2=%v %s: %v, want ErrNotRegular", o2, name, err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("openat2=%v %s: blocked", o2, name)
				}
			}
		}
	}
}

// TestRace: while another goroutine keeps swapping a package file for a
// symlink to the host's canary, nothing read through the tree is ever the
// canary.
func TestRace(t *testing.T) {
	root, host := hostile(t)
	bin := filepath.Join(root, "usr/bin")
	os.WriteFile(filepath.Join(bin, "bar.real"), []byte("bar"), 0o644)
	os.Symlink(host+"/etc/shadow", filepath.Join(bin, "bar.evil"))
	os.Symlink("../../../../../../../"+host+"/etc/shadow", filepath.Join(bin, "bar.evil2"))
	os.WriteFile(filepath.Join(bin, "bar"), []byte("bar"), 0o644)
	for _, o2 := range modes(t) {
		t.Run(fmt.Sprintf("openat2=%v", o2), func(t *testing.T) {
			f := open(t, root, o2)
			var stop atomic.Bool
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				tmp := filepath.Join(bin, "bar.tmp")
				for i := 0; !stop.Load(); i++ {
					src := []string{"bar.real", "bar.evil", "bar.evil2"}[i%3]
					// Swap by hard link and rename, as fast as the disk lets.
					os.Remove(tmp)
					if err := os.Link(filepath.Join(bin, src), tmp); err != nil {
						continue
					}
					os.Rename(tmp, filepath.Join(bin, "bar"))
				}
			}()
			// Until both outcomes were seen many times (the swap is slow to
			// start on a loaded machine), within a bounded number of tries.
			reads, refused := 0, 0
			for i := 0; i < 200000 && (reads < 500 || refused < 500); i++ {
				for _, read := range []func() ([]byte, error){
					func() ([]byte, error) { return f.ReadFile("usr/bin/bar") },
					func() ([]byte, error) { return f.ReadFile("bin/bar") },
					func() ([]byte, error) {
						file, err := f.OpenFile("usr/bin/bar")
						if err != nil {
							return nil, err
						}
						defer file.Close()
						return io.ReadAll(file)
					},
				} {
					data, err := read()
					if bytes.Contains(data, []byte(canary)) {
						stop.Store(true)
						wg.Wait()
						t.Fatal("read the host's canary through a swapped symlink")
					}
					if err == nil {
						reads++
					} else {
						refused++
					}
				}
			}
			stop.Store(true)
			wg.Wait()
			if reads == 0 || refused == 0 {
				t.Errorf("%d reads, %d refused: the swap was never seen both ways, the test proves nothing", reads, refused)
			}
			t.Logf("%d reads of the real file, %d refused, no canary", reads, refused)
		})
	}
}

func TestFSConformance(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "a/b"), 0o755)
	os.WriteFile(filepath.Join(root, "a/b/c"), []byte("c"), 0o644)
	os.WriteFile(filepath.Join(root, "top"), []byte("top"), 0o600)
	for _, o2 := range modes(t) {
		f := open(t, root, o2)
		if err := fstest.TestFS(f.FS(), "a/b/c", "top"); err != nil {
			t.Errorf("openat2=%v: %v", o2, err)
		}
	}
}

func TestReadFileLimit(t *testing.T) {
	root := t.TempDir()
	big, err := os.Create(filepath.Join(root, "big"))
	if err != nil {
		t.Fatal(err)
	}
	big.Truncate(MaxReadFile + 1) // sparse: no disk used
	big.Close()
	f := open(t, root, useOpenat2)
	if _, err := f.ReadFile("big"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadFile of a file over the limit: %v", err)
	}
}

func TestXattrs(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "x")
	os.WriteFile(p, nil, 0o644)
	if err := unix.Setxattr(p, "user.b", []byte("2"), 0); err != nil {
		t.Skipf("this file system has no user xattrs: %v", err)
	}
	unix.Setxattr(p, "user.a", []byte("1"), 0)
	os.Symlink("x", filepath.Join(root, "l"))
	for _, o2 := range modes(t) {
		f := open(t, root, o2)
		xs, err := f.Xattrs("/x")
		if err != nil || len(xs) < 2 || xs[0].Name != "user.a" || string(xs[0].Value) != "1" || xs[1].Name != "user.b" {
			t.Errorf("Xattrs(x) = %+v, %v", xs, err)
		}
		if xs, err := f.Xattrs("l"); err != nil || len(xs) != 0 {
			t.Errorf("Xattrs of a symlink followed it: %+v, %v", xs, err)
		}
	}
}

func TestRootItself(t *testing.T) {
	root := t.TempDir()
	f := open(t, root, useOpenat2)
	for _, name := range []string{"", ".", "/", "..", "/../.."} {
		fi, err := f.Lstat(name)
		if err != nil || !fi.IsDir() {
			t.Errorf("Lstat(%q) = %v, %v", name, fi, err)
		}
	}
	if _, err := f.ReadDir("/"); err != nil {
		t.Error(err)
	}
}

func TestClean(t *testing.T) {
	for _, name := range []string{"/", "", ".", "..", "/a", "a", "/a/", "/a//b", "/a/./b", "/a/../b",
		"/a/..", "/a/.", "/..", "/.", "//", "/a/b/c", "/.a/..b/c.", "/a/.../b", "a/b", "/a/b/"} {
		if got, want := clean(name), path.Clean("/"+name); got != want {
			t.Errorf("clean(%q) = %q, want %q", name, got, want)
		}
	}
}

func FuzzClean(f *testing.F) {
	f.Add("/a/../b//c/.")
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := clean(name), path.Clean("/"+name); got != want {
			t.Errorf("clean(%q) = %q, want %q", name, got, want)
		}
	})
}
