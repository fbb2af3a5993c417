package supermin

import (
	"fmt"
	"io/fs"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/dpkg"
	"github.com/gosupermin/gosupermin/backends/pacman"
	"github.com/gosupermin/gosupermin/backends/rpm"
	"github.com/gosupermin/gosupermin/internal/rootfs"
)

// Driver is one package-database backend, named as supermin names them.
type Driver struct {
	Name   string // "debian/dpkg"
	Detect func(root string) bool
	Open   func(root string) (backends.DB, error)
}

// Drivers lists the backends in the order they are tried.
var Drivers = []Driver{
	{"debian/dpkg", detect(dpkg.Detect), func(root string) (backends.DB, error) { return open(root, dpkg.Open) }},
	{"fedora/rpm", detect(rpm.Detect), func(root string) (backends.DB, error) { return open(root, rpm.Open) }},
	{"arch/pacman", detect(pacman.Detect), func(root string) (backends.DB, error) { return open(root, pacman.Open) }},
}

// detect runs a backend's Detect on the tree root.
func detect(f func(fs.FS) bool) func(string) bool {
	return func(root string) bool {
		t, err := rootfs.Open(root)
		if err != nil {
			return false
		}
		defer t.Close()
		return f(t.FS())
	}
}

// open opens a backend's database in the tree root, which stays open as
// long as the database, read through it.
func open[D backends.DB](root string, f func(fs.FS) (D, error)) (backends.DB, error) {
	t, err := rootfs.Open(root)
	if err != nil {
		return nil, err
	}
	db, err := f(t.FS())
	if err != nil {
		t.Close()
		return nil, err
	}
	return db, nil
}

// OpenDB opens the first database detected under root.
func OpenDB(root string) (backends.DB, string, error) {
	for _, d := range Drivers {
		if d.Detect(root) {
			db, err := d.Open(root)
			return db, d.Name, err
		}
	}
	return nil, "", fmt.Errorf("no package database found under %s (looked for %s)", root, driverNames())
}

func driverNames() string {
	s := ""
	for i, d := range Drivers {
		if i > 0 {
			s += ", "
		}
		s += d.Name
	}
	return s
}
