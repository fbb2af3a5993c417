package initproc

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// rootSpec is a parsed root= value.
type rootSpec struct {
	kind  string // "dev", "uuid", "label" or "devnum"
	value string // device name under /dev, lower-case UUID, label, "maj:min"
}

func (r rootSpec) String() string {
	switch r.kind {
	case "uuid":
		return "UUID=" + r.value
	case "label":
		return "LABEL=" + r.value
	case "devnum":
		return r.value
	}
	return "/dev/" + r.value
}

// parseRoot reads root=: /dev/NAME (disks and partitions), UUID=,
// LABEL=, /dev/disk/by-uuid/ and by-label/ (there is no udev to make
// them, so they are looked up like UUID= and LABEL=), and MAJOR:MINOR.
func parseRoot(s string) (rootSpec, error) {
	switch {
	case s == "":
		return rootSpec{}, errors.New("no root= on the kernel command line")
	case strings.HasPrefix(s, "UUID="):
		return uuidSpec(s[5:], s)
	case strings.HasPrefix(s, "/dev/disk/by-uuid/"):
		return uuidSpec(s[len("/dev/disk/by-uuid/"):], s)
	case strings.HasPrefix(s, "LABEL="):
		return rootSpec{"label", s[6:]}, nil
	case strings.HasPrefix(s, "/dev/disk/by-label/"):
		return rootSpec{"label", unescapeUdev(s[len("/dev/disk/by-label/"):])}, nil
	case strings.HasPrefix(s, "PARTUUID="), strings.HasPrefix(s, "PARTLABEL="):
		return rootSpec{}, fmt.Errorf("root=%s: PARTUUID= and PARTLABEL= are not supported; use root=UUID=, LABEL= or /dev/NAME", s)
	case strings.HasPrefix(s, "/dev/"):
		name := s[5:]
		if name == "" || strings.Contains(name, "..") {
			return rootSpec{}, fmt.Errorf("root=%s: bad device name", s)
		}
		return rootSpec{"dev", name}, nil
	}
	if a, b, ok := strings.Cut(s, ":"); ok {
		ma, err1 := strconv.ParseUint(a, 10, 32)
		mi, err2 := strconv.ParseUint(b, 10, 32)
		if err1 == nil && err2 == nil {
			return rootSpec{"devnum", fmt.Sprintf("%d:%d", ma, mi)}, nil
		}
	}
	return rootSpec{}, fmt.Errorf("root=%s: not understood; use /dev/NAME, UUID=..., LABEL=... or MAJOR:MINOR", s)
}

func uuidSpec(u, orig string) (rootSpec, error) {
	u = strings.ToLower(u)
	if _, err := hex.DecodeString(strings.ReplaceAll(u, "-", "")); err != nil || len(strings.ReplaceAll(u, "-", "")) != 32 {
		return rootSpec{}, fmt.Errorf("root=%s: %q is not a UUID", orig, u)
	}
	return rootSpec{"uuid", u}, nil
}

// unescapeUdev undoes udev's \xNN escapes in by-label names.
func unescapeUdev(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// superblock is what init reads of an ext2/3/4 superblock.
type superblock struct {
	uuid  string // 8-4-4-4-12, lower case
	label string
}

// readSuperblock reads the ext superblock at byte 1024 of r: magic 0xEF53
// at 0x438, UUID at 0x468, volume label at 0x478.
func readSuperblock(r io.ReaderAt) (superblock, error) {
	var b [0x88]byte
	if _, err := r.ReadAt(b[:], 0x400); err != nil {
		return superblock{}, err
	}
	if binary.LittleEndian.Uint16(b[0x38:]) != 0xEF53 {
		return superblock{}, errors.New("no ext2/3/4 superblock")
	}
	u := hex.EncodeToString(b[0x68:0x78])
	label := string(b[0x78:0x88])
	if i := strings.IndexByte(label, 0); i >= 0 {
		label = label[:i]
	}
	return superblock{uuid: u[0:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:], label: label}, nil
}

// blockDev is a block device seen in sysfs.
type blockDev struct {
	name  string // sysfs name: "vda", "sda1", "cciss!c0d0"
	dev   string // "254:0"
	bytes int64
}

// devPath is the device node's path under /dev.
func (b blockDev) devPath(devDir string) string {
	return filepath.Join(devDir, strings.ReplaceAll(b.name, "!", "/"))
}

// listBlock lists /sys/class/block.
func listBlock(sysDir string) []blockDev {
	dir := filepath.Join(sysDir, "class", "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []blockDev
	for _, e := range ents {
		b := blockDev{name: e.Name()}
		d, err := os.ReadFile(filepath.Join(dir, e.Name(), "dev"))
		if err != nil {
			continue
		}
		b.dev = strings.TrimSpace(string(d))
		if s, err := os.ReadFile(filepath.Join(dir, e.Name(), "size")); err == nil {
			n, _ := strconv.ParseInt(strings.TrimSpace(string(s)), 10, 64)
			b.bytes = n * 512
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// node makes sure the device node exists (devtmpfs makes it; without
// devtmpfs init makes it itself from the numbers in sysfs).
func node(b blockDev, devDir string) (string, error) {
	p := b.devPath(devDir)
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		return p, nil // from devtmpfs
	}
	ma, mi, ok := strings.Cut(b.dev, ":")
	if !ok {
		return "", fmt.Errorf("%s: bad device number %q", b.name, b.dev)
	}
	maj, err1 := strconv.ParseUint(ma, 10, 32)
	min, err2 := strconv.ParseUint(mi, 10, 32)
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("%s: bad device number %q", b.name, b.dev)
	}
	_ = os.MkdirAll(filepath.Dir(p), 0o755)
	if err := unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(uint32(maj), uint32(min)))); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("mknod %s: %w", p, err)
	}
	return p, nil
}

func probe(b blockDev, devDir string) (superblock, error) {
	if b.bytes == 0 {
		return superblock{}, errors.New("empty")
	}
	p, err := node(b, devDir)
	if err != nil {
		return superblock{}, err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return superblock{}, err
	}
	defer f.Close()
	return readSuperblock(f)
}

// findRoot looks once for the device spec names; it returns its node.
func findRoot(spec rootSpec, sysDir, devDir string) (string, bool) {
	for _, b := range listBlock(sysDir) {
		switch spec.kind {
		case "dev":
			if strings.ReplaceAll(b.name, "!", "/") != spec.value {
				continue
			}
		case "devnum":
			if b.dev != spec.value {
				continue
			}
		case "uuid", "label":
			sb, err := probe(b, devDir)
			if err != nil || (spec.kind == "uuid" && sb.uuid != spec.value) || (spec.kind == "label" && sb.label != spec.value) {
				continue
			}
		}
		if p, err := node(b, devDir); err == nil {
			return p, true
		}
	}
	return "", false
}

// waitRoot polls for the root device until timeout.
func waitRoot(spec rootSpec, sysDir, devDir string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if p, ok := findRoot(spec, sysDir, devDir); ok {
			return p, nil
		}
		if time.Now().After(deadline) {
			return "", &noRootError{spec: spec, timeout: timeout, seen: describe(sysDir, devDir)}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noRootError says what was there instead.
type noRootError struct {
	spec    rootSpec
	timeout time.Duration
	seen    []string
}

func (e *noRootError) Error() string {
	seen := "none"
	if len(e.seen) > 0 {
		seen = strings.Join(e.seen, "; ")
	}
	return fmt.Sprintf("the root device root=%s did not appear within %s. Block devices found: %s. "+
		"Check that the appliance's root image is attached to the virtual machine "+
		"(e.g. qemu -drive file=OUT/root,format=raw,if=virtio), that root= names it (/dev/vda for virtio-blk, /dev/sda for SCSI/SATA, "+
		"or UUID= of the image), and that the initrd has the driver of its disk controller; "+
		"gosupermin.rootwait=SECONDS waits longer", e.spec, e.timeout, seen)
}

func describe(sysDir, devDir string) []string {
	var out []string
	for _, b := range listBlock(sysDir) {
		if strings.HasPrefix(b.name, "loop") || strings.HasPrefix(b.name, "ram") {
			continue
		}
		s := fmt.Sprintf("%s (%s, %d MiB", b.name, b.dev, b.bytes>>20)
		if sb, err := probe(b, devDir); err == nil {
			s += ", ext UUID=" + sb.uuid
			if sb.label != "" {
				s += " LABEL=" + sb.label
			}
		}
		out = append(out, s+")")
	}
	return out
}
