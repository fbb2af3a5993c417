package supermin

import (
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/dpkg"
	"github.com/gosupermin/gosupermin/backends/pacman"
	"github.com/gosupermin/gosupermin/backends/rpm"
	"github.com/gosupermin/gosupermin/internal/rootfs"
)

// Driver is one package-database backend, named as supermin names them.
type Driver struct {
	Name   string // "debian/dpkg"
	Detect func(fsys fs.FS) bool
	Open   func(fsys fs.FS) (backends.DB, error)
	// Files are the database's files whose change invalidates a build,
	// found without reading the database.
	Files func(fsys fs.FS) []string
}

// Drivers lists the backends in the order they are tried.
var Drivers = []Driver{
	{"debian/dpkg", dpkg.Detect, func(fsys fs.FS) (backends.DB, error) { return dpkg.Open(fsys) }, dpkg.DBFiles},
	{"fedora/rpm", rpm.Detect, func(fsys fs.FS) (backends.DB, error) { return rpm.Open(fsys) }, rpm.DBFiles},
	{"arch/pacman", pacman.Detect, func(fsys fs.FS) (backends.DB, error) { return pacman.Open(fsys) }, pacman.DBFiles},
}

// detect finds the driver of the database in fsys.
func detect(fsys fs.FS) (*Driver, error) {
	for i := range Drivers {
		if Drivers[i].Detect(fsys) {
			return &Drivers[i], nil
		}
	}
	var names []string
	for _, d := range Drivers {
		names = append(names, d.Name)
	}
	return nil, fmt.Errorf("no package database found under %s (looked for %s)", backends.HostPath(fsys, "."), strings.Join(names, ", "))
}

// OpenDB opens the first database detected in the tree fsys. A database
// that keeps files open is an io.Closer.
func OpenDB(fsys fs.FS) (backends.DB, string, error) {
	d, err := detect(fsys)
	if err != nil {
		return nil, "", err
	}
	db, err := d.Open(fsys)
	return db, d.Name, err
}

// dbTime is the latest mtime of the database's files: a change of the
// database since a build makes the build out of date. Files are looked
// at in the tree (stat only).
func dbTime(tree *rootfs.FS, files []string) time.Time {
	var t time.Time
	for _, f := range files {
		if fi, err := tree.Stat(f); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

// closeDB closes db if it holds files open.
func closeDB(db backends.DB) {
	if c, ok := db.(io.Closer); ok {
		c.Close()
	}
}
