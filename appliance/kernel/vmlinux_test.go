package kernel

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	uxz "github.com/ulikunitz/xz"
)

// note is an ELF note for fakeELF.
type note struct {
	name string
	typ  uint32
	desc []byte
}

// pvhNote is the note qemu looks for: Xen's PHYS32_ENTRY, an address.
var pvhNote = note{"Xen", 18, []byte{0x00, 0x10, 0x00, 0x01}}

// fakeELF makes a small ELF64 x86-64 executable: a PT_LOAD segment of
// code bytes and a PT_NOTE segment with notes, after the program headers
// as in a vmlinux, then tail (the kernel's relocations follow its ELF).
func fakeELF(class elf.Class, machine elf.Machine, notes []note, code int) []byte {
	le := binary.LittleEndian
	var ns []byte
	for _, n := range notes {
		name := append([]byte(n.name), 0)
		ns = le.AppendUint32(ns, uint32(len(name)))
		ns = le.AppendUint32(ns, uint32(len(n.desc)))
		ns = le.AppendUint32(ns, n.typ)
		ns = append(ns, name...)
		for len(ns)%4 != 0 {
			ns = append(ns, 0)
		}
		ns = append(ns, n.desc...)
		for len(ns)%4 != 0 {
			ns = append(ns, 0)
		}
	}
	const phoff, phnum = 64, 2
	notesOff := uint64(phoff + phnum*56)
	codeOff := notesOff + uint64(len(ns))
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = byte(class), 1, 1
	le.PutUint16(h[16:], uint16(elf.ET_EXEC))
	le.PutUint16(h[18:], uint16(machine))
	le.PutUint32(h[20:], 1)
	le.PutUint64(h[24:], 0x1000000)
	le.PutUint64(h[32:], phoff)
	le.PutUint16(h[52:], 64)
	le.PutUint16(h[54:], 56)
	le.PutUint16(h[56:], phnum)
	b := h
	ph := func(typ uint32, off, size uint64) {
		p := make([]byte, 56)
		le.PutUint32(p, typ)
		le.PutUint32(p[4:], 5)
		le.PutUint64(p[8:], off)
		le.PutUint64(p[16:], 0x1000000+off)
		le.PutUint64(p[24:], 0x1000000+off)
		le.PutUint64(p[32:], size)
		le.PutUint64(p[40:], size)
		le.PutUint64(p[48:], 4)
		b = append(b, p...)
	}
	ph(uint32(elf.PT_LOAD), codeOff, uint64(code))
	ph(uint32(elf.PT_NOTE), notesOff, uint64(len(ns)))
	b = append(b, ns...)
	for i := 0; i < code; i++ {
		b = append(b, "\xe8\x00\x10\x00\x00\x90\x48\x89\xe5\xc3"[i%10])
	}
	return append(b, "relocations"...)
}

func pvhELF() []byte {
	return fakeELF(elf.ELFCLASS64, elf.EM_X86_64, []note{{"Linux", 1, []byte("6.1")}, pvhNote}, 5000)
}

func compressGzip(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compressXZ(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, err := uxz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compressZstd(t testing.TB, b []byte) []byte {
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return w.EncodeAll(b, nil)
}

// withSize appends the uncompressed size, as the kernel's build does.
func withSize(comp []byte, size int) []byte {
	return binary.LittleEndian.AppendUint32(bytes.Clone(comp), uint32(size))
}

// payloadImage makes a bzImage whose protected-mode code holds payload
// at offset 0x100, after one setup sector.
func payloadImage(payload []byte) []byte {
	const setupSects, pmOff = 1, 0x100
	b := make([]byte, (setupSects+1)*512+pmOff)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x20f)
	b[0x1f1] = setupSects
	binary.LittleEndian.PutUint32(b[0x248:], pmOff)
	binary.LittleEndian.PutUint32(b[0x24c:], uint32(len(payload)))
	b = append(b, payload...)
	return append(b, make([]byte, 100)...) // the decompressor's code and data follow
}

func vmlinux(img []byte) ([]byte, error) {
	var out bytes.Buffer
	n, err := Vmlinux(bytes.NewReader(img), int64(len(img)), &out)
	if err == nil && n != int64(out.Len()) {
		return nil, errors.New("the length returned is not the length written")
	}
	return out.Bytes(), err
}

// checkPVH parses an ELF with debug/elf, independently of the code under
// test, and looks for the PVH note.
func checkPVH(t testing.TB, b []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not an ELF: %v", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		t.Fatalf("%v %v", f.Class, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		d, err := io.ReadAll(p.Open())
		if err != nil {
			t.Fatal(err)
		}
		for len(d) >= 12 {
			namesz, descsz, typ := binary.LittleEndian.Uint32(d), binary.LittleEndian.Uint32(d[4:]), binary.LittleEndian.Uint32(d[8:])
			name := string(d[12 : 12+namesz])
			if typ == 18 && name == "Xen\x00" {
				return
			}
			d = d[min(len(d), 12+int((namesz+3)&^3+(descsz+3)&^3)):]
		}
	}
	t.Fatal("no PVH note in the ELF")
}

func TestVmlinux(t *testing.T) {
	e := pvhELF()
	for name, comp := range map[string][]byte{
		"xz":   compressXZ(t, e),
		"gzip": compressGzip(t, e),
		"zstd": compressZstd(t, e),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := vmlinux(payloadImage(withSize(comp, len(e))))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, e) {
				t.Fatalf("%d bytes, differ from the %d compressed", len(got), len(e))
			}
			checkPVH(t, got)
		})
	}
}

// TestVmlinuxXZX86 decodes a payload made as the kernel's
// scripts/xz_wrap.sh makes it for x86.
func TestVmlinuxXZX86(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skipf("xz (xz-utils) not installed, to compress as the kernel does: %v", err)
	}
	e := pvhELF()
	cmd := exec.Command("xz", "--check=crc32", "--x86", "--lzma2=dict=32MiB", "-c")
	cmd.Stdin = bytes.NewReader(e)
	comp, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := vmlinux(payloadImage(withSize(comp, len(e))))
	if err != nil || !bytes.Equal(got, e) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
}

func TestVmlinuxErrors(t *testing.T) {
	e := pvhELF()
	gz := compressGzip(t, e)
	good := payloadImage(withSize(gz, len(e)))
	set32 := func(off int, v uint32) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	gzImage := func(b []byte) []byte { return payloadImage(withSize(compressGzip(t, b), len(b))) }
	proto207 := bytes.Clone(good)
	binary.LittleEndian.PutUint16(proto207[0x206:], 0x207)
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-100-4-8] ^= 1 // gzip's CRC32
	for _, tc := range []struct {
		name string
		img  []byte
		is   error
		want string
	}{
		{"empty", nil, ErrNotBzImage, ""},
		{"truncated header", good[:0x240], ErrNotBzImage, ""},
		{"not HdrS", append(make([]byte, 0x300), gz...), ErrNotBzImage, ""},
		{"protocol 2.07", proto207, nil, "2.08"},
		{"payload offset beyond the file", set32(0x248, 1<<31), nil, "not within"},
		{"payload offset just beyond", set32(0x248, uint32(len(good))), nil, "not within"},
		{"payload length beyond the file", set32(0x24c, uint32(len(good))), nil, "not within"},
		{"payload length too short", set32(0x24c, 3), nil, "not within"},
		{"size says 1 GiB", payloadImage(withSize(gz, 1<<30)), ErrTooLarge, ""},
		{"size says less", payloadImage(withSize(gz, len(e)-1)), nil, "more than"},
		{"size says more", payloadImage(withSize(gz, len(e)+1)), nil, "its size says"},
		{"no size", payloadImage(gz), nil, "gzip payload"},
		{"corrupt", corrupt, nil, "gzip payload"},
		{"lzma", payloadImage(withSize([]byte("\x5d\x00\x00\x80\x00\xff\xff\xff\xff"), 100)), ErrPayloadFormat, "lzma"},
		{"bzip2", payloadImage(withSize([]byte("BZh91AY&SY"), 100)), ErrPayloadFormat, "bzip2"},
		{"lz4", payloadImage(withSize([]byte("\x02\x21\x4c\x18\x00\x00\x00\x00"), 100)), ErrPayloadFormat, "lz4"},
		{"unknown", payloadImage(withSize([]byte("hello, world"), 100)), ErrPayloadFormat, "unknown"},
		{"not an ELF", gzImage(bytes.Repeat([]byte("not an ELF "), 100)), nil, "not an ELF64"},
		{"ELF32", gzImage(fakeELF(elf.ELFCLASS32, elf.EM_X86_64, []note{pvhNote}, 100)), nil, "not an ELF64"},
		{"arm64", gzImage(fakeELF(elf.ELFCLASS64, elf.EM_AARCH64, []note{pvhNote}, 100)), nil, "machine 183"},
		{"no notes", gzImage(fakeELF(elf.ELFCLASS64, elf.EM_X86_64, nil, 100)), ErrNoPVH, ""},
		{"Linux notes only", gzImage(fakeELF(elf.ELFCLASS64, elf.EM_X86_64, []note{{"Linux", 18, []byte{1, 0, 0, 0}}}, 100)), ErrNoPVH, ""},
		{"PVH entry 0", gzImage(fakeELF(elf.ELFCLASS64, elf.EM_X86_64, []note{{"Xen", 18, []byte{0, 0, 0, 0}}}, 100)), ErrNoPVH, ""},
		{"note segment cut", gzImage(e[:64+2*56+10]), nil, "beyond its end"},
		{"ELF header cut", gzImage(e[:40]), nil, "ends after 40 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := vmlinux(tc.img)
			if err == nil {
				t.Fatalf("no error, %d bytes", len(got))
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestVmlinuxBomb: a payload that decompresses to far more than its size
// says is cut off there, with memory bounded whatever it makes.
func TestVmlinuxBomb(t *testing.T) {
	e := pvhELF()
	big := append(bytes.Clone(e), make([]byte, 300<<20)...)
	var zbuf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zbuf, gzip.BestCompression)
	zw.Write(big)
	zw.Close()
	big = nil
	for name, size := range map[string]int{"small claim": len(e), "claim at the limit": MaxVmlinux} {
		img := payloadImage(withSize(zbuf.Bytes(), size))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		n, err := Vmlinux(bytes.NewReader(img), int64(len(img)), io.Discard)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "more than") {
			t.Errorf("%s: %d bytes, error %v", name, n, err)
		}
		if n > int64(size)+1 {
			t.Errorf("%s: wrote %d bytes for a size of %d", name, n, size)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
			t.Errorf("%s: allocated %d KiB", name, alloc>>10)
		}
	}
}

// TestVmlinuxChunks: the ELF checks do not depend on how writes cut it.
func TestVmlinuxChunks(t *testing.T) {
	e := pvhELF()
	for _, size := range []int{1, 3, 57, 64, 65, len(e)} {
		c := &elfCheck{}
		for b := e; len(b) > 0; {
			k := min(size, len(b))
			if n, err := c.Write(b[:k]); n != k || err != nil {
				t.Fatalf("chunks of %d: write %d: %d, %v", size, k, n, err)
			}
			b = b[k:]
		}
		if err := c.done(); err != nil {
			t.Errorf("chunks of %d: %v", size, err)
		}
	}
}

// TestHostVmlinux takes the ELF out of the host's kernels: Debian's
// (xz, CONFIG_PVH) must give one with the PVH note.
func TestHostVmlinux(t *testing.T) {
	ms, _ := filepath.Glob("/boot/vmlinuz-*")
	n := 0
	for _, m := range ms {
		f, err := os.Open(m)
		if err != nil {
			t.Logf("%s: %v", m, err)
			continue
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.CreateTemp(t.TempDir(), "vmlinux")
		if err != nil {
			t.Fatal(err)
		}
		size, err := Vmlinux(f, fi.Size(), out)
		if errors.Is(err, ErrPayloadFormat) || errors.Is(err, ErrNoPVH) {
			t.Logf("%s: %v", m, err)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		b, err := os.ReadFile(out.Name())
		if err != nil || int64(len(b)) != size {
			t.Fatalf("%s: %d bytes, %v; want %d", out.Name(), len(b), err, size)
		}
		checkPVH(t, b)
		t.Logf("%s: an ELF of %d MiB with the PVH note", m, size>>20)
		n++
	}
	if n == 0 {
		t.Skip("no readable /boot/vmlinuz-* with a PVH note and a payload format we decompress on this host")
	}
}

// limited keeps what is written up to max bytes and counts the rest.
type limited struct {
	buf []byte
	n   int64
	max int
}

func (l *limited) Write(p []byte) (int, error) {
	l.n += int64(len(p))
	if len(l.buf) < l.max {
		l.buf = append(l.buf, p[:min(len(p), l.max-len(l.buf))]...)
	}
	return len(p), nil
}

// FuzzVmlinux: whatever the bzImage, no panic; an ELF it gives is one
// debug/elf reads, with the PVH note.
func FuzzVmlinux(f *testing.F) {
	e := pvhELF()
	f.Add(payloadImage(withSize(compressGzip(f, e), len(e))))
	f.Add(payloadImage(withSize(compressXZ(f, e), len(e))))
	f.Add(payloadImage(withSize(compressZstd(f, e), len(e))))
	f.Add(payloadImage(withSize(compressGzip(f, e[:200]), 200)))
	f.Fuzz(func(t *testing.T, img []byte) {
		out := &limited{max: 4 << 20}
		n, err := Vmlinux(bytes.NewReader(img), int64(len(img)), out)
		if n != out.n {
			t.Fatalf("returned %d, wrote %d", n, out.n)
		}
		if err != nil || n > int64(out.max) {
			return
		}
		checkPVH(t, out.buf)
	})
}
