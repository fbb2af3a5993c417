package outdir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCheckDisjoint (7): an output that is, contains or lies inside an
// input or the root is refused, whatever name leads to it.
func TestCheckDisjoint(t *testing.T) {
	dir := t.TempDir()
	// real/supermin.d and real/root; alias is a second name for real.
	mkTree(t, dir, -1, "real/", "real/supermin.d/", "real/supermin.d/packages", "real/supermin.d/sub/",
		"real/root/", "real/root/etc/", "elsewhere/", "real/supermin.d-out/")
	if err := os.Symlink("real", filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real/supermin.d/packages", filepath.Join(dir, "packages-link")); err != nil {
		t.Fatal(err)
	}
	p := func(s string) string { return filepath.Join(dir, s) }
	sd, root := p("real/supermin.d"), p("real/root")
	for _, tc := range []struct {
		name   string
		out    string
		inputs []string
		root   string
		want   string // in the error; "" for none
	}{
		{"disjoint", p("elsewhere/out"), []string{sd}, root, ""},
		{"a sibling sharing the name's start", p("real/supermin.d-out"), []string{sd}, root, ""},
		{"output missing, its parent too", p("elsewhere/a/b/out"), []string{sd}, root, ""},
		{"missing input", p("elsewhere/out"), []string{p("nothing")}, root, ""},
		{"is the input", sd, []string{sd}, root, "is the input"},
		{"is the input, relative", "supermin.d", []string{sd}, "", "is the input"},
		{"is the input through a symlink", p("alias/supermin.d"), []string{sd}, root, "is the input"},
		{"is the input named through a symlink", sd, []string{p("alias/supermin.d")}, root, "is the input"},
		{"contains the input", p("real"), []string{sd}, root, "contains the input"},
		{"contains the input, a symlink to it", p("alias"), []string{sd}, root, "contains the input"},
		{"contains an input file", sd, []string{p("packages-link")}, "", "contains the input"},
		{"inside the input", p("real/supermin.d/sub"), []string{sd}, root, "lies inside the input"},
		{"inside the input, to be made", p("real/supermin.d/new/deeper/out"), []string{sd}, root, "lies inside the input"},
		{"inside the input through a symlink", p("alias/supermin.d/new"), []string{sd}, root, "lies inside the input"},
		{"is the root", root, []string{sd}, root, "is the root"},
		{"inside the root", p("alias/root/etc/out"), []string{sd}, root, "lies inside the root"},
		{"contains the root", p("alias"), nil, root, "contains the root"},
		{"inside the host root", p("elsewhere/out"), []string{sd}, "/", ""},
		{"is the host root", "/", nil, "/", "is the root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !filepath.IsAbs(tc.out) {
				t.Chdir(p("real"))
			}
			err := CheckDisjoint(tc.out, tc.inputs, tc.root)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want == "":
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("err = %v, want %q", err, tc.want)
			case !strings.Contains(err.Error(), tc.out):
				t.Errorf("%v does not name the output %s", err, tc.out)
			}
		})
	}
}

// TestCheckDisjointBindMount (7): a bind mount is a second name that is no
// symlink; only its device and inode give it away.
func TestCheckDisjointBindMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind-mount")
	}
	dir := t.TempDir()
	mkTree(t, dir, -1, "real/", "real/supermin.d/", "real/supermin.d/packages", "bind/")
	if err := unix.Mount(filepath.Join(dir, "real"), filepath.Join(dir, "bind"), "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(filepath.Join(dir, "bind"), unix.MNT_DETACH) })
	sd := filepath.Join(dir, "real/supermin.d")
	for out, want := range map[string]string{
		filepath.Join(dir, "bind/supermin.d"):     "is the input",
		filepath.Join(dir, "bind/supermin.d/new"): "lies inside the input",
		filepath.Join(dir, "bind"):                "contains the input",
	} {
		if err := CheckDisjoint(out, []string{sd}, ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", out, err, want)
		}
	}
}

// TestCheckDisjointKeepsInput (7): checked first, a build into its own
// input fails and leaves the input whole, where Replace alone replaced it.
func TestCheckDisjointKeepsInput(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	mkTree(t, sd, -1, "packages")
	build := func() error {
		if err := CheckDisjoint(sd, []string{sd}, "/"); err != nil {
			return err
		}
		_, err := Replace(context.Background(), sd, Options{Start: Now()}, completeFill("new"))
		return err
	}
	if err := build(); err == nil {
		t.Fatal("a build into its own input succeeded")
	}
	if _, err := os.Stat(filepath.Join(sd, "packages")); err != nil {
		t.Errorf("the input is gone: %v", err)
	}
}
