package firstboot

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/backends"
)

func dpkgScripts(pkg string, pre, post bool) *backends.Scripts {
	s := &backends.Scripts{}
	env := func(script string) [][2]string {
		return [][2]string{{"DPKG_MAINTSCRIPT_PACKAGE", pkg}, {"DPKG_MAINTSCRIPT_ARCH", "amd64"}, {"DPKG_MAINTSCRIPT_NAME", script}}
	}
	if pre {
		s.List = append(s.List, backends.Script{Phase: backends.PreInstall, Name: "preinst", Args: []string{"install"}, Env: env("preinst"), Body: []byte("#!/bin/sh\n")})
	}
	if post {
		s.List = append(s.List, backends.Script{Phase: backends.PostInstall, Name: "postinst", Args: []string{"configure", ""}, Env: env("postinst"), Body: []byte("#!/bin/sh\n")})
	}
	return s
}

func TestDpkgPlan(t *testing.T) {
	alpha := dpkgScripts("alpha", true, true)
	alpha.Extra = []backends.ExtraFile{
		{Suffix: "config", Mode: 0o755, Data: []byte("#!/bin/sh\n")}, {Suffix: "templates", Mode: 0o644, Data: []byte("Template: alpha/q\n")}}
	mid := dpkgScripts("mid", false, true)
	mid.List[0].Env[1][1] = "all"
	libc := Package{Name: "libc-bin", Version: "2.36", Arch: "amd64", Scripts: dpkgScripts("libc-bin", false, true)}
	pkgs := []Package{
		{Name: "zeta", Version: "1", Arch: "amd64", Scripts: dpkgScripts("zeta", true, true)},
		{Name: "none", Version: "1", Arch: "amd64", Scripts: &backends.Scripts{}},
		libc,
		{Name: "mid", Version: "2", Arch: "all", Scripts: mid},
		{Name: "nopost", Version: "1", Arch: "amd64", Scripts: dpkgScripts("nopost", true, false)},
		{Name: "alpha", Version: "1", Arch: "amd64", Scripts: alpha},
	}
	pl, err := New(pkgs, Options{NoServices: true,
		Env:      [][2]string{{"DPKG_ROOT", ""}, {"DPKG_RUNNING_VERSION", "1.21.22"}},
		Triggers: []Trigger{{Package: libc, Script: "postinst", Args: []string{"triggered", "ldconfig /usr/share/x"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range pl.Steps {
		got = append(got, s.Package.Name+" "+s.Label()+" "+strings.Join(s.Command, " "))
	}
	d := Dir + "/"
	want := []string{
		"zeta preinst install " + d + "001-zeta/zeta.preinst install",
		"zeta postinst configure '' " + d + "001-zeta/zeta.postinst configure ",
		"libc-bin postinst configure '' " + d + "002-libc-bin/libc-bin.postinst configure ",
		"mid postinst configure '' " + d + "003-mid/mid.postinst configure ",
		"nopost preinst install " + d + "004-nopost/nopost.preinst install",
		"alpha preinst install " + d + "005-alpha/alpha.preinst install",
		"alpha postinst configure '' " + d + "005-alpha/alpha.postinst configure ",
		"libc-bin postinst triggered 'ldconfig /usr/share/x' " + d + "002-libc-bin/libc-bin.postinst triggered ldconfig /usr/share/x",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s := pl.Steps[3]; s.Env[1] != [2]string{"DPKG_MAINTSCRIPT_ARCH", "all"} || s.Env[0][1] != "mid" || s.Env[2][1] != "postinst" {
		t.Errorf("mid's environment: %v", s.Env)
	}
	if !pl.Steps[7].Trigger || len(pl.Skipped()) != 0 {
		t.Errorf("trigger step %+v, skipped %v", pl.Steps[7], pl.Skipped())
	}
	man := string(pl.Manifest())
	for _, line := range []string{
		"2\tzeta\t1\tamd64\tpostinst\tconfigure ''\t001-zeta/zeta.postinst\n",
		"8\tlibc-bin\t2.36\tamd64\tpostinst\ttriggered 'ldconfig /usr/share/x'\t002-libc-bin/libc-bin.postinst\n",
	} {
		if !strings.Contains(man, line) {
			t.Errorf("manifest lacks %q:\n%s", line, man)
		}
	}
	run := string(pl.Runner())
	for _, s := range []string{
		"#!/bin/sh\n",
		"DPKG_ROOT='' DPKG_RUNNING_VERSION=1.21.22\nexport DPKG_ROOT DPKG_RUNNING_VERSION\n",
		"export DPKG_MAINTSCRIPT_ARCH DPKG_MAINTSCRIPT_NAME DPKG_MAINTSCRIPT_PACKAGE\n",
		"DPKG_MAINTSCRIPT_PACKAGE=mid DPKG_MAINTSCRIPT_ARCH=all DPKG_MAINTSCRIPT_NAME=postinst\nstep 4 mid 'postinst configure '\\'''\\''' " + d + "003-mid/mid.postinst configure ''\n",
		"step 8 libc-bin 'postinst triggered '\\''ldconfig /usr/share/x'\\''' " + d + "002-libc-bin/libc-bin.postinst triggered 'ldconfig /usr/share/x'\n",
		"ln -s " + PolicyRCD + " /usr/sbin/policy-rc.d",
	} {
		if !strings.Contains(run, s) {
			t.Errorf("runner lacks %q", s)
		}
	}
	m := checkEntries(t, pl, 8) // 7 scripts and alpha's debconf config
	for p, mode := range map[string]uint32{d + "005-alpha/alpha.config": 0o755, d + "005-alpha/alpha.templates": 0o644} {
		if e, ok := m.Get(p); !ok || e.Mode != mode {
			t.Errorf("%s: %+v", p, e)
		}
	}
}

// checkEntries: directories, nscripts saved scripts, manifest, runner.
func checkEntries(t *testing.T, pl *Plan, nscripts int) *appliance.Manifest {
	t.Helper()
	m := appliance.New()
	n := 0
	for _, e := range pl.Entries(time0) {
		if err := m.Put(e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == appliance.Regular && strings.HasPrefix(e.Path, Dir+"/0") && !strings.HasSuffix(e.Path, ".templates") {
			n++
		}
	}
	if n != nscripts {
		t.Errorf("%d scripts saved, want %d", n, nscripts)
	}
	for _, p := range []string{Runner, ManifestFile, StateDir, "/var/log"} {
		if _, ok := m.Get(p); !ok {
			t.Errorf("no entry %s", p)
		}
	}
	if e, _ := m.Get(Runner); e == nil || e.Mode != 0o755 || e.Size == 0 {
		t.Errorf("runner entry %+v", e)
	}
	return m
}

func TestOtherFamilies(t *testing.T) {
	rpmPkg := Package{Name: "glibc", Version: "2.39-1.fc40", Arch: "x86_64", Scripts: &backends.Scripts{List: []backends.Script{
		{Phase: backends.PostTransaction, Name: "%posttrans", Interpreter: "/bin/sh", Args: []string{"1"}, Body: []byte("echo posttrans\n")},
		{Phase: backends.PostInstall, Name: "%post", Interpreter: "<lua>", Args: []string{"1"}, Body: []byte("print(1)\n")},
		{Phase: backends.PreInstall, Name: "%pre", Interpreter: "/bin/sh -e", Args: []string{"1"}, Body: []byte("echo pre\n")},
	}}}
	ldc := Package{Name: "libfoo", Version: "1", Arch: "x86_64", Scripts: &backends.Scripts{List: []backends.Script{
		{Phase: backends.PostInstall, Name: "%post", Interpreter: "/sbin/ldconfig", Args: []string{"1"}},
	}}}
	pl, err := New([]Package{rpmPkg, ldc}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range pl.Steps {
		got = append(got, s.Package.Name+" "+s.Label()+" | "+strings.Join(s.Command, " ")+" | "+s.Skipped)
	}
	want := []string{
		"glibc %pre 1 | /bin/sh -e " + Dir + "/001-glibc/glibc.pre 1 | ",
		"glibc %post 1 |  | <lua> scripts run only inside the package manager itself",
		"libfoo %post 1 | /sbin/ldconfig 1 | ",
		"glibc %posttrans 1 | /bin/sh " + Dir + "/001-glibc/glibc.posttrans 1 | ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rpm steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(pl.Skipped()) != 1 || pl.Skipped()[0].File != Dir+"/001-glibc/glibc.post.skipped" {
		t.Errorf("skipped: %+v", pl.Skipped())
	}
	if run := string(pl.Runner()); !strings.Contains(run, "skip 2 glibc '%post 1' '<lua> scripts run only inside the package manager itself'\n") ||
		strings.Contains(run, "DPKG_") || strings.Contains(run, "ln -s") || strings.Contains(run, "SH=/") {
		t.Errorf("rpm runner:\n%s", run)
	}
	if man := string(pl.Manifest()); !strings.Contains(man, "2\tglibc\t2.39-1.fc40\tx86_64\t%post\t1\tskipped: <lua>") ||
		!strings.Contains(man, "3\tlibfoo\t1\tx86_64\t%post\t1\t/sbin/ldconfig 1\n") {
		t.Errorf("rpm manifest:\n%s", man)
	}
	checkEntries(t, pl, 3) // %pre, the skipped %post (kept to be read), %posttrans

	pac := Package{Name: "filesystem", Version: "2024.04.07-1", Arch: "any", Scripts: &backends.Scripts{List: []backends.Script{
		{Phase: backends.PostInstall, Name: "post_install", Interpreter: "/bin/bash", Function: "post_install",
			Args: []string{"2024.04.07-1"}, Body: []byte("post_install() { :; }\n")},
	}}}
	pl, err = New([]Package{pac}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := pl.Steps[0]
	if strings.Join(s.Command, "|") != `/bin/bash|-c|. "$0" && post_install "$@"|`+Dir+"/001-filesystem/filesystem.post_install|2024.04.07-1" {
		t.Errorf("pacman command %q", s.Command)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "''",
		"configure":        "configure",
		"a b":              "'a b'",
		"it's":             `'it'\''s'`,
		"/usr/lib/x:y=1,2": "/usr/lib/x:y=1,2",
		"$HOME":            "'$HOME'",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestRunnerSyntax parses the runner with every shell it must run under.
func TestRunnerSyntax(t *testing.T) {
	pl, err := New([]Package{
		{Name: "a", Version: "1", Arch: "amd64", Scripts: dpkgScripts("a", true, true)},
		{Name: "b", Version: "1", Arch: "amd64", Scripts: &backends.Scripts{List: []backends.Script{
			{Phase: backends.PostInstall, Name: "%post", Interpreter: "<lua>", Body: []byte("x")}}}},
	}, Options{NoServices: true, Env: [][2]string{{"DPKG_ROOT", ""}}, Shell: "/bin/busybox sh"})
	if err != nil {
		t.Fatal(err)
	}
	if run := string(pl.Runner()); !strings.HasPrefix(run, "#!/bin/busybox sh\n") || !strings.Contains(run, "[ -x /bin/busybox ]; then\n\tSH='/bin/busybox sh'\n") {
		t.Errorf("runner for busybox:\n%s", run)
	}
	f := filepath.Join(t.TempDir(), "run")
	if err := os.WriteFile(f, pl.Runner(), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sh := range [][]string{{"dash"}, {"bash", "--posix"}, {"busybox", "sh"}} {
		if _, err := exec.LookPath(sh[0]); err != nil {
			if sh[0] == "busybox" && os.Getenv("CI") != "" {
				t.Errorf("CI: busybox is not installed")
			}
			continue
		}
		out, err := exec.Command(sh[0], append(sh[1:], "-n", f)...).CombinedOutput()
		if err != nil {
			t.Errorf("%s -n: %v\n%s", strings.Join(sh, " "), err, out)
		}
	}
}

var time0 = time.Unix(0, 0)
