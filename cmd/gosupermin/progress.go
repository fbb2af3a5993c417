package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gosupermin/gosupermin/supermin"
)

// progressLine shows a build's progress on one line of a terminal:
// "gosupermin: writing the root image 42% (113.2 MiB of 270.0 MiB)". It
// is redrawn in place (carriage return, erase to the end of the line) a
// few times a second and erased when the phase ends; a message erases it
// and it comes back after the message.
//
// It is a few lines of our own rather than a progress-bar library: those
// pull in colour, terminal-width and Unicode-width modules for what is
// one line of text here.
type progressLine struct {
	mu    sync.Mutex
	w     io.Writer
	width int       // of the terminal, in columns
	phase string    // of the last update
	text  string    // what the line shows; "" when none
	drawn bool      // text is on the screen
	last  time.Time // of the last redraw
	now   func() time.Time
}

// redrawEvery keeps the line from costing anything: the eye does not see
// more than a few changes a second.
const redrawEvery = 100 * time.Millisecond

// newProgressLine is a progress line on w when w is a terminal and TERM
// is not "dumb" (which cannot erase a line); nil otherwise, so that
// logs and pipes get no progress.
func newProgressLine(w io.Writer, term string) *progressLine {
	f, ok := w.(*os.File)
	if !ok || term == "dumb" || !isTerminal(f) {
		return nil
	}
	width := 80
	if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		width = int(ws.Col)
	}
	return &progressLine{w: w, width: width, now: time.Now}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// update is supermin.Options.Progress.
func (l *progressLine) update(p supermin.Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.Done >= p.Total {
		l.phase, l.text = "", ""
		l.erase()
		return
	}
	newPhase := p.Phase != l.phase
	l.phase, l.text = p.Phase, progressText(p)
	if !l.drawn || newPhase || l.now().Sub(l.last) >= redrawEvery {
		l.draw()
	}
}

// progressText is the line for p.
func progressText(p supermin.Progress) string {
	if p.Bytes {
		return fmt.Sprintf("gosupermin: %s %d%% (%s of %s)", p.Phase, p.Done*100/max(p.Total, 1), mib(p.Done), mib(p.Total))
	}
	return fmt.Sprintf("gosupermin: %s %d/%d packages", p.Phase, p.Done, p.Total)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// print writes a message, whole, above the line.
func (l *progressLine) print(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erase()
	io.WriteString(l.w, msg)
	if l.text != "" {
		l.draw()
	}
}

// clear erases the line for good: the build is over.
func (l *progressLine) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text = ""
	l.erase()
}

func (l *progressLine) draw() {
	text := l.text
	if len(text) >= l.width {
		text = text[:l.width-1] // a wrapped line could not be erased
	}
	io.WriteString(l.w, "\r"+text+"\x1b[K")
	l.drawn, l.last = true, l.now()
}

func (l *progressLine) erase() {
	if l.drawn {
		io.WriteString(l.w, "\r\x1b[K")
		l.drawn = false
	}
}
