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
	// Raw is the paragraph as written: its lines, each ending in "\n".
	Raw string
}

// Get returns a field by its canonical name (deb822 field names are
// case-insensitive).
func (p Paragraph) Get(name string) string { return p.Fields[strings.ToLower(name)] }

// ParseParagraphs splits deb822 data into stanzas. It never trusts its
// input: a line that is neither a field nor a continuation is an error
// giving its line number. Its cost is linear in the input, however long
// a field or paragraph.
func ParseParagraphs(data []byte) ([]Paragraph, error) {
	p := paragraphParser{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		if err := p.line(n, sc.Text()); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	p.endParagraph()
	return p.out, nil
}

// paragraphParser accumulates the current field's lines and the current
// paragraph's text, and stores them when they end.
type paragraphParser struct {
	out   []Paragraph
	cur   *Paragraph
	field string   // name of the field being read
	value []string // its lines
	raw   strings.Builder
}

func (p *paragraphParser) line(n int, line string) error {
	if strings.TrimSpace(line) == "" {
		p.endParagraph()
		return nil
	}
	if line[0] == ' ' || line[0] == '\t' {
		if p.cur == nil || p.field == "" {
			return fmt.Errorf("line %d: continuation line outside a field", n)
		}
		p.value = append(p.value, strings.TrimSpace(line))
		p.raw.WriteString(line + "\n")
		return nil
	}
	if line[0] == '#' && p.cur == nil {
		return nil
	}
	i := strings.IndexByte(line, ':')
	if i <= 0 {
		return fmt.Errorf("line %d: %q is not a field", n, truncate(line))
	}
	name := strings.ToLower(line[:i])
	if strings.ContainsAny(name, " \t") {
		return fmt.Errorf("line %d: bad field name %q", n, truncate(line[:i]))
	}
	p.endField()
	if p.cur == nil {
		p.out = append(p.out, Paragraph{Line: n, Fields: map[string]string{}})
		p.cur = &p.out[len(p.out)-1]
	}
	if _, dup := p.cur.Fields[name]; dup {
		return fmt.Errorf("line %d: field %q repeated in one paragraph", n, line[:i])
	}
	p.cur.Fields[name] = "" // marks it seen
	p.field, p.value = name, append(p.value[:0], strings.TrimSpace(line[i+1:]))
	p.raw.WriteString(line + "\n")
	return nil
}

func (p *paragraphParser) endField() {
	if p.field != "" {
		p.cur.Fields[p.field] = strings.Join(p.value, "\n")
		p.field = ""
	}
}

func (p *paragraphParser) endParagraph() {
	if p.cur == nil {
		return
	}
	p.endField()
	p.cur.Raw = p.raw.String()
	p.raw.Reset()
	p.cur = nil
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
