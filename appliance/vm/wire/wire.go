// Package wire is the protocol between gosupermin --run (appliance/vm,
// the host) and the appliance's init (appliance/initproc, the guest) on
// one virtio-serial port: the command goes in, its output and exit status
// come out.
//
// The kernel command line tells the init to run a command
// (gosupermin.run=1), and nothing more: it cannot carry arbitrary bytes.
// Everything else travels as frames on the port named PortName:
//
//	type (1 byte) | length (4 bytes, big-endian) | payload (length bytes)
//
// guest -> host: Hello once the port is open (the host's sign that the
// machine runs), then Stdout and Stderr data, then Exit with the status,
// or Fail when the init cannot run the command.
//
// host -> guest: Request (argv, directory, environment, shares), then
// Stdin data, an empty Stdin frame being end of file.
//
// Payloads are bytes: arguments, paths and output may hold any byte,
// newlines and invalid UTF-8 included, and output of any size is cut into
// frames of at most Chunk bytes.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// PortName is the virtio-serial port's name.
const PortName = "org.gosupermin.run.0"

// CmdlineFlag on the kernel command line puts the init in run mode.
const CmdlineFlag = "gosupermin.run=1"

// Type is a frame's type.
type Type byte

// Frame types.
const (
	Hello   Type = 'H' // guest: the init is up; payload: the protocol version
	Request Type = 'R' // host: what to run (Request.Marshal)
	Stdin   Type = 'I' // host: data for the command's stdin; empty: end of file
	Stdout  Type = 'O' // guest: the command's stdout
	Stderr  Type = 'E' // guest: the command's stderr
	Exit    Type = 'X' // guest: the exit status, 4 bytes big-endian
	Fail    Type = 'F' // guest: the init could not run the command: why
)

// Version is Hello's payload.
const Version = "gosupermin-run 1"

// Chunk is the most data a Stdout, Stderr or Stdin frame carries.
const Chunk = 64 << 10

// MaxPayload is the largest frame read: a request with its arguments.
const MaxPayload = 16 << 20

// ErrTooLarge is returned for a frame longer than MaxPayload.
var ErrTooLarge = errors.New("frame longer than the protocol allows")

// Write writes one frame in one Write call, so that writers that share w
// under a lock never interleave.
func Write(w io.Writer, t Type, payload []byte) error {
	if len(payload) > MaxPayload {
		return ErrTooLarge
	}
	buf := make([]byte, 5+len(payload))
	buf[0] = byte(t)
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// Read reads one frame. A stream that ends between frames is io.EOF;
// one that ends inside a frame is io.ErrUnexpectedEOF.
func Read(r io.Reader) (Type, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxPayload {
		return 0, nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return Type(h[0]), p, nil
}

// ExitPayload and ParseExit encode Exit's status.
func ExitPayload(status int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(status)) }

// ParseExit reads an Exit payload.
func ParseExit(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("exit status of %d bytes, want 4", len(p))
	}
	return int(binary.BigEndian.Uint32(p)), nil
}

// Share is a directory of the host the guest mounts at Path: the 9p
// mount tag qemu gives it.
type Share struct {
	Tag, Path string
	ReadOnly  bool
}

// Req is what the host asks the guest to run.
type Req struct {
	// Args is the command; empty runs a login shell.
	Args []string
	// Dir is the working directory, in the guest.
	Dir string
	// Env is added to the init's environment (PATH, HOME, TERM, LANG).
	Env []string
	// Shares are mounted in order, before the command starts.
	Shares []Share
	// Terminal runs the command (the shell when Args is empty) on the
	// serial console, as its controlling terminal, instead of on pipes.
	Terminal bool
	// Rows and Cols are the terminal's size, 0 if unknown.
	Rows, Cols uint16
}

const reqMagic = "gsr1"

// Marshal encodes r: a magic, then each field, strings as a uvarint
// length and the bytes.
func (r *Req) Marshal() []byte {
	b := []byte(reqMagic)
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	list := func(l []string) {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, s := range l {
			str(s)
		}
	}
	flag := func(v bool) {
		if v {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	list(r.Args)
	str(r.Dir)
	list(r.Env)
	b = binary.AppendUvarint(b, uint64(len(r.Shares)))
	for _, s := range r.Shares {
		str(s.Tag)
		str(s.Path)
		flag(s.ReadOnly)
	}
	flag(r.Terminal)
	b = binary.BigEndian.AppendUint16(b, r.Rows)
	b = binary.BigEndian.AppendUint16(b, r.Cols)
	return b
}

// errShort is a request cut short or with a length past its end.
var errShort = errors.New("request truncated")

// ParseReq decodes a Request payload; any malformed input is an error.
func ParseReq(p []byte) (*Req, error) {
	if len(p) < len(reqMagic) || string(p[:len(reqMagic)]) != reqMagic {
		return nil, errors.New("not a gosupermin run request (another protocol version?)")
	}
	p = p[len(reqMagic):]
	var err error
	num := func() uint64 {
		if err != nil {
			return 0
		}
		v, n := binary.Uvarint(p)
		// A count can be no more than the bytes left: each element
		// takes at least one.
		if n <= 0 || v > uint64(len(p)) {
			err = errShort
			return 0
		}
		p = p[n:]
		return v
	}
	str := func() string {
		n := num()
		if err != nil || n > uint64(len(p)) {
			err = errShort
			return ""
		}
		s := string(p[:n])
		p = p[n:]
		return s
	}
	list := func() []string {
		n := num()
		var l []string
		for i := uint64(0); i < n && err == nil; i++ {
			l = append(l, str())
		}
		return l
	}
	flag := func() bool {
		if err != nil || len(p) < 1 || p[0] > 1 {
			err = errShort
			return false
		}
		v := p[0] == 1
		p = p[1:]
		return v
	}
	r := &Req{}
	r.Args = list()
	r.Dir = str()
	r.Env = list()
	n := num()
	for i := uint64(0); i < n && err == nil; i++ {
		r.Shares = append(r.Shares, Share{Tag: str(), Path: str(), ReadOnly: flag()})
	}
	r.Terminal = flag()
	if err == nil && len(p) != 4 {
		err = errShort
	}
	if err != nil {
		return nil, fmt.Errorf("bad run request: %w", err)
	}
	r.Rows = binary.BigEndian.Uint16(p)
	r.Cols = binary.BigEndian.Uint16(p[2:])
	return r, nil
}
