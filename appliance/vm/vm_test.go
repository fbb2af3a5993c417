package vm

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/appliance/vm/wire"
)

// The test binary stands in for qemu when FAKE_QEMU says how to behave:
// it finds the run channel's socket in its arguments and plays the
// guest's side of the protocol, so the host's side is tested in
// milliseconds; supermin's boot tests run the real thing.
func TestMain(m *testing.M) {
	if mode := os.Getenv("FAKE_QEMU"); mode != "" {
		os.Exit(fakeQemu(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeQemu modes: "guest" runs the request; "kvm-abort" and "kvm-hang"
// do so under TCG only; "panic" prints a panic and stops; "fail" reports
// that the init cannot run the command.
func fakeQemu(mode string, args []string) int {
	accel, fd := "", -1
	for i, a := range args {
		if i > 0 && args[i-1] == "-accel" {
			accel = a
		}
		if strings.HasPrefix(a, "socket,id=port0,fd=") {
			fd, _ = strconv.Atoi(strings.TrimPrefix(a, "socket,id=port0,fd="))
		}
	}
	switch {
	case mode == "kvm-abort" && accel == "kvm":
		fmt.Fprintln(os.Stderr, "qemu-system-x86_64: kvm run failed Invalid argument")
		return 1
	case mode == "kvm-hang" && accel == "kvm":
		time.Sleep(time.Hour)
	case mode == "panic":
		fmt.Println("[    1.0] Kernel panic - not syncing: test panic")
		fmt.Println("[    1.1] ---[ end Kernel panic ]---")
		return 0
	}
	port := os.NewFile(uintptr(fd), "port")
	wire.Write(port, wire.Hello, []byte(wire.Version))
	var req *wire.Req
	for req == nil {
		t, p, err := wire.Read(port)
		if err != nil {
			return 3
		}
		if t == wire.Request {
			req, _ = wire.ParseReq(p)
		}
	}
	if mode == "fail" {
		wire.Write(port, wire.Fail, []byte("mount the shared directory /x: no such device"))
		return 0
	}
	fmt.Println("console: running", len(req.Args))
	out := func(t wire.Type, s string) { wire.Write(port, t, []byte(s)) }
	status := 0
	switch req.Args[0] {
	case "args": // the request's fields, then qemu's arguments
		out(wire.Stdout, strings.Join(req.Args[1:], "\x00")+"\n"+req.Dir+"\n")
		for _, s := range req.Shares {
			out(wire.Stdout, s.Tag+"="+s.Path+"\n")
		}
		out(wire.Stdout, strings.Join(args, " "))
		// What qemu would load: the kernel's first bytes, by its name.
		for i, a := range args {
			if i > 0 && args[i-1] == "-kernel" {
				var head [4]byte
				f, err := os.Open(a)
				if err == nil {
					_, err = io.ReadFull(f, head[:])
					f.Close()
				}
				out(wire.Stdout, fmt.Sprintf("\nkernel starts %q, %v", head, err))
			}
		}
	case "exit":
		status, _ = strconv.Atoi(req.Args[1])
	case "both":
		out(wire.Stdout, "to stdout")
		out(wire.Stderr, "to stderr")
	case "cat":
		for {
			t, p, err := wire.Read(port)
			if err != nil || (t == wire.Stdin && len(p) == 0) {
				break
			}
			if t == wire.Stdin {
				out(wire.Stdout, string(p))
			}
		}
	case "big":
		n, _ := strconv.Atoi(req.Args[1])
		chunk := bytes.Repeat([]byte("0123456789abcdef"), wire.Chunk/16)
		for n > 0 {
			c := min(n, len(chunk))
			wire.Write(port, wire.Stdout, chunk[:c])
			n -= c
		}
	case "sleep":
		time.Sleep(time.Hour)
	}
	wire.Write(port, wire.Exit, wire.ExitPayload(status))
	time.Sleep(time.Hour) // the host stops the machine
	return 0
}

var amd64, _ = arch.Lookup("amd64")

func fakeAppliance(t *testing.T) *Appliance {
	t.Helper()
	dir := t.TempDir()
	a := &Appliance{Dir: dir, Kernel: filepath.Join(dir, "kernel"), Initrd: filepath.Join(dir, "initrd"), Root: filepath.Join(dir, "root"), Arch: amd64}
	return a
}

// run runs args in a fake machine.
func run(t *testing.T, mode string, o Options, c Command) (int, string, string, error) {
	t.Helper()
	t.Setenv("FAKE_QEMU", mode)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o.Qemu = exe
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang fails
	defer cancel()
	m, err := Start(ctx, fakeAppliance(t), o, c)
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Wait()
	return st, stdout.String(), stderr.String(), err
}

func TestRunFake(t *testing.T) {
	weird := []string{"a b", `q'"`, "new\nline", "\xff\xfe", ""}
	shareDir := t.TempDir()
	for _, tc := range []struct {
		name       string
		c          Command
		o          Options
		status     int
		stdout     []string
		stderr     string
		exactStdio bool
	}{
		{name: "status 0", c: Command{Args: []string{"exit", "0"}}, status: 0},
		{name: "status 1", c: Command{Args: []string{"exit", "1"}}, status: 1},
		{name: "status 7", c: Command{Args: []string{"exit", "7"}}, status: 7},
		{name: "status 255", c: Command{Args: []string{"exit", "255"}}, status: 255},
		{name: "stdout and stderr apart", c: Command{Args: []string{"both"}}, stdout: []string{"to stdout"}, stderr: "to stderr", exactStdio: true},
		{name: "arguments and shares", c: Command{Args: append([]string{"args"}, weird...), Dir: "/home/a b"},
			o: Options{Accel: "tcg", SMP: 2, Shares: []Share{{HostDir: shareDir, GuestDir: "/home/a b"}}},
			stdout: []string{strings.Join(weird, "\x00") + "\n/home/a b\ngosupermin0=/home/a b\n", "-accel tcg", "-smp 2",
				"path=" + shareDir + ",security_model=none", "mount_tag=gosupermin0", "panic=1 gosupermin.run=1 root=/dev/vda quiet",
				"snapshot=on", "-serial stdio"}},
		{name: "persist", c: Command{Args: []string{"args"}}, o: Options{Persist: true}, stdout: []string{"format=raw,if=none,id=hd0 "}},
		{name: "stdin", c: Command{Args: []string{"cat"}, Stdin: bytes.NewReader([]byte("in\x00put\xff"))}, stdout: []string{"in\x00put\xff"}, exactStdio: true},
		{name: "no stdin", c: Command{Args: []string{"cat"}}, stdout: []string{""}, exactStdio: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, out, errOut, err := run(t, "guest", tc.o, tc.c)
			if err != nil || st != tc.status {
				t.Fatalf("status %d, %v; want %d", st, err, tc.status)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout %q has no %q", out, w)
				}
			}
			if tc.exactStdio && (out != tc.stdout[0] || errOut != tc.stderr) {
				t.Errorf("stdout %q stderr %q, want %q %q", out, errOut, tc.stdout[0], tc.stderr)
			}
		})
	}
}

// Output of any size comes out whole.
func TestRunFakeBigOutput(t *testing.T) {
	const n = 5<<20 + 3
	st, out, _, err := run(t, "guest", Options{}, Command{Args: []string{"big", strconv.Itoa(n)}})
	if err != nil || st != 0 || len(out) != n || out[:16] != "0123456789abcdef" {
		t.Fatalf("status %d, %v, %d bytes of output, want %d", st, err, len(out), n)
	}
}

// KVM that fails, or never lets the guest run, is dropped for TCG, said
// once; with kvm asked for, it is an error.
func TestKVMFallback(t *testing.T) {
	old := kvmUsable
	kvmUsable = func() bool { return true }
	defer func() { kvmUsable = old }()
	native := arch.Native()
	if native == nil {
		t.Skip("this machine's architecture is not in the table")
	}
	for _, mode := range []string{"kvm-abort", "kvm-hang"} {
		t.Run(mode, func(t *testing.T) {
			var mu sync.Mutex
			var logs []string
			o := Options{KVMGrace: 300 * time.Millisecond, Log: func(m string) { mu.Lock(); logs = append(logs, m); mu.Unlock() }}
			st, out, _, err := run(t, mode, o, Command{Args: []string{"args"}})
			if err != nil || st != 0 {
				t.Fatalf("status %d, %v", st, err)
			}
			if !strings.Contains(out, "-accel tcg") {
				t.Errorf("not run under TCG: %s", out)
			}
			if len(logs) != 1 || !strings.Contains(logs[0], "KVM does not work on this machine") || !strings.Contains(logs[0], "using TCG") {
				t.Errorf("messages: %q", logs)
			}
		})
	}
	t.Run("kvm asked for", func(t *testing.T) {
		_, _, _, err := run(t, "kvm-abort", Options{Accel: "kvm"}, Command{Args: []string{"args"}})
		var be *BootError
		if !errors.As(err, &be) || !strings.Contains(err.Error(), "kvm run failed") {
			t.Errorf("error %v", err)
		}
	})
}

func TestRunFakeFailures(t *testing.T) {
	t.Run("panic", func(t *testing.T) {
		_, _, _, err := run(t, "panic", Options{Accel: "tcg"}, Command{Args: []string{"true"}})
		var be *BootError
		if !errors.As(err, &be) || be.Last != "Kernel panic - not syncing: test panic" || !strings.Contains(err.Error(), "before the init answered") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("init fails", func(t *testing.T) {
		_, _, _, err := run(t, "fail", Options{Accel: "tcg"}, Command{Args: []string{"true"}})
		var fe *FailError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "mount the shared directory /x") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		t.Setenv("FAKE_QEMU", "guest")
		exe, _ := os.Executable()
		ctx, cancel := context.WithCancel(context.Background())
		m, err := Start(ctx, fakeAppliance(t), Options{Qemu: exe, Accel: "tcg"}, Command{Args: []string{"sleep"}})
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := m.Wait(); !errors.Is(err, context.Canceled) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		for _, o := range []Options{
			{Qemu: "/bin/true", Accel: "hvf"},
			{Qemu: "/bin/true", Shares: []Share{{HostDir: t.TempDir(), GuestDir: "/"}}},
			{Qemu: "/bin/true", Shares: []Share{{HostDir: "/nonexistent", GuestDir: "/x"}}},
			{Qemu: "/bin/true", Shares: []Share{{HostDir: "relative", GuestDir: "/x"}}},
		} {
			if _, err := Start(context.Background(), fakeAppliance(t), o, Command{}); err == nil {
				t.Errorf("%+v: no error", o)
			}
		}
	})
}

func TestOpen(t *testing.T) {
	arm64Image := make([]byte, 0x40)
	copy(arm64Image[0x38:], "ARM\x64")
	for _, tc := range []struct {
		name   string
		files  map[string][]byte
		format string
		arch   string
		err    string
	}{
		{"ext2 arm64", map[string][]byte{"kernel": arm64Image, "initrd": {0}, "root": {0}}, "ext2", "arm64", ""},
		{"cpio arm64", map[string][]byte{"kernel": arm64Image, "initrd": {0}}, "cpio", "arm64", ""},
		{"chroot", map[string][]byte{"etc": nil}, "", "", "not a bootable appliance"},
		{"no initrd", map[string][]byte{"kernel": arm64Image}, "", "", "no initrd"},
		{"unknown kernel", map[string][]byte{"kernel": []byte("hello"), "initrd": {0}}, "", "", "not a kernel image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, b := range tc.files {
				if b == nil {
					os.Mkdir(filepath.Join(dir, n), 0o755)
					continue
				}
				os.WriteFile(filepath.Join(dir, n), b, 0o644)
			}
			a, err := Open(dir)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || a.Format() != tc.format || a.Arch.Name != tc.arch {
				t.Errorf("%+v, %v", a, err)
			}
		})
	}
}

func TestTelling(t *testing.T) {
	for _, tc := range []struct{ console, want string }{
		{"a\r\nb\r\ngosupermin init: error: no root\r\ngosupermin init: powering off\r\n[ 3.0] reboot: Power down\r\n", "gosupermin init: error: no root"},
		{"x\n[ 1.0] Kernel panic - not syncing: No working init found.\n[ 1.1] CPU: 0 PID: 1\n", "Kernel panic - not syncing: No working init found."},
		{"one\ntwo\n\n", "two"},
		{"", ""},
	} {
		if got := telling(tc.console); got != tc.want {
			t.Errorf("telling(%q) = %q, want %q", tc.console, got, tc.want)
		}
	}
	var tl tail
	tl.max = 4
	io.WriteString(&tl, "abcdef")
	io.WriteString(&tl, "gh")
	if tl.String() != "efgh" {
		t.Errorf("tail %q", tl.String())
	}
}

// pvhBzImage makes a bzImage (only the header fields kernel.Vmlinux
// reads) of a gzip payload: pvhELF(pvh).
func pvhBzImage(t *testing.T, pvh bool) []byte {
	t.Helper()
	le := binary.LittleEndian
	e := pvhELF(pvh)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(e)
	zw.Close()
	payload := le.AppendUint32(z.Bytes(), uint32(len(e)))
	b := make([]byte, 2*512)
	copy(b, "MZ") // as bzImages start, for EFI
	copy(b[0x202:], "HdrS")
	le.PutUint16(b[0x206:], 0x20f)
	b[0x1f1] = 1
	le.PutUint32(b[0x24c:], uint32(len(payload)))
	return append(b, payload...)
}

// pvhELF is an ELF64 x86-64 with a PVH note if pvh, else with no note.
func pvhELF(pvh bool) []byte {
	le := binary.LittleEndian
	var notes []byte
	if pvh {
		notes = le.AppendUint32(notes, 4) // "Xen\0"
		notes = le.AppendUint32(notes, 4)
		notes = le.AppendUint32(notes, 18) // XEN_ELFNOTE_PHYS32_ENTRY
		notes = append(notes, "Xen\x00\x00\x00\x00\x01"...)
	}
	e := make([]byte, 64+56)
	copy(e, "\x7fELF\x02\x01\x01")
	le.PutUint16(e[18:], 62) // x86-64
	le.PutUint64(e[32:], 64)
	le.PutUint16(e[54:], 56)
	le.PutUint16(e[56:], 1)
	le.PutUint32(e[64:], 4) // PT_NOTE
	le.PutUint64(e[64+8:], uint64(len(e)))
	le.PutUint64(e[64+32:], uint64(len(notes)))
	return append(e, notes...)
}

// Under TCG, an x86-64 kernel with a PVH note boots as its ELF, from a
// memfd qemu inherits; without one, or under KVM, as the bzImage. With
// auto, a KVM machine that has not said Hello halfway through its grace
// has the ELF taken out meanwhile; one that says Hello does not. An
// appliance whose kernel is the ELF already boots it as it is.
func TestPVH(t *testing.T) {
	old := kvmUsable
	kvmUsable = func() bool { return true }
	defer func() { kvmUsable = old }()
	for _, tc := range []struct {
		name, mode, accel string
		pvh               bool
		elf               bool
		detail            string
		elfKernel         bool // OUT/kernel is the ELF (gosupermin's default)
	}{
		{"tcg", "guest", "tcg", true, true, "booting the ELF kernel inside", false},
		{"tcg, no PVH note", "guest", "tcg", false, false, "no PVH entry point", false},
		{"kvm", "guest", "kvm", true, false, "", false},
		{"auto, KVM fails", "kvm-abort", "auto", true, true, "booting the ELF kernel inside", false},
		{"auto, KVM hangs", "kvm-hang", "auto", true, true, "booting the ELF kernel inside", false},
		{"auto, KVM works", "guest", "auto", true, false, "", false},
		{"tcg, ELF kernel", "guest", "tcg", true, false, "an ELF kernel, through PVH", true},
		{"auto, KVM hangs, ELF kernel", "kvm-hang", "auto", true, false, "an ELF kernel, through PVH", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FAKE_QEMU", tc.mode)
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			a := fakeAppliance(t)
			kernel, head := pvhBzImage(t, tc.pvh), `"MZ\x00\x00"`
			if tc.elfKernel {
				kernel, head = pvhELF(tc.pvh), "\"\\x7fELF\""
				a.KernelFormat = arch.ELFImage
			}
			if err := os.WriteFile(a.Kernel, kernel, 0o644); err != nil {
				t.Fatal(err)
			}
			var details []string
			var stdout bytes.Buffer
			o := Options{Qemu: exe, Accel: tc.accel, KVMGrace: 400 * time.Millisecond,
				Log: func(string) {}, Detail: func(m string) { details = append(details, m) }}
			m, err := Start(context.Background(), a, o, Command{Args: []string{"args"}, Stdout: &stdout})
			if err != nil {
				t.Fatal(err)
			}
			if st, err := m.Wait(); st != 0 || err != nil {
				t.Fatalf("status %d, %v", st, err)
			}
			out := stdout.String()
			want := "-kernel " + a.Kernel + " "
			if tc.elf {
				want, head = "-kernel /dev/fd/4 ", "\"\\x7fELF\""
			}
			if !strings.Contains(out, want) || !strings.Contains(out, "kernel starts "+head+", <nil>") {
				t.Errorf("want %q and a kernel starting %s; qemu's arguments and kernel: %s", want, head, out)
			}
			if len(details) > 1 || tc.detail == "" && len(details) != 0 || tc.detail != "" && (len(details) == 0 || !strings.Contains(details[0], tc.detail)) {
				t.Errorf("details %q, want one with %q", details, tc.detail)
			}
		})
	}
}
