package supermin

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ulikunitz/xz"
)

// Inputs is what a set of supermin.d files and directories asks for.
type Inputs struct {
	Packages   []string    // roots, as written
	BaseImages []BaseImage // in input order; later ones overwrite earlier
	HostFiles  []string    // glob patterns
	Excludes   []string    // fnmatch patterns, without the leading "-"
	Files      []string    // every input file read, for --if-newer
}

// BaseImage is a tar archive, already decompressed.
type BaseImage struct {
	File string
	Tar  []byte
}

// FileKind is the type of a supermin.d file, sniffed from its content.
type FileKind int

const (
	KindEmpty FileKind = iota
	KindBaseImage
	KindHostFiles
	KindExcludes
	KindPackages
)

// ReadInputs reads files and directories (walked recursively, names
// sorted) as supermin 5 does.
func ReadInputs(paths []string) (*Inputs, error) {
	in := &Inputs{}
	for _, p := range paths {
		if err := in.add(p); err != nil {
			return nil, err
		}
	}
	return in, nil
}

func (in *Inputs) add(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("input %s: %w", p, err)
	}
	if fi.IsDir() {
		names, err := readDirNames(p)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := in.add(filepath.Join(p, n)); err != nil {
				return err
			}
		}
		return nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("input %s: %w", p, err)
	}
	in.Files = append(in.Files, p)
	kind, payload, err := Sniff(data)
	if err != nil {
		return fmt.Errorf("input %s: %w", p, err)
	}
	switch kind {
	case KindBaseImage:
		in.BaseImages = append(in.BaseImages, BaseImage{File: p, Tar: payload})
	case KindHostFiles:
		in.HostFiles = append(in.HostFiles, lines(payload)...)
	case KindExcludes:
		for _, l := range lines(payload) {
			if !strings.HasPrefix(l, "-") {
				return fmt.Errorf("input %s: excludefiles line %q does not start with -", p, l)
			}
			in.Excludes = append(in.Excludes, l[1:])
		}
	case KindPackages:
		in.Packages = append(in.Packages, lines(payload)...)
	}
	return nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", dir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", dir, err)
	}
	sort.Strings(names)
	return names, nil
}

// lines splits a list file; lines are used verbatim (supermin trims nothing),
// only empty lines are dropped.
func lines(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// maxBaseImage bounds a decompressed base image, so a compression bomb is an
// error rather than an exhausted machine.
const maxBaseImage = 4 << 30

// Sniff finds a supermin.d file's kind from its content: gzip or xz
// wrapping a tar (ustar magic at 257) is a base image; "/" starts
// hostfiles, "-" excludefiles, an alphanumeric packages.
func Sniff(data []byte) (FileKind, []byte, error) {
	if len(data) == 0 {
		return KindEmpty, nil, nil
	}
	var r io.Reader
	var how string
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return 0, nil, fmt.Errorf("gzip: %w", err)
		}
		r, how = zr, "gzip"
	case bytes.HasPrefix(data, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		zr, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return 0, nil, fmt.Errorf("xz: %w", err)
		}
		r, how = zr, "xz"
	}
	if r != nil {
		out, err := io.ReadAll(io.LimitReader(r, maxBaseImage+1))
		if err != nil {
			return 0, nil, fmt.Errorf("%s: truncated or corrupt: %w", how, err)
		}
		if len(out) > maxBaseImage {
			return 0, nil, fmt.Errorf("%s: decompresses to more than %d bytes", how, int64(maxBaseImage))
		}
		if !isTar(out) {
			return 0, nil, fmt.Errorf("%s-compressed file is not a tar archive", how)
		}
		return KindBaseImage, out, nil
	}
	if isTar(data) {
		return KindBaseImage, data, nil
	}
	if len(data) >= 6 && (string(data[:6]) == "070701" || string(data[:6]) == "070702" || string(data[:6]) == "070707") {
		return 0, nil, fmt.Errorf("cpio archives are not supported as input (supermin 4 format?)")
	}
	switch c := data[0]; {
	case c == '/':
		return KindHostFiles, data, nil
	case c == '-':
		return KindExcludes, data, nil
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
		return KindPackages, data, nil
	}
	return 0, nil, fmt.Errorf("unknown file type (not a tar base image, hostfiles, excludefiles or packages list)")
}

func isTar(b []byte) bool { return len(b) >= 262 && string(b[257:262]) == "ustar" }
