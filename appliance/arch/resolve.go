package arch

import (
	"errors"
	"fmt"
	"strings"
)

// Source is one thing that tells an appliance's architecture.
type Source struct {
	// What it is, for messages: "the package database (dpkg) /r/var/lib/dpkg/status".
	What string
	// Name is the architecture as the source names it ("aarch64",
	// "ppc64el"), or a description of one the table lacks.
	Name string
}

func (s Source) arch() (*Arch, bool) { return Lookup(s.Name) }

func (s Source) String() string {
	if a, ok := s.arch(); ok && a.Name != s.Name {
		return fmt.Sprintf("%s says %s (%s)", s.What, s.Name, a.Name)
	}
	return fmt.Sprintf("%s says %s", s.What, s.Name)
}

// ErrMismatch is wrapped by Resolve's error when sources disagree.
var ErrMismatch = errors.New("the appliance's architecture is unclear")

// ErrNotInTable is wrapped by Resolve's error when the sources agree on
// an architecture that the table does not have.
var ErrNotInTable = errors.New("not an architecture gosupermin knows")

// MismatchError lists sources that disagree.
type MismatchError struct{ Sources []Source }

func (e *MismatchError) Error() string {
	parts := make([]string, len(e.Sources))
	for i, s := range e.Sources {
		parts[i] = s.String()
	}
	return fmt.Sprintf("%v: %s", ErrMismatch, strings.Join(parts, ", "))
}

func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Resolve settles the architecture the sources name. They must agree
// (as the table's rows: "x86_64" and "amd64" agree); sources with an
// empty Name are left out. With no source it returns nil and no error.
// An architecture the table lacks is an error wrapping ErrNotInTable.
func Resolve(sources ...Source) (*Arch, error) {
	var named []Source
	for _, s := range sources {
		if s.Name != "" {
			named = append(named, s)
		}
	}
	if len(named) == 0 {
		return nil, nil
	}
	key := func(s Source) string {
		if a, ok := s.arch(); ok {
			return a.Name
		}
		return s.Name
	}
	for _, s := range named[1:] {
		if key(s) != key(named[0]) {
			return nil, &MismatchError{Sources: named}
		}
	}
	a, ok := named[0].arch()
	if !ok {
		return nil, fmt.Errorf("%s: %w (%s)", named[0], ErrNotInTable, strings.Join(Names(), ", "))
	}
	return a, nil
}
