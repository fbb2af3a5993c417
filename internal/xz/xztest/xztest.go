// Package xztest makes xz inputs for the tests of the packages that read
// xz: real xz(1) output, and block headers that ask for more than a
// reader may give. Only tests import it.
package xztest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os/exec"
)

// CLI compresses data with the xz command and its args (xz -c ARGS).
func CLI(data []byte, args ...string) ([]byte, error) {
	cmd := exec.Command("xz", append([]string{"-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("xz %v: %w: %s", args, err, stderr.Bytes())
	}
	return out, nil
}

// ClaimHugeDict makes the first block header of the xz file b ask for a
// dictionary of 4 GiB - 1, its CRC kept right, as a hostile file would.
func ClaimHugeDict(b []byte) error {
	// Stream header (12 bytes), then the block header: size byte, flags,
	// filter id 0x21, properties size 1, dictionary code.
	if len(b) < 13 {
		return errors.New("no block header")
	}
	hdrLen := (int(b[12]) + 1) * 4
	if len(b) < 12+hdrLen {
		return errors.New("block header beyond the data")
	}
	hdr := b[12 : 12+hdrLen]
	i := bytes.Index(hdr, []byte{0x21, 0x01})
	if i < 0 || i+2 >= hdrLen-4 {
		return fmt.Errorf("no LZMA2 filter in block header % x", hdr)
	}
	hdr[i+2] = 40
	binary.LittleEndian.PutUint32(hdr[hdrLen-4:], crc32.ChecksumIEEE(hdr[:hdrLen-4]))
	return nil
}
