package supermin

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Options common to both steps.
type Options struct {
	// Root is the tree whose package database and files are used ("/").
	Root string
	// Verbose is the level of messages passed to Log (0: warnings only).
	Verbose int
	// Log receives messages; level 0 are warnings, always shown.
	Log func(level int, msg string)
	// Epoch, when set (SOURCE_DATE_EPOCH), is the time of every entry
	// made up, and no time in the output is later.
	Epoch time.Time
	// Progress, if set, is told how far the long phases of a build are,
	// for a progress indicator: at the start of each (Done 0), as it goes,
	// and at its end (Done == Total). It is never called from two
	// goroutines at once.
	Progress func(Progress)
}

func (o *Options) log(level int, msg string) {
	if o.Log != nil && level <= o.Verbose {
		o.Log(level, msg)
	}
}

func (o *Options) logf(level int, format string, args ...any) {
	if o.Log != nil && level <= o.Verbose {
		o.Log(level, fmt.Sprintf(format, args...))
	}
}

func (o *Options) warnf(format string, args ...any) { o.logf(0, "warning: "+format, args...) }

func (o *Options) root() (string, error) {
	if o.Root == "" {
		return "/", nil
	}
	abs, err := filepath.Abs(o.Root)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("root: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("root %s: not a directory", o.Root)
	}
	return abs, nil
}
