package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFullDisk: a build that fills the disk stops with one line naming
// the output and the problem, exit 1; the previous output survives and
// nothing of the failed build is left. The disk is a small tmpfs.
func TestFullDisk(t *testing.T) {
	need(t, isRoot(), "needs root to mount a small tmpfs (.ci/run runs as root)")
	dir := t.TempDir()
	fs := filepath.Join(dir, "fs")
	os.Mkdir(fs, 0o755)
	if err := unix.Mount("tmpfs", fs, "tmpfs", 0, "size=1g"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(fs, unix.MNT_DETACH) })
	sd := filepath.Join(dir, "supermin.d")
	if r := gosupermin(t, "--prepare", "dash", "-o", sd); r.code != 0 {
		t.Fatalf("prepare: %+v", r)
	}
	for _, format := range []string{"chroot", "ext2", "cpio"} {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(fs, "out-"+format)
			os.MkdirAll(out, 0o755)
			if err := os.WriteFile(filepath.Join(out, "previous-output"), []byte("kept"), 0o644); err != nil {
				t.Fatal(err)
			}
			// Leave 1 MiB: less than any of the formats writes.
			filler := filepath.Join(fs, "filler")
			fill(t, filler, 1<<20)
			r := gosupermin(t, "--build", "-f", format, sd, "-o", out)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if r.code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "no space left on device") ||
				!strings.Contains(lines[0], filepath.Base(out)) {
				t.Errorf("build on a full disk: exit %d, stderr %q; want exit 1 and one line naming %s and the full disk", r.code, r.stderr, out)
			}
			if data, err := os.ReadFile(filepath.Join(out, "previous-output")); err != nil || string(data) != "kept" {
				t.Errorf("previous output lost: %q, %v", data, err)
			}
			if m := temps(out); len(m) > 0 {
				t.Errorf("left behind: %v", m)
			}
			// With room, the same build succeeds: the failure was the disk's.
			os.Remove(filler)
			if r := gosupermin(t, "--build", "-f", format, sd, "-o", out); r.code != 0 {
				t.Fatalf("build with room: %+v", r)
			}
			if _, err := os.Stat(filepath.Join(out, "previous-output")); err == nil {
				t.Errorf("the previous output was not replaced")
			}
			os.RemoveAll(out)
			settled(out + "*")
		})
	}
}

// fill takes all of path's file system but free bytes.
func fill(t *testing.T, path string, free int64) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	size := int64(st.Bavail)*st.Bsize - free
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if size > 0 {
		if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
			t.Fatalf("fallocate %s: %v", path, err)
		}
	}
}
