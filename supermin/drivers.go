package supermin

import (
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/dpkg"
	"github.com/gosupermin/gosupermin/backends/pacman"
	"github.com/gosupermin/gosupermin/backends/rpm"
)

// Driver is one package-database backend, named as supermin names them.
type Driver struct {
	Name   string // "debian/dpkg"
	Detect func(fsys fs.FS) bool
	Open   func(fsys fs.FS) (backends.DB, error)
}

// Drivers lists the backends in the order they are tried.
var Drivers = []Driver{
	{"debian/dpkg", dpkg.Detect, func(fsys fs.FS) (backends.DB, error) { return dpkg.Open(fsys) }},
	{"fedora/rpm", rpm.Detect, func(fsys fs.FS) (backends.DB, error) { return rpm.Open(fsys) }},
	{"arch/pacman", pacman.Detect, func(fsys fs.FS) (backends.DB, error) { return pacman.Open(fsys) }},
}

// OpenDB opens the first database detected in the tree fsys. A database
// that keeps files open is an io.Closer.
func OpenDB(fsys fs.FS) (backends.DB, string, error) {
	for _, d := range Drivers {
		if d.Detect(fsys) {
			db, err := d.Open(fsys)
			return db, d.Name, err
		}
	}
	var names []string
	for _, d := range Drivers {
		names = append(names, d.Name)
	}
	return nil, "", fmt.Errorf("no package database found under %s (looked for %s)", backends.HostPath(fsys, "."), strings.Join(names, ", "))
}

// closeDB closes db if it holds files open.
func closeDB(db backends.DB) {
	if c, ok := db.(io.Closer); ok {
		c.Close()
	}
}
