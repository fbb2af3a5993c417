package main

// The hardening issue's regression suite, end to end, as users run the
// binary: trees, supermin.d inputs and package databases written by an
// attacker, races against the build, huge and sparse archives, signals.
// Every case plants a canary, a host file outside every input holding a
// unique string, watches it with inotify (a build never even opens it) and
// scans every byte of every output it makes for the string: the chroot
// tree's files, link targets and xattrs, the ext2 image, the initrd (the
// cpio one decompressed). Every ext2 image is checked with e2fsck -fn.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	edgeFixture      = "../../fixtures/dpkg/edge"
	firstbootFixture = "../../fixtures/dpkg-firstboot"
	// hangDeadline only turns a hang into a failure: no build of this
	// suite comes near it.
	hangDeadline = 120 * time.Second
	// edgeControl is the content of a package file of the edge fixture,
	// libm:amd64's library (app pre-depends on libm; tests that ask for
	// alt-present ask for libm too): a scan that does not find it did not
	// read the output.
	edgeControl = "libm amd64"
)

// ---- running the binary ----

type proc struct {
	cmd    *exec.Cmd
	so, se bytes.Buffer
	done   chan struct{}
}

type hostileResult struct {
	result
	maxRSS int64 // bytes: the child's peak resident set, from wait4's rusage
}

// startIn starts gosupermin in directory wd ("" for ours) with env added
// to ours; it is killed at the end of the test if still running.
func startIn(t *testing.T, wd string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Dir = wd
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.so, &p.se
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	return p
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startIn(t, "", env, args...)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the end of p; a run past hangDeadline is a hang.
func (p *proc) wait(t *testing.T) hostileResult {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(hangDeadline):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("gosupermin %q still running after %v (a hang); stderr %q", p.cmd.Args[1:], hangDeadline, p.se.String())
	}
	r := hostileResult{result: result{p.cmd.ProcessState.ExitCode(), p.so.String(), p.se.String()}}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss << 10
	}
	return r
}

// runBin runs gosupermin to its end, bounded by hangDeadline.
func runBin(t *testing.T, env []string, args ...string) hostileResult {
	t.Helper()
	return start(t, env, args...).wait(t)
}

// waitUntil polls cond until it holds (true) or p has exited (false).
func waitUntil(t *testing.T, p *proc, what string, cond func() bool) bool {
	t.Helper()
	for deadline := time.Now().Add(hangDeadline); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return true
		}
		if p.exited() {
			return cond()
		}
	}
	t.Fatalf("waiting for %s: still running after %v", what, hangDeadline)
	return false
}

// hasOpen says whether process pid has file p open.
func hasOpen(pid int, p string) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && l == p {
			return true
		}
	}
	return false
}

// liveTemps are out's temporary directories now, while a build runs.
func liveTemps(out string) []string {
	m, _ := filepath.Glob(out + ".gosupermin-tmp-*")
	return m
}

// temps are out's temporary directories once the builds that ran have
// ended: a build hands the previous output it replaced to a process of its
// own to remove, which holds the directory's flock until it is gone.
func temps(out string) []string {
	return settled(out + ".gosupermin-tmp-*")
}

// settled lists what matches pattern once no process holds an flock on
// any of it (waiting a minute at most).
func settled(pattern string) []string {
	deadline := time.Now().Add(time.Minute)
	for {
		m, _ := filepath.Glob(pattern)
		busy := false
		for _, p := range m {
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
				busy = true
			}
			f.Close()
		}
		if !busy || time.Now().After(deadline) {
			m, _ = filepath.Glob(pattern)
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// errorLines are the lines of stderr that are not warnings.
func errorLines(stderr string) []string {
	var errs []string
	for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if l != "" && !strings.HasPrefix(l, "gosupermin: warning: ") {
			errs = append(errs, l)
		}
	}
	return errs
}

// wantError checks the rule for errors: exit 1 and one line
// "gosupermin: ..." holding every want.
func wantError(t *testing.T, r hostileResult, wants ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit %d, want 1; stderr %q", r.code, r.stderr)
	}
	if errs := errorLines(r.stderr); len(errs) != 1 || !strings.HasPrefix(errs[0], "gosupermin: ") {
		t.Errorf("want one error line \"gosupermin: ...\", got %q", r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("error %q lacks %q", r.stderr, w)
		}
	}
}

func wantOK(t *testing.T, r hostileResult, what string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d, stderr %q", what, r.code, r.stderr)
	}
}

// ---- the canary ----

// canary is a secret planted in host files outside the tree and the
// inputs, each watched with inotify for any open or read.
type canary struct {
	secret string
	fd     int
	watch  map[int32]string // inotify watch -> path
	first  string
}

// newCanary plants the canary at dir/canary.
func newCanary(t *testing.T, dir string) *canary {
	t.Helper()
	var b [12]byte
	crand.Read(b[:])
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	c := &canary{secret: "gosupermin-hostile-canary-" + hex.EncodeToString(b[:]), fd: fd, watch: map[int32]string{}}
	c.first = filepath.Join(dir, "canary")
	c.plant(t, c.first)
	return c
}

func (c *canary) path() string { return c.first }

// plant writes the canary at p and watches it.
func (c *canary) plant(t *testing.T, p string) {
	t.Helper()
	c.plantData(t, p, []byte(c.secret+"\n"))
}

// plantData writes data, which holds the secret, at p and watches it.
func (c *canary) plantData(t *testing.T, p string, data []byte) {
	t.Helper()
	if !bytes.Contains(data, []byte(c.secret)) {
		t.Fatal("plantData: the data lacks the secret")
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	wd, err := unix.InotifyAddWatch(c.fd, p, unix.IN_OPEN|unix.IN_ACCESS)
	if err != nil {
		t.Fatalf("inotify %s: %v", p, err)
	}
	c.watch[int32(wd)] = p
}

// unopened fails the test if a planted canary was opened or read.
func (c *canary) unopened(t *testing.T) {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Read(c.fd, buf)
	if errors.Is(err, unix.EAGAIN) {
		return
	}
	if err != nil {
		t.Fatalf("inotify read: %v", err)
	}
	seen := map[string]bool{}
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		wd := int32(binary.NativeEndian.Uint32(buf[off:]))
		mask := binary.NativeEndian.Uint32(buf[off+4:])
		off += unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[off+12:]))
		if p := c.watch[wd]; !seen[p] {
			seen[p] = true
			t.Errorf("%s, a host file outside the tree, was opened or read (inotify mask %#x): a link was followed out", p, mask)
		}
	}
}

// notIn checks that no message shows the secret.
func (c *canary) notIn(t *testing.T, r hostileResult) {
	t.Helper()
	if strings.Contains(r.stdout+r.stderr, c.secret) {
		t.Errorf("the canary's content is in the messages: %q %q", r.stdout, r.stderr)
	}
}

// ---- scanning every byte of an output ----

// finder looks for needles in a stream written to it in pieces.
type finder struct {
	needles [][]byte
	found   []bool
	tail    []byte
	keep    int
	n       int64
}

func newFinder(needles ...string) *finder {
	f := &finder{found: make([]bool, len(needles))}
	for _, s := range needles {
		f.needles = append(f.needles, []byte(s))
		f.keep = max(f.keep, len(s)-1)
	}
	return f
}

func (f *finder) Write(p []byte) (int, error) {
	f.n += int64(len(p))
	if len(f.tail) > 0 {
		f.search(append(f.tail[:len(f.tail):len(f.tail)], p[:min(len(p), f.keep)]...))
	}
	f.search(p)
	if len(p) >= f.keep {
		f.tail = append(f.tail[:0], p[len(p)-f.keep:]...)
	} else {
		f.tail = append(f.tail, p...)
		f.tail = f.tail[max(0, len(f.tail)-f.keep):]
	}
	return len(p), nil
}

func (f *finder) search(b []byte) {
	for i, n := range f.needles {
		if !f.found[i] && bytes.Contains(b, n) {
			f.found[i] = true
		}
	}
}

// cut ends a stream: nothing spans the cut.
func (f *finder) cut() { f.tail = f.tail[:0] }

func (f *finder) text(s []byte) {
	f.cut()
	f.Write(s)
	f.cut()
}

// scanOut reads every byte of the output out without following its
// symlinks (their targets are the output's text): the names, link targets,
// xattrs and data of its files, holes skipped, and the decompressed stream
// of every zstd or gzip file (the cpio initrd). The secret anywhere is an
// error naming the file; each control must be found, or the scan is blind.
func scanOut(t *testing.T, out, secret string, controls ...string) {
	t.Helper()
	f := newFinder(append([]string{secret}, controls...)...)
	files := 0
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		files++
		f.text([]byte(d.Name()))
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			f.text([]byte(l))
		case fi.Mode().IsRegular():
			if err := scanFile(t, p, f); err != nil {
				return err
			}
		}
		scanXattrs(p, f)
		if f.found[0] {
			t.Errorf("%s holds the canary's content, read from a host file outside the tree", p)
			f.found[0] = false
		}
		return nil
	})
	if err != nil {
		t.Errorf("scan %s: %v", out, err)
	}
	for i, c := range controls {
		if !f.found[i+1] {
			t.Errorf("the scan of %s (%d files, %d bytes) did not find %q: it proves nothing", out, files, f.n, c)
		}
	}
}

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

func scanFile(t *testing.T, p string, f *finder) error {
	file, err := os.Open(p)
	if err != nil {
		return err
	}
	defer file.Close()
	magic := make([]byte, 4)
	n, _ := io.ReadFull(file, magic)
	magic = magic[:n]
	if err := scanData(file, f); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	f.cut()
	switch {
	case bytes.Equal(magic, zstdMagic):
		zstd, err := exec.LookPath("zstd")
		need(t, err == nil, "zstd is not installed (apt-get install zstd): cannot read a zstd initrd")
		var se bytes.Buffer
		cmd := exec.Command(zstd, "-dc", "--", p)
		cmd.Stdout, cmd.Stderr = f, &se
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("zstd -dc %s: %v %s", p, err, se.String())
		}
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		zr, err := gzip.NewReader(file)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if _, err := io.CopyBuffer(f, zr, make([]byte, 1<<20)); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	f.cut()
	return nil
}

// scanData reads the data of file, its holes skipped (SEEK_DATA).
func scanData(file *os.File, f *finder) error {
	fi, err := file.Stat()
	if err != nil {
		return err
	}
	fd := int(file.Fd())
	buf := make([]byte, 1<<20)
	for off := int64(0); off < fi.Size(); {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil
		}
		end := fi.Size()
		if err != nil {
			data = off // no SEEK_DATA here: all of it
		} else if end, err = unix.Seek(fd, data, unix.SEEK_HOLE); err != nil {
			return err
		}
		f.cut()
		if _, err := io.CopyBuffer(f, io.NewSectionReader(file, data, end-data), buf); err != nil {
			return err
		}
		off = end
	}
	return nil
}

func scanXattrs(p string, f *finder) {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return
	}
	for _, name := range strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00") {
		v := make([]byte, 64<<10)
		if m, err := unix.Lgetxattr(p, name, v); err == nil {
			f.text(v[:m])
		}
	}
}

// lookTool finds a program on PATH or in the sbin directories.
func lookTool(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name), true
		}
	}
	return "", false
}

// fsck checks an ext2 image with e2fsck -fn.
func fsck(t *testing.T, img string) {
	t.Helper()
	e2fsck, ok := lookTool("e2fsck")
	need(t, ok, "e2fsck is not installed (apt-get install e2fsprogs)")
	if r := runCmd(t, e2fsck, "-fn", img); r.code != 0 {
		t.Errorf("e2fsck -fn %s: exit %d\n%s%s", img, r.code, r.stdout, r.stderr)
	}
}

// checkOut scans out and checks its ext2 image, if it has one.
func checkOut(t *testing.T, out, secret string, controls ...string) {
	t.Helper()
	scanOut(t, out, secret, controls...)
	// An ext2 output's image; a chroot tree's /root is a directory.
	if fi, err := os.Lstat(filepath.Join(out, "root")); err == nil && fi.Mode().IsRegular() {
		fsck(t, filepath.Join(out, "root"))
	}
}

// setup is a test's directory with its canary and the edge tree asking
// for roots (see edgeTree).
func setup(t *testing.T, roots ...string) (dir string, c *canary, root, sd string) {
	t.Helper()
	dir = t.TempDir()
	c = newCanary(t, dir)
	root, sd = edgeTree(t, dir, roots...)
	return dir, c, root, sd
}

// run runs gosupermin to its end; no message may show the secret.
func (c *canary) run(t *testing.T, env []string, args ...string) hostileResult {
	t.Helper()
	r := runBin(t, env, args...)
	c.notIn(t, r)
	return r
}

// ---- formats and kernels ----

type format struct {
	name string
	args []string // -f and its options
	env  []string // the kernel, for ext2 and cpio
}

// argv is the command line of a build of root into out in format f.
func (f format) argv(root, out string, inputs ...string) []string {
	return append(append(append([]string{"--build", "--root", root}, f.args...), inputs...), "-o", out)
}

// kernelEnv names the host kernel for a tree that has none, with modules
// ("" for the host's own module directory).
func kernelEnv(t *testing.T, modules string) []string {
	t.Helper()
	k, ok := hostKernel()
	need(t, ok, "no host kernel in /boot (apt-get install linux-image-amd64)")
	if modules == "" {
		modules = k.modules
	}
	return []string{"SUPERMIN_KERNEL=" + k.path, "SUPERMIN_MODULES=" + modules}
}

// optionalKernel is the host kernel for a test whose chroot builds run
// without one; without it (outside CI) the ext2 and cpio builds are left out.
func optionalKernel(t *testing.T) (kernelFiles, bool) {
	t.Helper()
	k, ok := hostKernel()
	if !ok {
		if os.Getenv("CI") != "" {
			t.Fatal("CI: no host kernel in /boot (apt-get install linux-image-amd64)")
		}
		t.Log("no host kernel in /boot: the ext2 and cpio builds are left out")
	}
	return k, ok
}

// miniModules makes a module directory with no modules (an empty
// modules.dep): ext2 builds that do not copy the host's 400 MiB of modules.
func miniModules(t *testing.T, dir string) string {
	t.Helper()
	mods := filepath.Join(dir, "mods")
	writeFiles(t, mods, map[string]string{"modules.dep": ""})
	return mods
}

// formats are the three formats: ext2 and cpio with the host kernel and
// the given modules, ext2 in an image of size.
func formats(t *testing.T, modules, size string) []format {
	env := kernelEnv(t, modules)
	return []format{
		{"chroot", []string{"-f", "chroot"}, nil},
		{"ext2", []string{"-f", "ext2", "--size", size}, env},
		{"cpio", []string{"-f", "cpio"}, env},
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, data := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	os.Remove(link)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// linkTo is the target of a symlink at link leading to p on the host:
// absolute, or relative with ../ climbing out of the tree.
func linkTo(form, link, p string) string {
	if form == "absolute" {
		return p
	}
	rel, _ := filepath.Rel(filepath.Dir(link), p)
	return rel
}

func randomHex() string {
	var b [8]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// edgeTree copies the edge fixture to dir/root with a supermin.d dir/sd
// asking for roots; it returns both.
func edgeTree(t *testing.T, dir string, roots ...string) (root, sd string) {
	t.Helper()
	root, sd = filepath.Join(dir, "root"), filepath.Join(dir, "sd")
	copyDir(t, edgeFixture, root)
	writeFiles(t, sd, map[string]string{"packages": strings.Join(roots, "\n") + "\n"})
	return root, sd
}

// ---- 1: symlinks out of the tree ----

// TestHostileSymlinkOut: maintainer scripts, a package file, hostfiles and
// kernel module files of the tree are symlinks to a host file (absolute
// and ../ forms): never followed, in any format; the database's own
// files linked out are a clear error.
func TestHostileSymlinkOut(t *testing.T) {
	k, haveKernel := optionalKernel(t)
	ver := strings.TrimPrefix(filepath.Base(k.path), "vmlinuz-")
	for _, form := range []string{"absolute", "relative"} {
		t.Run(form, func(t *testing.T) {
			dir := t.TempDir()
			c := newCanary(t, dir)
			root, sd := filepath.Join(dir, "root"), filepath.Join(dir, "sd")
			copyDir(t, firstbootFixture, root)
			control := "hostile-control-" + randomHex()
			writeFiles(t, root, map[string]string{
				"usr/share/fbtest/zeta.txt":           control + "\n",
				"lib/modules/" + ver + "/modules.dep": "",
			})
			links := []string{
				"var/lib/dpkg/info/fb-alpha.postinst", "var/lib/dpkg/info/fb-alpha.preinst",
				"var/lib/dpkg/info/fb-alpha.config", "var/lib/dpkg/info/fb-alpha.templates",
				"var/lib/dpkg/info/fb-zeta.postinst", "var/lib/dpkg/info/fb-trigger:amd64.postinst",
				"var/lib/dpkg/info/fb-trigger:amd64.triggers",
				"usr/share/fbtest/alpha.txt",      // a package file
				"etc/hostlink", "srv/glob/secret", // hostfiles
				"lib/modules/" + ver + "/kernel/evil.ko", "lib/modules/" + ver + "/modules.builtin",
				"lib/modules/" + ver + "/modules.softdep",
			}
			targets := map[string]string{}
			for _, l := range links {
				p := filepath.Join(root, l)
				targets[l] = linkTo(form, p, c.path())
				symlink(t, targets[l], p)
			}
			// A directory of the tree that is a link to the canary's
			// directory, and a hostfile through it.
			symlink(t, linkTo(form, filepath.Join(root, "srv/hostdir"), dir), filepath.Join(root, "srv/hostdir"))
			writeFiles(t, sd, map[string]string{
				"packages":  "fb-alpha\nfb-trigger\nfb-zeta\n",
				"hostfiles": "/etc/hostlink\n/srv/glob/*\n/srv/hostdir/canary\n" + c.path() + "\n",
			})
			treeMods := []string{"SUPERMIN_KERNEL=" + k.path}
			builds := []format{
				{"chroot", []string{"-f", "chroot"}, nil},
				{"ext2", []string{"-f", "ext2", "--size", "64M"}, treeMods},
				{"cpio", []string{"-f", "cpio"}, treeMods},
				{"cpio-uncompressed", []string{"-f", "cpio", "--compress", "none"}, treeMods},
			}
			if !haveKernel {
				builds = builds[:1]
			}
			for _, b := range builds {
				out := filepath.Join(dir, "out-"+b.name)
				r := c.run(t, b.env, b.argv(root, out, "--firstboot", sd)...)
				wantOK(t, r, b.name)
				checkOut(t, out, c.secret, control)
			}
			chroot := filepath.Join(dir, "out-chroot")
			for _, l := range []string{"usr/share/fbtest/alpha.txt", "etc/hostlink"} {
				if got, err := os.Readlink(filepath.Join(chroot, l)); err != nil || got != targets[l] {
					t.Errorf("%s: %q %v, want the tree's own link to %q", l, got, err, targets[l])
				}
			}
			manifest, err := os.ReadFile(filepath.Join(chroot, "usr/lib/gosupermin/firstboot/manifest"))
			if err != nil || strings.Contains(string(manifest), "fb-alpha.postinst") || !strings.Contains(string(manifest), "fb-mid.postinst") {
				t.Errorf("firstboot manifest (%v): want fb-mid's postinst and not fb-alpha's (a link out):\n%s", err, manifest)
			}
			c.unopened(t)
		})
	}

	// A module directory whose modules.dep lists a module that is a link
	// to a host file (an ELF object holding the canary) and whose indexes
	// are links too: the tree's own (found from the kernel's release), the
	// tree's named with SUPERMIN_MODULES (as one does when the tree's
	// kernel is not found), a directory of the caller's. The build may
	// fail (a module is missing) with one line naming it, or succeed
	// without it; the host file is never read.
	for _, where := range []string{"tree", "tree named", "named"} {
		for _, form := range []string{"absolute", "relative"} {
			t.Run("modules/"+where+"/"+form, func(t *testing.T) {
				need(t, haveKernel, "no host kernel in /boot (apt-get install linux-image-amd64)")
				dir, c, root, sd := setup(t, "alt-present", "libm")
				elf := filepath.Join(dir, "host-module.ko")
				c.plantData(t, elf, []byte("\x7fELF\x02\x01\x01\x00"+c.secret+"\n"))
				mods := filepath.Join(root, "lib/modules", ver)
				env := []string{"SUPERMIN_KERNEL=" + k.path}
				switch where {
				case "tree named":
					env = append(env, "SUPERMIN_MODULES="+mods)
				case "named":
					mods = filepath.Join(dir, "mods")
					env = append(env, "SUPERMIN_MODULES="+mods)
				}
				writeFiles(t, mods, map[string]string{"modules.dep": "kernel/virtio_blk.ko:\n"})
				ko := filepath.Join(mods, "kernel/virtio_blk.ko")
				symlink(t, linkTo(form, ko, elf), ko)
				for _, l := range []string{"modules.builtin", "modules.softdep", "modules.alias"} {
					symlink(t, linkTo(form, filepath.Join(mods, l), c.path()), filepath.Join(mods, l))
				}
				for _, f := range []format{{"ext2", []string{"-f", "ext2", "--size", "64M"}, env}, {"cpio", []string{"-f", "cpio"}, env}} {
					out := filepath.Join(dir, "out-"+f.name)
					r := c.run(t, f.env, f.argv(root, out, sd)...)
					if r.code == 0 {
						checkOut(t, out, c.secret, edgeControl)
					} else {
						wantError(t, r, ko)
					}
					t.Logf("%s: exit %d %s", f.name, r.code, r.stderr)
				}
				c.unopened(t)
			})
		}
	}

	// The database's own files linked out: the database is broken.
	for _, tc := range []struct{ name, link, want string }{
		{"status", "var/lib/dpkg/status", "no package database found under"},
		{"file list", "var/lib/dpkg/info/fb-alpha.list", "var/lib/dpkg/info/fb-alpha.list"},
	} {
		for _, form := range []string{"absolute", "relative"} {
			t.Run(tc.name+"/"+form, func(t *testing.T) {
				dir := t.TempDir()
				c := newCanary(t, dir)
				root, sd := filepath.Join(dir, "root"), filepath.Join(dir, "sd")
				copyDir(t, firstbootFixture, root)
				writeFiles(t, sd, map[string]string{"packages": "fb-alpha\n"})
				p := filepath.Join(root, tc.link)
				symlink(t, linkTo(form, p, c.path()), p)
				out := filepath.Join(dir, "out")
				r := c.run(t, nil, "--build", "--firstboot", "-f", "chroot", "--root", root, sd, "-o", out)
				wantError(t, r, root, tc.want)
				if _, err := os.Lstat(out); err == nil || len(temps(out)) > 0 {
					t.Errorf("a failed build left %s or a temporary: %v", out, temps(out))
				}
				c.unopened(t)
			})
		}
	}
}

// ---- 2: database fields as path components ----

// statusEntry is a status paragraph of an installed Multi-Arch: same package.
func statusEntry(name, arch, version string) string {
	return "Package: " + name + "\nStatus: install ok installed\nMulti-Arch: same\nArchitecture: " + arch + "\nVersion: " + version + "\n"
}

const hostileStatusHead = `Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21.22

`

// TestHostileDatabaseFields: a status entry whose Architecture (Multi-Arch:
// same, so it is in the info files' names), Package or Version climbs out
// with ../ or holds NUL or a newline is one clear error naming the status
// file and the entry; the files at the paths it leads to are never read.
func TestHostileDatabaseFields(t *testing.T) {
	suffixes := []string{".list", ".postinst", ".preinst", ".prerm", ".postrm", ".config", ".templates", ".conffiles", ".triggers", ".md5sums"}
	for _, tc := range []struct {
		name  string
		entry func(dir string) string // the bar paragraph
		// plant are the names (relative to the root, or absolute) where the
		// info files of the entry would be read, without suffix.
		plant func(dir string) []string
		want  []string
	}{
		{"Architecture climbs in the tree", func(string) string {
			return statusEntry("bar", "/../../../../tmp/x/evil", "1.0-1")
		}, func(string) []string { return []string{"var/tmp/x/evil"} }, []string{"package bar (line 6)", "bad Architecture"}},
		{"Architecture climbs out of the tree", func(dir string) string {
			return statusEntry("bar", "/"+strings.Repeat("../", 40)+dir[1:]+"/evil", "1.0-1")
		}, func(dir string) []string { return []string{filepath.Join(dir, "evil")} }, []string{"package bar (line 6)", "bad Architecture"}},
		{"Package climbs", func(string) string {
			return statusEntry("../../../../evilpkg", "amd64", "1.0-1")
		}, func(string) []string { return []string{"evilpkg"} }, []string{"paragraph at line 6", "bad package name"}},
		{"Package climbs out of the tree", func(dir string) string {
			return statusEntry(strings.Repeat("../", 40)+dir[1:]+"/evilpkg", "amd64", "1.0-1")
		}, func(dir string) []string { return []string{filepath.Join(dir, "evilpkg")} }, []string{"paragraph at line 6", "bad package name"}},
		{"Version with a slash", func(string) string { return statusEntry("bar", "amd64", "1.0/../../../../evil") },
			nil, []string{"package bar (line 6)", "bad version", `"/"`}},
		{"Version with a NUL byte", func(string) string { return statusEntry("bar", "amd64", "1.0\x00/../../evil") },
			nil, []string{"package bar (line 6)", "NUL byte"}},
		{"Version with a newline", func(string) string { return statusEntry("bar", "amd64", "1.0\n /../../../evil") },
			nil, []string{"package bar (line 6)", "bad version"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := newCanary(t, dir)
			root, sd, out := filepath.Join(dir, "root"), filepath.Join(dir, "sd"), filepath.Join(dir, "out")
			control := "hostile-control-" + randomHex()
			good := statusEntry("bar", "amd64", "1.0-1")
			writeFiles(t, root, map[string]string{
				"var/lib/dpkg/status":                  hostileStatusHead + good,
				"var/lib/dpkg/info/dpkg.list":          "/.\n/usr\n/usr/bin\n/usr/bin/dpkg\n",
				"var/lib/dpkg/info/bar:amd64.list":     "/.\n/usr\n/usr/bin\n/usr/bin/bar\n",
				"var/lib/dpkg/info/bar:amd64.postinst": "#!/bin/sh\n",
				"usr/bin/dpkg":                         "dpkg\n",
				"usr/bin/bar":                          control + "\n",
			})
			// The directory a kernel lookup of "bar:/../.." goes through.
			os.MkdirAll(filepath.Join(root, "var/lib/dpkg/info/bar:"), 0o755)
			writeFiles(t, sd, map[string]string{"packages": "bar\nevilpkg\n"})
			// The tree is good before the entry is made hostile.
			r := c.run(t, nil, "--build", "--firstboot", "--include-packagelist", "-f", "chroot", "--root", root, sd, "-o", out)
			wantOK(t, r, "the good tree")
			checkOut(t, out, c.secret, control)
			if tc.plant != nil {
				for _, p := range tc.plant(dir) {
					if !filepath.IsAbs(p) {
						p = filepath.Join(root, p)
					}
					for _, s := range suffixes {
						c.plant(t, p+s)
					}
					c.plant(t, p)
				}
			}
			status := filepath.Join(root, "var/lib/dpkg/status")
			writeFiles(t, root, map[string]string{"var/lib/dpkg/status": hostileStatusHead + tc.entry(dir)})
			before := inputsDigest(t, c, dir, root, sd)
			r = c.run(t, nil, "--build", "--firstboot", "--include-packagelist", "-f", "chroot", "--root", root, sd, "-o", out)
			wantError(t, r, append([]string{status}, tc.want...)...)
			if after := inputsDigest(t, c, dir, root, sd); after != before {
				t.Errorf("the failed build changed files outside the output")
			}
			if len(temps(out)) > 0 {
				t.Errorf("temporaries left: %v", temps(out))
			}
			checkOut(t, out, c.secret, control) // the previous output, intact
			c.unopened(t)
		})
	}
}

// inputsDigest sums the names in dir and all of root and sd (without
// reading the canaries: only their names and sizes).
func inputsDigest(t *testing.T, c *canary, dir, root, sd string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ") + " " + c.treeDigest(t, root) + " " + c.treeDigest(t, sd)
}

// treeDigest is the package's treeDigest without reading the canaries.
func (c *canary) treeDigest(t *testing.T, dir string) string {
	t.Helper()
	planted := map[string]bool{}
	for _, p := range c.watch {
		planted[p] = true
	}
	return digest(t, dir, func(p string) bool { return planted[p] })
}

// treeDigest sums what is under dir: names, kinds, modes, sizes, data,
// link targets.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	return digest(t, dir, func(string) bool { return false })
}

// digest is treeDigest, but for the data of the files that noData names.
func digest(t *testing.T, dir string, noData func(string) bool) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%v\x00%d\x00", rel, fi.Mode(), fi.Size())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			fmt.Fprintf(h, "%s\x00", l)
		case fi.Mode().IsRegular() && !noData(p):
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("digest %s: %v", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ---- 3: time of check, time of use ----

// TestHostileSwapRace: while builds run, a goroutine keeps swapping a
// package file (or a directory of the tree) with a symlink out of the tree
// (renameat2 RENAME_EXCHANGE). No output ever holds the canary and the
// canary is never opened; a build may fail, with one clear line naming the
// tree's file. Bounded by a number of rounds; some builds must succeed.
func TestHostileSwapRace(t *testing.T) {
	_, haveKernel := optionalKernel(t)
	for _, tc := range []struct {
		name   string
		path   string // in the tree
		rounds int
		// other makes what is swapped in: a link out.
		other func(t *testing.T, c *canary, dir, link string) string
	}{
		{"file and absolute link", "usr/bin/app", 40, func(t *testing.T, c *canary, dir, link string) string {
			return c.path()
		}},
		{"file and relative link", "usr/bin/app", 40, func(t *testing.T, c *canary, dir, link string) string {
			return linkTo("relative", link, c.path())
		}},
		{"directory and link", "usr/share/doc/app", 40, func(t *testing.T, c *canary, dir, link string) string {
			c.plant(t, filepath.Join(dir, "hostdoc/README"))
			return filepath.Join(dir, "hostdoc")
		}},
		{"bin directory and link", "usr/bin", 40, func(t *testing.T, c *canary, dir, link string) string {
			for _, f := range []string{"app", "alt-present", "tool", "mta-a", "natlib"} {
				c.plant(t, filepath.Join(dir, "hostbin", f))
			}
			return linkTo("relative", link, filepath.Join(dir, "hostbin"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, c, root, sd := setup(t, "app")
			fmts := []format{{"chroot", []string{"-f", "chroot"}, nil}}
			if haveKernel {
				env := kernelEnv(t, miniModules(t, dir))
				fmts = append(fmts, format{"ext2", []string{"-f", "ext2", "--size", "64M"}, env}, format{"cpio", []string{"-f", "cpio"}, env})
			}
			a, b := filepath.Join(root, tc.path), filepath.Join(root, "swap-slot")
			symlink(t, tc.other(t, c, dir, b), b)
			if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
				need(t, !errors.Is(err, unix.EINVAL), "the file system of the test's temporary directory has no RENAME_EXCHANGE")
				t.Fatal(err)
			}
			unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
			stop, done := make(chan struct{}), make(chan error, 1)
			var swaps atomic.Int64
			go func() {
				for {
					select {
					case <-stop:
						var err error
						if swaps.Load()%2 == 1 { // put the tree back
							err = unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
						}
						done <- err
						return
					default:
					}
					if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
						done <- err
						return
					}
					swaps.Add(1)
					time.Sleep(50 * time.Microsecond) // pace, so that the builds get the CPU
				}
			}()
			stopped := false
			stopSwaps := func() error {
				if stopped {
					return nil
				}
				stopped = true
				close(stop)
				return <-done
			}
			defer stopSwaps() // also when the test fails on the way
			count := map[string][2]int{}
			links, example := 0, ""
			for i := range tc.rounds {
				f := fmts[0]
				if i%10 == 3 && len(fmts) > 1 {
					f = fmts[1+i/10%2]
				}
				out := filepath.Join(dir, "out-"+f.name)
				r := c.run(t, f.env, f.argv(root, out, sd)...)
				n := count[f.name]
				switch r.code {
				case 0:
					n[0]++
					checkOut(t, out, c.secret, edgeControl)
					if fi, err := os.Lstat(filepath.Join(out, tc.path)); f.name == "chroot" && err == nil && fi.Mode()&fs.ModeSymlink != 0 {
						links++ // built while the link was in place
					}
				default:
					n[1]++
					wantError(t, r, root)
					if example == "" {
						example = r.stderr
					}
				}
				count[f.name] = n
				if len(temps(out)) > 0 {
					t.Errorf("temporaries left: %v", temps(out))
				}
			}
			if err := stopSwaps(); err != nil {
				t.Fatalf("swap: %v", err)
			}
			ok := 0
			for name, n := range count {
				t.Logf("%s: %d builds succeeded, %d failed with a clear error", name, n[0], n[1])
				ok += n[0]
			}
			t.Logf("%d swaps; %d chroot outputs have the link; a failure: %q", swaps.Load(), links, example)
			if ok == 0 || swaps.Load() == 0 {
				t.Errorf("%d successful builds, %d swaps in %d rounds: the race proves nothing", ok, swaps.Load(), tc.rounds)
			}
			c.unopened(t)
		})
	}
}

// ---- base images: sparse, huge ----

// TestHostileSparseBaseImage: a base image holding a sparse file of 100 GiB
// (GNU tar's posix sparse formats 0.0, 0.1, 1.0 and the old GNU one, with
// more extents than the old header holds) builds in little memory, and the
// file keeps its holes.
func TestHostileSparseBaseImage(t *testing.T) {
	tarPath, err := exec.LookPath("tar")
	need(t, err == nil, "tar is not installed")
	if v, _ := exec.Command(tarPath, "--version").Output(); !bytes.Contains(v, []byte("GNU tar")) {
		need(t, false, "tar is not GNU tar")
	}
	_, err = exec.LookPath("gzip")
	need(t, err == nil, "gzip is not installed")
	const size = 100 << 30
	dir := t.TempDir()
	c := newCanary(t, dir)
	root, _ := edgeTree(t, dir)
	src := filepath.Join(dir, "src")
	big := filepath.Join(src, "srv/big")
	os.MkdirAll(filepath.Dir(big), 0o755)
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Eleven extents: more than the old GNU header's four.
	marks := map[int64]string{}
	for i := int64(0); i < 10; i++ {
		marks[i*10<<30+i*4096] = fmt.Sprintf("hostile-extent-%d-%s", i, randomHex())
	}
	marks[size-8] = "the-tail"
	for off, s := range marks {
		if _, err := f.WriteAt([]byte(s), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	symlink(t, c.path(), filepath.Join(src, "srv/canary-link"))
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"posix 1.0", []string{"--format=posix"}},
		{"posix 0.1", []string{"--format=posix", "--sparse-version=0.1"}},
		{"posix 0.0", []string{"--format=posix", "--sparse-version=0.0"}},
		{"old gnu", []string{"--format=gnu"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sd := filepath.Join(dir, "sd-"+strings.ReplaceAll(tc.name, " ", "-"))
			writeFiles(t, sd, map[string]string{"packages": "alt-present\nlibm\n"})
			args := append([]string{"-C", src, "--sparse", "-czf", filepath.Join(sd, "base.tar.gz")}, tc.args...)
			if r := runCmd(t, append([]string{tarPath}, append(args, "./srv")...)...); r.code != 0 {
				t.Fatalf("tar: %+v", r)
			}
			out := filepath.Join(dir, "out-"+filepath.Base(sd))
			r := c.run(t, nil, "--build", "-f", "chroot", "--root", root, sd, "-o", out)
			wantOK(t, r, "build")
			t.Logf("peak RSS %d MiB", r.maxRSS>>20)
			if r.maxRSS > 150<<20 {
				t.Errorf("peak RSS %d MiB, want under 150 MiB", r.maxRSS>>20)
			}
			checkSparse(t, filepath.Join(out, "srv/big"), size, 1<<20, marks)
			var controls []string
			for _, s := range marks {
				controls = append(controls, s)
			}
			checkOut(t, out, c.secret, controls...)
		})
	}
	c.unopened(t)
}

// checkSparse checks that p is size bytes, with marks at their offsets,
// in at most alloc bytes of disk.
func checkSparse(t *testing.T, p string, size, alloc int64, marks map[int64]string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Size() != size || st.Blocks*512 > alloc {
		t.Errorf("%s: %d bytes in %d bytes of disk, want %d bytes in at most %d (holes kept)", p, fi.Size(), st.Blocks*512, size, alloc)
	}
	for off, s := range marks {
		b := make([]byte, len(s))
		if _, err := f.ReadAt(b, off); err != nil || string(b) != s {
			t.Errorf("%s at %d: %q %v, want %q", p, off, b, err, s)
		}
	}
}

// bigFile is a file of a generated base image: zeros, or printable
// pseudo-random data (see chunkData), size a multiple of bigChunk.
type bigFile struct {
	name string
	size int64
	zero bool
}

const bigChunk = 1 << 20

// chunkData is data chunk v of 8: a pseudo-random 4 KiB block repeated.
func chunkData(v int) []byte {
	r := mrand.New(mrand.NewPCG(uint64(v), 42))
	block := make([]byte, 4096)
	for i := range block {
		block[i] = byte('!' + r.IntN(94))
	}
	return bytes.Repeat(block, bigChunk/4096)
}

// dataAt is what a data bigFile holds at off.
func dataAt(off int64, n int) []byte {
	var out []byte
	for len(out) < n {
		c := chunkData(int(off / bigChunk % 8))
		i := off % bigChunk
		k := min(int64(n-len(out)), bigChunk-i)
		out = append(out, c[i:i+k]...)
		off += k
	}
	return out
}

// bigTarGz writes at p a .tar.gz of the files and of extra entries (no
// data). It is cheap: the gzip stream is a series of members, one a chunk
// of 1 MiB, each distinct chunk compressed once (gzip readers read every
// member: one stream).
func bigTarGz(t *testing.T, p string, extra []*tar.Header, files ...bigFile) {
	t.Helper()
	member := func(data []byte) []byte {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		zw.Write(data)
		zw.Close()
		return buf.Bytes()
	}
	header := func(h *tar.Header) []byte {
		var buf bytes.Buffer
		if err := tar.NewWriter(&buf).WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		return member(buf.Bytes())
	}
	zero := member(make([]byte, bigChunk))
	var data [8][]byte
	for v := range data {
		data[v] = member(chunkData(v))
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := func(b []byte) {
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range extra {
		w(header(h))
	}
	for _, bf := range files {
		if bf.size%bigChunk != 0 {
			t.Fatalf("%s: size %d is not a multiple of %d", bf.name, bf.size, bigChunk)
		}
		w(header(&tar.Header{Name: bf.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: bf.size, ModTime: time.Unix(1e9, 0)}))
		for i := int64(0); i < bf.size/bigChunk; i++ {
			if bf.zero {
				w(zero)
			} else {
				w(data[i%8])
			}
		}
	}
	w(member(make([]byte, 1024)))
}

// largeSetup is a test's directory with its canary, the edge tree at
// dir/root, a supermin.d dir/large whose base image holds a data file of
// size bytes (and a link to the canary), and a small one at dir/sd: the
// large build is slow.
func largeSetup(t *testing.T, size int64) (dir string, c *canary, root, large, small string) {
	t.Helper()
	dir, c, root, small = setup(t, "alt-present", "libm")
	large = filepath.Join(dir, "large")
	writeFiles(t, large, map[string]string{"packages": "alt-present\nlibm\n"})
	bigTarGz(t, filepath.Join(large, "base.tar.gz"),
		[]*tar.Header{{Name: "./srv/canary-link", Typeflag: tar.TypeSymlink, Linkname: c.path(), Mode: 0o777}},
		bigFile{"./srv/data", size, false})
	return dir, c, root, large, small
}

// TestHostileLargeBaseImage: a .tar.gz of 11 MiB that expands to 2 GiB (a
// GiB of zeros, a GiB of printable data) builds with a peak RSS well
// under 300 MiB, and the files come out whole.
func TestHostileLargeBaseImage(t *testing.T) {
	dir, c, root, sd := setup(t, "alt-present", "libm")
	bigTarGz(t, filepath.Join(sd, "base.tar.gz"),
		[]*tar.Header{{Name: "./srv/canary-link", Typeflag: tar.TypeSymlink, Linkname: c.path(), Mode: 0o777}},
		bigFile{"./srv/zeros", 1 << 30, true}, bigFile{"./srv/data", 1 << 30, false})
	out := filepath.Join(dir, "out")
	r := c.run(t, nil, "--build", "-f", "chroot", "--root", root, sd, "-o", out)
	wantOK(t, r, "build")
	t.Logf("peak RSS %d MiB", r.maxRSS>>20)
	if r.maxRSS > 300<<20 {
		t.Errorf("peak RSS %d MiB, want under 300 MiB", r.maxRSS>>20)
	}
	// The zeros need no disk; the data is whole.
	checkSparse(t, filepath.Join(out, "srv/zeros"), 1<<30, 1<<30, nil)
	marks := map[int64]string{}
	for _, off := range []int64{0, 4093, 1<<29 + 12345, 1<<30 - 64} {
		marks[off] = string(dataAt(off, 64))
	}
	checkSparse(t, filepath.Join(out, "srv/data"), 1<<30, 1<<31, marks)
	checkOut(t, out, c.secret, string(dataAt(7*bigChunk+100, 64)))
	c.unopened(t)
}

// ---- 6: FIFOs, signals ----

// TestHostileFIFO: a FIFO where a build reads a file is a clear error and
// no hang (a hang fails at hangDeadline); one that is an entry of the
// appliance is written as a FIFO.
func TestHostileFIFO(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir, root, sd string) (inputs []string, fifo string)
		ok    bool // the FIFO is an entry of the appliance, at fifo's path in it
	}{
		{"in supermin.d", func(t *testing.T, dir, root, sd string) ([]string, string) {
			return []string{sd}, mkfifo(t, filepath.Join(sd, "fifo"))
		}, false},
		{"in a directory of supermin.d", func(t *testing.T, dir, root, sd string) ([]string, string) {
			return []string{sd}, mkfifo(t, filepath.Join(sd, "sub/base.tar.gz"))
		}, false},
		{"symlink to a FIFO in supermin.d", func(t *testing.T, dir, root, sd string) ([]string, string) {
			mkfifo(t, filepath.Join(dir, "fifo"))
			symlink(t, "../fifo", filepath.Join(sd, "link"))
			return []string{sd}, filepath.Join(sd, "link")
		}, false},
		{"named as an input", func(t *testing.T, dir, root, sd string) ([]string, string) {
			return []string{sd, mkfifo(t, filepath.Join(dir, "fifo"))}, filepath.Join(dir, "fifo")
		}, false},
		{"dpkg status", func(t *testing.T, dir, root, sd string) ([]string, string) {
			p := filepath.Join(root, "var/lib/dpkg/status")
			os.Remove(p)
			return []string{sd}, mkfifo(t, p)
		}, false},
		{"file list", func(t *testing.T, dir, root, sd string) ([]string, string) {
			p := filepath.Join(root, "var/lib/dpkg/info/app.list")
			os.Remove(p)
			return []string{sd}, mkfifo(t, p)
		}, false},
		{"package file", func(t *testing.T, dir, root, sd string) ([]string, string) {
			os.Remove(filepath.Join(root, "usr/bin/app"))
			mkfifo(t, filepath.Join(root, "usr/bin/app"))
			return []string{sd}, "/usr/bin/app"
		}, true},
		{"hostfile", func(t *testing.T, dir, root, sd string) ([]string, string) {
			mkfifo(t, filepath.Join(root, "srv/fifo"))
			writeFiles(t, sd, map[string]string{"hostfiles": "/srv/fifo\n"})
			return []string{sd}, "/srv/fifo"
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, c, root, sd := setup(t, "app")
			inputs, fifo := tc.setup(t, dir, root, sd)
			out := filepath.Join(dir, "out")
			r := c.run(t, nil, append(append([]string{"--build", "-f", "chroot", "--root", root}, inputs...), "-o", out)...)
			if !tc.ok {
				wantError(t, r, fifo)
				if _, err := os.Lstat(out); err == nil || len(temps(out)) > 0 {
					t.Errorf("a failed build left %s or a temporary", out)
				}
				return
			}
			wantOK(t, r, "build")
			if fi, err := os.Lstat(filepath.Join(out, fifo)); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
				t.Errorf("%s in the appliance: %v %v, want a FIFO", fifo, fi, err)
			}
			checkOut(t, out, c.secret, edgeControl)
			c.unopened(t)
		})
	}
}

func mkfifo(t *testing.T, p string) string {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHostileSIGTERM: SIGTERM stops a large build at each stage: exit 1,
// "interrupted", the previous output intact, no temporary left.
func TestHostileSIGTERM(t *testing.T) {
	dir, c, root, sd, small := largeSetup(t, 512<<20)
	out := filepath.Join(dir, "out")
	wantOK(t, c.run(t, nil, "--build", "-f", "chroot", "--root", root, small, "-o", out), "the previous output")
	before := treeDigest(t, out)
	base := filepath.Join(sd, "base.tar.gz")
	hit := 0
	for _, moment := range []struct {
		name string
		now  func(p *proc) bool
	}{
		{"reading the base image", func(p *proc) bool { return hasOpen(p.cmd.Process.Pid, base) }},
		{"the output started", func(*proc) bool { return len(liveTemps(out)) > 0 }},
		{"the large file half written", func(*proc) bool {
			for _, tmp := range liveTemps(out) {
				if fi, err := os.Stat(filepath.Join(tmp, "srv/data")); err == nil && fi.Size() > 256<<20 {
					return true
				}
			}
			return false
		}},
	} {
		p := start(t, nil, "--build", "-f", "chroot", "--root", root, sd, "-o", out)
		if !waitUntil(t, p, moment.name, func() bool { return moment.now(p) }) {
			t.Logf("%s: the build ended first", moment.name)
			p.wait(t)
			continue
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		r := p.wait(t)
		if r.code == 0 {
			t.Logf("%s: the build ended before the signal", moment.name)
			continue
		}
		hit++
		t.Logf("%s: %s", moment.name, r.stderr)
		c.notIn(t, r)
		wantError(t, r, "interrupted")
		if len(temps(out)) > 0 {
			t.Errorf("%s: temporaries left: %v", moment.name, temps(out))
		}
		if treeDigest(t, out) != before {
			t.Errorf("%s: the previous output changed", moment.name)
		}
	}
	if hit < 2 {
		t.Errorf("only %d of 3 signals reached a running build", hit)
	}
	checkOut(t, out, c.secret, edgeControl)
	c.unopened(t)
}

// ---- 7: the output over an input ----

// TestHostileOutputOverInput adds to TestOutputOverInput: an input named
// as a file, relative names, names through symlinks and "..", an
// ancestor. Each is refused and every input is intact, byte for byte.
func TestHostileOutputOverInput(t *testing.T) {
	dir, c, root, sd := setup(t, "app")
	symlink(t, root, filepath.Join(dir, "root-alias"))
	symlink(t, sd, filepath.Join(dir, "sd-alias"))
	packages := filepath.Join(sd, "packages")
	for _, tc := range []struct {
		name    string
		wd, out string
		root    string
		inputs  []string
	}{
		{"the input file", "", packages, root, []string{packages}},
		{"the input file's directory", "", sd, root, []string{packages}},
		{"dot in the input", sd, ".", root, []string{sd}},
		{"dotdot of the input", filepath.Join(sd, "sub"), "..", root, []string{sd}},
		{"the root through dotdot", "", filepath.Join(root, "usr") + "/..", root, []string{sd}},
		{"the root through its alias", "", filepath.Join(dir, "root-alias"), root, []string{sd}},
		{"the root given as an alias", "", root, filepath.Join(dir, "root-alias"), []string{sd}},
		{"the input given as an alias", "", sd, root, []string{filepath.Join(dir, "sd-alias")}},
		{"inside the input through an alias", "", filepath.Join(dir, "sd-alias", "out"), root, []string{sd}},
		{"an ancestor", "", filepath.Dir(dir), root, []string{sd}},
		{"trailing dot", "", sd + "/.", root, []string{sd}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.MkdirAll(filepath.Join(sd, "sub"), 0o755)
			before := inputsDigest(t, c, dir, root, sd)
			p := startIn(t, tc.wd, nil, append(append([]string{"--build", "-f", "chroot", "--root", tc.root}, tc.inputs...), "-o", tc.out)...)
			r := p.wait(t)
			wantError(t, r, "building there would")
			if after := inputsDigest(t, c, dir, root, sd); after != before {
				t.Errorf("-o %s: the inputs changed", tc.out)
			}
			abs := tc.out
			if !filepath.IsAbs(abs) {
				abs = filepath.Join(tc.wd, abs)
			}
			if m := temps(filepath.Clean(abs)); len(m) > 0 {
				t.Errorf("temporaries left: %v", m)
			}
		})
	}
	c.unopened(t)
}

// ---- 8: SIGKILL ----

// TestHostileKilled: a build killed with SIGKILL leaves its temporary
// beside OUT (and nothing else); the next run into OUT removes it.
func TestHostileKilled(t *testing.T) {
	dir, c, root, sd, small := largeSetup(t, 512<<20)
	out := filepath.Join(dir, "out")
	wantOK(t, c.run(t, nil, "--build", "-f", "chroot", "--root", root, small, "-o", out), "the previous output")
	before := treeDigest(t, out)
	names := func() []string {
		es, _ := os.ReadDir(dir)
		var n []string
		for _, e := range es {
			n = append(n, e.Name())
		}
		return n
	}
	listed := names()
	p := start(t, nil, "--build", "-f", "chroot", "--root", root, sd, "-o", out)
	if !waitUntil(t, p, "the temporary output", func() bool {
		for _, tmp := range liveTemps(out) {
			if _, err := os.Stat(filepath.Join(tmp, "srv")); err == nil {
				return true
			}
		}
		return false
	}) {
		t.Fatal("the build ended before it could be killed")
	}
	p.cmd.Process.Kill()
	p.wait(t)
	left := temps(out)
	if len(left) != 1 {
		t.Fatalf("after SIGKILL: temporaries %v, want one", left)
	}
	if got, want := names(), append(listed, filepath.Base(left[0])); strings.Join(sortStrings(got), " ") != strings.Join(sortStrings(want), " ") {
		t.Errorf("after SIGKILL the directory holds %v, want %v", got, want)
	}
	if treeDigest(t, out) != before {
		t.Error("the previous output changed")
	}
	r := c.run(t, nil, "--build", "-v", "-f", "chroot", "--root", root, small, "-o", out)
	wantOK(t, r, "the next build")
	if !strings.Contains(r.stderr, "removed "+left[0]+", left by a build that was killed") {
		t.Errorf("the next build does not say it removed %s: %s", left[0], r.stderr)
	}
	if len(temps(out)) > 0 {
		t.Errorf("temporaries left: %v", temps(out))
	}
	checkOut(t, out, c.secret, edgeControl)
	c.unopened(t)
}

func sortStrings(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

// ---- 9: --if-newer and an edit during the build ----

// TestHostileIfNewerEditDuringBuild: an input edited while a build runs
// (after the build read it) makes the next --if-newer run build again.
func TestHostileIfNewerEditDuringBuild(t *testing.T) {
	_, c, root, sd, _ := largeSetup(t, 128<<20)
	writeFiles(t, sd, map[string]string{"sub/hostfiles": "/etc/app.conf\n"})
	base := filepath.Join(sd, "base.tar.gz")
	appendNL := func(p string) func() {
		return func() {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				f.WriteString("\n")
				f.Close()
			}
		}
	}
	for _, tc := range []struct {
		name   string
		edit   func()
		moment func(p *proc, out string) bool
	}{
		{"packages once written", appendNL(filepath.Join(sd, "packages")), outputStarted},
		{"packages while the base image is read", appendNL(filepath.Join(sd, "packages")), func(p *proc, _ string) bool { return hasOpen(p.cmd.Process.Pid, base) }},
		{"a nested file", appendNL(filepath.Join(sd, "sub/hostfiles")), outputStarted},
		{"the status file", appendNL(filepath.Join(root, "var/lib/dpkg/status")), outputStarted},
		{"the base image touched", func() { now := time.Now(); os.Chtimes(base, now, now) }, outputStarted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := []string{"--build", "-v", "-f", "chroot", "--root", root, sd, "-o", out}
			wantOK(t, c.run(t, nil, args...), "first build")
			ifNewer := func() (rebuilt bool) {
				t.Helper()
				fi, _ := os.Stat(out)
				r := c.run(t, nil, append([]string{"--if-newer"}, args...)...)
				wantOK(t, r, "--if-newer")
				fi2, _ := os.Stat(out)
				skipped := strings.Contains(r.stderr, "nothing to do")
				if same := os.SameFile(fi, fi2); same != skipped {
					t.Fatalf("--if-newer said %q but the output was replaced: %v", r.stderr, !same)
				}
				return !skipped
			}
			if ifNewer() {
				t.Fatal("--if-newer rebuilt an up-to-date output")
			}
			p := start(t, nil, args...)
			if !waitUntil(t, p, "the moment to edit", func() bool { return tc.moment(p, out) }) {
				t.Fatal("the build ended before the edit")
			}
			tc.edit()
			wantOK(t, p.wait(t), "the build during the edit")
			if !ifNewer() {
				t.Error("an input edited during the build: --if-newer did not build again")
			}
			if ifNewer() {
				t.Error("--if-newer rebuilt an up-to-date output")
			}
			checkOut(t, out, c.secret, edgeControl)
		})
	}
	c.unopened(t)
}

func outputStarted(_ *proc, out string) bool { return len(liveTemps(out)) > 0 }

// ---- 10: parallel builds ----

// TestHostileParallel: 4 builds at once into one OUT, new or existing, a
// few rounds: all succeed and OUT is the complete output each time.
func TestHostileParallel(t *testing.T) {
	dir, c, root, sd, _ := largeSetup(t, 32<<20)
	args := []string{"--build", "-f", "chroot", "--root", root, sd, "-o"}
	ref := filepath.Join(dir, "ref")
	wantOK(t, c.run(t, nil, append(args, ref)...), "reference build")
	want := treeDigest(t, ref)
	out := filepath.Join(dir, "out")
	for round := range 6 {
		if round%2 == 0 {
			os.RemoveAll(out)
		}
		var ps []*proc
		for range 4 {
			ps = append(ps, start(t, nil, append(args, out)...))
		}
		for i, p := range ps {
			if r := p.wait(t); r.code != 0 || len(errorLines(r.stderr)) > 0 {
				t.Errorf("round %d, build %d: exit %d, %q", round, i, r.code, r.stderr)
			}
		}
		if got := treeDigest(t, out); got != want {
			t.Errorf("round %d: the output differs from the reference build", round)
		}
		if len(temps(out)) > 0 {
			t.Errorf("round %d: temporaries left: %v", round, temps(out))
		}
		es, _ := os.ReadDir(dir)
		if len(es) != 6 { // canary, root, sd, large, ref, out
			var n []string
			for _, e := range es {
				n = append(n, e.Name())
			}
			t.Errorf("round %d: the directory holds %v", round, n)
		}
	}
	checkOut(t, out, c.secret, edgeControl)
	c.unopened(t)
}

// ---- 12: a sparse package file ----

// TestHostileSparsePackageFile: a package file with a 1 GiB hole keeps it
// in the chroot tree and in an ext2 image of 64 MiB (e2fsck clean); the
// cpio initramfs holds it whole.
func TestHostileSparsePackageFile(t *testing.T) {
	dir, c, root, sd := setup(t, "alt-present")
	const size = 4096 + 1<<30 + 4096
	marks := map[int64]string{0: "hostile-head-" + randomHex(), size - 4096: "hostile-tail-" + randomHex()}
	p := filepath.Join(root, "usr/bin/alt-present")
	os.Remove(p)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	for off, s := range marks {
		f.WriteAt([]byte(s), off)
	}
	f.Truncate(size)
	f.Close()
	if fi, _ := os.Stat(p); fi.Sys().(*syscall.Stat_t).Blocks*512 > 1<<20 {
		t.Skip("the file system of the test's temporary directory does not keep holes")
	}
	var controls []string
	for _, s := range marks {
		controls = append(controls, s)
	}
	for _, fm := range formats(t, miniModules(t, dir), "64M") {
		t.Run(fm.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+fm.name)
			r := c.run(t, fm.env, fm.argv(root, out, sd)...)
			wantOK(t, r, "build")
			checkOut(t, out, c.secret, controls...)
			switch fm.name {
			case "chroot":
				checkSparse(t, filepath.Join(out, "usr/bin/alt-present"), size, 1<<20, marks)
			case "ext2":
				st := debugfs(t, filepath.Join(out, "root"), "stat /usr/bin/alt-present")
				if !strings.Contains(st, fmt.Sprintf("Size: %d", size)) || !strings.Contains(st, "Blockcount: ") {
					t.Errorf("debugfs stat:\n%s", st)
				} else if n := field(st, "Blockcount: "); n == 0 || n > 2048 { // 512-byte units: 1 MiB
					t.Errorf("the file takes %d sectors in the image: the hole is not kept\n%s", n, st)
				}
			}
		})
	}
	c.unopened(t)
}

func debugfs(t *testing.T, img, cmd string) string {
	t.Helper()
	p, ok := lookTool("debugfs")
	need(t, ok, "debugfs is not installed (apt-get install e2fsprogs)")
	r := runCmd(t, p, "-R", cmd, img)
	if r.code != 0 {
		t.Fatalf("debugfs -R %q: %+v", cmd, r)
	}
	return r.stdout
}

// field is the number after key in s.
func field(s, key string) int64 {
	_, rest, _ := strings.Cut(s, key)
	var n int64
	fmt.Sscan(rest, &n)
	return n
}

// ---- 13: extended attributes ----

// TestHostileXattrs: a file capability (setcap cap_net_raw+ep) and user.*
// attributes of the tree are kept in the chroot tree (as root) and in the
// ext2 image.
func TestHostileXattrs(t *testing.T) {
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	os.WriteFile(probe, nil, 0o644)
	err := unix.Setxattr(probe, "user.gosupermin", []byte("x"), 0)
	need(t, err == nil, fmt.Sprintf("the file system of the test's temporary directory has no user xattrs: %v", err))
	need(t, isRoot(), "setting security.capability needs root")
	c := newCanary(t, dir)
	root, sd := edgeTree(t, dir, "app")
	// struct vfs_cap_data, version 2: effective, permitted CAP_NET_RAW (13).
	capNetRaw := make([]byte, 20)
	binary.LittleEndian.PutUint32(capNetRaw[0:], 0x02000001)
	binary.LittleEndian.PutUint32(capNetRaw[4:], 1<<13)
	attrs := []struct{ path, name, value string }{
		{"usr/bin/app", "security.capability", string(capNetRaw)},
		{"usr/bin/app", "user.gosupermin.test", "hostile-xattr-" + randomHex()},
		{"usr/share/doc/app", "user.gosupermin.dir", "hostile-dir-xattr"},
	}
	for _, a := range attrs {
		if err := unix.Setxattr(filepath.Join(root, a.path), a.name, []byte(a.value), 0); err != nil {
			t.Fatalf("setxattr %s %s: %v", a.path, a.name, err)
		}
	}
	for _, fm := range formats(t, "", "4G") {
		t.Run(fm.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+fm.name)
			r := c.run(t, fm.env, fm.argv(root, out, sd)...)
			wantOK(t, r, "build")
			checkOut(t, out, c.secret, edgeControl)
			for _, a := range attrs {
				switch fm.name {
				case "chroot":
					v := make([]byte, 256)
					n, err := unix.Lgetxattr(filepath.Join(out, a.path), a.name, v)
					if err != nil || string(v[:n]) != a.value {
						t.Errorf("%s %s in the chroot: %q %v, want %q", a.path, a.name, v[:max(n, 0)], err, a.value)
					}
				case "ext2":
					list := debugfs(t, filepath.Join(out, "root"), "ea_list /"+a.path)
					want := a.name
					if !strings.HasPrefix(a.name, "security.") {
						want = fmt.Sprintf("%s (%d) = %q", a.name, len(a.value), a.value)
					}
					if !strings.Contains(list, want) {
						t.Errorf("ea_list /%s lacks %s:\n%s", a.path, want, list)
					}
				}
			}
		})
	}
	c.unopened(t)
}

// ---- 14: smaller cases ----

// TestHostileHiddenHostfile: a hostfile named /..hidden is a name, not a
// climb: it is in the appliance.
func TestHostileHiddenHostfile(t *testing.T) {
	dir, c, root, sd := setup(t, "alt-present")
	control := "hostile-hidden-" + randomHex()
	writeFiles(t, root, map[string]string{"..hidden": control + "\n", "etc/..also": "x\n"})
	writeFiles(t, sd, map[string]string{"hostfiles": "/..hidden\n/etc/..al*\n"})
	out := filepath.Join(dir, "out")
	r := c.run(t, nil, "--build", "-f", "chroot", "--root", root, sd, "-o", out)
	wantOK(t, r, "build")
	for _, p := range []string{"..hidden", "etc/..also"} {
		if _, err := os.Lstat(filepath.Join(out, p)); err != nil {
			t.Errorf("hostfile /%s: %v", p, err)
		}
	}
	checkOut(t, out, c.secret, control)
	c.unopened(t)
}

// TestHostileTarOwner: a base-image entry whose owner is no uid_t value
// ((uid_t)-1, which chown reads as "unchanged", or more) is a clear error
// naming the image and the entry.
func TestHostileTarOwner(t *testing.T) {
	for _, tc := range []struct {
		name     string
		uid, gid int
		format   tar.Format
	}{
		{"uid 4294967295 pax", 4294967295, 0, tar.FormatPAX},
		{"uid 4294967295 gnu", 4294967295, 0, tar.FormatGNU},
		{"gid 4294967295 pax", 0, 4294967295, tar.FormatPAX},
		{"uid 4294967296 pax", 4294967296, 0, tar.FormatPAX},
		{"uid -1 gnu", -1, 0, tar.FormatGNU},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, c, root, sd := setup(t, "alt-present")
			base := filepath.Join(sd, "base.tar.gz")
			os.WriteFile(base, targz(t, &tar.Header{Name: "./etc/owned", Typeflag: tar.TypeReg, Mode: 0o644,
				Uid: tc.uid, Gid: tc.gid, Format: tc.format}), 0o644)
			out := filepath.Join(dir, "out")
			r := c.run(t, nil, "--build", "-f", "chroot", "--root", root, sd, "-o", out)
			wantError(t, r, base, "etc/owned", "owner")
			if _, err := os.Lstat(out); err == nil || len(temps(out)) > 0 {
				t.Errorf("a failed build left %s or a temporary", out)
			}
		})
	}
}

// TestHostileDotDotLinkInInput: a symlink to a directory inside a
// supermin.d directory ("..", ".", the parent by its absolute name) is a
// clear error naming it, and nothing it leads to is read.
func TestHostileDotDotLinkInInput(t *testing.T) {
	for _, tc := range []struct{ name, link, target string }{
		{"dotdot", "up", ".."},
		{"dotdot twice in a subdirectory", "sub/up", "../.."},
		{"dot", "self", "."},
		{"absolute parent", "parent", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, c, root, sd := setup(t, "alt-present")
			// Files of the parent that a walk through the link would read.
			c.plant(t, filepath.Join(dir, "bait"))
			c.plant(t, filepath.Join(dir, "zz/packages"))
			target := tc.target
			if target == "" {
				target = dir
			}
			link := filepath.Join(sd, tc.link)
			symlink(t, target, link)
			out := filepath.Join(dir, "out")
			r := c.run(t, nil, "--build", "-f", "chroot", "--root", root, sd, "-o", out)
			wantError(t, r, link)
			c.unopened(t)
		})
	}
}

// TestHostileLongOutputName: an output named with 250 and 255 bytes (the
// most a name may have) builds, and leaves no temporary.
func TestHostileLongOutputName(t *testing.T) {
	dir, c, root, sd := setup(t, "app")
	for _, n := range []int{250, 255} {
		out := filepath.Join(dir, strings.Repeat("o", n))
		for range 2 { // new, then replaced
			r := c.run(t, nil, "--build", "-f", "chroot", "--root", root, sd, "-o", out)
			wantOK(t, r, fmt.Sprintf("-o of %d bytes", n))
			checkOut(t, out, c.secret, edgeControl)
		}
		if m := settled(filepath.Join(dir, "*gosupermin-tmp*")); len(m) > 0 {
			t.Errorf("temporaries left: %v", m)
		}
	}
	c.unopened(t)
}
