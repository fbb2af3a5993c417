// Package supermind reads supermin.d inputs: files and directories of
// package lists, hostfiles, excludefiles and base images, each sniffed from its content.
//
// Base images are only recognised here, from their first bytes; the
// baseimage package unpacks them. Nothing here blocks on a FIFO or
// follows a directory symlink out of an input directory.
package supermind

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gosupermin/gosupermin/internal/baseimage"
	"golang.org/x/sys/unix"
)

// MaxList bounds a packages, hostfiles or excludefiles file.
const MaxList = 16 << 20

// Inputs is what a set of supermin.d files and directories asks for.
type Inputs struct {
	Packages   []string // roots, as written
	HostFiles  []string // glob patterns
	Excludes   []string // fnmatch patterns, without the leading "-"
	BaseImages []string // paths, in input order; later ones overwrite earlier
	Files      []string // every input file read, for --if-newer
}

// Kind is the type of a supermin.d file, sniffed from its content.
type Kind int

const (
	Empty Kind = iota
	BaseImage
	HostFiles
	Excludes
	Packages
)

func (k Kind) String() string {
	switch k {
	case Empty:
		return "empty"
	case BaseImage:
		return "base image"
	case HostFiles:
		return "hostfiles"
	case Excludes:
		return "excludefiles"
	case Packages:
		return "packages"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Read reads files and directories as supermin 5 does: directories
// walked recursively, names sorted. The paths given may be symlinks
// (to a supermin.d, say); inside a directory a symlink to a file is
// followed, a symlink to a directory is refused (it could loop or lead
// out, as "x -> .." does), and so is anything but a file or a directory.
func Read(paths []string) (*Inputs, error) {
	in := &Inputs{}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", p, unwrapPath(err))
		}
		if fi.IsDir() {
			err = in.dir(p, false)
		} else {
			err = in.file(p)
		}
		if err != nil {
			return nil, err
		}
	}
	return in, nil
}

func (in *Inputs) dir(dir string, nofollow bool) error {
	names, err := readDirNames(dir, nofollow)
	if err != nil {
		return fmt.Errorf("input %s: %w", dir, err)
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("input %s: %w", p, unwrapPath(err))
		}
		switch {
		case fi.IsDir():
			err = in.dir(p, true)
		case fi.Mode()&os.ModeSymlink != 0:
			if ti, serr := os.Stat(p); serr == nil && ti.IsDir() {
				return fmt.Errorf("input %s: a symlink to a directory inside an input directory (name the directory itself as an input instead)", p)
			}
			err = in.file(p)
		default:
			err = in.file(p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readDirNames lists a directory; one found inside an input directory is
// opened without following a symlink, in case one replaced it since the
// walk looked.
func readDirNames(dir string, nofollow bool) ([]string, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if nofollow {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(dir, flags, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, unwrapPath(err)
	}
	sort.Strings(names)
	return names, nil
}

func (in *Inputs) file(p string) error {
	f, err := baseimage.OpenFile(p)
	if err != nil {
		return fmt.Errorf("input %w", err)
	}
	defer f.Close()
	in.Files = append(in.Files, p)
	kind, err := Sniff(f)
	if err != nil {
		return fmt.Errorf("input %s: %w", p, err)
	}
	if kind == BaseImage {
		in.BaseImages = append(in.BaseImages, p)
		return nil
	}
	if kind == Empty {
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("input %s: %w", p, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxList+1))
	if err != nil {
		return fmt.Errorf("input %s: %w", p, unwrapPath(err))
	}
	if len(data) > MaxList {
		return fmt.Errorf("input %s: a %s file larger than %d MiB", p, kind, MaxList>>20)
	}
	ls := lines(data)
	switch kind {
	case HostFiles:
		in.HostFiles = append(in.HostFiles, ls...)
	case Excludes:
		for _, l := range ls {
			if !strings.HasPrefix(l, "-") {
				return fmt.Errorf("input %s: excludefiles line %q does not start with -", p, l)
			}
			in.Excludes = append(in.Excludes, l[1:])
		}
	case Packages:
		in.Packages = append(in.Packages, ls...)
	}
	return nil
}

// lines splits a list file. Lines are used verbatim (supermin trims
// nothing) but for a CR before the newline, as bufio.ScanLines drops
// it; empty lines are dropped.
func lines(data []byte) []string {
	var out []string
	for len(data) > 0 {
		l, rest, _ := bytes.Cut(data, []byte{'\n'})
		data = rest
		l = bytes.TrimSuffix(l, []byte{'\r'})
		if len(l) > 0 {
			out = append(out, string(l))
		}
	}
	return out
}

// Sniff finds a supermin.d file's kind from its first bytes: gzip or xz
// wrapping a tar (of which only the first block is decompressed), or a
// plain tar (ustar magic at 257), is a base image; "/" starts hostfiles,
// "-" excludefiles, a letter or digit packages. Anything else, cpio
// archives included, is an error.
func Sniff(r io.Reader) (Kind, error) {
	base, head, err := baseimage.Detect(r)
	if err != nil {
		return 0, err
	}
	if base {
		return BaseImage, nil
	}
	if len(head) == 0 {
		return Empty, nil
	}
	if len(head) >= 6 {
		switch string(head[:6]) {
		case "070701", "070702", "070707":
			return 0, errors.New("cpio archives are not supported as input (supermin 4 format?)")
		}
	}
	switch c := head[0]; {
	case c == '/':
		return HostFiles, nil
	case c == '-':
		return Excludes, nil
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
		return Packages, nil
	}
	return 0, errors.New("unknown file type (not a tar base image, hostfiles, excludefiles or packages list)")
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
