package cpio_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/cpio"
)

// A manifest is built with Put, sealed, and written as a newc archive.
func Example() {
	m := appliance.New()
	t := time.Unix(1700000000, 0)
	for _, e := range []appliance.Entry{
		{Path: "/", Kind: appliance.Dir, Mode: 0o755, ModTime: t},
		{Path: "/init", Kind: appliance.Regular, Mode: 0o755, ModTime: t, Size: 10, Data: appliance.Bytes("#!/bin/sh\n")},
		{Path: "/bin", Kind: appliance.Symlink, Link: "usr/bin", Mode: 0o777, ModTime: t},
		{Path: "/dev/console", Kind: appliance.CharDev, Major: 5, Minor: 1, Mode: 0o600, ModTime: t},
	} {
		if err := m.Put(e); err != nil {
			panic(err)
		}
	}
	// /dev has no entry of its own: give every entry its parents.
	if err := m.AddParents(func(string) appliance.Entry { return appliance.Entry{Mode: 0o755, ModTime: t} }); err != nil {
		panic(err)
	}
	if err := m.Seal(); err != nil {
		panic(err)
	}
	var buf bytes.Buffer
	if err := cpio.NewWriter(&buf).WriteManifest(context.Background(), m); err != nil {
		panic(err)
	}

	r := cpio.NewReader(&buf)
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Printf("%-12s %06o %d bytes\n", h.Name, h.Mode, h.Size)
	}
	// Output:
	// .            040755 0 bytes
	// bin          120777 7 bytes
	// dev          040755 0 bytes
	// dev/console  020600 0 bytes
	// init         100755 10 bytes
}
