package supermin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/firstboot"
	"github.com/gosupermin/gosupermin/backends"
)

// bootstrapFirst are dpkg packages whose scripts run before all others,
// as debootstrap installs them first: base-passwd makes /etc/passwd and
// /etc/group, which other scripts use (base-files' postinst chowns to
// root:root) without declaring it, since all of them are Essential.
var bootstrapFirst = []string{"base-passwd"}

// bootstrapOrder moves bootstrapFirst to the front of a dpkg order.
func bootstrapOrder(family string, pkgs []*backends.Package) []*backends.Package {
	if family != "dpkg" {
		return pkgs
	}
	var first, rest []*backends.Package
	for _, p := range pkgs {
		if slices.Contains(bootstrapFirst, p.Name) {
			first = append(first, p)
		} else {
			rest = append(rest, p)
		}
	}
	return append(first, rest...)
}

// addFirstboot saves the closure's maintainer scripts in the manifest with
// the runner that runs them on the first boot (--firstboot).
func (b *build) addFirstboot() error {
	m := b.tree.m
	family := b.db.Family()
	var pkgs []firstboot.Package
	dpkgVersion := ""
	for _, p := range bootstrapOrder(family, b.closure.Packages) {
		s, err := b.db.Scripts(p)
		var pe *fs.PathError
		if err != nil && errors.As(err, &pe) && b.tree.skipUnreadable(pe.Path, err) {
			// The package's scripts stay out, as unreadable package files
			// do: running some of them without the others is no install.
			s, err = &backends.Scripts{}, nil
		}
		if err != nil {
			return err
		}
		fp := firstboot.Package{Name: p.Name, Version: p.Version, Arch: p.Arch, Scripts: s}
		if family == "dpkg" && len(s.List) > 0 {
			if fp.Extra, err = b.debconfFiles(p.Name, p.Arch); err != nil {
				return err
			}
		}
		pkgs = append(pkgs, fp)
		if family == "dpkg" && p.Name == "dpkg" {
			dpkgVersion = p.Version
		}
	}
	shell := appShell(m)
	if shell == "" {
		b.warnf("--firstboot: the appliance has no shell (/bin/sh, dash, bash or busybox): its first-boot runner cannot run")
		shell = "/bin/sh"
	} else if shell != "/bin/sh" {
		b.logf(1, "--firstboot: the appliance has no /bin/sh: the runner uses %s", shell)
	}
	files := firstbootFiles(m)
	plan, err := firstboot.New(pkgs, firstboot.Options{
		Family:      family,
		Shell:       shell,
		DpkgVersion: dpkgVersion,
		TriggerActive: func(name string) bool {
			if !strings.HasPrefix(name, "/") {
				return true // an explicit trigger: dpkg-trigger or an "activate" of some package
			}
			return files.under(m, name) // a file trigger: a file of the appliance is under it
		},
	})
	if err != nil {
		return err
	}
	for _, s := range plan.Skipped() {
		b.warnf("--firstboot: %s of %s %s is not run: %s", s.Label(), s.Package.Name, s.Package.Version, s.Skipped)
	}
	for _, e := range plan.Entries(b.epoch) {
		p, err := b.tree.Canon(e.Path)
		if err != nil {
			return err
		}
		e.Path = p
		if old, ok := m.Get(p); ok && (e.Kind == appliance.Dir || old.Kind == appliance.Dir) {
			continue // the appliance's own directory, or a symlink to one
		}
		if err := m.Put(e); err != nil {
			return err
		}
	}
	if family == "dpkg" {
		if err := b.addDpkgDB(m); err != nil {
			return err
		}
	}
	runs, trig := 0, 0
	for _, s := range plan.Steps {
		switch {
		case s.Skipped != "":
		case s.Trigger:
			trig++
		default:
			runs++
		}
	}
	b.logf(1, "--firstboot: %d maintainer scripts, %d triggers, %d skipped, in %s", runs, trig, len(plan.Skipped()), firstboot.Dir)
	return nil
}

// appShell is the shell the runner's "#!" line names: the first of a few
// that the appliance holds, following its symlinks.
func appShell(m *appliance.Manifest) string {
	for _, sh := range []string{"/bin/sh", "/usr/bin/sh", "/bin/dash", "/usr/bin/dash", "/bin/bash", "/usr/bin/bash", "/bin/busybox", "/usr/bin/busybox"} {
		if c, ok := manifestResolve(m, sh); ok {
			if e, _ := m.Get(c); e.Kind == appliance.Regular || e.Kind == appliance.Hardlink {
				if path.Base(sh) == "busybox" {
					return sh + " sh"
				}
				return sh
			}
		}
	}
	return ""
}

// manifestResolve follows the manifest's symlinks in p: the path it names and
// whether an entry is there.
func manifestResolve(m *appliance.Manifest, p string) (string, bool) {
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for i, hops := 0, 0; i < len(parts); i++ {
		if parts[i] == "" {
			continue
		}
		next := path.Join(cur, parts[i])
		e, ok := m.Get(next)
		if !ok {
			return path.Join(append([]string{next}, parts[i+1:]...)...), false
		}
		if e.Kind == appliance.Symlink {
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

// fileList are the sorted paths of the manifest's non-directories.
type fileList []string

func firstbootFiles(m *appliance.Manifest) fileList {
	var out fileList
	for _, e := range m.Entries() {
		if e.Kind != appliance.Dir {
			out = append(out, e.Path)
		}
	}
	return out
}

// under says whether a file is at dir or below it (through the manifest's
// symlinks), as dpkg activates a file trigger.
func (f fileList) under(m *appliance.Manifest, dir string) bool {
	c, ok := manifestResolve(m, dir)
	if !ok {
		return false
	}
	i := sort.SearchStrings(f, c)
	if i < len(f) && f[i] == c {
		return true
	}
	prefix := strings.TrimSuffix(c, "/") + "/"
	j := sort.SearchStrings(f, prefix)
	return j < len(f) && strings.HasPrefix(f[j], prefix)
}

// debconfFiles are a package's debconf config script and templates, from
// dpkg's info directory: its postinst's confmodule loads them from beside
// the postinst.
func (b *build) debconfFiles(name, arch string) ([]firstboot.Extra, error) {
	var out []firstboot.Extra
	for _, x := range []firstboot.Extra{{Suffix: "config", Mode: 0o755}, {Suffix: "templates", Mode: 0o644}} {
		for _, base := range []string{name + ":" + arch, name} {
			file := filepath.Join(b.root, "var/lib/dpkg/info", base+"."+x.Suffix)
			data, err := os.ReadFile(file)
			if errors.Is(err, fs.ErrNotExist) || err != nil && b.tree.skipUnreadable(file, err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			x.Data = data
			out = append(out, x)
			break
		}
	}
	return out, nil
}

// dpkgInfo are the info files of a package that the appliance's dpkg tools
// read (dpkg-query -S and -L, conffiles, triggers); scripts are not kept.
var dpkgInfo = []string{"list", "conffiles", "md5sums", "triggers"}

// addDpkgDB puts the closure's part of the dpkg database in the appliance,
// as it is after an unpack: scripts ask it (usr-is-merged's postinst
// removes /lib64 when "dpkg-query -S /lib64" finds no owner), and
// dpkg-divert and update-alternatives keep their records there.
func (b *build) addDpkgDB(m *appliance.Manifest) error {
	admin := filepath.Join(b.root, "var/lib/dpkg")
	data, err := os.ReadFile(filepath.Join(admin, "status"))
	if err != nil {
		return fmt.Errorf("--firstboot: %w", err)
	}
	want := map[string]bool{} // name and arch
	names := map[string]bool{}
	for _, p := range b.closure.Packages {
		want[p.Name+" "+p.Arch] = true
		names[p.Name] = true
	}
	var status bytes.Buffer
	for _, stanza := range dpkgStanzas(data) {
		if want[stanzaField(stanza, "Package")+" "+stanzaField(stanza, "Architecture")] {
			status.Write(stanza)
			status.WriteString("\n")
		}
	}
	put := func(p string, data []byte) error {
		return m.Put(appliance.Entry{Path: p, Kind: appliance.Regular, Mode: 0o644, ModTime: b.epoch,
			Size: int64(len(data)), Data: appliance.Bytes(data)})
	}
	if err := put("/var/lib/dpkg/status", status.Bytes()); err != nil {
		return err
	}
	if div, err := os.ReadFile(filepath.Join(admin, "diversions")); err == nil {
		lines := strings.Split(strings.TrimSuffix(string(div), "\n"), "\n")
		var keep []string
		for i := 0; i+2 < len(lines); i += 3 {
			if names[lines[i+2]] {
				keep = append(keep, lines[i:i+3]...)
			}
		}
		if len(keep) > 0 {
			if err := put("/var/lib/dpkg/diversions", []byte(strings.Join(keep, "\n")+"\n")); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{"/var/lib/dpkg", "/var/lib/dpkg/info", "/var/lib/dpkg/updates", "/var/lib/dpkg/triggers", "/var/lib/dpkg/alternatives"} {
		if _, ok := m.Get(d); !ok {
			if err := m.Put(appliance.Entry{Path: d, Kind: appliance.Dir, Mode: 0o755, ModTime: b.epoch}); err != nil {
				return err
			}
		}
	}
	// info/format says whether info files are named NAME:ARCH (format 1).
	for _, f := range []string{"/var/lib/dpkg/arch", "/var/lib/dpkg/info/format"} {
		if _, err := os.Stat(filepath.Join(b.root, f)); err == nil {
			if err := b.add(b.tree, f, f); err != nil {
				return err
			}
		}
	}
	ents, err := os.ReadDir(filepath.Join(admin, "info"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		dot := strings.LastIndexByte(e.Name(), '.')
		if dot < 0 || !slices.Contains(dpkgInfo, e.Name()[dot+1:]) {
			continue
		}
		base := e.Name()[:dot]
		name, arch, qualified := strings.Cut(base, ":")
		if qualified && !want[name+" "+arch] || !qualified && !names[name] {
			continue
		}
		p := "/var/lib/dpkg/info/" + e.Name()
		if err := b.add(b.tree, p, p); err != nil {
			return err
		}
	}
	return nil
}

// dpkgStanzas splits a deb822 file into its stanzas, as they are written.
func dpkgStanzas(data []byte) [][]byte {
	var out [][]byte
	var cur []byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(append(cur, line...), '\n')
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// stanzaField is the value of a stanza's single-line field.
func stanzaField(stanza []byte, name string) string {
	for _, line := range strings.Split(string(stanza), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
