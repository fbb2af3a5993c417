package baseimage

import (
	"bytes"
	"context"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
	"golang.org/x/sys/unix"
)

// makeTree fills dir with what base images hold and tar tools must
// agree on: long names and targets, hard links, sparse files and files
// with zero blocks, odd modes; devices and owners when run as root.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewSource(1))
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	long := filepath.Join("deep", strings.Repeat("n", 90), strings.Repeat("m", 90), strings.Repeat("o", 60), "file")
	files := map[string][]byte{
		"etc/passwd":  []byte("root:x:0:0:root:/root:/bin/sh\n"),
		"etc/setuid":  []byte("#!/bin/sh\n"),
		"etc/empty":   nil,
		long:          []byte("a long name\n"),
		"usr/big":     random(300 << 10),
		"usr/zeroish": append(append(random(5000), make([]byte, 64<<10)...), random(3000)...),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(filepath.Join(dir, "etc/setuid"), 0o4755))
	must(os.Symlink(strings.Repeat("t/", 70)+"x", filepath.Join(dir, "etc/longlink")))
	must(os.Symlink("passwd", filepath.Join(dir, "etc/link")))
	must(os.Link(filepath.Join(dir, "etc/passwd"), filepath.Join(dir, "etc/hard")))
	must(os.Link(filepath.Join(dir, long), filepath.Join(dir, "etc/hard-long")))
	must(syscall.Mkfifo(filepath.Join(dir, "etc/fifo"), 0o600))
	// Sparse: 40 MiB with data at the start, at 16 MiB and at the end.
	f, err := os.Create(filepath.Join(dir, "var/sparse"))
	if os.IsNotExist(err) {
		must(os.MkdirAll(filepath.Join(dir, "var"), 0o755))
		f, err = os.Create(filepath.Join(dir, "var/sparse"))
	}
	must(err)
	for _, off := range []int64{0, 16 << 20, 40<<20 - 8192} {
		_, err := f.WriteAt(random(8192), off)
		must(err)
	}
	must(f.Close())
	if os.Geteuid() == 0 {
		must(os.MkdirAll(filepath.Join(dir, "dev"), 0o755))
		must(unix.Mknod(filepath.Join(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(filepath.Join(dir, "dev/loop0"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
		must(unix.Mknod(filepath.Join(dir, "dev/big"), unix.S_IFCHR|0o600, int(unix.Mkdev(4000, 1<<19))))
		must(os.Lchown(filepath.Join(dir, "etc/passwd"), 1234, 5678))
		must(os.Lchown(filepath.Join(dir, "etc/link"), 2000000, 3))
	}
	// Times last, children before parents, with nanoseconds.
	var paths []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	for i := len(paths) - 1; i >= 0; i-- {
		ts := []unix.Timespec{unix.NsecToTimespec(1600000000e9 + int64(i)*1e9 + 123456789), unix.NsecToTimespec(1700000000e9 + int64(i)*1e9 + 987654321)}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

func TestAgainstGNUTar(t *testing.T) {
	needTool(t, "tar")
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src)
	for _, tc := range []struct {
		name string
		tool string
		args []string
	}{
		{"posix", "tar", []string{"--format=posix", "--sparse"}},
		{"posix sparse 0.0 gzip", "tar", []string{"--format=posix", "--sparse", "--sparse-version=0.0", "-z"}},
		{"posix sparse 0.1 xz", "tar", []string{"--format=posix", "--sparse", "--sparse-version=0.1", "-J"}},
		{"gnu", "tar", []string{"--format=gnu", "--sparse"}},
		{"oldgnu", "tar", []string{"--format=oldgnu", "--sparse"}},
		{"bsdtar pax", "bsdtar", []string{"--format=pax"}},
		{"bsdtar gnutar", "bsdtar", []string{"--format=gnutar"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			needTool(t, tc.tool)
			if tc.tool == "tar" && strings.Contains(strings.Join(tc.args, " "), "-J") {
				needTool(t, "xz")
			}
			work := t.TempDir()
			archive := filepath.Join(work, "base.tar")
			run(t, src, tc.tool, append(append([]string{"-cf", archive}, tc.args...), ".")...)
			out := filepath.Join(work, "out")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			// Each tool extracts its own archives: GNU tar sets a directory's
			// time when the archive leaves it, and bsdtar lists a
			// directory's subdirectories before its files.
			run(t, out, tc.tool, "-xpf", archive, "--numeric-owner")
			m := appliance.New()
			if err := Unpack(context.Background(), m, archive, newSpool(t)); err != nil {
				t.Fatal(err)
			}
			compareTree(t, m, out)
		})
	}
}

// compareTree checks that m holds exactly what tar -x made in dir.
func compareTree(t *testing.T, m *appliance.Manifest, dir string) {
	t.Helper()
	seen := 0
	root := os.Geteuid() == 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel := "/" + filepath.ToSlash(strings.TrimPrefix(p, dir+"/"))
		e, ok := m.Get(rel)
		if !ok {
			t.Errorf("%s: extracted by tar, not in the manifest", rel)
			return nil
		}
		seen++
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		kinds := map[fs.FileMode]appliance.Kind{0: appliance.Regular, fs.ModeDir: appliance.Dir, fs.ModeSymlink: appliance.Symlink,
			fs.ModeNamedPipe: appliance.FIFO, fs.ModeDevice | fs.ModeCharDevice: appliance.CharDev, fs.ModeDevice: appliance.BlockDev}
		if kinds[fi.Mode().Type()] != e.Kind {
			t.Errorf("%s: %s, tar made a %v", rel, e.Kind, fi.Mode().Type())
			return nil
		}
		if e.Kind != appliance.Symlink && e.Mode != uint32(st.Mode)&07777 {
			t.Errorf("%s: mode %o, tar made %o", rel, e.Mode, st.Mode&07777)
		}
		if root && (e.UID != st.Uid || e.GID != st.Gid) {
			t.Errorf("%s: owner %d:%d, tar made %d:%d", rel, e.UID, e.GID, st.Uid, st.Gid)
		}
		if mt := time.Unix(st.Mtim.Unix()); !e.ModTime.Equal(mt) {
			t.Errorf("%s: mtime %v, tar made %v", rel, e.ModTime, mt)
		}
		switch e.Kind {
		case appliance.Regular:
			want, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if got := read(t, e); e.Size != int64(len(want)) || !bytes.Equal(got, want) {
				t.Errorf("%s: %d bytes (size %d), tar made %d, or they differ", rel, len(got), e.Size, len(want))
			}
			if rel == "/var/sparse" {
				checkHoles(t, e, want)
			}
		case appliance.Symlink:
			if target, _ := os.Readlink(p); target != e.Link {
				t.Errorf("%s: -> %q, tar made -> %q", rel, e.Link, target)
			}
		case appliance.CharDev, appliance.BlockDev:
			if e.Major != unix.Major(st.Rdev) || e.Minor != unix.Minor(st.Rdev) {
				t.Errorf("%s: device %d,%d, tar made %d,%d", rel, e.Major, e.Minor, unix.Major(st.Rdev), unix.Minor(st.Rdev))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != m.Len() {
		t.Errorf("the manifest has %d entries, tar extracted %d", m.Len(), seen)
	}
}

// checkHoles: the holes stay holes, and every byte outside the extents is
// zero.
func checkHoles(t *testing.T, e *appliance.Entry, want []byte) {
	t.Helper()
	ss, ok := e.Data.(appliance.SparseSource)
	if !e.Sparse || !ok {
		t.Errorf("%s: not sparse", e.Path)
		return
	}
	ext, err := ss.Extents()
	if err != nil {
		t.Fatal(err)
	}
	var stored int64
	covered := make([]bool, len(want))
	for _, x := range ext {
		stored += x.Len
		for i := x.Off; i < x.Off+x.Len; i++ {
			covered[i] = true
		}
	}
	if stored > 3*8192 {
		t.Errorf("%s: %d bytes in extents %v, want at most 24 KiB", e.Path, stored, ext)
	}
	for i, c := range want {
		if c != 0 && !covered[i] {
			t.Fatalf("%s: byte %d is data but outside the extents %v", e.Path, i, ext)
		}
	}
}
