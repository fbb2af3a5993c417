package rpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Header tags this package reads (rpmtag.h).
const (
	TagName           = 1000
	TagVersion        = 1001
	TagRelease        = 1002
	TagEpoch          = 1003
	TagVendor         = 1011
	TagLicense        = 1014
	TagPackager       = 1015
	TagURL            = 1020
	TagArch           = 1022
	TagPreIn          = 1023
	TagPostIn         = 1024
	TagOldFilenames   = 1027
	TagFileModes      = 1030
	TagFileRdevs      = 1033
	TagFileLinkTos    = 1036
	TagFileFlags      = 1037
	TagProvideName    = 1047
	TagRequireFlags   = 1048
	TagRequireName    = 1049
	TagRequireVersion = 1050
	TagPreInProg      = 1085
	TagPostInProg     = 1086
	TagProvideFlags   = 1112
	TagProvideVersion = 1113
	TagDirIndexes     = 1116
	TagBaseNames      = 1117
	TagDirNames       = 1118
	TagPostTrans      = 1152
	TagPostTransProg  = 1154
)

// Entry types of a header index.
const (
	typeNull        = 0
	typeChar        = 1
	typeInt8        = 2
	typeInt16       = 3
	typeInt32       = 4
	typeInt64       = 5
	typeString      = 6
	typeBin         = 7
	typeStringArray = 8
	typeI18NString  = 9
)

// Limits rpm itself enforces on a header (hdrblob), so that a corrupt
// count cannot make us allocate gigabytes.
const (
	maxIndexCount = 0xffff
	maxDataSize   = 256 << 20
)

// File flags (rpmfiles.h).
const (
	FileConfig = 1 << 0
	FileDoc    = 1 << 1
	FileGhost  = 1 << 6
)

// Dependency flags (rpmds.h).
const (
	senseLess      = 1 << 1
	senseGreater   = 1 << 2
	senseEqual     = 1 << 3
	senseMissingOK = 1 << 19
	senseRPMLib    = 1 << 24
)

type entry struct {
	typ    uint32
	offset uint32
	count  uint32
}

// Header is a parsed rpm header: an index of tags over a data store.
// Every entry was bounds-checked by ParseHeader; accessors never panic.
type Header struct {
	blob    []byte
	data    []byte
	entries map[uint32]entry
}

// ParseHeader parses a header blob as the rpm database stores it: without
// the 8-byte header magic, starting with the index count and data size
// (big-endian), then 16-byte index entries, then the data store.
func ParseHeader(blob []byte) (*Header, error) {
	if len(blob) < 8 {
		return nil, fmt.Errorf("header blob of %d bytes: truncated", len(blob))
	}
	il := binary.BigEndian.Uint32(blob[0:4])
	dl := binary.BigEndian.Uint32(blob[4:8])
	if il == 0 || il > maxIndexCount {
		return nil, fmt.Errorf("header index count %d out of range", il)
	}
	if dl > maxDataSize {
		return nil, fmt.Errorf("header data size %d out of range", dl)
	}
	need := 8 + uint64(il)*16 + uint64(dl)
	if uint64(len(blob)) < need {
		return nil, fmt.Errorf("header blob truncated: %d bytes, index and data need %d", len(blob), need)
	}
	h := &Header{blob: blob[:need], data: blob[8+il*16 : need], entries: make(map[uint32]entry, il)}
	for i := uint32(0); i < il; i++ {
		b := blob[8+i*16:]
		tag := binary.BigEndian.Uint32(b[0:4])
		e := entry{
			typ:    binary.BigEndian.Uint32(b[4:8]),
			offset: binary.BigEndian.Uint32(b[8:12]),
			count:  binary.BigEndian.Uint32(b[12:16]),
		}
		if e.typ > typeI18NString {
			return nil, fmt.Errorf("tag %d: unknown type %d", tag, e.typ)
		}
		if e.typ == typeNull {
			continue
		}
		if e.count == 0 || e.count > dl {
			return nil, fmt.Errorf("tag %d: count %d out of range", tag, e.count)
		}
		if e.offset >= dl {
			return nil, fmt.Errorf("tag %d: offset %d beyond the data store (%d bytes)", tag, e.offset, dl)
		}
		if size := typeSize(e.typ); size > 0 && uint64(e.offset)+uint64(e.count)*uint64(size) > uint64(dl) {
			return nil, fmt.Errorf("tag %d: %d values of %d bytes at offset %d overrun the data store (%d bytes)", tag, e.count, size, e.offset, dl)
		}
		// Region tags (61-63) describe signed ranges; later entries of
		// the same tag (the "dribble" after install) replace earlier ones.
		h.entries[tag] = e
	}
	return h, nil
}

func typeSize(t uint32) int {
	switch t {
	case typeChar, typeInt8, typeBin:
		return 1
	case typeInt16:
		return 2
	case typeInt32:
		return 4
	case typeInt64:
		return 8
	}
	return 0
}

// Blob returns the header as the database stores it.
func (h *Header) Blob() []byte { return h.blob }

// Has says whether the header carries tag.
func (h *Header) Has(tag uint32) bool { _, ok := h.entries[tag]; return ok }

// Strings returns the strings of a STRING, STRING_ARRAY or I18NSTRING tag
// (nil when absent).
func (h *Header) Strings(tag uint32) ([]string, error) {
	e, ok := h.entries[tag]
	if !ok {
		return nil, nil
	}
	switch e.typ {
	case typeString:
		if e.count != 1 {
			return nil, fmt.Errorf("tag %d: STRING with count %d", tag, e.count)
		}
	case typeStringArray, typeI18NString:
	default:
		return nil, fmt.Errorf("tag %d: type %d, want a string", tag, e.typ)
	}
	out := make([]string, 0, min(e.count, 4096))
	d := h.data[e.offset:]
	for i := uint32(0); i < e.count; i++ {
		end := indexNUL(d)
		if end < 0 {
			return nil, fmt.Errorf("tag %d: string %d of %d not terminated inside the data store", tag, i+1, e.count)
		}
		out = append(out, string(d[:end]))
		d = d[end+1:]
	}
	if e.typ == typeI18NString {
		out = out[:1] // the first is the untranslated "C" string
	}
	return out, nil
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// String returns a tag's only (or first) string; "" when absent.
func (h *Header) String(tag uint32) (string, error) {
	s, err := h.Strings(tag)
	if err != nil || len(s) == 0 {
		return "", err
	}
	return s[0], nil
}

// Ints returns an integer tag of any width as uint32 values (INT64 values
// are truncated: no tag we read uses them).
func (h *Header) Ints(tag uint32) ([]uint32, error) {
	e, ok := h.entries[tag]
	if !ok {
		return nil, nil
	}
	size := typeSize(e.typ)
	switch e.typ {
	case typeChar, typeInt8, typeInt16, typeInt32, typeInt64:
	default:
		return nil, fmt.Errorf("tag %d: type %d, want an integer", tag, e.typ)
	}
	out := make([]uint32, e.count)
	d := h.data[e.offset:]
	for i := range out {
		v := d[i*size : (i+1)*size]
		switch size {
		case 1:
			out[i] = uint32(v[0])
		case 2:
			out[i] = uint32(binary.BigEndian.Uint16(v))
		case 4:
			out[i] = binary.BigEndian.Uint32(v)
		case 8:
			out[i] = uint32(binary.BigEndian.Uint64(v))
		}
	}
	return out, nil
}

// Info is what the database needs to know of one installed package.
type Info struct {
	Name, Version, Release, Arch string
	Epoch                        *uint32
	Requires                     []Capability
	Provides                     []Capability
}

// Capability is one Requires or Provides entry.
type Capability struct {
	Name    string
	Flags   uint32
	Version string
}

// EVR is [epoch:]version-release.
func (i *Info) EVR() string {
	v := i.Version
	if i.Release != "" {
		v += "-" + i.Release
	}
	if i.Epoch != nil {
		v = fmt.Sprint(*i.Epoch) + ":" + v
	}
	return v
}

// NEVRA is name-[epoch:]version-release.arch, rpm's unique name of an
// installed package ("gpg-pubkey" entries have no arch).
func (i *Info) NEVRA() string {
	s := i.Name + "-" + i.EVR()
	if i.Arch != "" {
		s += "." + i.Arch
	}
	return s
}

// Info reads the package identity and relations.
func (h *Header) Info() (*Info, error) {
	var err error
	in := &Info{}
	for _, f := range []struct {
		tag uint32
		dst *string
	}{{TagName, &in.Name}, {TagVersion, &in.Version}, {TagRelease, &in.Release}, {TagArch, &in.Arch}} {
		if *f.dst, err = h.String(f.tag); err != nil {
			return nil, err
		}
	}
	if in.Name == "" {
		return nil, errors.New("header has no NAME")
	}
	if in.Version == "" {
		return nil, fmt.Errorf("package %s has no VERSION", in.Name)
	}
	if strings.ContainsAny(in.Name, " \t\n") {
		return nil, fmt.Errorf("bad package name %q", in.Name)
	}
	ep, err := h.Ints(TagEpoch)
	if err != nil {
		return nil, err
	}
	if len(ep) > 0 {
		in.Epoch = &ep[0]
	}
	if in.Requires, err = h.capabilities(TagRequireName, TagRequireFlags, TagRequireVersion); err != nil {
		return nil, fmt.Errorf("package %s: requires: %w", in.Name, err)
	}
	if in.Provides, err = h.capabilities(TagProvideName, TagProvideFlags, TagProvideVersion); err != nil {
		return nil, fmt.Errorf("package %s: provides: %w", in.Name, err)
	}
	return in, nil
}

func (h *Header) capabilities(nameTag, flagsTag, versionTag uint32) ([]Capability, error) {
	names, err := h.Strings(nameTag)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	flags, err := h.Ints(flagsTag)
	if err != nil {
		return nil, err
	}
	versions, err := h.Strings(versionTag)
	if err != nil {
		return nil, err
	}
	if flags != nil && len(flags) != len(names) || versions != nil && len(versions) != len(names) {
		return nil, fmt.Errorf("%d names, %d flags, %d versions", len(names), len(flags), len(versions))
	}
	out := make([]Capability, len(names))
	for i, n := range names {
		out[i].Name = n
		if flags != nil {
			out[i].Flags = flags[i]
		}
		if versions != nil {
			out[i].Version = versions[i]
		}
	}
	return out, nil
}

// FileInfo is one entry of a package's file list.
type FileInfo struct {
	Path   string
	Flags  uint32 // FileConfig, FileDoc, FileGhost...
	Mode   uint16 // st_mode as rpm records it (0 when the tag is absent)
	Rdev   uint16
	LinkTo string // symlink target ("" for other files)
}

// Files reads the file list: DIRNAMES/BASENAMES/DIRINDEXES (or the old
// OLDFILENAMES) with FILEFLAGS, FILEMODES, FILERDEVS and FILELINKTOS.
func (h *Header) Files() ([]FileInfo, error) {
	base, err := h.Strings(TagBaseNames)
	if err != nil {
		return nil, err
	}
	var paths []string
	if base != nil {
		dirs, err := h.Strings(TagDirNames)
		if err != nil {
			return nil, err
		}
		idx, err := h.Ints(TagDirIndexes)
		if err != nil {
			return nil, err
		}
		if len(idx) != len(base) {
			return nil, fmt.Errorf("%d basenames but %d dir indexes", len(base), len(idx))
		}
		paths = make([]string, len(base))
		for i, b := range base {
			if int64(idx[i]) >= int64(len(dirs)) {
				return nil, fmt.Errorf("file %q: dir index %d of %d dirs", b, idx[i], len(dirs))
			}
			paths[i] = dirs[idx[i]] + b
		}
	} else if paths, err = h.Strings(TagOldFilenames); err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, nil
	}
	flags, err := h.Ints(TagFileFlags)
	if err != nil {
		return nil, err
	}
	modes, err := h.Ints(TagFileModes)
	if err != nil {
		return nil, err
	}
	rdevs, err := h.Ints(TagFileRdevs)
	if err != nil {
		return nil, err
	}
	links, err := h.Strings(TagFileLinkTos)
	if err != nil {
		return nil, err
	}
	for _, c := range []struct {
		name string
		n    int
	}{{"FILEFLAGS", len(flags)}, {"FILEMODES", len(modes)}, {"FILERDEVS", len(rdevs)}, {"FILELINKTOS", len(links)}} {
		if c.n != 0 && c.n != len(paths) {
			return nil, fmt.Errorf("%d files but %d %s", len(paths), c.n, c.name)
		}
	}
	out := make([]FileInfo, len(paths))
	for i, p := range paths {
		out[i].Path = p
		if flags != nil {
			out[i].Flags = flags[i]
		}
		if modes != nil {
			out[i].Mode = uint16(modes[i])
		}
		if rdevs != nil {
			out[i].Rdev = uint16(rdevs[i])
		}
		if links != nil {
			out[i].LinkTo = links[i]
		}
	}
	return out, nil
}

// Scriptlet is one install-time script of a header.
type Scriptlet struct {
	Tag  uint32
	Prog []string // interpreter and its arguments ("<lua>" for Lua)
	Body string   // "" for "-p /sbin/ldconfig" style scriptlets
}

// Scriptlet reads a script tag and its program tag; nil when the
// package has neither.
func (h *Header) Scriptlet(bodyTag, progTag uint32) (*Scriptlet, error) {
	body, err := h.String(bodyTag)
	if err != nil {
		return nil, err
	}
	prog, err := h.Strings(progTag)
	if err != nil {
		return nil, err
	}
	if !h.Has(bodyTag) && len(prog) == 0 {
		return nil, nil
	}
	return &Scriptlet{Tag: bodyTag, Prog: prog, Body: body}, nil
}
