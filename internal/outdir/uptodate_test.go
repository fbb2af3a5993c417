package outdir

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inputs makes a supermin.d (sd, with a subdirectory) and a package
// database (db) under dir, all an hour old, and returns walk and stat.
func inputs(t testing.TB, dir string) (walk, stat []string) {
	t.Helper()
	mkTree(t, dir, -1, "sd/", "sd/packages", "sd/base.tar.gz", "sd/sub/", "sd/sub/deep",
		"db/", "db/status", "db/info/", "db/info/x.list")
	old := time.Now().Add(-time.Hour)
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil {
			err = os.Chtimes(p, old, old)
		}
		if err != nil {
			t.Fatal(err)
		}
		return nil
	})
	return []string{filepath.Join(dir, "sd")}, []string{filepath.Join(dir, "db/status"), filepath.Join(dir, "db/info")}
}

func TestUpToDate(t *testing.T) {
	built := time.Now().Add(-30 * time.Minute)
	later := built.Add(time.Second)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string, walk, stat []string) ([]string, []string)
		want   bool
	}{
		{"nothing changed", nil, true},
		{"output missing", func(t *testing.T, dir string, walk, stat []string) ([]string, []string) {
			os.RemoveAll(filepath.Join(dir, "out"))
			return walk, stat
		}, false},
		{"input missing", func(t *testing.T, dir string, walk, stat []string) ([]string, []string) {
			return append(walk, filepath.Join(dir, "gone")), stat
		}, false},
		{"database path missing: optional", func(t *testing.T, dir string, walk, stat []string) ([]string, []string) {
			return walk, append(stat, filepath.Join(dir, "db/diversions"))
		}, true},
		{"file in supermin.d", touch("sd/packages", later), false},
		{"file deep in supermin.d", touch("sd/sub/deep", later), false},
		{"as new as the output", touch("sd/sub/deep", built), false},
		{"database file", touch("db/status", later), false},
		{"database directory", touch("db/info", later), false},
		{"newer but not an input", touch("db/info/x.list", later), true},
		{"supermin.d named by a symlink", func(t *testing.T, dir string, walk, stat []string) ([]string, []string) {
			touch("sd/sub/deep", later)(t, dir, walk, stat)
			link := filepath.Join(dir, "sd-link")
			os.Symlink("sd", link)
			return []string{link}, stat
		}, false},
		{"dangling symlink in supermin.d, old", func(t *testing.T, dir string, walk, stat []string) ([]string, []string) {
			link := filepath.Join(dir, "sd/dangling")
			os.Symlink("nowhere", link)
			old := built.Add(-time.Minute)
			if err := lutimes(link, old); err != nil {
				t.Fatal(err)
			}
			touch("sd", built.Add(-time.Minute))(t, dir, walk, stat)
			return walk, stat
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			walk, stat := inputs(t, dir)
			out := filepath.Join(dir, "out")
			mkTree(t, out, -1, "kernel")
			os.Chtimes(out, built, built)
			if tc.change != nil {
				walk, stat = tc.change(t, dir, walk, stat)
			}
			got, err := UpToDate(out, walk, stat)
			if err != nil || got != tc.want {
				t.Errorf("UpToDate = %v %v, want %v", got, err, tc.want)
			}
		})
	}
}

func lutimes(path string, when time.Time) error {
	ts := unix.NsecToTimespec(when.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// touch sets the times of dir's file rel.
func touch(rel string, when time.Time) func(*testing.T, string, []string, []string) ([]string, []string) {
	return func(t *testing.T, dir string, walk, stat []string) ([]string, []string) {
		if err := os.Chtimes(filepath.Join(dir, rel), when, when); err != nil {
			t.Fatal(err)
		}
		return walk, stat
	}
}

// TestUpToDateAfterReplace (9): an input edited while the build runs,
// after the build read it, makes the output out of date; a build during
// which nothing changed is up to date at once.
func TestUpToDateAfterReplace(t *testing.T) {
	for _, edited := range []string{"", "sd/packages", "sd/sub/deep", "db/status"} {
		t.Run(edited, func(t *testing.T) {
			dir := t.TempDir()
			walk, stat := inputs(t, dir)
			out := filepath.Join(dir, "out")
			_, err := Replace(context.Background(), out, Options{Start: Now()}, func(tmp string) error {
				if edited != "" {
					return os.WriteFile(filepath.Join(dir, edited), []byte("edited"), 0o644)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			up, err := UpToDate(out, walk, stat)
			if err != nil || up != (edited == "") {
				t.Errorf("UpToDate = %v %v after editing %q during the build", up, err, edited)
			}
		})
	}
}

// BenchmarkUpToDate: libguestfs's no-op check at every launch, a
// supermin.d of 7 files and 3 package database paths.
func BenchmarkUpToDate(b *testing.B) {
	dir := b.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	mkTree(b, sd, -1, "base.tar.gz", "daemon.tar.gz", "excludefiles", "hostfiles", "init.tar.gz", "packages", "udev-rules.tar.gz")
	mkTree(b, filepath.Join(dir, "dpkg"), -1, "status", "diversions", "info/")
	out := filepath.Join(dir, "appliance.d")
	mkTree(b, out, -1, "kernel", "initrd", "root")
	walk := []string{sd}
	stat := []string{filepath.Join(dir, "dpkg/status"), filepath.Join(dir, "dpkg/diversions"), filepath.Join(dir, "dpkg/info")}
	future := time.Now().Add(time.Hour)
	os.Chtimes(out, future, future)
	for b.Loop() {
		if up, err := UpToDate(out, walk, stat); !up || err != nil {
			b.Fatalf("UpToDate = %v %v", up, err)
		}
	}
}
