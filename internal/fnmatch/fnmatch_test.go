package fnmatch

import "testing"

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pat, name string
		want      bool
	}{
		{"/usr/share/doc/*", "/usr/share/doc/bash/README", true},
		{"/usr/share/doc/*", "/usr/share/doc", false},
		{"/usr/lib/*/*.a", "/usr/lib/x86_64-linux-gnu/libc.a", true},
		{"/usr/share/man/*", "/usr/share/mans", false},
		{"/lib/modules/*", "/lib/modules/6.1/kernel/x.ko", true},
		{"/etc/?asswd", "/etc/passwd", true},
		{"/etc/[a-c]*", "/etc/bash.bashrc", true},
		{"/etc/[!a-c]*", "/etc/bash.bashrc", false},
		{"/etc/[]x]", "/etc/]", true},
		{"/a\\*", "/a*", true},
		{"/a\\*", "/ab", false},
		{"*.pyc", "/usr/lib/python3/x.pyc", true},
		{"/x[", "/x[", true},
	} {
		if got := Match(tc.pat, tc.name); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pat, tc.name, got, tc.want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("/usr/*/[a-z]?\\*", "/usr/share/ab*")
	f.Fuzz(func(t *testing.T, pat, name string) {
		_ = Match(pat, name)
		if !Match("*", name) {
			t.Fatal("* must match everything")
		}
	})
}
