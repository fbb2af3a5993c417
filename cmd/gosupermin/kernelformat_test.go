package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hasPVHNote says whether the file at p is an x86-64 ELF with Xen's
// PVH entry note, read with debug/elf, not with the code under test.
func hasPVHNote(t *testing.T, p string) bool {
	t.Helper()
	f, err := elf.Open(p)
	if err != nil {
		t.Logf("%s: %v", p, err)
		return false
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return false
	}
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_NOTE {
			continue
		}
		d, err := io.ReadAll(prog.Open())
		if err != nil {
			t.Fatal(err)
		}
		for len(d) >= 12 {
			namesz, descsz, typ := binary.LittleEndian.Uint32(d), binary.LittleEndian.Uint32(d[4:]), binary.LittleEndian.Uint32(d[8:])
			if 12+int(namesz) > len(d) {
				break
			}
			if typ == 18 && string(d[12:12+namesz]) == "Xen\x00" { // XEN_ELFNOTE_PHYS32_ENTRY
				return true
			}
			d = d[min(len(d), 12+int((namesz+3)&^3+(descsz+3)&^3)):]
		}
	}
	return false
}

// TestKernelFormat: OUT/kernel is by default the ELF kernel inside the
// host's bzImage, with its PVH note, taken over (the same file) by the
// next build; --kernel-format image keeps supermin 5's link (or copy);
// elf is an error for a kernel that has none; auto keeps other
// architectures' images as they are.
func TestKernelFormat(t *testing.T) {
	k, ok := hostKernel()
	need(t, ok && isRoot(), "needs a host kernel readable by this user (/boot/vmlinuz-* with its modules)")
	dir := t.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	if r := gosupermin(t, "--prepare", "bash", "-o", sd); r.code != 0 {
		t.Fatalf("prepare: %s", r.stderr)
	}
	build := func(out string, args ...string) result {
		t.Helper()
		return gosupermin(t, append([]string{"--build", "-f", "cpio", "--compress", "none", sd, "-o", out}, args...)...)
	}
	out := filepath.Join(dir, "out")
	if r := build(out); r.code != 0 {
		t.Fatalf("build: %d %s", r.code, r.stderr)
	}
	kp := filepath.Join(out, "kernel")
	fi1, err := os.Lstat(kp)
	if err != nil || !fi1.Mode().IsRegular() {
		t.Fatalf("OUT/kernel is not a regular file: %v %v", fi1, err)
	}
	if !hasPVHNote(t, kp) {
		t.Fatal("OUT/kernel is not an x86-64 ELF with a PVH note")
	}
	if err := unix.Lsetxattr(filepath.Join(dir, "supermin.d"), "user.probe", []byte("1"), 0); err == nil {
		if r := build(out, "-v"); r.code != 0 || !strings.Contains(r.stderr, "taken over") {
			t.Fatalf("rebuild: %d %s", r.code, r.stderr)
		}
		fi2, err := os.Lstat(kp)
		if err != nil || !os.SameFile(fi1, fi2) {
			t.Errorf("the rebuild did not take the ELF kernel over: %v", err)
		}
	} else {
		need(t, false, dir+" has no user xattrs: the ELF kernel cannot be taken over")
	}

	link := filepath.Join(dir, "link")
	if r := build(link, "--kernel-format", "image"); r.code != 0 {
		t.Fatalf("image: %s", r.stderr)
	}
	if target, err := os.Readlink(filepath.Join(link, "kernel")); err != nil || target != k.path {
		t.Errorf("--kernel-format image: kernel -> %q (%v), want %s", target, err, k.path)
	}
	copied := filepath.Join(dir, "copy")
	if r := build(copied, "--kernel-format", "image", "--copy-kernel"); r.code != 0 {
		t.Fatalf("image, copy: %s", r.stderr)
	}
	want, _ := os.ReadFile(k.path)
	if got, _ := os.ReadFile(filepath.Join(copied, "kernel")); !bytes.Equal(got, want) {
		t.Error("--kernel-format image --copy-kernel: not a copy of the kernel image")
	}

	if r := build(filepath.Join(dir, "bad"), "--kernel-format", "vmlinux"); r.code != 2 {
		t.Errorf("--kernel-format vmlinux: exit %d, %s", r.code, r.stderr)
	}

	root, asd := arm64Tree(t)
	init := crossInit(t, "arm64")
	arm := func(out string, args ...string) result {
		return gosupermin(t, append([]string{"--build", "-f", "cpio", "--root", root, "--init", init, asd, "-o", out}, args...)...)
	}
	r := arm(filepath.Join(dir, "arm-elf"), "--kernel-format", "elf")
	if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "bzImage") {
		t.Errorf("--kernel-format elf of an arm64 kernel: exit %d, %q", r.code, r.stderr)
	}
	if _, err := os.Lstat(filepath.Join(dir, "arm-elf")); err == nil {
		t.Error("a failed build left its output")
	}
	if r := arm(filepath.Join(dir, "arm")); r.code != 0 {
		t.Fatalf("arm64, auto: %s", r.stderr)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "arm", "kernel")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("auto kept an arm64 Image as it is? %v %v", fi, err)
	}
}
