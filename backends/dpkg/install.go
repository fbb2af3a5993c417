package dpkg

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/gosupermin/gosupermin/backends"
)

// Scripts reads preinst and postinst as a fresh install runs them:
// "preinst install" then "postinst configure" with an empty old version, with
// dpkg's DPKG_MAINTSCRIPT_* variables; and, when the package has a
// script, the debconf config script and templates that its confmodule
// loads from beside it.
func (db *DB) Scripts(p *backends.Package) (*backends.Scripts, error) {
	s := &backends.Scripts{}
	for _, sc := range []struct {
		name  string
		phase backends.ScriptPhase
		args  []string
	}{
		{"preinst", backends.PreInstall, []string{"install"}},
		{"postinst", backends.PostInstall, []string{"configure", ""}},
	} {
		_, data, err := db.infoFile(p, sc.name, maxInfo)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.List = append(s.List, backends.Script{Phase: sc.phase, Name: sc.name, Args: sc.args,
			Env: scriptEnv(p, sc.name), Body: data})
	}
	if len(s.List) == 0 {
		return s, nil
	}
	for _, x := range []backends.ExtraFile{{Suffix: "config", Mode: 0o755}, {Suffix: "templates", Mode: 0o644}} {
		_, data, err := db.infoFile(p, x.Suffix, maxInfo)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		x.Data = data
		s.Extra = append(s.Extra, x)
	}
	return s, nil
}

func scriptEnv(p *backends.Package, script string) [][2]string {
	return [][2]string{
		{"DPKG_MAINTSCRIPT_PACKAGE", p.Name},
		{"DPKG_MAINTSCRIPT_ARCH", p.Arch},
		{"DPKG_MAINTSCRIPT_NAME", script},
	}
}

// bootstrapFirst are installed before all others, as debootstrap does:
// base-passwd makes /etc/passwd and /etc/group, which other scripts use
// (base-files' postinst chowns to root:root) without declaring it, since
// all of them are Essential.
var bootstrapFirst = []string{"base-passwd"}

// Install: base-passwd first, dpkg's environment for every script,
// services kept from starting (policy-rc.d), and "postinst triggered
// NAMES" for each package interested in triggers the appliance activates.
func (db *DB) Install(pkgs []*backends.Package, active func(string) bool) (*backends.Install, error) {
	in := &backends.Install{NoServices: true}
	var rest []*backends.Package
	for _, p := range pkgs {
		if slices.Contains(bootstrapFirst, p.Name) {
			in.Order = append(in.Order, p)
		} else {
			rest = append(rest, p)
		}
	}
	in.Order = append(in.Order, rest...)
	in.Env = [][2]string{
		{"DPKG_ROOT", ""}, {"DPKG_ADMINDIR", "/var/lib/dpkg"}, {"DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT", "1"},
		{"DEBIAN_FRONTEND", "noninteractive"}, {"DEBCONF_NONINTERACTIVE_SEEN", "true"},
	}
	for _, p := range pkgs {
		if p.Name == "dpkg" {
			in.Env = append(in.Env, [2]string{"DPKG_RUNNING_VERSION", p.Version})
			break
		}
	}
	for _, p := range in.Order {
		names, err := db.triggerInterests(p, active)
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			continue
		}
		if _, err := db.infoStat(p, "postinst"); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // nothing would run
			}
			return nil, err
		}
		in.Triggers = append(in.Triggers, backends.Trigger{Package: p, Script: "postinst",
			Args: []string{"triggered", strings.Join(names, " ")}, Env: scriptEnv(p, "postinst")})
	}
	return in, nil
}

// triggerInterests are the trigger names p's triggers file is interested
// in that the appliance activates, each once.
func (db *DB) triggerInterests(p *backends.Package, active func(string) bool) ([]string, error) {
	_, data, err := db.infoFile(p, "triggers", maxInfo)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "interest" && f[0] != "interest-await" && f[0] != "interest-noawait" {
			continue
		}
		if !slices.Contains(names, f[1]) && (active == nil || active(f[1])) {
			names = append(names, f[1])
		}
	}
	return names, nil
}

// applianceInfo are the info files of a package that the appliance's dpkg
// tools read (dpkg-query -S and -L, conffiles, triggers); scripts are not
// kept.
var applianceInfo = []string{"list", "conffiles", "md5sums", "triggers"}

// ApplianceFiles is the part of the database that pkgs need, as it is
// after an unpack: maintainer scripts query it (usr-is-merged's postinst
// removes /lib64 when "dpkg-query -S /lib64" finds no owner), and
// dpkg-divert and update-alternatives keep their records there.
func (db *DB) ApplianceFiles(pkgs []*backends.Package) ([]backends.DBFile, error) {
	in := map[*backends.Package]bool{}
	want := map[string]bool{} // name and arch
	names := map[string]bool{}
	for _, p := range pkgs {
		in[p] = true
		want[p.Name+" "+p.Arch] = true
		names[p.Name] = true
	}
	var status strings.Builder
	for _, p := range db.fileOrder {
		if in[p] {
			status.WriteString(db.extra[p].stanza + "\n")
		}
	}
	out := []backends.DBFile{{Path: "/" + AdminDir + "/status", Data: []byte(status.String())}}
	var div []string
	for _, from := range db.divOrder {
		if d := db.diversions[from]; names[d.by] {
			div = append(div, from, d.to, d.by)
		}
	}
	if len(div) > 0 {
		out = append(out, backends.DBFile{Path: "/" + AdminDir + "/diversions", Data: []byte(strings.Join(div, "\n") + "\n")})
	}
	for _, d := range []string{"", "/info", "/updates", "/triggers", "/alternatives"} {
		out = append(out, backends.DBFile{Path: "/" + AdminDir + d, Dir: true})
	}
	// info/format says whether info files are named NAME:ARCH (format 1).
	for _, f := range []string{archFile, infoDir + "/format"} {
		if _, err := fs.Lstat(db.fsys, f); err == nil {
			out = append(out, backends.DBFile{Path: "/" + f})
		}
	}
	ents, err := fs.ReadDir(db.fsys, infoDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read dpkg database: %w", err)
	}
	for _, e := range ents {
		dot := strings.LastIndexByte(e.Name(), '.')
		if dot < 0 || !slices.Contains(applianceInfo, e.Name()[dot+1:]) {
			continue
		}
		name, arch, qualified := strings.Cut(e.Name()[:dot], ":")
		if qualified && !want[name+" "+arch] || !qualified && !names[name] {
			continue
		}
		out = append(out, backends.DBFile{Path: "/" + infoDir + "/" + e.Name()})
	}
	return out, nil
}

// infoStat finds info/NAME:ARCH.SUFFIX or info/NAME.SUFFIX without
// reading it.
func (db *DB) infoStat(p *backends.Package, suffix string) (fs.FileInfo, error) {
	for _, base := range []string{p.Name + ":" + p.Arch, p.Name} {
		fi, err := fs.Stat(db.fsys, infoDir+"/"+base+"."+suffix)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return fi, err
		}
	}
	return nil, fs.ErrNotExist
}
