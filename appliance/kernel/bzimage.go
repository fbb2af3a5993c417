package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// x86 boot protocol (Documentation/arch/x86/boot.rst): the setup header
// holds "HdrS" at 0x202 and the protocol version at 0x206; from protocol
// 2.00 the 16-bit field at 0x20e points, 0x200 bytes before the string, at
// a NUL-terminated string starting with the kernel release.
const (
	offMagic      = 0x202
	offProtocol   = 0x206
	offVersionPtr = 0x20e
	maxVersionLen = 256
	// headerReadSize is enough for any string the 16-bit pointer can reach.
	headerReadSize = 0x200 + 0xffff + maxVersionLen
)

// ErrNotBzImage is returned for data without an x86 boot header.
var ErrNotBzImage = errors.New("not an x86 bzImage (no HdrS header)")

// HeaderVersion returns the kernel release recorded in the header of a
// bzImage, given its first bytes (at least up to the end of the string).
func HeaderVersion(b []byte) (string, error) {
	if len(b) < offVersionPtr+2 || string(b[offMagic:offMagic+4]) != "HdrS" {
		return "", ErrNotBzImage
	}
	proto := binary.LittleEndian.Uint16(b[offProtocol:])
	if proto < 0x200 {
		return "", fmt.Errorf("boot protocol %d.%02d has no version string", proto>>8, proto&0xff)
	}
	ptr := int(binary.LittleEndian.Uint16(b[offVersionPtr:]))
	if ptr == 0 {
		return "", errors.New("bzImage header has no version string")
	}
	start := ptr + 0x200
	if start >= len(b) {
		return "", fmt.Errorf("bzImage version string at %#x is beyond the file", start)
	}
	s := b[start:]
	if len(s) > maxVersionLen {
		s = s[:maxVersionLen]
	}
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if i := bytes.IndexAny(s, " \t\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) == 0 {
		return "", errors.New("bzImage version string is empty")
	}
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || c == '/' {
			return "", fmt.Errorf("bzImage version string %q is not a kernel release", s)
		}
	}
	if string(s) == "." || string(s) == ".." {
		return "", fmt.Errorf("bzImage version string %q is not a kernel release", s)
	}
	return string(s), nil
}
