package ext2_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/ext2"
)

// writeAppliance writes a small appliance as an ext2 image at img.
func writeAppliance(img string) (*appliance.Manifest, error) {
	m := appliance.New()
	for _, e := range []appliance.Entry{
		{Path: "/", Kind: appliance.Dir, Mode: 0755},
		{Path: "/etc", Kind: appliance.Dir, Mode: 0755},
		{Path: "/etc/hostname", Kind: appliance.Regular, Mode: 0644, Size: 10, Data: appliance.Bytes("appliance\n")},
		{Path: "/init", Kind: appliance.Symlink, Mode: 0777, Link: "/bin/sh"},
	} {
		if err := m.Put(e); err != nil {
			return nil, err
		}
	}
	// Writers take only sealed manifests.
	if err := m.Seal(); err != nil {
		return nil, err
	}
	f, err := os.Create(img)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	opt := ext2.Options{
		Size: 8 << 20,
		// Derived from the content, so that the same appliance gets the
		// same bytes.
		UUID: ext2.UUIDFor([]byte("example")),
		Time: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
	}
	if err := ext2.NewWriter(f, opt).WriteManifest(context.Background(), m); err != nil {
		return nil, err
	}
	return m, f.Close()
}

func Example() {
	dir, err := os.MkdirTemp("", "ext2-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	img := filepath.Join(dir, "root")
	if _, err := writeAppliance(img); err != nil {
		log.Fatal(err)
	}

	// The superblock is at byte 1024 of the image.
	f, err := os.Open(img)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		log.Fatal(err)
	}
	le := binary.LittleEndian
	fmt.Printf("magic %#x\n", le.Uint16(sb[56:]))
	fmt.Printf("%d blocks of %d bytes, %d free\n", le.Uint32(sb[4:]), 1024<<le.Uint32(sb[24:]), le.Uint32(sb[12:]))
	fmt.Printf("%d inodes, %d free\n", le.Uint32(sb[0:]), le.Uint32(sb[16:]))
	u := sb[104:120]
	fmt.Printf("UUID %x-%x-%x-%x-%x\n", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
	// Output:
	// magic 0xef53
	// 2048 blocks of 4096 bytes, 2005 free
	// 512 inodes, 498 free
	// UUID 50d858e0-985e-4c7f-a041-8aaf0cc5ab58
}
