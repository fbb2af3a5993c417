package gather

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/firstboot"
	"github.com/gosupermin/gosupermin/backends"
)

// AddFirstboot saves the maintainer scripts of pkgs (the closure, in
// dependency order) with the runner that runs them on the first boot, and
// the part of the package database the scripts query. It comes after
// every other layer: the scripts' shell and trigger files are looked up in
// the manifest.
func (t *Tree) AddFirstboot(db backends.DB, pkgs []*backends.Package) error {
	m := t.m
	inst, ok := db.(backends.Installer)
	if !ok {
		t.logf(0, "warning: firstboot: the %s database has no maintainer scripts to save", db.Family())
		return nil
	}
	files := firstbootFiles(m)
	install, err := inst.Install(pkgs, func(name string) bool {
		if !strings.HasPrefix(name, "/") {
			return true // an explicit trigger: dpkg-trigger or an "activate" of some package
		}
		return files.under(m, name) // a file trigger: a file of the appliance is under it
	})
	if err != nil {
		return err
	}
	fbPkgs, err := t.firstbootPackages(inst, install.Order)
	if err != nil {
		return err
	}
	var triggers []firstboot.Trigger
	for _, t := range install.Triggers {
		triggers = append(triggers, firstboot.Trigger{Package: fbPackage(t.Package, nil), Script: t.Script, Args: t.Args, Env: t.Env})
	}
	shell := appShell(m)
	if shell == "" {
		t.logf(0, "warning: firstboot: the appliance has no shell (/bin/sh, dash, bash or busybox): its first-boot runner cannot run")
		shell = "/bin/sh"
	} else if shell != "/bin/sh" {
		t.logf(1, "firstboot: the appliance has no /bin/sh: the runner uses %s", shell)
	}
	plan, err := firstboot.New(fbPkgs, firstboot.Options{Shell: shell, Env: install.Env, NoServices: install.NoServices, Triggers: triggers})
	if err != nil {
		return err
	}
	for _, s := range plan.Skipped() {
		t.logf(0, "warning: firstboot: %s of %s %s is not run: %s", s.Label(), s.Package.Name, s.Package.Version, s.Skipped)
	}
	for _, e := range plan.Entries(t.opt.Epoch) {
		if err := t.Put(e); err != nil {
			return err
		}
	}
	if adb, ok := db.(backends.ApplianceDB); ok {
		if err := t.addApplianceDB(adb, pkgs); err != nil {
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
	t.logf(1, "firstboot: %d maintainer scripts, %d triggers, %d skipped, in %s", runs, trig, len(plan.Skipped()), firstboot.Dir)
	return nil
}

// firstbootPackages reads the scripts of pkgs. A package whose scripts
// this user cannot read has none saved, as unreadable package files are
// left out: running some of its scripts without the others is no install.
func (t *Tree) firstbootPackages(inst backends.Installer, pkgs []*backends.Package) ([]firstboot.Package, error) {
	var out []firstboot.Package
	t.progress(PhaseFirstboot, 0, len(pkgs))
	for i, p := range pkgs {
		s, err := inst.Scripts(p)
		var pe *fs.PathError
		if err != nil && errors.As(err, &pe) && t.skipUnreadable(pe.Path, err) {
			s, err = &backends.Scripts{}, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, fbPackage(p, s))
		t.progress(PhaseFirstboot, i+1, len(pkgs))
	}
	return out, nil
}

func fbPackage(p *backends.Package, s *backends.Scripts) firstboot.Package {
	return firstboot.Package{Name: p.Name, Version: p.Version, Arch: p.Arch, Scripts: s}
}

// addApplianceDB puts the closure's part of the package database in the
// appliance: files the backend made, and files of the tree copied as
// they are; its directories where the appliance has none.
func (t *Tree) addApplianceDB(adb backends.ApplianceDB, pkgs []*backends.Package) error {
	m := t.m
	dbFiles, err := adb.ApplianceFiles(pkgs)
	if err != nil {
		return fmt.Errorf("firstboot: %w", err)
	}
	for _, f := range dbFiles {
		switch {
		case f.Dir:
			if _, ok := m.Get(f.Path); !ok {
				if err := m.Put(appliance.Entry{Path: f.Path, Kind: appliance.Dir, Mode: 0o755, ModTime: t.opt.Epoch}); err != nil {
					return err
				}
			}
		case f.Data != nil:
			if err := m.Put(appliance.Entry{Path: f.Path, Kind: appliance.Regular, Mode: 0o644, ModTime: t.opt.Epoch,
				Size: int64(len(f.Data)), Data: appliance.Bytes(f.Data)}); err != nil {
				return err
			}
		default:
			if err := t.Add(f.Path, f.Path); err != nil {
				return err
			}
		}
	}
	return nil
}

// appShell is the shell the runner's "#!" line names: the first of a few
// that the appliance holds, following its symlinks.
func appShell(m *appliance.Manifest) string {
	for _, sh := range []string{"/bin/sh", "/usr/bin/sh", "/bin/dash", "/usr/bin/dash", "/bin/bash", "/usr/bin/bash", "/bin/busybox", "/usr/bin/busybox"} {
		if c, ok := m.Resolve(sh); ok {
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
	c, ok := m.Resolve(dir)
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
