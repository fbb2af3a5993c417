package supermin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/internal/supermind"
)

const edge = "../fixtures/dpkg/edge"

func quiet(t *testing.T) Options {
	return Options{Root: edge, Log: func(_ int, msg string) { t.Log(msg) }}
}

func TestPrepareFixture(t *testing.T) {
	out := filepath.Join(t.TempDir(), "supermin.d")
	o := PrepareOptions{Options: quiet(t), Packages: []string{"app", "alt-present", "app"}, Out: out}
	o.Epoch = time.Unix(1700000000, 0)
	if err := Prepare(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	pk, _ := os.ReadFile(filepath.Join(out, "packages"))
	if string(pk) != "alt-present\napp\n" {
		t.Errorf("packages = %q: want the roots only, sorted and unique", pk)
	}
	first, _ := os.ReadFile(filepath.Join(out, "base.tar.gz"))
	hdrs := readTarGz(t, first)
	if len(hdrs) != 1 || hdrs[0].Name != "./etc/app.conf" || hdrs[0].Uid != 0 || hdrs[0].Gid != 0 ||
		!hdrs[0].ModTime.Equal(o.Epoch) || hdrs[0].Typeflag != tar.TypeReg {
		t.Fatalf("base.tar.gz headers %+v", hdrs)
	}
	if kind, err := supermind.Sniff(bytes.NewReader(first)); err != nil || kind != supermind.BaseImage {
		t.Errorf("base.tar.gz sniffs as %v, %v", kind, err)
	}
	// Reproducible: the same inputs give the same bytes.
	if err := Prepare(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(filepath.Join(out, "base.tar.gz"))
	if !bytes.Equal(first, second) {
		t.Error("base.tar.gz differs between two runs")
	}
	// No conffiles: no base image, and a stale one goes.
	o.Packages = []string{"alt-present"}
	if err := Prepare(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "base.tar.gz")); !os.IsNotExist(err) {
		t.Errorf("base.tar.gz written for a closure without conffiles: %v", err)
	}
	o.Packages = []string{"app", "nosuchpkg"}
	if err := Prepare(context.Background(), o); err == nil || !strings.Contains(err.Error(), "nosuchpkg") {
		t.Errorf("prepare of a missing root: %v", err)
	}
}

// prepareBase prepares roots into a new supermin.d and names what its
// base.tar.gz holds.
func prepareBase(t *testing.T, opts Options, roots ...string) (sd string, names []string) {
	t.Helper()
	sd = filepath.Join(t.TempDir(), "supermin.d")
	if err := Prepare(context.Background(), PrepareOptions{Options: opts, Packages: roots, Out: sd}); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join(sd, "base.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range readTarGz(t, base) {
		names = append(names, h.Name)
	}
	return sd, names
}

func readTarGz(t *testing.T, data []byte) []*tar.Header {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
}

func TestBuildFixtureChroot(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	o := PrepareOptions{Options: quiet(t), Packages: []string{"app"}, Out: sd}
	if err := Prepare(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(sd, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("excludefiles", "-/usr/share/doc/*\n")
	write("hostfiles", "/usr/bin/recp*\n/nothing/matches/*\n")
	write("zz-empty", "")
	out := filepath.Join(dir, "out")
	b := BuildOptions{Options: quiet(t), Inputs: []string{sd}, Out: out, Format: Chroot{}, IncludePackageList: true}
	if err := Build(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		data, err := os.ReadFile(filepath.Join(out, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
		}
		return string(data)
	}
	if l, err := os.Readlink(filepath.Join(out, "bin")); err != nil || l != "usr/bin" {
		t.Errorf("/bin: %q %v, want the usrmerge link usr/bin", l, err)
	}
	if got := read("usr/bin/app"); !strings.Contains(got, "echo app") {
		t.Errorf("/usr/bin/app = %q", got)
	}
	// tooler is in the appliance but diverter is not: tooler's file goes
	// back to its own path, from where dpkg put it.
	if got := read("usr/bin/tool"); got != "tooler original\n" {
		t.Errorf("/usr/bin/tool = %q, want tooler's diverted file", got)
	}
	if got := read("etc/app.conf"); got != "setting=1\n" {
		t.Errorf("conffile from base image: %q", got)
	}
	if got := read("usr/lib/x86_64-linux-gnu/libm.so.1"); got != "libm amd64\n" {
		t.Errorf("multi-arch list: %q", got)
	}
	if got := read("usr/bin/recpkg"); !strings.Contains(got, "recpkg") {
		t.Errorf("hostfile: %q", got)
	}
	if got := read("packagelist"); got != strings.Join([]string{
		"alt-present_3_all", "app_1.0-1_amd64", "brokenver_1.0_amd64", "interp_5.36_amd64",
		"libm_1.2_amd64", "mta-a_1_amd64", "natlib_1_amd64", "tooler_1_amd64", "vp-new_1_amd64"}, "\n")+"\n" {
		t.Errorf("packagelist = %q", got)
	}
	for _, absent := range []string{"usr/share/doc/app/README", "usr/bin/vp-old", "usr/lib/i386-linux-gnu", "usr/bin/tool.distrib"} {
		if _, err := os.Lstat(filepath.Join(out, absent)); !os.IsNotExist(err) {
			t.Errorf("%s should not be in the appliance (%v)", absent, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "usr/share/doc")); err != nil {
		t.Errorf("excludefiles drop the files, not the listed directory: %v", err)
	}
	fi, err := os.Stat(filepath.Join(out, "usr/bin/app"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode of /usr/bin/app: %v %v", fi, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*.gosupermin-tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary directories left: %v", leftovers)
	}
}

func TestBuildIfNewer(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	if err := os.MkdirAll(sd, 0o755); err != nil {
		t.Fatal(err)
	}
	pk := filepath.Join(sd, "packages")
	os.WriteFile(pk, []byte("alt-present\n"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(pk, old, old)
	os.Chtimes(sd, old, old)
	// The fixture database's own mtime is the checkout's: copy it so it can
	// be made old too.
	root := filepath.Join(dir, "root")
	copyTree(t, edge, root)
	for _, p := range []string{"var/lib/dpkg/status", "var/lib/dpkg/diversions", "var/lib/dpkg/info"} {
		os.Chtimes(filepath.Join(root, p), old, old)
	}
	out := filepath.Join(dir, "out")
	b := BuildOptions{Options: Options{Root: root}, Inputs: []string{sd}, Out: out, Format: Chroot{}, IfNewer: true}
	if err := Build(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(out, "marker")
	os.WriteFile(marker, nil, 0o644)
	os.Chtimes(out, time.Now(), time.Now())
	if err := Build(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("--if-newer rebuilt although nothing changed")
	}
	// An edit inside supermin.d, which leaves the directory's mtime alone.
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(pk, []byte("alt-present\nmta-a\n"), 0o644)
	os.Chtimes(sd, old, old)
	if err := Build(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("--if-newer missed an edit inside supermin.d")
	}
	os.WriteFile(marker, nil, 0o644)
	os.Chtimes(out, time.Now(), time.Now())
	time.Sleep(10 * time.Millisecond)
	now := time.Now()
	os.Chtimes(filepath.Join(root, "var/lib/dpkg/status"), now, now)
	if err := Build(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("--if-newer missed a change of the package database")
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(dst, 0o755)
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, dst)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, data, fi.Mode().Perm())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBuildCancelled(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	os.MkdirAll(sd, 0o755)
	os.WriteFile(filepath.Join(sd, "packages"), []byte("app\n"), 0o644)
	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "previous"), []byte("x"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Build(ctx, BuildOptions{Options: quiet(t), Inputs: []string{sd}, Out: out, Format: Chroot{}})
	if err == nil {
		t.Fatal("a cancelled build succeeded")
	}
	if _, err := os.Stat(filepath.Join(out, "previous")); err != nil {
		t.Error("the previous output was lost")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.gosupermin-tmp-*")); len(m) > 0 {
		t.Errorf("left behind: %v", m)
	}
}

// TestBuildClampsTimes: with SOURCE_DATE_EPOCH, a host directory whose
// mtime changes between two builds (as /tmp's does) gives the same output.
func TestBuildClampsTimes(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	copyTree(t, edge, root)
	sd := filepath.Join(dir, "supermin.d")
	os.MkdirAll(sd, 0o755)
	os.WriteFile(filepath.Join(sd, "packages"), []byte("alt-present\n"), 0o644)
	epoch := time.Unix(1700000000, 0)
	var times [2]time.Time
	for i := range times {
		now := time.Now().Add(time.Duration(i) * time.Minute)
		os.Chtimes(filepath.Join(root, "usr/bin"), now, now)
		out := filepath.Join(dir, "out")
		b := BuildOptions{Options: Options{Root: root, Epoch: epoch}, Inputs: []string{sd}, Out: out, Format: Chroot{}}
		if err := Build(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(out, "usr/bin"))
		if err != nil {
			t.Fatal(err)
		}
		times[i] = fi.ModTime()
	}
	if !times[0].Equal(epoch) || !times[1].Equal(epoch) {
		t.Errorf("/usr/bin mtimes %v, %v: want both clamped to %v", times[0], times[1], epoch)
	}
}
