// Package dpkg reads a dpkg database (var/lib/dpkg) under a root directory
// in process: installed packages, relations, file lists, conffiles, diversions, scripts.
package dpkg

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Paragraph is one deb822 stanza: field names in their order, values with
// continuation lines joined by "\n".
type Paragraph struct {
	Line   int // line number of the first field
	Fields map[string]string
}

// Get returns a field by its canonical name (deb822 field names are
// case-insensitive).
func (p Paragraph) Get(name string) string { return p.Fields[strings.ToLower(name)] }

// ParseParagraphs splits deb822 data into stanzas. It never trusts its
// input: a line that is neither a field nor a continuation is an error
// giving its line number.
func ParseParagraphs(data []byte) ([]Paragraph, error) {
	var out []Paragraph
	var cur *Paragraph
	var last string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			cur = nil
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur == nil || last == "" {
				return nil, fmt.Errorf("line %d: continuation line outside a field", n)
			}
			cur.Fields[last] += "\n" + strings.TrimSpace(line)
			continue
		}
		if line[0] == '#' && cur == nil {
			continue
		}
		i := strings.IndexByte(line, ':')
		if i <= 0 {
			return nil, fmt.Errorf("line %d: %q is not a field", n, truncate(line))
		}
		name := strings.ToLower(line[:i])
		if strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("line %d: bad field name %q", n, truncate(line[:i]))
		}
		if cur == nil {
			out = append(out, Paragraph{Line: n, Fields: map[string]string{}})
			cur = &out[len(out)-1]
		}
		if _, dup := cur.Fields[name]; dup {
			return nil, fmt.Errorf("line %d: field %q repeated in one paragraph", n, line[:i])
		}
		cur.Fields[name] = strings.TrimSpace(line[i+1:])
		last = name
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
