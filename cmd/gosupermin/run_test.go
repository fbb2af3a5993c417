package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/appliance/vm"
)

func TestParseRunArgs(t *testing.T) {
	c, err := parseArgs([]string{"--run", "out", "--share", "/a:/b", "--share=/c", "--share-ro", "/d", "--memory", "2G", "--smp", "2", "--timeout", "1.5",
		"--accel", "tcg", "--persist", "-v", "--", "sh", "-c", "x", "--", "-v"})
	if err != nil {
		t.Fatal(err)
	}
	want := &cli{mode: "run", verbose: 1, size: 4 << 30, args: []string{"out"}, command: []string{"sh", "-c", "x", "--", "-v"},
		shares: []shareArg{{"--share", "/a:/b", false}, {"--share", "/c", false}, {"--share-ro", "/d", true}},
		memory: 2048, smp: 2, timeout: 1.5, accel: "tcg", persist: true,
		runUsed: []string{"--share", "--share", "--share-ro", "--memory", "--smp", "--timeout", "--accel", "--persist"}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if err := c.check(); err != nil {
		t.Errorf("check: %v", err)
	}
	for _, tc := range []struct{ in, want string }{
		{"512", "512"}, {"512M", "512"}, {"2G", "2048"}, {"0", ""}, {"1.5G", ""}, {"1T", ""}, {"", ""},
	} {
		n, err := parseMemory(tc.in)
		if (tc.want == "") != (err != nil) || (err == nil && tc.want != strconv.Itoa(n)) {
			t.Errorf("parseMemory(%q) = %d, %v; want %q", tc.in, n, err, tc.want)
		}
	}
}

func TestParseShare(t *testing.T) {
	cwd, _ := os.Getwd()
	for _, tc := range []struct {
		in   string
		ro   bool
		want vm.Share
		err  bool
	}{
		{"/a", false, vm.Share{HostDir: "/a", GuestDir: "/a"}, false},
		{"/a:/b/", false, vm.Share{HostDir: "/a", GuestDir: "/b"}, false},
		{"/a:b:/c", false, vm.Share{HostDir: "/a:b", GuestDir: "/c"}, false},
		{"/a:b", false, vm.Share{HostDir: "/a:b", GuestDir: "/a:b"}, false},
		{"rel", false, vm.Share{HostDir: filepath.Join(cwd, "rel"), GuestDir: filepath.Join(cwd, "rel")}, false},
		{"/a:/", false, vm.Share{}, true},
		{"/a:/b", true, vm.Share{HostDir: "/a", GuestDir: "/b", ReadOnly: true}, false},
		{"/a:/", true, vm.Share{}, true},
	} {
		got, err := parseShare("--share", tc.in, tc.ro)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("parseShare(%q) = %+v, %v", tc.in, got, err)
		}
	}
	for dir, want := range map[string]bool{"/": true, "/usr": true, "/usr/src/x": true, "/etc": true, "/home/u": false, "/tmp/x": false, "/usrx": false} {
		if hidesSystem(dir) != want {
			t.Errorf("hidesSystem(%q) = %v", dir, !want)
		}
	}
}

// Usage errors exit 2 and an appliance that is not one exits 1, all
// before any machine starts.
func TestRunCLIErrors(t *testing.T) {
	chroot := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--run"}, 2, "--run needs one appliance directory"},
		{[]string{"--run", "a", "b"}, 2, "--run needs one appliance directory"},
		{[]string{"--run", "a", "-o", "x"}, 2, "-o is not used with --run"},
		{[]string{"--run", "a", "-f", "ext2"}, 2, "build options do not apply"},
		{[]string{"--run", "--build", "a"}, 2, "use one of"},
		{[]string{"--build", "-f", "ext2", "sd", "-o", "x", "--share", "/a"}, 2, "--share needs --run"},
		{[]string{"--run", "a", "--accel", "hvf"}, 2, "use auto, kvm or tcg"},
		{[]string{"--run", "a", "--smp", "0"}, 2, "--smp"},
		{[]string{"--run", "a", "--timeout", "-1"}, 2, "--timeout"},
		{[]string{"--run", "a", "--memory", "lots"}, 2, "--memory"},
		{[]string{"--run", "a", "--share", "/a:/"}, 2, "root"},
		{[]string{"--run", "a", "--share-ro", "/a:/"}, 2, "--share-ro \"/a:/\": it cannot replace the appliance's root"},
		{[]string{"--build", "-f", "ext2", "sd", "-o", "x", "--share-ro", "/a"}, 2, "--share-ro needs --run"},
		{[]string{"--run", "a", "--share-ro", ""}, 2, "--share-ro needs a directory"},
		{[]string{"--run", chroot, "--", "true"}, 1, "not a bootable appliance"},
		{[]string{"--run", filepath.Join(chroot, "missing"), "--", "true"}, 1, "not a bootable appliance"},
	} {
		r := gosupermin(t, tc.args...)
		if r.code != tc.code || !strings.HasPrefix(r.stderr, "gosupermin: ") || !strings.Contains(r.stderr, tc.msg) || r.stdout != "" {
			t.Errorf("gosupermin %q: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, r.code, r.stdout, r.stderr, tc.code, tc.msg)
		}
	}
}
