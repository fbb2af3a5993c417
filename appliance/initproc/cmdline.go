package initproc

import (
	"strconv"
	"strings"
	"time"
)

// params are the kernel command line parameters init reads.
type params struct {
	root       string        // root=
	rootfstype []string      // rootfstype=ext4,ext2
	rootflags  string        // rootflags=
	readOnly   bool          // ro / rw, the last one wins
	init       string        // init=
	quiet      bool          // quiet
	rootWait   time.Duration // gosupermin.rootwait= or rootdelay=, seconds
	firstboot  bool          // gosupermin.firstboot=0 turns it off
	fbTimeout  time.Duration // gosupermin.firstboot.timeout=, seconds
	verbose    bool          // gosupermin.verbose=1: more messages
	run        bool          // gosupermin.run=1: run the host's command (run.go)
	console    string        // the last console=, without its options: "ttyS0"
}

const (
	defaultRootWait  = 60 * time.Second
	defaultFBTimeout = 30 * time.Minute
)

// splitCmdline splits a kernel command line as the kernel does: on
// spaces, with double quotes grouping (and removed), stopping at "--".
func splitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (c == ' ' || c == '\t' || c == '\n'):
			if have {
				if cur.String() == "--" {
					return out
				}
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have && cur.String() != "--" {
		out = append(out, cur.String())
	}
	return out
}

func seconds(v string) (time.Duration, bool) {
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 || n > 1e6 {
		return 0, false
	}
	return time.Duration(n * float64(time.Second)), true
}

func parseCmdline(s string) params {
	p := params{rootWait: defaultRootWait, firstboot: true, fbTimeout: defaultFBTimeout}
	for _, w := range splitCmdline(s) {
		k, v, hasVal := strings.Cut(w, "=")
		switch k {
		case "root":
			p.root = v
		case "rootfstype":
			p.rootfstype = nil
			for _, t := range strings.Split(v, ",") {
				if t != "" {
					p.rootfstype = append(p.rootfstype, t)
				}
			}
		case "rootflags":
			p.rootflags = v
		case "ro":
			p.readOnly = !hasVal
		case "rw":
			p.readOnly = false
		case "init":
			p.init = v
		case "quiet":
			p.quiet = true
		case "rootdelay", "gosupermin.rootwait":
			if d, ok := seconds(v); ok {
				p.rootWait = d
			}
		case "gosupermin.firstboot":
			p.firstboot = v != "0" && v != "no" && v != "off" && v != "false"
		case "gosupermin.firstboot.timeout":
			if d, ok := seconds(v); ok && d > 0 {
				p.fbTimeout = d
			}
		case "gosupermin.verbose":
			p.verbose = v != "0"
		case "gosupermin.run":
			p.run = v == "1"
		case "console":
			p.console, _, _ = strings.Cut(v, ",")
		}
	}
	return p
}
