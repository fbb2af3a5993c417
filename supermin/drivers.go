package supermin

import (
	"fmt"

	"github.com/gosupermin/gosupermin/backends"
	"github.com/gosupermin/gosupermin/backends/dpkg"
	"github.com/gosupermin/gosupermin/backends/pacman"
	"github.com/gosupermin/gosupermin/backends/rpm"
)

// Driver is one package-database backend, named as supermin names them.
type Driver struct {
	Name   string // "debian/dpkg"
	Detect func(root string) bool
	Open   func(root string) (backends.DB, error)
}

// Drivers lists the backends in the order they are tried.
var Drivers = []Driver{
	{"debian/dpkg", dpkg.Detect, func(root string) (backends.DB, error) { return dpkg.Open(root) }},
	{"fedora/rpm", rpm.Detect, func(root string) (backends.DB, error) { return rpm.Open(root) }},
	{"arch/pacman", pacman.Detect, func(root string) (backends.DB, error) { return pacman.Open(root) }},
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
