package initproc

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/ext2"
)

func TestSplitCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"console=ttyS0 root=/dev/sda quiet\n", []string{"console=ttyS0", "root=/dev/sda", "quiet"}},
		{`a="b c" "d e"  f`, []string{"a=b c", "d e", "f"}},
		{"x -- init args", []string{"x"}},
		{"", nil},
		{`""`, []string{""}},
	} {
		if got := splitCmdline(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	// The command line libguestfs gives a supermin appliance.
	p := parseCmdline(`panic=1 console=ttyS0 edd=off udevtimeout=6000 udev.event-timeout=6000 no_timer_check printk.time=1 cgroup_disable=memory usbcore.nousb cryptomgr.notests tsc=reliable 8250.nr_uarts=1 root=UUID=0c3bd4b8-2a4c-4b0e-9e56-6f7ef3b5a7f1 selinux=0 quiet TERM=vt220`)
	if p.root != "UUID=0c3bd4b8-2a4c-4b0e-9e56-6f7ef3b5a7f1" || !p.quiet || p.readOnly || p.init != "" || !p.firstboot || p.rootWait != defaultRootWait {
		t.Errorf("libguestfs command line: %+v", p)
	}
	p = parseCmdline(`root=/dev/vda1 ro rootfstype=ext4,ext2 rootflags=noatime init=/bin/bash gosupermin.rootwait=2.5 gosupermin.firstboot=0 gosupermin.firstboot.timeout=90`)
	want := params{root: "/dev/vda1", readOnly: true, rootfstype: []string{"ext4", "ext2"}, rootflags: "noatime", init: "/bin/bash",
		rootWait: 2500 * time.Millisecond, firstboot: false, fbTimeout: 90 * time.Second}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %+v, want %+v", p, want)
	}
	if p := parseCmdline("ro rw rootdelay=bad"); p.readOnly || p.rootWait != defaultRootWait {
		t.Errorf("ro rw: %+v", p)
	}
}

func TestParseRoot(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    rootSpec
		wantErr string
	}{
		{"/dev/sda", rootSpec{"dev", "sda"}, ""},
		{"/dev/vda1", rootSpec{"dev", "vda1"}, ""},
		{"/dev/nvme0n1p2", rootSpec{"dev", "nvme0n1p2"}, ""},
		{"/dev/cciss/c0d0", rootSpec{"dev", "cciss/c0d0"}, ""},
		{"UUID=0C3BD4B8-2A4C-4B0E-9E56-6F7EF3B5A7F1", rootSpec{"uuid", "0c3bd4b8-2a4c-4b0e-9e56-6f7ef3b5a7f1"}, ""},
		{"/dev/disk/by-uuid/0c3bd4b8-2a4c-4b0e-9e56-6f7ef3b5a7f1", rootSpec{"uuid", "0c3bd4b8-2a4c-4b0e-9e56-6f7ef3b5a7f1"}, ""},
		{"LABEL=my root", rootSpec{"label", "my root"}, ""},
		{`/dev/disk/by-label/my\x20root`, rootSpec{"label", "my root"}, ""},
		{"8:1", rootSpec{"devnum", "8:1"}, ""},
		{"UUID=xyz", rootSpec{}, "not a UUID"},
		{"PARTUUID=1234-01", rootSpec{}, "not supported"},
		{"", rootSpec{}, "no root="},
		{"/dev/../etc", rootSpec{}, "bad device"},
		{"sda", rootSpec{}, "not understood"},
	} {
		got, err := parseRoot(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseRoot(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseRoot(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// fakeDisk is a file with an ext superblock.
func fakeDisk(t *testing.T, p string, uuid [16]byte, label string) {
	t.Helper()
	b := make([]byte, 4096)
	binary.LittleEndian.PutUint16(b[0x438:], 0xEF53)
	copy(b[0x468:], uuid[:])
	copy(b[0x478:], label)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fakeSys makes /sys/class/block entries and /dev nodes (regular files).
func fakeSys(t *testing.T) (sys, dev string) {
	t.Helper()
	sys, dev = t.TempDir(), t.TempDir()
	for _, d := range []struct {
		name, num, size string
		uuid            [16]byte
		label           string
	}{
		{"sda", "8:0", "8", [16]byte{1, 2, 3}, ""},
		{"vda", "254:0", "8", [16]byte{0x0c, 0x3b, 0xd4, 0xb8, 0x2a, 0x4c, 0x4b, 0x0e, 0x9e, 0x56, 0x6f, 0x7e, 0xf3, 0xb5, 0xa7, 0xf1}, "approot"},
		{"vda1", "254:1", "8", [16]byte{9}, "part"},
		{"sr0", "11:0", "0", [16]byte{}, ""},
	} {
		dir := filepath.Join(sys, "class", "block", d.name)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "dev"), []byte(d.num+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "size"), []byte(d.size+"\n"), 0o644)
		if d.size != "0" {
			fakeDisk(t, filepath.Join(dev, d.name), d.uuid, d.label)
		}
	}
	return sys, dev
}

func TestFindRoot(t *testing.T) {
	sys, dev := fakeSys(t)
	for _, tc := range []struct {
		root, want string
	}{
		{"/dev/vda", "vda"},
		{"/dev/vda1", "vda1"},
		{"UUID=0c3bd4b8-2a4c-4b0e-9e56-6f7ef3b5a7f1", "vda"},
		{"LABEL=part", "vda1"},
		{"254:1", "vda1"},
		{"8:0", "sda"},
		{"/dev/vdb", ""},
		{"UUID=00000000-0000-0000-0000-000000000000", ""},
	} {
		spec, err := parseRoot(tc.root)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := findRoot(spec, sys, dev)
		if tc.want == "" {
			if ok {
				t.Errorf("%s found at %s", tc.root, got)
			}
			continue
		}
		if !ok || got != filepath.Join(dev, tc.want) {
			t.Errorf("%s: got %q, %v; want %s", tc.root, got, ok, tc.want)
		}
	}
}

func TestWaitRootTimeout(t *testing.T) {
	sys, dev := fakeSys(t)
	spec, _ := parseRoot("UUID=00000000-0000-0000-0000-000000000000")
	start := time.Now()
	_, err := waitRoot(spec, sys, dev, 200*time.Millisecond)
	if err == nil {
		t.Fatal("found a root that is not there")
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("waited %v", d)
	}
	for _, want := range []string{"did not appear within 200ms", "vda (254:0, 0 MiB, ext UUID=0c3bd4b8-2a4c-4b0e-9e56-6f7ef3b5a7f1 LABEL=approot)", "sr0 (11:0", "-drive file=OUT/root"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestSuperblockOfOurExt2 reads the UUID and label of an image made by
// the ext2 writer.
func TestSuperblockOfOurExt2(t *testing.T) {
	p := filepath.Join(t.TempDir(), "root")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := appliance.New()
	if err := m.Put(appliance.Entry{Path: "/", Kind: appliance.Dir, Mode: 0o755}); err != nil || m.Seal() != nil {
		t.Fatal(err)
	}
	uuid := ext2.UUIDFor([]byte("seed"))
	w := ext2.NewWriter(f, ext2.Options{Size: 8 << 20, UUID: uuid, Label: "gosupermin", Time: time.Unix(1e9, 0)})
	if err := w.WriteManifest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	sb, err := readSuperblock(f)
	if err != nil {
		t.Fatal(err)
	}
	if sb.label != "gosupermin" || strings.ReplaceAll(sb.uuid, "-", "") != string(bytes.ToLower([]byte(strings.ReplaceAll(hexOf(uuid), "-", "")))) {
		t.Errorf("superblock %+v, want UUID %x", sb, uuid)
	}
	if _, err := readSuperblock(bytes.NewReader(make([]byte, 4096))); err == nil {
		t.Error("zeros read as an ext superblock")
	}
	if _, err := readSuperblock(bytes.NewReader(nil)); err == nil {
		t.Error("empty read as an ext superblock")
	}
}

func hexOf(u [16]byte) string {
	const digits = "0123456789abcdef"
	var b []byte
	for _, c := range u {
		b = append(b, digits[c>>4], digits[c&15])
	}
	return string(b)
}

func TestRunFirstboot(t *testing.T) {
	dir := t.TempDir()
	runner := filepath.Join(dir, "run")
	os.WriteFile(runner, []byte("echo hello from firstboot; echo \"$PATH\"; exit 3\n"), 0o755)
	var out bytes.Buffer
	err := runFirstboot(runner, &out, time.Minute, false)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("exit 3: %v", err)
	}
	if !strings.Contains(out.String(), "hello from firstboot") || !strings.Contains(out.String(), "/usr/sbin") {
		t.Errorf("output %q", out.String())
	}
	// A runner that hangs, with a child holding the output open.
	os.WriteFile(runner, []byte("sleep 100 & sleep 100\n"), 0o755)
	start := time.Now()
	err = runFirstboot(runner, &out, 300*time.Millisecond, true)
	if err == nil || !strings.Contains(err.Error(), "killed after") {
		t.Errorf("hanging runner: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("timeout took %v", d)
	}
}

func TestRemoveSameDev(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a/b/c"), 0o755)
	os.WriteFile(filepath.Join(dir, "a/b/c/f"), []byte("x"), 0o644)
	os.Symlink("nowhere", filepath.Join(dir, "a/l"))
	fi, _ := os.Stat(dir)
	removeSameDev(dir, devOf(fi))
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("left %v", ents)
	}
}

func devOf(fi os.FileInfo) uint64 { return uint64(fi.Sys().(*syscall.Stat_t).Dev) }

func TestInterpreter(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ data, want string }{
		{"#!/bin/sh\necho\n", "/bin/sh"},
		{"#! /usr/bin/env bash -e\n", "/usr/bin/env"},
		{"\x7fELF", ""},
		{"#!", ""},
	} {
		p := filepath.Join(dir, "x")
		os.WriteFile(p, []byte(tc.data), 0o755)
		if got := interpreter(p); got != tc.want {
			t.Errorf("interpreter(%q) = %q, want %q", tc.data, got, tc.want)
		}
	}
}
