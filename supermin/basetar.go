package supermin

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/gosupermin/gosupermin/appliance"
)

// unpackBase adds a base image's entries to m, over what is there. Nothing
// is written to disk here; the checks make sure no entry can reach outside
// the appliance when a writer puts it on disk: absolute names, ".."
// components and entries under a symlink are refused.
func unpackBase(m *appliance.Manifest, img BaseImage) error {
	tr := tar.NewReader(bytes.NewReader(img.Tar))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", img.File, err)
		}
		if err := addTarEntry(m, tr, h); err != nil {
			return fmt.Errorf("%s: entry %q: %w", img.File, h.Name, err)
		}
	}
}

func addTarEntry(m *appliance.Manifest, tr *tar.Reader, h *tar.Header) error {
	name := h.Name
	if strings.HasPrefix(name, "/") {
		return errors.New("absolute name")
	}
	p, err := appliance.CleanPath(name)
	if err != nil {
		return err
	}
	if p == "/" {
		return nil // "./": the root directory's own metadata is the host's
	}
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if e, ok := m.Get(d); ok && e.Kind != appliance.Dir {
			return fmt.Errorf("would write through %s %s", e.Kind, d)
		}
	}
	e := appliance.Entry{
		Path: p, Mode: uint32(h.Mode) & 07777,
		UID: uint32(h.Uid), GID: uint32(h.Gid), ModTime: h.ModTime,
	}
	if h.Uid < 0 || h.Gid < 0 || int64(h.Uid) > 1<<32-1 || int64(h.Gid) > 1<<32-1 {
		return fmt.Errorf("owner %d:%d out of range", h.Uid, h.Gid)
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		data, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		e.Kind, e.Size, e.Data = appliance.Regular, int64(len(data)), appliance.Bytes(data)
	case tar.TypeDir:
		e.Kind = appliance.Dir
	case tar.TypeSymlink:
		if h.Linkname == "" {
			return errors.New("symlink with an empty target")
		}
		e.Kind, e.Link = appliance.Symlink, h.Linkname
	case tar.TypeLink:
		if strings.HasPrefix(h.Linkname, "/") {
			return fmt.Errorf("hard link to absolute name %q", h.Linkname)
		}
		target, err := appliance.CleanPath(h.Linkname)
		if err != nil {
			return fmt.Errorf("hard link: %w", err)
		}
		t, ok := m.Get(target)
		if !ok || t.Kind != appliance.Regular {
			return fmt.Errorf("hard link to %q, which is not a regular file of the archive", h.Linkname)
		}
		// A base image's link is a copy of the target's data as it is now:
		// the target may come from another layer, so keep it independent.
		e.Kind, e.Size, e.Data = appliance.Regular, t.Size, t.Data
		e.Mode, e.UID, e.GID, e.ModTime = t.Mode, t.UID, t.GID, t.ModTime
	case tar.TypeChar, tar.TypeBlock:
		e.Kind = appliance.CharDev
		if h.Typeflag == tar.TypeBlock {
			e.Kind = appliance.BlockDev
		}
		if h.Devmajor < 0 || h.Devminor < 0 || h.Devmajor > 1<<32-1 || h.Devminor > 1<<32-1 {
			return errors.New("device number out of range")
		}
		e.Major, e.Minor = uint32(h.Devmajor), uint32(h.Devminor)
	case tar.TypeFifo:
		e.Kind = appliance.FIFO
	default:
		return fmt.Errorf("unsupported tar entry type %q", h.Typeflag)
	}
	return m.Put(e)
}
