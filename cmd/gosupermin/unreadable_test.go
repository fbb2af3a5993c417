package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// asUser is the command prefix that runs a program as an unprivileged
// user: nothing when the tests already run as one, else runuser or setpriv
// to nobody. The second result is false when neither is there.
func asUser() ([]string, bool) {
	if os.Geteuid() != 0 {
		return nil, true
	}
	if p, err := exec.LookPath("runuser"); err == nil {
		return []string{p, "-u", "nobody", "--"}, true
	}
	if p, err := exec.LookPath("setpriv"); err == nil {
		return []string{p, "--reuid=65534", "--regid=65534", "--clear-groups"}, true
	}
	return nil, false
}

// gosuperminAsUser runs the binary as an unprivileged user; args may
// start with "env" and variables.
func gosuperminAsUser(t *testing.T, args ...string) result {
	t.Helper()
	prefix, ok := asUser()
	need(t, ok, "running as root without runuser or setpriv (util-linux) to drop privileges")
	var env []string
	if len(args) > 0 && args[0] == "env" {
		i := 1
		for i < len(args) && strings.Contains(args[i], "=") {
			i++
		}
		env, args = args[:i], args[i:]
	}
	return runCmd(t, append(append(append(prefix, env...), bin), args...)...)
}

// userTempDir is a temporary directory that an unprivileged user may
// write into, under a parent it can reach.
func userTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestUnreadableFiles: a package file or directory that the building user
// cannot read is left out with one warning (count, first paths; all with
// -v) and the build goes on; directories that cannot be listed keep their
// entry. As root the same tree builds whole.
func TestUnreadableFiles(t *testing.T) {
	dir := userTempDir(t)
	root := filepath.Join(dir, "root")
	copyDir(t, "../../fixtures/dpkg/edge", root)
	sd := filepath.Join(dir, "supermin.d")
	if r := gosupermin(t, "--prepare", "--root", root, "app", "-o", sd); r.code != 0 {
		t.Fatalf("prepare: %+v", r)
	}
	// The bin binary must be reachable by that user too.
	for d := filepath.Dir(bin); d != "/"; d = filepath.Dir(d) {
		if fi, _ := os.Stat(d); fi != nil && fi.Mode().Perm()&0o001 == 0 {
			os.Chmod(d, fi.Mode().Perm()|0o011)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// A file nobody but its owner reads, a directory nobody else may
	// search (its files cannot even be stat'ed), a hostfile in it.
	must(os.Chmod(filepath.Join(root, "usr/bin/app"), 0o600))
	must(os.Chmod(filepath.Join(root, "usr/share/doc/app"), 0o700))
	must(os.MkdirAll(filepath.Join(root, "srv/secret"), 0o755))
	must(os.WriteFile(filepath.Join(root, "srv/secret/key"), []byte("secret"), 0o600))
	must(os.WriteFile(filepath.Join(sd, "hostfiles"), []byte("/srv/secret/key\n/srv/secret\n"), 0o644))
	unreadable := []string{
		filepath.Join(root, "srv/secret/key"),
		filepath.Join(root, "usr/bin/app"),
		filepath.Join(root, "usr/share/doc/app/README"),
	}

	for _, format := range []string{"chroot", "ext2", "cpio"} {
		t.Run(format, func(t *testing.T) {
			args := []string{"--build", "-f", format, "--root", root, sd, "-o", filepath.Join(dir, "out-"+format)}
			if format != "chroot" {
				// The tree has no kernel: the host's (a path the user names).
				k, ok := hostKernel()
				need(t, ok, "no host kernel in /boot (apt-get install linux-image-amd64)")
				args = append([]string{"env", "SUPERMIN_KERNEL=" + k.path, "SUPERMIN_MODULES=" + k.modules}, args...)
			}
			r := gosuperminAsUser(t, args...)
			out := filepath.Join(dir, "out-"+format)
			if r.code != 0 {
				t.Fatalf("build as an unprivileged user: %+v", r)
			}
			want := "3 files are not readable by this user and left out of the appliance (building as root includes them): " +
				strings.Join(unreadable, ", ")
			if !strings.Contains(r.stderr, want) {
				t.Errorf("warning: got %q, want it to contain %q", r.stderr, want)
			}
			if strings.Count(r.stderr, "not readable by this user") != 1 {
				t.Errorf("told more than once: %q", r.stderr)
			}
			if format != "chroot" {
				return
			}
			for _, p := range []string{"usr/bin/app", "usr/share/doc/app/README", "srv/secret/key"} {
				if _, err := os.Lstat(filepath.Join(out, p)); err == nil {
					t.Errorf("%s is in the appliance", p)
				}
			}
			for _, p := range []string{"usr/share/doc/app", "srv/secret", "usr/bin/tool"} {
				if _, err := os.Lstat(filepath.Join(out, p)); err != nil {
					t.Errorf("%s should be in the appliance: %v", p, err)
				}
			}
			if fi, err := os.Stat(filepath.Join(out, "usr/share/doc/app")); err == nil && fi.Mode().Perm() != 0o700 {
				t.Errorf("unlistable directory kept with mode %v, want 0700", fi.Mode().Perm())
			}
		})
	}

	t.Run("verbose lists all", func(t *testing.T) {
		must(os.Chmod(filepath.Join(root, "srv/secret"), 0o700))
		defer os.Chmod(filepath.Join(root, "srv/secret"), 0o755)
		must(os.MkdirAll(filepath.Join(root, "srv/pub"), 0o755))
		var more []string
		for i := range 4 {
			p := filepath.Join(root, "srv/pub", "file"+string(rune('a'+i)))
			must(os.WriteFile(p, nil, 0o600))
			more = append(more, p)
		}
		must(os.WriteFile(filepath.Join(sd, "hostfiles"), []byte("/srv/pub/*\n/srv/secret/*\n"), 0o644))
		r := gosuperminAsUser(t, "--build", "-v", "-f", "chroot", "--root", root, sd, "-o", filepath.Join(dir, "out-v"))
		if r.code != 0 {
			t.Fatalf("build: %+v", r)
		}
		if !strings.Contains(r.stderr, "7 files are not readable by this user") || !strings.Contains(r.stderr, "and 4 more (-v lists them all)") {
			t.Errorf("summary missing: %s", r.stderr)
		}
		// A pattern's directory that cannot be listed is named itself.
		for _, p := range append(append(more, unreadable[1:]...), filepath.Join(root, "srv/secret")) {
			if !strings.Contains(r.stderr, "not readable, left out: "+p+"\n") {
				t.Errorf("-v does not list %s:\n%s", p, r.stderr)
			}
		}
	})

	t.Run("root includes them", func(t *testing.T) {
		need(t, isRoot(), "only root reads every file")
		must(os.WriteFile(filepath.Join(sd, "hostfiles"), []byte("/srv/secret/key\n"), 0o644))
		out := filepath.Join(dir, "out-root")
		r := gosupermin(t, "--build", "-f", "chroot", "--root", root, sd, "-o", out)
		if r.code != 0 || strings.Contains(r.stderr, "not readable") {
			t.Fatalf("build as root: %+v", r)
		}
		for _, p := range []string{"usr/bin/app", "usr/share/doc/app/README", "srv/secret/key"} {
			if _, err := os.Lstat(filepath.Join(out, p)); err != nil {
				t.Errorf("root build lacks %s: %v", p, err)
			}
		}
	})
}

// TestUnreadableFirstboot: --firstboot follows the same rule for the
// maintainer scripts and database files it saves.
func TestUnreadableFirstboot(t *testing.T) {
	dir := userTempDir(t)
	root := filepath.Join(dir, "root")
	copyDir(t, "../../fixtures/dpkg-firstboot", root)
	sd := filepath.Join(dir, "supermin.d")
	os.Mkdir(sd, 0o755)
	os.WriteFile(filepath.Join(sd, "packages"), []byte("fb-alpha\nfb-mid\n"), 0o644)
	info := filepath.Join(root, "var/lib/dpkg/info")
	for _, f := range []string{"fb-alpha.postinst", "fb-alpha.templates", "fb-mid.list"} {
		if err := os.Chmod(filepath.Join(info, f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	r := gosuperminAsUser(t, "--build", "-v", "--firstboot", "-f", "chroot", "--root", root, sd, "-o", out)
	if r.code == 0 {
		t.Fatalf("a .list the build cannot read is the database itself: want an error, got %+v", r)
	}
	if !strings.Contains(r.stderr, filepath.Join(info, "fb-mid.list")) {
		t.Errorf("error does not name the unreadable file list: %s", r.stderr)
	}
	os.Chmod(filepath.Join(info, "fb-mid.list"), 0o644)
	r = gosuperminAsUser(t, "--build", "-v", "--firstboot", "-f", "chroot", "--root", root, sd, "-o", out)
	if r.code != 0 {
		t.Fatalf("build: %+v", r)
	}
	if p := filepath.Join(info, "fb-alpha.postinst"); !strings.Contains(r.stderr, "left out of the appliance (building as root includes them): "+p) {
		t.Errorf("the unreadable script is not reported:\n%s", r.stderr)
	}
	manifest, err := os.ReadFile(filepath.Join(out, "usr/lib/gosupermin/firstboot/manifest"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(manifest), "\tfb-alpha\t") || !strings.Contains(string(manifest), "\tfb-mid\t") {
		t.Errorf("manifest:\n%s", manifest)
	}
}

// TestUnreadableExplicit: what the user names (an input, --root, the
// kernel, the output) stays an error with one clear line.
func TestUnreadableExplicit(t *testing.T) {
	dir := userTempDir(t)
	root := filepath.Join(dir, "root")
	copyDir(t, "../../fixtures/dpkg/edge", root)
	sd := filepath.Join(dir, "supermin.d")
	if r := gosupermin(t, "--prepare", "--root", root, "app", "-o", sd); r.code != 0 {
		t.Fatalf("prepare: %+v", r)
	}
	secret := filepath.Join(dir, "secret")
	os.Mkdir(secret, 0o700)
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, make([]byte, 20000), 0o600)
	if os.Geteuid() == 0 {
		os.Chown(secret, 0, 0)
		os.Chown(kernel, 0, 0)
	}
	hidden := filepath.Join(dir, "hidden.d")
	os.Mkdir(hidden, 0o755)
	os.WriteFile(filepath.Join(hidden, "packages"), []byte("app\n"), 0o600)

	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"input file", []string{"--build", "-f", "chroot", "--root", root, hidden, "-o", filepath.Join(dir, "o1")},
			nil, []string{filepath.Join(hidden, "packages"), "permission denied"}},
		{"root", []string{"--build", "-f", "chroot", "--root", filepath.Join(secret, "tree"), sd, "-o", filepath.Join(dir, "o2")},
			nil, []string{filepath.Join(secret, "tree"), "permission denied"}},
		{"output", []string{"--build", "-f", "chroot", "--root", root, sd, "-o", filepath.Join(secret, "out")},
			nil, []string{secret, "permission denied"}},
		{"kernel", []string{"--build", "-f", "ext2", "--root", root, sd, "-o", filepath.Join(dir, "o3")},
			[]string{"SUPERMIN_KERNEL=" + kernel, "SUPERMIN_KERNEL_VERSION=1.0", "SUPERMIN_MODULES=" + dir},
			[]string{kernel, "not readable by you", "chmod 0644"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix, ok := asUser()
			need(t, ok, "running as root without runuser or setpriv")
			if len(tc.env) > 0 {
				prefix = append(prefix, append([]string{"env"}, tc.env...)...)
			}
			r := runCmd(t, append(append(prefix, bin), tc.args...)...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1: %+v", r.code, r)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			var errs []string
			for _, l := range lines {
				if !strings.HasPrefix(l, "gosupermin: warning: ") {
					errs = append(errs, l)
				}
			}
			if len(errs) != 1 {
				t.Errorf("want one error line, got %q", r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("message %q lacks %q", r.stderr, w)
				}
			}
		})
	}
}

type kernelFiles struct{ path, modules string }

// hostKernel is a kernel of this host with its module directory.
func hostKernel() (kernelFiles, bool) {
	m, _ := filepath.Glob("/boot/vmlinuz-*")
	for _, k := range m {
		mods := "/lib/modules/" + strings.TrimPrefix(filepath.Base(k), "vmlinuz-")
		if _, err := os.Stat(mods + "/modules.dep"); err == nil {
			return kernelFiles{k, mods}, true
		}
	}
	return kernelFiles{}, false
}
