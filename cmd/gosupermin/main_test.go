package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bin is the gosupermin binary the tests run, built once.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gosupermin-test-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "gosupermin")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips a test whose prerequisite is missing, except in CI, where
// .ci/run installs everything and a skip would hide a failure.
func need(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: %s", why)
	}
	t.Skip(why)
}

type result struct {
	code           int
	stdout, stderr string
}

func gosupermin(t *testing.T, args ...string) result {
	t.Helper()
	return runCmd(t, append([]string{bin}, args...)...)
}

// runCmd runs argv and collects its exit status and output.
func runCmd(t *testing.T, argv ...string) result {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, so.String(), se.String()}
}

func TestCLI(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--version"}, 0, "gosupermin 5.3.99 (supermin 5 compatible)\n"},
		{[]string{"-V"}, 0, "gosupermin 5.3.99 (supermin 5 compatible)\n"},
		{[]string{"--list-drivers"}, 0, "debian/dpkg\tdetected\n"},
		{[]string{"--help"}, 0, "Usage:"},
		{[]string{}, 2, ""},
		{[]string{"--build", "-o", "x", "in"}, 2, ""},
		{[]string{"--build", "--prepare", "-o", "x", "in"}, 2, ""},
		{[]string{"--build", "-f", "iso", "-o", "x", "in"}, 2, ""},
		{[]string{"--build", "-f", "ext2", "--size", "4", "-o", "x", "in"}, 2, ""},
		{[]string{"--frobnicate"}, 2, ""},
		{[]string{"--names"}, 2, ""},
		{[]string{"--prepare", "-o"}, 2, ""},
		{[]string{"--prepare", "bash", "-o", "x", "--sbom", "s.json"}, 2, ""},
	} {
		r := gosupermin(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.out) {
			t.Errorf("gosupermin %q: exit %d, stdout %q, stderr %q; want exit %d, stdout containing %q",
				tc.args, r.code, r.stdout, r.stderr, tc.code, tc.out)
		}
		if tc.code == 2 && !strings.HasPrefix(r.stderr, "gosupermin: ") {
			t.Errorf("gosupermin %q: usage error %q", tc.args, r.stderr)
		}
	}
}

func TestParseArgs(t *testing.T) {
	c, err := parseArgs([]string{"--build", "-vv", "-v", "--format=fs", "sd1", "-o", "out/", "--size", "1.5G", "sd2", "--", "-odd"})
	if err != nil {
		t.Fatal(err)
	}
	if c.mode != "build" || c.verbose != 3 || c.format != "chroot" || c.out != "out" || c.size != 3<<29 ||
		strings.Join(c.args, ",") != "sd1,sd2,-odd" {
		t.Errorf("got %+v", c)
	}
	for _, s := range []struct {
		in   string
		want int64
	}{{"4G", 4 << 30}, {"100M", 100 << 20}, {"512K", 512 << 10}, {"4096b", 4096}} {
		if n, err := parseSize(s.in); err != nil || n != s.want {
			t.Errorf("parseSize(%q) = %d, %v", s.in, n, err)
		}
	}
	for _, bad := range []string{"4", "4g", "G", "-1G", "1e3M"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q): no error", bad)
		}
	}
}

func isRoot() bool { return os.Geteuid() == 0 }

func dpkgQuery(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", args...).Output()
	if err != nil {
		t.Fatalf("dpkg-query %v: %v", args, err)
	}
	return string(out)
}

// TestHostChroot builds bash and coreutils from this machine and runs them.
func TestHostChroot(t *testing.T) {
	need(t, isRoot(), "chroot(8) needs root")
	_, err := exec.LookPath("dpkg-query")
	need(t, err == nil, "not a dpkg host")
	dir := t.TempDir()
	sd, out := filepath.Join(dir, "supermin.d"), filepath.Join(dir, "out")
	if r := gosupermin(t, "--prepare", "bash", "coreutils", "perl-base", "passwd", "-o", sd); r.code != 0 {
		t.Fatalf("prepare: %+v", r)
	}
	os.WriteFile(filepath.Join(sd, "excludefiles"), []byte("-/usr/share/doc/*\n-/usr/share/man/*\n"), 0o644)
	if r := gosupermin(t, "--build", "-f", "chroot", "--include-packagelist", sd, "-o", out); r.code != 0 {
		t.Fatalf("build: %+v", r)
	}
	got, err := exec.Command("chroot", out, "/bin/bash", "-c", "echo ok; /bin/ls /usr/bin/ls").CombinedOutput()
	if err != nil || string(got) != "ok\n/usr/bin/ls\n" {
		t.Fatalf("chroot: %q %v", got, err)
	}
	// Every non-conffile path dpkg lists for the closure, minus excludes
	// and paths missing on the host, is in the tree.
	list, _ := os.ReadFile(filepath.Join(out, "packagelist"))
	conf := map[string]bool{}
	var pkgs []string
	for _, full := range strings.Fields(string(list)) {
		f := strings.Split(full, "_")
		pkg := f[0] + ":" + f[2]
		pkgs = append(pkgs, pkg)
		for _, line := range strings.Split(dpkgQuery(t, "-W", "-f=${Conffiles}", pkg), "\n") {
			if fs := strings.Fields(line); len(fs) > 0 {
				conf[fs[0]] = true
			}
		}
	}
	if len(pkgs) < 10 {
		t.Fatalf("packagelist %q", list)
	}
	checked := 0
	for _, pkg := range pkgs {
		for _, p := range strings.Split(dpkgQuery(t, "-L", pkg), "\n") {
			if p == "" || p == "/." || conf[p] || strings.HasPrefix(p, "/usr/share/doc/") || strings.HasPrefix(p, "/usr/share/man/") {
				continue
			}
			if strings.HasPrefix(p, "diverted by") || strings.HasPrefix(p, "package diverts") || strings.HasPrefix(p, "locally diverted") {
				continue
			}
			if _, err := os.Lstat(p); err != nil {
				continue
			}
			checked++
			if _, err := os.Lstat(filepath.Join(out, p)); err != nil {
				t.Errorf("%s (from %s) missing from the appliance", p, pkg)
			}
		}
	}
	t.Logf("%d packages, %d paths checked", len(pkgs), checked)
	// Hard links stay hard links; times and modes are the host's.
	a, errA := os.Stat(filepath.Join(out, "usr/bin/perl"))
	b, errB := os.Stat(filepath.Join(out, "usr/bin/perl5.36.0"))
	if errA == nil && errB == nil && !os.SameFile(a, b) {
		h1, _ := os.Stat("/usr/bin/perl")
		h2, _ := os.Stat("/usr/bin/perl5.36.0")
		if os.SameFile(h1, h2) {
			t.Error("perl and perl5.36.0 are one file on the host but two in the appliance")
		}
	}
	hb, _ := os.Stat("/usr/bin/bash")
	ab, err := os.Stat(filepath.Join(out, "usr/bin/bash"))
	if err != nil || !ab.ModTime().Equal(hb.ModTime()) || ab.Mode() != hb.Mode() {
		t.Errorf("/usr/bin/bash: %v vs host %v (%v)", ab, hb, err)
	}
	// Owners and setgid bits as on the host (chage is root:shadow 2755).
	for _, p := range []string{"/usr/bin/chage", "/usr/bin/bash"} {
		hs, herr := os.Stat(p)
		as, aerr := os.Stat(filepath.Join(out, p))
		if herr != nil || aerr != nil {
			t.Errorf("%s: %v %v", p, herr, aerr)
			continue
		}
		hst, ast := hs.Sys().(*syscall.Stat_t), as.Sys().(*syscall.Stat_t)
		if hst.Uid != ast.Uid || hst.Gid != ast.Gid || hs.Mode() != as.Mode() {
			t.Errorf("%s: %v %d:%d in the appliance, %v %d:%d on the host", p, as.Mode(), ast.Uid, ast.Gid, hs.Mode(), hst.Uid, hst.Gid)
		}
	}
	// usrmerge: the links as on the host, each file once.
	for _, l := range []string{"bin", "lib", "sbin"} {
		hl, herr := os.Readlink("/" + l)
		al, aerr := os.Readlink(filepath.Join(out, l))
		if herr == nil && (aerr != nil || hl != al) {
			t.Errorf("/%s: host link %q, appliance %q %v", l, hl, al, aerr)
		}
	}
}

// TestSupermin5Input builds a supermin.d made by Debian's real supermin.
func TestSupermin5Input(t *testing.T) {
	_, err := exec.LookPath("supermin")
	need(t, err == nil, "supermin 5 is not installed (apt-get install supermin)")
	dir := t.TempDir()
	sd, out := filepath.Join(dir, "supermin.d"), filepath.Join(dir, "out")
	cmd := exec.Command("supermin", "--prepare", "bash", "coreutils", "-o", sd)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("supermin --prepare: %v\n%s", err, o)
	}
	if r := gosupermin(t, "--build", "-f", "chroot", sd, "-o", out); r.code != 0 {
		t.Fatalf("build: %+v", r)
	}
	for _, p := range []string{"usr/bin/bash", "usr/bin/ls", "etc/bash.bashrc"} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if isRoot() {
		if got, err := exec.Command("chroot", out, "/bin/bash", "-c", "echo ok").CombinedOutput(); err != nil || string(got) != "ok\n" {
			t.Errorf("chroot: %q %v", got, err)
		}
	}
}

func targz(t *testing.T, hdrs ...*tar.Header) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range hdrs {
		var data []byte
		if h.Typeflag == tar.TypeReg {
			data = []byte("data\n")
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// TestBadInput: one clear line naming the file, exit 1, the previous
// output unchanged, nothing written outside the output, no temporary left.
func TestBadInput(t *testing.T) {
	const edge = "../../fixtures/dpkg/edge"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir, sd, root string)
		want  []string // in the message
	}{
		{"tar dotdot", func(t *testing.T, dir, sd, root string) {
			os.WriteFile(filepath.Join(sd, "base.tar.gz"), targz(t, &tar.Header{Name: "./etc/../../../escaped", Typeflag: tar.TypeReg, Mode: 0o644}), 0o644)
		}, []string{"base.tar.gz", ".. component"}},
		{"tar absolute", func(t *testing.T, dir, sd, root string) {
			os.WriteFile(filepath.Join(sd, "base.tar.gz"), targz(t, &tar.Header{Name: "/tmp/escaped", Typeflag: tar.TypeReg, Mode: 0o644}), 0o644)
		}, []string{"base.tar.gz", "absolute name"}},
		{"tar through symlink", func(t *testing.T, dir, sd, root string) {
			os.WriteFile(filepath.Join(sd, "base.tar.gz"), targz(t,
				&tar.Header{Name: "./etc/link", Typeflag: tar.TypeSymlink, Linkname: filepath.Join(dir, "victim"), Mode: 0o777},
				&tar.Header{Name: "./etc/link/evil", Typeflag: tar.TypeReg, Mode: 0o644}), 0o644)
		}, []string{"base.tar.gz", "write through symlink"}},
		{"truncated gzip", func(t *testing.T, dir, sd, root string) {
			data := targz(t, &tar.Header{Name: "./etc/x", Typeflag: tar.TypeReg, Mode: 0o644})
			os.WriteFile(filepath.Join(sd, "base.tar.gz"), data[:len(data)/2], 0o644)
		}, []string{"base.tar.gz", "gzip"}},
		{"unknown file type", func(t *testing.T, dir, sd, root string) {
			os.WriteFile(filepath.Join(sd, "weird"), []byte{0x7f, 'E', 'L', 'F', 2, 1}, 0o644)
		}, []string{"weird", "unknown file type"}},
		{"broken status paragraph", func(t *testing.T, dir, sd, root string) {
			f, _ := os.OpenFile(filepath.Join(root, "var/lib/dpkg/status"), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("\nPackage: broken\nStatus: install ok installed\nthis line is no field\n")
			f.Close()
		}, []string{"var/lib/dpkg/status", "line", "not a field"}},
		{"missing list", func(t *testing.T, dir, sd, root string) {
			os.Remove(filepath.Join(root, "var/lib/dpkg/info/natlib.list"))
		}, []string{"natlib.list", "missing file list"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			copyDir(t, edge, root)
			os.Mkdir(filepath.Join(dir, "victim"), 0o755)
			sd := filepath.Join(dir, "supermin.d")
			if r := gosupermin(t, "--prepare", "--root", root, "app", "-o", sd); r.code != 0 {
				t.Fatalf("prepare: %+v", r)
			}
			out := filepath.Join(dir, "out")
			if r := gosupermin(t, "--build", "--root", root, "-f", "chroot", sd, "-o", out); r.code != 0 {
				t.Fatalf("first build: %+v", r)
			}
			os.WriteFile(filepath.Join(out, "previous-output"), nil, 0o644)
			tc.setup(t, dir, sd, root)
			before := listDir(t, dir)
			r := gosupermin(t, "--build", "--root", root, "-f", "chroot", sd, "-o", out)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1: %+v", r.code, r)
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
				if !strings.HasPrefix(l, "gosupermin: warning: ") { // the fixture's broken version
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "gosupermin: ") {
				t.Errorf("want one line, got %q", r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("message %q lacks %q", r.stderr, w)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "previous-output")); err != nil {
				t.Error("the previous output is gone")
			}
			if after := listDir(t, dir); after != before {
				t.Errorf("files changed outside the output:\nbefore %s\nafter  %s", before, after)
			}
			if e, _ := os.ReadDir(filepath.Join(dir, "victim")); len(e) > 0 {
				t.Errorf("written through the symlink: %v", e)
			}
		})
	}
}

// listDir names the entries of dir and of its "victim" directory, and
// /tmp's escaped file, to see whether a failed build left anything.
func listDir(t *testing.T, dir string) string {
	var names []string
	for _, d := range []string{dir, filepath.Join(dir, "victim")} {
		es, _ := os.ReadDir(d)
		for _, e := range es {
			names = append(names, filepath.Join(d, e.Name()))
		}
	}
	if _, err := os.Lstat("/tmp/escaped"); err == nil {
		names = append(names, "/tmp/escaped")
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(dir), "escaped")); err == nil {
		names = append(names, "escaped")
	}
	return strings.Join(names, " ")
}

// TestInterrupt sends SIGINT while a large build is writing.
func TestInterrupt(t *testing.T) {
	_, err := os.Stat("/usr/share/doc/linux-image-amd64")
	need(t, err == nil, "needs a large package set: linux-image-amd64 (installed by .ci/run)")
	dir := t.TempDir()
	sd, out := filepath.Join(dir, "supermin.d"), filepath.Join(dir, "out")
	if r := gosupermin(t, "--prepare", "linux-image-amd64", "-o", sd); r.code != 0 {
		t.Fatalf("prepare: %+v", r)
	}
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "previous-output"), nil, 0o644)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd := exec.Command(bin, "--build", "-f", "chroot", sd, "-o", out)
		var se bytes.Buffer
		cmd.Stderr = &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the temporary output exists and holds something.
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			m, _ := filepath.Glob(filepath.Join(dir, "out.gosupermin-tmp-*", "usr"))
			if len(m) > 0 {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 || !strings.Contains(se.String(), "interrupted") {
			t.Fatalf("%v: %v, stderr %q; want exit 1 and 'interrupted'", sig, err, se.String())
		}
		if _, err := os.Stat(filepath.Join(out, "previous-output")); err != nil {
			t.Errorf("%v: previous output lost", sig)
		}
		if m := settled(filepath.Join(dir, "*gosupermin-tmp*")); len(m) > 0 {
			t.Errorf("%v: left behind %v", sig, m)
		}
	}
}

// TestLock: a run waits while another process holds the lock.
func TestLock(t *testing.T) {
	dir := t.TempDir()
	sd, out, lock := filepath.Join(dir, "sd"), filepath.Join(dir, "out"), filepath.Join(dir, "lock")
	os.MkdirAll(sd, 0o755)
	os.WriteFile(filepath.Join(sd, "packages"), []byte("alt-present\n"), 0o644)
	if r := gosupermin(t, "--build", "-f", "chroot", "--lock", filepath.Join(out, "lock"), "--root", "../../fixtures/dpkg/edge", sd, "-o", out); r.code != 1 || !strings.Contains(r.stderr, "must not be inside") {
		t.Errorf("lock inside the output: %+v", r)
	}
	// Hold the lock here: fcntl locks belong to a process, so the child
	// gosupermin must wait for it.
	f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--build", "-f", "chroot", "--lock", lock, "--root", "../../fixtures/dpkg/edge", sd, "-o", out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("finished while the lock was held: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("output written while the lock was held")
	}
	lk.Type = syscall.F_UNLCK
	syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after unlock: %v", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("still waiting after the lock was released")
	}
	if _, err := os.Stat(filepath.Join(out, "usr/bin/alt-present")); err != nil {
		t.Error(err)
	}
}

// TestOutputOverInput: an output that is, contains or lies inside an input
// or the root is refused before anything is written; the input survives.
func TestOutputOverInput(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	copyDir(t, "../../fixtures/dpkg/edge", root)
	sd := filepath.Join(dir, "supermin.d")
	if r := gosupermin(t, "--prepare", "--root", root, "app", "-o", sd); r.code != 0 {
		t.Fatalf("prepare: %+v", r)
	}
	if err := os.Symlink(sd, filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{sd, dir, filepath.Join(dir, "alias"), filepath.Join(sd, "out"), root, filepath.Join(root, "usr")} {
		r := gosupermin(t, "--build", "-f", "chroot", "--root", root, sd, "-o", out)
		if r.code != 1 || !strings.Contains(r.stderr, "gosupermin: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("-o %s: %+v, want one error line and exit 1", out, r)
		}
		for _, p := range []string{filepath.Join(sd, "packages"), filepath.Join(root, "var/lib/dpkg/status")} {
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("-o %s: %s is gone", out, p)
			}
		}
	}
}
