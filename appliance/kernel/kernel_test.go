package kernel

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"6.1.0-10-amd64", "6.1.0-56-amd64", -1},
		{"6.1.0-9-amd64", "6.1.0-10-amd64", -1},
		{"6.8.0-45-generic", "6.8.0-100-generic", -1},
		{"6.1.0-56-amd64", "6.1.0-56-amd64", 0},
		{"5.10.0-28-amd64", "6.1.0-1-amd64", -1},
		{"3.10.0.old", "3.10.0-957.el7.x86_64", -1},
		{"3.10.0-957.el7.x86_64", "3.10.0.old", 1},
		{"6.1.0-56-amd64.old", "5.10.0-1-amd64", -1},
		{"6.1.0-56-amd64.bak", "6.1.0-1-amd64", -1},
		{"6.1.0-56-amd64~", "6.1.0-1-amd64", -1},
		{"6.1~rc1", "6.1", -1},
		{"6.1", "6.1.1", -1},
		{"6.1.0", "6.1.0a", -1},
		{"6.1.0a", "6.1.0.1", -1}, // letters before other characters
		{"6.01", "6.1", 0},
		{"6.10", "6.9", 1},
		{"5.14.0-362.8.1.el9_3.x86_64", "5.14.0-70.13.1.el9_0.x86_64", 1},
		{"6.11.5-300.fc41.x86_64", "6.11.10-300.fc41.x86_64", -1},
		{"", "1", -1},
		{"123456789012345678901234567890", "123456789012345678901234567891", -1},
	} {
		if got := Compare(tc.a, tc.b); got != tc.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := Compare(tc.b, tc.a); got != -tc.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func FuzzCompare(f *testing.F) {
	f.Add("6.1.0-10-amd64", "6.1.0-56-amd64")
	f.Add("1~a", "1.old")
	f.Fuzz(func(t *testing.T, a, b string) {
		if Compare(a, b) != -Compare(b, a) {
			t.Errorf("Compare(%q, %q) is not antisymmetric", a, b)
		}
		if Compare(a, a) != 0 {
			t.Errorf("Compare(%q, itself) != 0", a)
		}
	})
}

// bzImage makes a fake kernel of size bytes whose header says release.
func bzImage(release string, size int) []byte {
	b := make([]byte, size)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x20f)
	binary.LittleEndian.PutUint16(b[0x20e:], 0x1000)
	copy(b[0x1200:], release+" (builder@example.org) #1 SMP\x00")
	return b
}

func TestHeaderVersion(t *testing.T) {
	old := bzImage("2.4.0", 20000)
	binary.LittleEndian.PutUint16(old[0x206:], 0x1ff)
	noPtr := bzImage("6.1", 20000)
	binary.LittleEndian.PutUint16(noPtr[0x20e:], 0)
	for _, tc := range []struct {
		name    string
		data    []byte
		want    string
		wantErr string
	}{
		{"debian", bzImage("6.1.0-56-amd64", 20000), "6.1.0-56-amd64", ""},
		{"no header", make([]byte, 20000), "", "not an x86 bzImage"},
		{"short", []byte("MZ"), "", "not an x86 bzImage"},
		{"old protocol", old, "", "no version string"},
		{"no pointer", noPtr, "", "no version string"},
		{"truncated", bzImage("6.1.0", 20000)[:0x1100], "", "beyond the file"},
		{"slash", bzImage("../../etc", 20000), "", "not a kernel release"},
		{"empty", bzImage("", 20000), "", "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := HeaderVersion(tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestHostKernelHeader reads the header of the host's kernels, if any.
func TestHostKernelHeader(t *testing.T) {
	ms, _ := filepath.Glob("/boot/vmlinuz-*")
	n := 0
	for _, m := range ms {
		want := strings.TrimPrefix(filepath.Base(m), "vmlinuz-")
		r, err := host(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fileVersion(r)
		if err != nil {
			t.Logf("%s: %v", m, err)
			continue
		}
		n++
		if got != want {
			t.Errorf("%s: header says %q", m, got)
		}
	}
	if n == 0 {
		t.Skip("no readable /boot/vmlinuz-* on this host")
	}
}

func FuzzHeaderVersion(f *testing.F) {
	f.Add(bzImage("6.1.0-56-amd64", 0x1300))
	f.Add([]byte("HdrS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := HeaderVersion(b)
		if err == nil && (v == "" || strings.ContainsAny(v, "/ \x00")) {
			t.Errorf("bad release %q accepted", v)
		}
	})
}

// tree builds a fake root: files maps paths to contents ("" for a
// directory when the path ends in /).
func tree(t *testing.T, files map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	for p, data := range files {
		hp := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(hp, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hp, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func mods(vers ...string) map[string][]byte {
	m := map[string][]byte{}
	for _, v := range vers {
		m["lib/modules/"+v+"/modules.dep"] = []byte("kernel/fs/ext4/ext4.ko:\n")
	}
	return m
}

func with(m map[string][]byte, kv ...any) map[string][]byte {
	for i := 0; i < len(kv); i += 2 {
		switch v := kv[i+1].(type) {
		case []byte:
			m[kv[i].(string)] = v
		case string:
			m[kv[i].(string)] = []byte(v)
		}
	}
	return m
}

func TestFind(t *testing.T) {
	big := func(v string) []byte { return bzImage(v, 12000) }
	for _, tc := range []struct {
		name     string
		files    map[string][]byte
		env      map[string]string
		cpu      string
		wantPath string // relative to the root, or absolute for env paths
		wantVer  string
		wantMods string
		wantErr  string
	}{
		{
			name: "newest by real version",
			files: with(mods("6.1.0-10-amd64", "6.1.0-56-amd64", "6.1.0-9-amd64"),
				"boot/vmlinuz-6.1.0-10-amd64", big("6.1.0-10-amd64"),
				"boot/vmlinuz-6.1.0-56-amd64", big("6.1.0-56-amd64"),
				"boot/vmlinuz-6.1.0-9-amd64", big("6.1.0-9-amd64")),
			wantPath: "boot/vmlinuz-6.1.0-56-amd64", wantVer: "6.1.0-56-amd64",
		},
		{
			name: "old never wins",
			files: with(mods("3.10.0-957.el7.x86_64", "3.10.0.old"),
				"boot/vmlinuz-3.10.0-957.el7.x86_64", big("3.10.0-957.el7.x86_64"),
				"boot/vmlinuz-3.10.0.old", big("3.10.0.old")),
			wantPath: "boot/vmlinuz-3.10.0-957.el7.x86_64", wantVer: "3.10.0-957.el7.x86_64",
		},
		{
			name: "old file with a newer release from its header",
			files: with(mods("6.1.0-10-amd64", "6.1.0-56-amd64"),
				"boot/vmlinuz-6.1.0-10-amd64", big("6.1.0-10-amd64"),
				"boot/vmlinuz-6.1.0-56-amd64.old", big("6.1.0-56-amd64")),
			wantPath: "boot/vmlinuz-6.1.0-10-amd64", wantVer: "6.1.0-10-amd64",
		},
		{
			name: "skip xen zfcpdump debug and tiny",
			files: with(mods("6.1.0-1-amd64", "6.2.0-xen", "6.3.0-zfcpdump", "6.4.0+debug", "6.5.0-tiny"),
				"boot/vmlinuz-6.1.0-1-amd64", big("6.1.0-1-amd64"),
				"boot/vmlinuz-6.2.0-xen", big("6.2.0-xen"),
				"boot/vmlinuz-6.3.0-zfcpdump", big("6.3.0-zfcpdump"),
				"boot/vmlinuz-6.4.0+debug", big("6.4.0+debug"),
				"boot/vmlinuz-6.5.0-tiny", bzImage("6.5.0-tiny", 5000)),
			wantPath: "boot/vmlinuz-6.1.0-1-amd64", wantVer: "6.1.0-1-amd64",
		},
		{
			name: "host cpu model first",
			files: with(mods("6.1.0-1-amd64", "6.9.0-1-arm64"),
				"boot/vmlinuz-6.1.0-1-amd64", big("6.1.0-1-amd64"),
				"boot/vmlinuz-6.9.0-1-arm64", big("6.9.0-1-arm64")),
			cpu:      "x86_64",
			wantPath: "boot/vmlinuz-6.1.0-1-amd64", wantVer: "6.1.0-1-amd64",
		},
		{
			name: "host cpu arm",
			files: with(mods("6.1.0-1-amd64", "6.0.0-1-arm64"),
				"boot/vmlinuz-6.1.0-1-amd64", big("6.1.0-1-amd64"),
				"boot/vmlinuz-6.0.0-1-arm64", big("6.0.0-1-arm64")),
			cpu:      "aarch64",
			wantPath: "boot/vmlinuz-6.0.0-1-arm64", wantVer: "6.0.0-1-arm64",
		},
		{
			name: "no model match falls back to any",
			files: with(mods("6.1.0-1-custom"),
				"boot/vmlinuz-6.1.0-1-custom", big("6.1.0-1-custom")),
			cpu:      "x86_64",
			wantPath: "boot/vmlinuz-6.1.0-1-custom", wantVer: "6.1.0-1-custom",
		},
		{
			name: "release from the header when the name has none",
			files: with(mods("6.6.1-arch1-1"),
				"boot/vmlinuz-linux", big("6.6.1-arch1-1")),
			wantPath: "boot/vmlinuz-linux", wantVer: "6.6.1-arch1-1",
		},
		{
			name: "kernel without modules is skipped",
			files: with(mods("6.1.0-1-amd64"),
				"boot/vmlinuz-6.1.0-1-amd64", big("6.1.0-1-amd64"),
				"boot/vmlinuz-6.1.0-99-amd64", big("6.1.0-99-amd64")),
			wantPath: "boot/vmlinuz-6.1.0-1-amd64", wantVer: "6.1.0-1-amd64",
		},
		{
			name: "lib modules vmlinuz first",
			files: with(mods("6.11.5-300.fc41.x86_64", "6.11.10-300.fc41.x86_64", "7.0.0-boot"),
				"lib/modules/6.11.5-300.fc41.x86_64/vmlinuz", big("6.11.5-300.fc41.x86_64"),
				"lib/modules/6.11.10-300.fc41.x86_64/vmlinuz", big("6.11.10-300.fc41.x86_64"),
				"boot/vmlinuz-7.0.0-boot", big("7.0.0-boot")),
			wantPath: "lib/modules/6.11.10-300.fc41.x86_64/vmlinuz", wantVer: "6.11.10-300.fc41.x86_64",
		},
		{
			name:    "none",
			files:   map[string][]byte{"boot/": nil},
			wantErr: "no kernel found",
		},
		{
			name:    "only stubs",
			files:   with(mods("6.1.0-1-amd64"), "boot/vmlinuz-6.1.0-1-amd64", bzImage("6.1.0-1-amd64", 12000)[:9999]),
			wantErr: "no kernel found",
		},
		{
			name:     "env kernel, version from header",
			files:    with(mods("6.7.0-test"), "k/bzImage", big("6.7.0-test")),
			env:      map[string]string{"SUPERMIN_KERNEL": "@/k/bzImage"},
			wantPath: "k/bzImage", wantVer: "6.7.0-test",
		},
		{
			name:     "env kernel and version",
			files:    with(mods("6.8.0-given"), "k/bzImage", big("6.7.0-test")),
			env:      map[string]string{"SUPERMIN_KERNEL": "@/k/bzImage", "SUPERMIN_KERNEL_VERSION": "6.8.0-given"},
			wantPath: "k/bzImage", wantVer: "6.8.0-given",
		},
		{
			name:     "env modules",
			files:    with(mods("6.1.0-1-amd64"), "boot/vmlinuz-6.1.0-1-amd64", big("6.1.0-1-amd64"), "m/modules.dep", ""),
			env:      map[string]string{"SUPERMIN_MODULES": "@/m"},
			wantPath: "boot/vmlinuz-6.1.0-1-amd64", wantVer: "6.1.0-1-amd64", wantMods: "m",
		},
		{
			name:    "env kernel missing",
			files:   map[string][]byte{"boot/": nil},
			env:     map[string]string{"SUPERMIN_KERNEL": "@/nope"},
			wantErr: "no such file",
		},
		{
			name:    "env kernel not bzImage",
			files:   map[string][]byte{"k/Image": make([]byte, 20000)},
			env:     map[string]string{"SUPERMIN_KERNEL": "@/k/Image"},
			wantErr: "release is unknown",
		},
		{
			name:    "env kernel without modules",
			files:   map[string][]byte{"k/bzImage": big("6.1.0-nomods")},
			env:     map[string]string{"SUPERMIN_KERNEL": "@/k/bzImage"},
			wantErr: "no modules.dep",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, tc.files)
			env := func(k string) string { return strings.ReplaceAll(tc.env[k], "@", root) }
			var log []string
			k, err := Find(Options{Root: root, HostCPU: tc.cpu, Kernel: env("SUPERMIN_KERNEL"), Version: env("SUPERMIN_KERNEL_VERSION"),
				Modules: env("SUPERMIN_MODULES"), Log: func(s string) { log = append(log, s) }})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want error containing %q", k, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v (log %q)", err, log)
			}
			if k.Image.Path != filepath.Join(root, tc.wantPath) || k.Version != tc.wantVer {
				t.Errorf("got %s %s, want %s %s (log %q)", k.Image.Path, k.Version, tc.wantPath, tc.wantVer, log)
			}
			wantMods := tc.wantMods
			if wantMods == "" {
				wantMods = "lib/modules/" + tc.wantVer
			}
			if k.Modules.Path != filepath.Join(root, wantMods) {
				t.Errorf("modules %s, want %s", k.Modules.Path, wantMods)
			}
		})
	}
}

// TestUnreadable: the Ubuntu case, a 0600 kernel read by a normal user.
// Root reads anything, so the permission error is simulated.
func TestUnreadable(t *testing.T) {
	root := tree(t, with(mods("6.8.0-45-generic"), "boot/vmlinuz-6.8.0-45-generic", bzImage("6.8.0-45-generic", 12000)))
	saved := openFile
	defer func() { openFile = saved }()
	openFile = func(r Ref) (io.ReadCloser, error) {
		return nil, &fs.PathError{Op: "open", Path: r.Path, Err: fs.ErrPermission}
	}
	_, err := Find(Options{Root: root})
	if err == nil {
		t.Fatal("no error for an unreadable kernel")
	}
	for _, want := range []string{"not readable", "sudo chmod 0644 " + filepath.Join(root, "boot/vmlinuz-6.8.0-45-generic")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The same for a kernel named by the caller.
	_, err = Find(Options{Root: root, Kernel: filepath.Join(root, "boot/vmlinuz-6.8.0-45-generic")})
	if err == nil || !strings.Contains(err.Error(), "sudo chmod 0644") || !errors.Is(err, ErrUnreadable) {
		t.Errorf("named kernel unreadable: %v", err)
	}
}

// TestHost chooses a kernel on this machine, if it has one.
func TestHost(t *testing.T) {
	k, err := Find(Options{})
	if err != nil {
		t.Skipf("no usable kernel on this host: %v", err)
	}
	t.Logf("host kernel: %s %s %s", k.Image.Path, k.Version, k.Modules.Path)
}
