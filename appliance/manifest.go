// Package appliance holds the manifest, the one intermediate form between
// the package files gathered for an appliance and the writers of each format.
//
// A manifest is built with Put, then sealed: Seal checks what every writer
// relies on and freezes it, and writers (the Writer interface) only read a
// sealed manifest. Entries are kept by absolute path; Entries returns them
// sorted, so every parent precedes its children and every hard link
// follows its target.
package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// ErrSealed is returned when a sealed manifest is asked to change.
var ErrSealed = errors.New("appliance: the manifest is sealed")

// noOwner is (uid_t)-1.
const noOwner = 1<<32 - 1

// ErrNotSealed is returned by writers given a manifest that is not sealed.
var ErrNotSealed = errors.New("appliance: the manifest is not sealed (call Seal first)")

// Kind is the type of a manifest entry.
type Kind uint8

const (
	Regular Kind = iota
	Dir
	Symlink
	Hardlink // another name for the Regular entry at Link
	CharDev
	BlockDev
	FIFO
	Socket
)

var kindNames = [...]string{"file", "directory", "symlink", "hardlink", "char device", "block device", "fifo", "socket"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Source opens the data of a regular file when a writer needs it.
type Source interface {
	Open() (io.ReadCloser, error)
}

// HostFile is data read from a file on the build host.
type HostFile string

func (h HostFile) Open() (io.ReadCloser, error) { return os.Open(string(h)) }
func (h HostFile) String() string               { return string(h) }

// Bytes is data held in memory (base-image entries, generated files).
type Bytes []byte

func (b Bytes) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }

// SparseSource is a Source whose data has holes. Writers that can keep
// holes (chroot, ext2) ask for the extents of entries marked Sparse;
// bytes outside the extents read as zeros.
type SparseSource interface {
	Source
	// Extents returns the regions that hold data, sorted and disjoint.
	Extents() ([]Extent, error)
}

// Extent is a region of a file's data.
type Extent struct{ Off, Len int64 }

// Xattr is one extended attribute, by its full name
// ("security.capability", "system.posix_acl_access", "user.x").
type Xattr struct {
	Name  string
	Value []byte
}

// Entry is one path of the appliance.
type Entry struct {
	Path    string // absolute and clean: "/", "/usr/bin/bash"
	Kind    Kind
	Mode    uint32 // permission bits with setuid, setgid and sticky (07777)
	UID     uint32
	GID     uint32
	ModTime time.Time
	// Link is a symlink's target, or for a Hardlink the Path of the
	// Regular entry that holds the data.
	Link         string
	Major, Minor uint32 // CharDev and BlockDev
	Size         int64  // Regular
	Data         Source // Regular; nil means empty
	// Sparse says Data is a SparseSource with holes worth keeping.
	Sparse bool
	// Xattrs are the entry's extended attributes, sorted by name.
	Xattrs []Xattr
}

// Manifest is a set of entries keyed by path.
type Manifest struct {
	entries  map[string]*Entry
	children map[string]int // directory -> number of entries right in it
	sorted   []*Entry       // once sealed
}

// New returns an empty manifest.
func New() *Manifest { return &Manifest{entries: map[string]*Entry{}, children: map[string]int{}} }

// Len is the number of entries.
func (m *Manifest) Len() int { return len(m.entries) }

// Get returns the entry at p.
func (m *Manifest) Get(p string) (*Entry, bool) {
	e, ok := m.entries[p]
	return e, ok
}

// CleanPath makes p absolute and clean, refusing ".." components, so that
// no entry can name a path outside the appliance.
func CleanPath(p string) (string, error) {
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("path %q has a .. component", p)
		}
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path %q has a NUL byte", p)
	}
	return path.Clean("/" + p), nil
}

// Put adds e, replacing any entry at the same path, as a later layer
// overrides an earlier one. Replacing a directory that has children with
// something else is refused, as tar refuses it.
func (m *Manifest) Put(e Entry) error {
	if m.sorted != nil {
		return ErrSealed
	}
	p, err := CleanPath(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	if e.Kind > Socket {
		return fmt.Errorf("%s: unknown entry kind %d", p, e.Kind)
	}
	if e.UID == noOwner || e.GID == noOwner {
		// chown(2) reads -1 as "leave as it is": such an owner would differ
		// between formats.
		return fmt.Errorf("%s: owner %d:%d: 4294967295 ((uid_t)-1) is not a valid owner", p, e.UID, e.GID)
	}
	if e.Kind == Hardlink {
		if e.Link, err = CleanPath(e.Link); err != nil {
			return fmt.Errorf("%s: hard link target: %w", p, err)
		}
	}
	if p == "/" && e.Kind != Dir {
		return fmt.Errorf("/: must be a directory, not a %s", e.Kind)
	}
	if old, ok := m.entries[p]; ok && old.Kind == Dir && e.Kind != Dir && m.hasChildren(p) {
		return fmt.Errorf("%s: cannot replace a non-empty directory with a %s", p, e.Kind)
	}
	if e.Sparse {
		if _, ok := e.Data.(SparseSource); !ok {
			return fmt.Errorf("%s: marked sparse, but its data has no extents", p)
		}
	}
	for i := 1; i < len(e.Xattrs); i++ {
		if e.Xattrs[i-1].Name >= e.Xattrs[i].Name {
			return fmt.Errorf("%s: extended attributes not sorted by name, or %q twice", p, e.Xattrs[i].Name)
		}
	}
	e.Mode &= 07777
	m.set(p, &e)
	return nil
}

// set puts e at p, keeping the count of each directory's children.
func (m *Manifest) set(p string, e *Entry) {
	if _, ok := m.entries[p]; !ok && p != "/" {
		m.children[path.Dir(p)]++
	}
	m.entries[p] = e
}

func (m *Manifest) hasChildren(dir string) bool { return m.children[dir] > 0 }

// Remove deletes the entry at p (not its children).
func (m *Manifest) Remove(p string) error {
	if m.sorted != nil {
		return ErrSealed
	}
	if _, ok := m.entries[p]; ok && p != "/" {
		m.children[path.Dir(p)]--
	}
	delete(m.entries, p)
	return nil
}

// Seal checks the manifest (Check) and freezes it: it is finished, and
// writers may read it from several goroutines.
func (m *Manifest) Seal() error {
	if m.sorted != nil {
		return nil
	}
	if err := m.Check(); err != nil {
		return err
	}
	m.sorted = m.Entries()
	return nil
}

// Sealed says whether Seal has frozen the manifest.
func (m *Manifest) Sealed() bool { return m.sorted != nil }

// Entries returns the entries sorted by path. A parent's path is a prefix
// of its children's, so it always sorts first. A sealed manifest's
// entries must not be changed.
func (m *Manifest) Entries() []*Entry {
	if m.sorted != nil {
		return m.sorted
	}
	out := make([]*Entry, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// AddParents adds every missing ancestor directory of every entry, with the
// metadata dir returns for it.
func (m *Manifest) AddParents(dir func(p string) Entry) error {
	if m.sorted != nil {
		return ErrSealed
	}
	var missing []string
	seen := map[string]bool{}
	for p := range m.entries {
		for d := path.Dir(p); ; d = path.Dir(d) {
			if _, ok := m.entries[d]; ok || seen[d] {
				break
			}
			seen[d] = true
			missing = append(missing, d)
			if d == "/" {
				break
			}
		}
	}
	for _, d := range missing {
		e := dir(d)
		e.Path, e.Kind = d, Dir
		m.set(d, &e)
	}
	return nil
}

// Check verifies what every writer relies on: each entry's parent is a
// directory (so nothing is written through a symlink), and each hard link
// names a regular file that sorts before it.
func (m *Manifest) Check() error {
	for p, e := range m.entries {
		if p != "/" {
			parent, ok := m.entries[path.Dir(p)]
			if !ok {
				return fmt.Errorf("%s: parent directory missing", p)
			}
			if parent.Kind != Dir {
				return fmt.Errorf("%s: parent %s is a %s, not a directory", p, parent.Path, parent.Kind)
			}
		}
		if e.Kind == Hardlink {
			t, ok := m.entries[e.Link]
			switch {
			case !ok:
				return fmt.Errorf("%s: hard link to missing %s", p, e.Link)
			case t.Kind != Regular:
				return fmt.Errorf("%s: hard link to %s, a %s", p, e.Link, t.Kind)
			case t.Path >= p:
				return fmt.Errorf("%s: hard link target %s must sort first", p, e.Link)
			}
		}
	}
	return nil
}

// ClampTimes sets every time later than max to max, as reproducible
// builds clamp to SOURCE_DATE_EPOCH: directories such as /tmp change their
// mtime whenever anything on the host writes there.
func (m *Manifest) ClampTimes(max time.Time) error {
	if m.sorted != nil {
		return ErrSealed
	}
	for _, e := range m.entries {
		if e.ModTime.After(max) {
			e.ModTime = max
		}
	}
	return nil
}

// Stats counts entries by kind and the bytes of regular files.
func (m *Manifest) Stats() (counts map[Kind]int, bytes int64) {
	counts = map[Kind]int{}
	for _, e := range m.entries {
		counts[e.Kind]++
		if e.Kind == Regular {
			bytes += e.Size
		}
	}
	return counts, bytes
}

// maxLinks bounds symlink resolution, as the kernel's ELOOP does.
const maxLinks = 40

// Resolve follows the manifest's symlinks in p as the appliance's kernel
// would: it returns the path p names and whether an entry is there. A
// path through a missing entry is returned with its remaining components.
func (m *Manifest) Resolve(p string) (string, bool) {
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for i, hops := 0, 0; i < len(parts); i++ {
		if parts[i] == "" {
			continue
		}
		next := path.Join(cur, parts[i])
		e, ok := m.entries[next]
		if !ok {
			return path.Join(append([]string{next}, parts[i+1:]...)...), false
		}
		if e.Kind == Symlink {
			if hops++; hops > maxLinks {
				return next, false
			}
			t := e.Link
			if !path.IsAbs(t) {
				t = path.Join(cur, t)
			}
			parts = append(strings.Split(strings.Trim(path.Clean(t), "/"), "/"), parts[i+1:]...)
			cur, i = "/", -1
			continue
		}
		cur = next
	}
	return cur, true
}

// Merge returns a new manifest with the entries of base and those of over
// laid on them, as a later layer overrides an earlier one; where both
// have a directory, base's is kept. The entries themselves are shared,
// not copied: neither input may change afterwards (sealed ones cannot).
func Merge(base, over *Manifest) (*Manifest, error) {
	out := &Manifest{entries: make(map[string]*Entry, len(base.entries)+len(over.entries)), children: map[string]int{}}
	for p, e := range base.entries {
		out.set(p, e)
	}
	for _, e := range over.Entries() {
		if old, ok := out.entries[e.Path]; ok && old.Kind == Dir && e.Kind == Dir {
			continue
		}
		if err := out.Put(*e); err != nil {
			return nil, err
		}
	}
	return out, nil
}
