package supermin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gosupermin/gosupermin/internal/rootfs"
	"github.com/gosupermin/gosupermin/resolver"
)

// PrepareOptions for Prepare.
type PrepareOptions struct {
	Options
	Packages []string
	Out      string
}

// Prepare writes a supermin.d: "packages" with the roots, and
// "base.tar.gz" with the closure's config files as they are on the host.
func Prepare(ctx context.Context, o PrepareOptions) error {
	root, err := o.root()
	if err != nil {
		return err
	}
	tree, err := rootfs.Open(root)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	defer tree.Close()
	db, driver, err := OpenDB(tree.FS())
	if err != nil {
		return err
	}
	defer closeDB(db)
	o.logf(1, "package database: %s under %s", driver, root)
	roots := sortedUnique(o.Packages)
	if len(roots) == 0 {
		return errNoPackages
	}
	cl, err := resolver.Resolve(db, roots, func(msg string) { o.warnf("%s", msg) })
	if err != nil {
		return err
	}
	if len(cl.Missing) > 0 {
		return fmt.Errorf("package %s is not installed", strings.Join(cl.Missing, ", "))
	}
	o.logf(1, "%d roots, %d packages in the closure", len(roots), len(cl.Packages))
	var conf []string
	for _, p := range cl.Packages {
		if err := ctx.Err(); err != nil {
			return err
		}
		files, err := db.Files(p)
		if err != nil {
			return err
		}
		for _, f := range files {
			if f.Config && !f.Ghost { // a %ghost %config file (rpm's own database) is state, not configuration
				conf = append(conf, f.Source)
			}
		}
	}
	conf = sortedUnique(conf)
	base, n, err := o.baseImage(tree, conf)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", o.Out, err)
	}
	if err := writeFileAtomic(filepath.Join(o.Out, "packages"), []byte(strings.Join(roots, "\n")+"\n")); err != nil {
		return err
	}
	basePath := filepath.Join(o.Out, "base.tar.gz")
	if n == 0 {
		if err := os.Remove(basePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	o.logf(1, "%d config files in %s", n, basePath)
	return writeFileAtomic(basePath, base)
}

// baseImage tars the config files that exist, as "./etc/...", owned by
// root, reproducibly (sorted, SOURCE_DATE_EPOCH, no names in the gzip header).
func (o *PrepareOptions) baseImage(tree *rootfs.FS, paths []string) ([]byte, int, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	n := 0
	for _, p := range paths {
		hostPath := tree.HostPath(p)
		fi, err := tree.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by the administrator: nothing to record
		}
		if err != nil {
			return nil, 0, fmt.Errorf("config file %s: %w", hostPath, err)
		}
		h := &tar.Header{
			Name: "." + p, Mode: int64(fi.Mode().Perm()), Uname: "root", Gname: "root",
			ModTime: fi.ModTime().Truncate(1e9), Format: tar.FormatPAX,
		}
		if fi.Mode()&fs.ModeSetuid != 0 {
			h.Mode |= 04000
		}
		if fi.Mode()&fs.ModeSetgid != 0 {
			h.Mode |= 02000
		}
		if !o.Epoch.IsZero() {
			h.ModTime = o.Epoch
		}
		var data []byte
		switch {
		case fi.Mode().IsRegular():
			if data, err = readConfig(tree, p); err != nil {
				o.warnf("config file %s not readable, left out: %v", hostPath, err)
				continue
			}
			h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
		case fi.Mode()&fs.ModeSymlink != 0:
			if h.Linkname, err = tree.ReadLink(p); err != nil {
				return nil, 0, fmt.Errorf("config file %s: %w", hostPath, err)
			}
			h.Typeflag = tar.TypeSymlink
		default:
			continue // a directory or device is not a config file's content
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, 0, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, 0, err
		}
		n++
	}
	if err := tw.Close(); err != nil {
		return nil, 0, err
	}
	if err := zw.Close(); err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), n, nil
}

// maxConfig bounds one config file: they are a few KiB, and the base
// image is made in memory.
const maxConfig = 16 << 20

// readConfig reads the config file p of the tree (its last component not
// followed).
func readConfig(tree *rootfs.FS, p string) ([]byte, error) {
	f, err := tree.OpenFile(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err == nil && len(data) > maxConfig {
		err = fmt.Errorf("more than %d MiB", maxConfig>>20)
	}
	return data, err
}

func sortedUnique(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	j := 0
	for i, s := range out {
		if i == 0 || s != out[j-1] {
			out[j] = s
			j++
		}
	}
	return out[:j]
}

// writeFileAtomic replaces file with data, never leaving a partial file.
func writeFileAtomic(file string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".gosupermin-tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
