package supermin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gosupermin/gosupermin/appliance/firstboot"
)

// fbRequire skips a test whose prerequisite is missing, except in CI, where
// every prerequisite is installed and a skip would hide a failure.
func fbRequire(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: %s", why)
	}
	t.Skip(why)
}

func fbRequireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		fbRequire(t, "running the first-boot scripts needs root (chroot)")
	}
}

// fbRoots are the fixture's roots; the closure adds fb-mid and fb-zeta.
var fbRoots = []string{"fb-alpha", "fb-broken", "fb-quiet", "fb-slow", "fb-trigger"}

func fbFixture(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs("../fixtures/dpkg-firstboot")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// fbLog collects a build's messages.
type fbLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *fbLog) log(level int, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, msg)
}

func (l *fbLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.msgs, "\n")
}

// fbBuild builds a chroot appliance of roots from the database under root.
func fbBuild(t *testing.T, root string, roots []string, fb bool) (string, *fbLog) {
	t.Helper()
	dir := t.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	if err := os.Mkdir(sd, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sd, "packages"), []byte(strings.Join(roots, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	l := &fbLog{}
	err := Build(context.Background(), BuildOptions{
		Options: Options{Root: root, Log: l.log, Verbose: 1},
		Inputs:  []string{sd}, Out: out, Format: Chroot{}, Firstboot: fb,
	})
	if err != nil {
		t.Fatalf("build %v: %v\n%s", roots, err, l)
	}
	return out, l
}

func fbRead(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func fbExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

const fbManifest = `1	fb-zeta	1.0-1	amd64	preinst	install	001-fb-zeta/fb-zeta.preinst
2	fb-zeta	1.0-1	amd64	postinst	configure ''	001-fb-zeta/fb-zeta.postinst
3	fb-mid	2.0	all	postinst	configure ''	002-fb-mid/fb-mid.postinst
4	fb-alpha	1.0	amd64	preinst	install	003-fb-alpha/fb-alpha.preinst
5	fb-alpha	1.0	amd64	postinst	configure ''	003-fb-alpha/fb-alpha.postinst
6	fb-broken	1	amd64	postinst	configure ''	004-fb-broken/fb-broken.postinst
7	fb-slow	1	all	postinst	configure ''	005-fb-slow/fb-slow.postinst
8	fb-trigger	3	amd64	postinst	configure ''	006-fb-trigger/fb-trigger.postinst
9	fb-trigger	3	amd64	postinst	triggered 'fbtest-trigger /usr/share/fbtest'	006-fb-trigger/fb-trigger.postinst
`

// TestFirstbootFixtureBuild: what --firstboot adds, and that without it
// nothing is.
func TestFirstbootFixtureBuild(t *testing.T) {
	fix := fbFixture(t)
	plain, _ := fbBuild(t, fix, fbRoots, false)
	for _, p := range []string{"/usr/lib/gosupermin", firstboot.StateDir, "/var/log"} {
		if fbExists(filepath.Join(plain, p)) {
			t.Errorf("without --firstboot: %s exists", p)
		}
	}
	out, l := fbBuild(t, fix, fbRoots, true)
	man := fbRead(t, filepath.Join(out, firstboot.ManifestFile))
	if _, body, _ := strings.Cut(man, "# order\tpackage\tversion\tarch\tscript\targuments\tfile\n"); body != fbManifest {
		t.Errorf("manifest:\n%s\nwant:\n%s", man, fbManifest)
	}
	for _, line := range strings.Split(strings.TrimSpace(fbManifest), "\n") {
		f := strings.Split(line, "\t")
		fi, err := os.Stat(filepath.Join(out, firstboot.Dir, f[6]))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", f[6], fi, err)
		}
	}
	want, _ := os.ReadFile(filepath.Join(fix, "var/lib/dpkg/info/fb-trigger:amd64.postinst"))
	if got := fbRead(t, filepath.Join(out, firstboot.Dir, "006-fb-trigger/fb-trigger.postinst")); got != string(want) {
		t.Errorf("saved postinst differs from the database's:\n%s", got)
	}
	run := fbRead(t, filepath.Join(out, firstboot.Runner))
	if !strings.HasPrefix(run, "#!/bin/sh\n") {
		t.Errorf("runner starts %q", run[:20])
	}
	if strings.Contains(run, "fb-removed") || strings.Contains(man, "fb-removed") {
		t.Error("the scripts of a removed package are saved")
	}
	// debconf's files beside the scripts.
	for f, mode := range map[string]os.FileMode{"003-fb-alpha/fb-alpha.config": 0o755, "003-fb-alpha/fb-alpha.templates": 0o644} {
		if fi, err := os.Stat(filepath.Join(out, firstboot.Dir, f)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}
	// The closure's part of the dpkg database, without the scripts.
	status := fbRead(t, filepath.Join(out, "var/lib/dpkg/status"))
	if strings.Count(status, "Package: ") != 7 || !strings.Contains(status, "Package: fb-trigger\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\n") ||
		strings.Contains(status, "fb-removed") {
		t.Errorf("dpkg status:\n%s", status)
	}
	for _, f := range []string{"fb-trigger:amd64.list", "fb-trigger:amd64.triggers", "fb-zeta.list", "format"} {
		if !fbExists(filepath.Join(out, "var/lib/dpkg/info", f)) {
			t.Errorf("var/lib/dpkg/info/%s missing", f)
		}
	}
	for _, f := range []string{"info/fb-zeta.postinst", "info/fb-alpha.templates", "info/fb-removed.list"} {
		if fbExists(filepath.Join(out, "var/lib/dpkg", f)) {
			t.Errorf("var/lib/dpkg/%s copied", f)
		}
	}
	for _, d := range []string{"updates", "triggers", "alternatives"} {
		if fi, err := os.Stat(filepath.Join(out, "var/lib/dpkg", d)); err != nil || !fi.IsDir() {
			t.Errorf("var/lib/dpkg/%s: %v", d, err)
		}
	}
	if fbExists(filepath.Join(plain, "var/lib/dpkg")) {
		t.Error("without --firstboot: /var/lib/dpkg exists")
	}
	if !strings.Contains(l.String(), "the appliance has no shell") {
		t.Errorf("no warning about the missing shell:\n%s", l)
	}
	for _, d := range []string{firstboot.StateDir, "/var/log"} {
		if fi, err := os.Stat(filepath.Join(out, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, "tmp")); err != nil || fi.Mode()&(os.ModeSticky|os.ModePerm) != os.ModeSticky|0o777 {
		t.Errorf("/tmp: %v %v", fi, err)
	}
}

// fbOverlay copies the tree src into dst, keeping what dst has.
func fbOverlay(t *testing.T, dst, src string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if fbExists(to) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(to, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			o, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(o, in); err != nil {
				o.Close()
				return err
			}
			return o.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fbRun runs argv (chroot ...) and returns its output and exit code.
func fbRun(t *testing.T, env []string, argv ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%v: %v", argv, err)
	}
	return o.String(), e.String(), code
}

const fbTrace = `fb-zeta preinst 1 [install] [] arch=amd64 root=[]
fb-zeta postinst 2 [configure] [] arch=amd64 root=[]
fb-mid postinst 2 [configure] [] arch=all root=[]
fb-alpha preinst 1 [install] [] arch=amd64 root=[]
fb-alpha postinst 2 [configure] [] arch=amd64 root=[]
fb-broken postinst 2 [configure] [] arch=amd64 root=[]
fb-slow postinst 2 [configure] [] arch=all root=[]
fb-trigger postinst 2 [configure] [] arch=amd64 root=[]
fb-trigger postinst 2 [triggered] [fbtest-trigger /usr/share/fbtest] arch=amd64 root=[]
`

const fbEnv = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
DEBIAN_FRONTEND=noninteractive
DPKG_ADMINDIR=/var/lib/dpkg
DPKG_ROOT=[]
pwd=/
umask=0022
stdin=eof
policy-rc.d=101
`

const fbStatus = `1	ok	fb-zeta	preinst install
2	ok	fb-zeta	postinst configure ''
3	ok	fb-mid	postinst configure ''
4	ok	fb-alpha	preinst install
5	ok	fb-alpha	postinst configure ''
6	failed: exit 3	fb-broken	postinst configure ''
7	failed: timed out after 2s	fb-slow	postinst configure ''
8	ok	fb-trigger	postinst configure ''
9	ok	fb-trigger	postinst triggered 'fbtest-trigger /usr/share/fbtest'
`

// TestFirstbootFixtureRun runs the fixture's scripts in a chroot that has
// the host's dash, bash, coreutils and busybox, under each shell.
func TestFirstbootFixtureRun(t *testing.T) {
	fbRequireRoot(t)
	shells := []string{"dash", "bash", "coreutils"}
	_, errBusybox := exec.LookPath("busybox")
	if errBusybox == nil {
		shells = append(shells, "busybox")
	} else if os.Getenv("CI") != "" {
		t.Error("CI: busybox is not installed: the runner is not tried under busybox sh")
	}
	host, _ := fbBuild(t, "/", shells, false)
	out, _ := fbBuild(t, fbFixture(t), fbRoots, true)
	fbOverlay(t, out, host)
	at := func(p string) string { return filepath.Join(out, p) }
	reset := func() {
		for _, p := range []string{"/fbtest-trace", "/fbtest-env", "/fbtest-mid-configured", firstboot.Stamp, firstboot.StatusFile, firstboot.LogFile} {
			if err := os.Remove(at(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
		}
	}
	env := []string{"GOSUPERMIN_FIRSTBOOT_SCRIPT_TIMEOUT=2"}
	variants := [][]string{
		{firstboot.Runner},                       // through its "#!/bin/sh": dash
		{"/bin/bash", firstboot.Runner},          // bash
		{"/bin/busybox", "sh", firstboot.Runner}, // busybox sh
	}
	if errBusybox != nil {
		variants = variants[:2]
	}
	for _, v := range variants {
		t.Run(filepath.Base(v[0]), func(t *testing.T) {
			reset()
			argv := append([]string{"chroot", out}, v...)
			stdout, stderr, code := fbRun(t, env, argv...)
			if code != 1 {
				t.Errorf("exit code %d, want 1 (two scripts fail)\n%s%s", code, stdout, stderr)
			}
			if got := fbRead(t, at("/fbtest-trace")); got != fbTrace {
				t.Errorf("trace:\n%s\nwant:\n%s", got, fbTrace)
			}
			if got := fbRead(t, at("/fbtest-env")); got != fbEnv {
				t.Errorf("environment:\n%s\nwant:\n%s", got, fbEnv)
			}
			if got := fbRead(t, at(firstboot.StatusFile)); got != fbStatus {
				t.Errorf("status:\n%s\nwant:\n%s", got, fbStatus)
			}
			log := fbRead(t, at(firstboot.LogFile))
			for _, s := range []string{
				"gosupermin-firstboot: running 9 maintainer scripts, each with a time limit of 2s\n",
				"gosupermin-firstboot: [1/9] fb-zeta preinst install\n",
				"fb-zeta: configured\ngosupermin-firstboot: [2/9] fb-zeta postinst configure '': ok\n",
				"fb-broken: about to fail\nfb-broken: failing on purpose\ngosupermin-firstboot: [6/9] fb-broken postinst configure '': failed: exit 3\n",
				"gosupermin-firstboot: [7/9] fb-slow postinst configure '': failed: timed out after 2s\n",
				"fb-trigger: processing fbtest-trigger\nfb-trigger: processing /usr/share/fbtest\n",
				"gosupermin-firstboot: done: 7 ok, 2 failed, 0 skipped\n",
			} {
				if !strings.Contains(log, s) {
					t.Errorf("log lacks %q:\n%s", s, log)
				}
			}
			if stdout != log {
				t.Errorf("console and log differ:\n%s\n---\n%s", stdout, log)
			}
			if got := fbRead(t, at(firstboot.Stamp)); got != "7 ok, 2 failed, 0 skipped\n" {
				t.Errorf("stamp %q", got)
			}
			for _, p := range []string{"/usr/sbin/policy-rc.d", firstboot.StateDir + "/firstboot.policy", firstboot.StateDir + "/firstboot.null", firstboot.StateDir + "/firstboot.out"} {
				if fbExists(at(p)) {
					t.Errorf("%s left behind", p)
				}
			}

			// A second run does nothing.
			stdout, stderr, code = fbRun(t, env, argv...)
			if code != 0 || stdout != "" || stderr != "" {
				t.Errorf("second run: exit %d, output %q %q", code, stdout, stderr)
			}
			if got := fbRead(t, at("/fbtest-trace")); got != fbTrace {
				t.Errorf("second run ran scripts:\n%s", got)
			}
			if got := fbRead(t, at(firstboot.LogFile)); got != log {
				t.Errorf("second run wrote to the log")
			}
		})
	}

	t.Run("force", func(t *testing.T) {
		if _, _, code := fbRun(t, env, "chroot", out, firstboot.Runner, "--force"); code != 1 {
			t.Errorf("--force: exit %d", code)
		}
		if got := fbRead(t, at("/fbtest-trace")); strings.Count(got, "fb-zeta preinst") != 2 {
			t.Errorf("--force did not run the scripts again:\n%s", got)
		}
	})

	// A run killed with SIGKILL left its policy-rc.d link: the next run
	// keeps it while it runs and removes it.
	t.Run("killed", func(t *testing.T) {
		reset()
		if err := os.Symlink(firstboot.PolicyRCD, at("/usr/sbin/policy-rc.d")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(at(firstboot.StateDir+"/firstboot.policy"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		fbRun(t, env, "chroot", out, firstboot.Runner)
		if got := fbRead(t, at("/fbtest-env")); got != fbEnv {
			t.Errorf("environment:\n%s", got)
		}
		for _, p := range []string{"/usr/sbin/policy-rc.d", firstboot.StateDir + "/firstboot.policy"} {
			if fbExists(at(p)) {
				t.Errorf("%s left behind", p)
			}
		}
	})

	// Busybox alone: its sh, its applets (timeout kills the script only).
	t.Run("busybox-applets", func(t *testing.T) {
		if errBusybox != nil {
			t.Skip("busybox is not installed")
		}
		bb, _ := fbBuild(t, "/", []string{"busybox"}, false)
		out, _ := fbBuild(t, fbFixture(t), fbRoots, true)
		fbOverlay(t, out, bb)
		if o, e, code := fbRun(t, nil, "chroot", out, "/bin/busybox", "--install", "-s", "/usr/bin"); code != 0 {
			t.Fatalf("busybox --install: %d %s%s", code, o, e)
		}
		stdout, stderr, code := fbRun(t, env, "chroot", out, firstboot.Runner)
		if code != 1 {
			t.Errorf("exit code %d\n%s%s", code, stdout, stderr)
		}
		if got := fbRead(t, filepath.Join(out, "fbtest-trace")); got != fbTrace {
			t.Errorf("trace:\n%s\nwant:\n%s", got, fbTrace)
		}
		status := strings.Split(fbRead(t, filepath.Join(out, firstboot.StatusFile)), "\n")
		want := strings.Split(fbStatus, "\n")
		if len(status) != len(want) || !strings.HasPrefix(status[6], "7\tfailed: ") {
			t.Errorf("status:\n%s", strings.Join(status, "\n"))
		} else {
			status[6] = want[6]
			if strings.Join(status, "\n") != fbStatus {
				t.Errorf("status:\n%s", strings.Join(status, "\n"))
			}
		}
	})

	// The kernel command line: quiet and a time limit; /dev without null.
	t.Run("quiet", func(t *testing.T) {
		reset()
		for _, d := range []string{"/proc", "/dev"} {
			if err := os.MkdirAll(at(d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		defer os.RemoveAll(at("/proc"))
		if err := os.WriteFile(at("/proc/cmdline"), []byte("ro quiet gosupermin.firstboot.script_timeout=1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := fbRun(t, nil, "chroot", out, firstboot.Runner)
		if code != 1 || stdout != "" || stderr != "gosupermin-firstboot: 2 of 9 scripts failed: see /var/log/gosupermin-firstboot.log\n" {
			t.Errorf("quiet: exit %d, output %q %q", code, stdout, stderr)
		}
		if log := fbRead(t, at(firstboot.LogFile)); !strings.Contains(log, "fb-slow postinst configure '': failed: timed out after 1s\n") {
			t.Errorf("log:\n%s", log)
		}
		if fbExists(at("/dev/null")) {
			t.Error("the /dev/null the runner made is left behind")
		}
	})
}

// TestFirstbootHost: the host's base-passwd, libc-bin and bash. Their
// closure lacks the Essential packages their scripts count on (dash for
// /bin/sh, coreutils for cat and cp), so some scripts fail; with those
// added, every script succeeds.
func TestFirstbootHost(t *testing.T) {
	fbRequireRoot(t)
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		fbRequire(t, "the host has no dpkg database")
	}
	for _, tc := range []struct {
		name  string
		roots []string
	}{
		{"declared", []string{"base-passwd", "libc-bin", "bash"}},
		{"essential", []string{"base-passwd", "libc-bin", "bash", "dash", "coreutils", "sed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sd, out := filepath.Join(dir, "supermin.d"), filepath.Join(dir, "out")
			l := &fbLog{}
			ctx := context.Background()
			if err := Prepare(ctx, PrepareOptions{Options: Options{Log: l.log}, Packages: tc.roots, Out: sd}); err != nil {
				t.Fatal(err)
			}
			if err := Build(ctx, BuildOptions{Options: Options{Log: l.log, Verbose: 1}, Inputs: []string{sd}, Out: out,
				Format: Chroot{}, Firstboot: true}); err != nil {
				t.Fatalf("%v\n%s", err, l)
			}
			at := func(p string) string { return filepath.Join(out, p) }
			for _, p := range []string{"/etc/passwd", "/etc/ld.so.cache"} {
				if fbExists(at(p)) {
					t.Errorf("%s exists before the runner", p)
				}
			}
			stdout, stderr, code := fbRun(t, nil, "chroot", out, firstboot.Runner)
			t.Logf("exit %d; status:\n%s", code, fbRead(t, at(firstboot.StatusFile)))
			for _, p := range []string{"/etc/passwd", "/etc/ld.so.cache"} {
				if !fbExists(at(p)) {
					t.Errorf("%s does not exist after the runner", p)
				}
			}
			log := fbRead(t, at(firstboot.LogFile))
			if stdout != log || stderr != "" {
				t.Errorf("console:\n%s%s", stdout, stderr)
			}
			man := fbRead(t, at(firstboot.ManifestFile))
			n := 0
			for _, line := range strings.Split(man, "\n") {
				f := strings.Split(line, "\t")
				if len(f) != 7 || strings.HasPrefix(line, "#") {
					continue
				}
				n++
				if !strings.Contains(log, "] "+f[1]+" "+f[4]+" "+f[5]+": ") {
					t.Errorf("the log has no result for %s", line)
				}
			}
			if n == 0 || !strings.Contains(man, "libc-bin\t") || !strings.Contains(man, "base-passwd\t") {
				t.Errorf("manifest:\n%s", man)
			}
			{ // with --firstboot the Essential packages come along, so every script works
				if code != 0 {
					t.Errorf("exit code %d:\n%s", code, log)
				}
				if passwd := fbRead(t, at("/etc/passwd")); !strings.HasPrefix(passwd, "root:") {
					t.Errorf("/etc/passwd:\n%s", passwd)
				}
			}
			if _, _, code := fbRun(t, nil, "chroot", out, firstboot.Runner); code != 0 || fbRead(t, at(firstboot.LogFile)) != log {
				t.Errorf("second run: exit %d or a changed log", code)
			}
		})
	}
}

// TestFirstbootRPM: rpm's scriptlets, a <lua> one listed as skipped and
// warned about.
func TestFirstbootRPM(t *testing.T) {
	needTools(t, "rpm", "rpmbuild")
	root := rpmTree(t)
	out, l := fbBuild(t, root, []string{"gs-app"}, true)
	man := fbRead(t, filepath.Join(out, firstboot.ManifestFile))
	t.Logf("manifest:\n%s", man)
	for _, line := range []string{
		"\tgs-app\t3.0-1\tnoarch\t%pre\t1\t",
		"\tgs-app\t3.0-1\tnoarch\t%post\t1\t",
		"\tgs-app\t3.0-1\tnoarch\t%posttrans\t1\tskipped: <lua> scripts run only inside the package manager itself\n",
	} {
		if !strings.Contains(man, line) {
			t.Errorf("manifest lacks %q", line)
		}
	}
	if !strings.Contains(l.String(), "warning: firstboot: %posttrans 1 of gs-app 3.0-1 is not run: <lua>") {
		t.Errorf("no warning about the <lua> scriptlet:\n%s", l)
	}
	run := fbRead(t, filepath.Join(out, firstboot.Runner))
	if !strings.Contains(run, "step 1 gs-app '%pre 1' /bin/sh "+firstboot.Dir+"/") || strings.Contains(run, "DPKG_") {
		t.Errorf("runner:\n%s", run)
	}
}
