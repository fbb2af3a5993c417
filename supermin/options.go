// Package supermin implements the two steps of an appliance's life: Prepare
// records package roots in a supermin.d, Build turns one into an appliance.
package supermin

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Options common to both steps.
type Options struct {
	// Root is the tree whose package database and files are used ("/").
	Root string
	// Verbose is the number of -v given.
	Verbose int
	// Log receives messages; level 0 are warnings, always shown.
	Log func(level int, msg string)
	// Epoch is SOURCE_DATE_EPOCH; zero when unset.
	Epoch time.Time
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
		return "", fmt.Errorf("--root: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("--root %s: not a directory", o.Root)
	}
	return abs, nil
}

// EpochFromEnv reads SOURCE_DATE_EPOCH.
func EpochFromEnv() (time.Time, error) {
	s, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds", s)
	}
	return time.Unix(n, 0).UTC(), nil
}
