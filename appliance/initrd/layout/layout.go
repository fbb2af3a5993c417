// Package layout is the contract between the initrd gosupermin builds
// and its init: the paths and files the init reads, and their formats.
//
// It is small on purpose: the init program imports it, and every package
// it imports makes the initrd larger and the boot slower.
package layout

import (
	"fmt"
	"strings"
)

// Paths of the layout.
const (
	InitPath      = "/init"
	Dir           = "/.gosupermin"
	ConfigFile    = Dir + "/config"
	ModulesFile   = Dir + "/modules"
	IndexFile     = Dir + "/modules.index"
	KODir         = Dir + "/ko"
	ApplianceInit = Dir + "/appliance-init"
)

// Formats of Config.Format.
const (
	FormatExt2 = "ext2" // the initrd mounts root= and switches to it
	FormatCPIO = "cpio" // the initrd is the appliance
)

// Config is what the builder tells init.
type Config struct {
	Format        string
	Kernel        string // release of the kernel the modules are for
	ApplianceInit bool   // cpio: the appliance's /init is at ApplianceInit
	// Drivers are modules to try, in order, before matching devices to
	// modules: those of the machine the appliance is made for.
	Drivers []string
}

// Marshal writes the config file.
func (c Config) Marshal() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "format=%s\nkernel=%s\n", c.Format, c.Kernel)
	if c.ApplianceInit {
		fmt.Fprintf(&b, "appliance-init=%s\n", ApplianceInit)
	}
	if len(c.Drivers) > 0 {
		fmt.Fprintf(&b, "drivers=%s\n", strings.Join(c.Drivers, ","))
	}
	return []byte(b.String())
}

// ParseConfig reads the config file; unknown keys are ignored.
func ParseConfig(b []byte) Config {
	var c Config
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "format":
			c.Format = v
		case "kernel":
			c.Kernel = v
		case "appliance-init":
			c.ApplianceInit = v != ""
		case "drivers":
			c.Drivers = nil
			for _, d := range strings.Split(v, ",") {
				if d != "" {
					c.Drivers = append(c.Drivers, d)
				}
			}
		}
	}
	return c
}

// IndexEntry is one line of IndexFile: a module, what it needs, and the
// devices it drives.
type IndexEntry struct {
	Name           string
	Needs, Aliases []string
}

// MarshalIndex writes IndexFile. Names, needs and aliases hold no tab,
// newline or comma (module names and modalias patterns never do).
func MarshalIndex(entries []IndexEntry) []byte {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s\t%s", e.Name, strings.Join(e.Needs, ","))
		for _, a := range e.Aliases {
			b.WriteString("\t" + a)
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// ParseIndex reads IndexFile: "NAME<TAB>NEED,NEED<TAB>ALIAS<TAB>ALIAS...",
// in load order.
func ParseIndex(b []byte) []IndexEntry {
	var out []IndexEntry
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 2 || f[0] == "" {
			continue
		}
		e := IndexEntry{Name: f[0]}
		for _, n := range strings.Split(f[1], ",") {
			if n != "" {
				e.Needs = append(e.Needs, n)
			}
		}
		for _, a := range f[2:] {
			if a != "" {
				e.Aliases = append(e.Aliases, a)
			}
		}
		out = append(out, e)
	}
	return out
}
