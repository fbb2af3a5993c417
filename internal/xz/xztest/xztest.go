// Package xztest makes xz inputs for the tests of the packages that read
// xz: real xz(1) output, block headers that ask for more than a reader
// may give, and data worth compressing. Only tests import it.
package xztest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand"
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

// Text is n bytes that compress well but not trivially: text with
// random runs, the same for the same n.
func Text(n int) []byte {
	rng := rand.New(rand.NewSource(int64(n)))
	var b bytes.Buffer
	for b.Len() < n {
		if rng.Intn(4) == 0 {
			for range 64 {
				b.WriteByte(byte(rng.Intn(256)))
			}
		} else {
			b.WriteString("etc/config line of a base image ")
		}
	}
	return b.Bytes()[:n]
}
