package initrd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/internal/xz"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// DefaultPatterns are the modules the mini initrd loads to find and mount
// the root disk on amd64, as supermin 5 chooses them (matched against
// module file names without .ko and the compression suffix). Each
// architecture's are in appliance/arch's table.
var DefaultPatterns = amd64Modules()

func amd64Modules() []string {
	a, _ := arch.Lookup("amd64")
	return a.Modules
}

// DefaultExcludes are left out even when a pattern matches them.
var DefaultExcludes = arch.ExcludedModules

// Module is one kernel module of a module directory.
type Module struct {
	Name string // normalised: "virtio_blk"
	Path string // as in modules.dep, relative to the module directory
}

// FileName is the module's file name once decompressed: "virtio_blk.ko".
func (m Module) FileName() string { return m.Name + ".ko" }

// Softdep is a module's soft dependencies: modules to load before and
// after it, by name or alias.
type Softdep struct{ Pre, Post []string }

// ModDir is a kernel's module directory (/lib/modules/RELEASE), read from
// its modules.dep, modules.softdep, modules.alias and modules.builtin.
type ModDir struct {
	FS      fs.FS               // where the directory is read
	Name    string              // its name in FS
	Dir     string              // its host path, for messages
	Deps    map[string][]string // module path -> paths it needs, as modules.dep lists them
	Softdep map[string]Softdep  // module name -> soft dependencies
	Aliases []Alias
	Builtin map[string]bool // names of modules built into the kernel
	byName  map[string]string
	paths   []string // sorted
}

// Alias is one line of modules.alias.
type Alias struct{ Pattern, Module string }

// Name is the module name of a file: its base name without .ko and a
// compression suffix, '-' written '_' as the kernel does.
func Name(file string) string {
	return strings.ReplaceAll(stem(path.Base(file)), "-", "_")
}

// stem strips .ko and a compression suffix.
func stem(base string) string {
	for _, suf := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		if strings.HasSuffix(base, suf) {
			return strings.TrimSuffix(base, suf)
		}
	}
	return base
}

func normalise(name string) string { return strings.ReplaceAll(name, "-", "_") }

// ParseDeps reads modules.dep: "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko ...".
// Blank lines and lines starting with # are ignored.
func ParseDeps(r io.Reader) (map[string][]string, error) {
	deps := map[string][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		mod = strings.TrimSpace(mod)
		if !ok || mod == "" || strings.ContainsAny(mod, " \t") {
			return nil, fmt.Errorf("modules.dep line %d: expected \"module: dependencies\", got %q", n, truncate(line))
		}
		list := strings.Fields(rest)
		if list == nil {
			list = []string{}
		}
		deps[mod] = list
	}
	return deps, sc.Err()
}

// ParseSoftdeps reads modules.softdep (the modprobe.d syntax):
// "softdep MODULE pre: A B post: C". Words before any pre: or post: are
// ignored, as modprobe ignores them; other commands are skipped.
func ParseSoftdeps(r io.Reader) (map[string]Softdep, error) {
	soft := map[string]Softdep{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || f[0] != "softdep" {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("modules.softdep line %d: softdep without a module", n)
		}
		name := normalise(f[1])
		sd := soft[name]
		mode := ""
		for _, w := range f[2:] {
			switch w {
			case "pre:", "post:":
				mode = w
			default:
				switch mode {
				case "pre:":
					sd.Pre = append(sd.Pre, w)
				case "post:":
					sd.Post = append(sd.Post, w)
				}
			}
		}
		soft[name] = sd
	}
	return soft, sc.Err()
}

// ParseAliases reads modules.alias: "alias PATTERN MODULE".
func ParseAliases(r io.Reader) ([]Alias, error) {
	var out []Alias
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "alias" {
			out = append(out, Alias{Pattern: f[1], Module: normalise(f[2])})
		}
	}
	return out, sc.Err()
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// maxIndex bounds what one of the module indexes may hold (Debian's
// largest, modules.alias, is about 1 MiB).
const maxIndex = 64 << 20

// Open reads the module directory name of fsys, at host path dir.
// modules.dep is required; the other indexes are optional.
func Open(fsys fs.FS, name, dir string) (*ModDir, error) {
	d := &ModDir{FS: fsys, Name: name, Dir: dir, Builtin: map[string]bool{}, byName: map[string]string{}}
	var err error
	if err = d.parse("modules.dep", true, func(r io.Reader) (err error) { d.Deps, err = ParseDeps(r); return err }); err != nil {
		return nil, err
	}
	if err = d.parse("modules.softdep", false, func(r io.Reader) (err error) { d.Softdep, err = ParseSoftdeps(r); return err }); err != nil {
		return nil, err
	}
	if err = d.parse("modules.alias", false, func(r io.Reader) (err error) { d.Aliases, err = ParseAliases(r); return err }); err != nil {
		return nil, err
	}
	err = d.parse("modules.builtin", false, func(r io.Reader) error {
		b, err := io.ReadAll(r)
		for _, l := range strings.Fields(string(b)) {
			d.Builtin[Name(l)] = true
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	d.index()
	return d, nil
}

// parse reads one index of the directory with read, up to maxIndex bytes.
func (d *ModDir) parse(file string, required bool, read func(io.Reader) error) error {
	host := filepath.Join(d.Dir, file)
	f, err := d.FS.Open(path.Join(d.Name, file))
	if err != nil {
		if !required && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if required {
			return fmt.Errorf("kernel modules: %w (run depmod)", err)
		}
		return fmt.Errorf("kernel modules: %w", err)
	}
	defer f.Close()
	lr := &io.LimitedReader{R: f, N: maxIndex + 1}
	if err := read(lr); err != nil {
		return fmt.Errorf("%s: %w", host, err)
	}
	if lr.N <= 0 {
		return fmt.Errorf("%s: more than %d MiB", host, maxIndex>>20)
	}
	return nil
}

func (d *ModDir) index() {
	if d.byName == nil {
		d.byName = map[string]string{}
	}
	d.paths = d.paths[:0]
	for p := range d.Deps {
		d.paths = append(d.paths, p)
	}
	sort.Strings(d.paths)
	for _, p := range d.paths {
		if _, dup := d.byName[Name(p)]; !dup {
			d.byName[Name(p)] = p
		}
	}
}

// rel makes a modules.dep path relative to the directory (old depmods wrote
// absolute paths of the tree).
func (d *ModDir) rel(p string) string {
	if path.IsAbs(p) {
		if r, ok := strings.CutPrefix(p, "/"+d.Name+"/"); ok {
			return r
		}
		return strings.TrimPrefix(p, "/")
	}
	return p
}

// resolve turns a soft dependency (module name or alias) into module paths.
func (d *ModDir) resolve(name string) []string {
	n := normalise(name)
	if p, ok := d.byName[n]; ok {
		return []string{p}
	}
	if d.Builtin[n] {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, a := range d.Aliases {
		if ok, _ := path.Match(a.Pattern, name); ok || a.Pattern == name {
			if p, ok := d.byName[a.Module]; ok && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Select returns the modules whose names match patterns and not excludes,
// with everything they need (modules.dep) and their soft dependencies, in
// an order in which they can be loaded: each after what it depends on,
// "pre" soft dependencies before and "post" ones after.
func (d *ModDir) Select(patterns, excludes []string) []Module {
	if d.byName == nil || len(d.paths) != len(d.Deps) {
		d.index()
	}
	var roots []string
	for _, p := range d.paths {
		st := stem(path.Base(p))
		if d.byName[Name(p)] != p {
			continue // a second module of the same name: the kernel loads one
		}
		if matchAny(patterns, st) && !matchAny(excludes, st) {
			roots = append(roots, p)
		}
	}
	state := map[string]int{} // 1 visiting, 2 done
	var order []string
	var visit func(p string)
	visit = func(p string) {
		if state[p] != 0 {
			return // done, or a cycle: break it here
		}
		state[p] = 1
		sd := d.Softdep[Name(p)]
		for _, s := range sd.Pre {
			for _, q := range d.resolve(s) {
				visit(q)
			}
		}
		deps := d.Deps[p]
		// modules.dep lists what a module needs with the deepest last:
		// walk it backwards, so that its order is kept when it is sound.
		for i := len(deps) - 1; i >= 0; i-- {
			q := d.rel(deps[i])
			if _, ok := d.Deps[q]; ok {
				visit(q)
			}
		}
		state[p] = 2
		order = append(order, p)
		for _, s := range sd.Post {
			for _, q := range d.resolve(s) {
				visit(q)
			}
		}
	}
	for _, r := range roots {
		visit(r)
	}
	out := make([]Module, len(order))
	for i, p := range order {
		out[i] = Module{Name: Name(p), Path: p}
	}
	return out
}

func matchAny(patterns []string, s string) bool {
	alt := strings.ReplaceAll(s, "-", "_")
	for _, pat := range patterns {
		if ok, _ := path.Match(pat, s); ok {
			return true
		}
		if ok, _ := path.Match(strings.ReplaceAll(pat, "-", "_"), alt); ok {
			return true
		}
	}
	return false
}

// Decompress returns the contents of the module file name of fsys,
// decompressed according to its suffix (.ko.xz, .ko.zst, .ko.gz) and
// checked to be an ELF object.
func Decompress(fsys fs.FS, name string) ([]byte, error) {
	file := name
	if h, ok := fsys.(interface{ HostPath(string) string }); ok {
		file = h.HostPath(name) // for messages
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<16)
	switch {
	case strings.HasSuffix(file, ".xz"):
		// Ours, not ulikunitz/xz's reader: that one allocates the
		// dictionary a hostile header claims, up to 4 GiB.
		xr, err := xz.NewReader(r, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		r = xr
	case strings.HasSuffix(file, ".zst"):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(file, ".gz"):
		gr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		defer gr.Close()
		r = gr
	}
	// Modules are a few MiB at most; refuse to inflate a bomb.
	const maxModule = 256 << 20
	data, err := io.ReadAll(io.LimitReader(r, maxModule+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(data) > maxModule {
		return nil, fmt.Errorf("%s: more than %d MiB decompressed", file, maxModule>>20)
	}
	if !bytes.HasPrefix(data, []byte("\x7fELF")) {
		return nil, fmt.Errorf("%s: not a kernel module (no ELF header after decompression)", file)
	}
	return data, nil
}

// Load decompresses the modules (in parallel) and returns them with
// their contents, in the same order.
func (d *ModDir) Load(mods []Module) ([]LoadedModule, error) {
	out := make([]LoadedModule, len(mods))
	errs := make([]error, len(mods))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0) && w < len(mods); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i].Module = mods[i]
				out[i].Data, errs[i] = Decompress(d.FS, path.Join(d.Name, d.rel(mods[i].Path)))
			}
		}()
	}
	for i := range mods {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	d.describe(out)
	return out, nil
}

// describe gives each module what init needs to load it alone: the
// modules it needs among those loaded (modules.dep, and softdeps' "pre")
// and the aliases that say which devices it drives.
func (d *ModDir) describe(mods []LoadedModule) {
	in := map[string]bool{}
	for _, m := range mods {
		in[m.Name] = true
	}
	aliases := map[string][]string{}
	for _, a := range d.Aliases {
		if in[a.Module] {
			aliases[a.Module] = append(aliases[a.Module], a.Pattern)
		}
	}
	for i := range mods {
		m := &mods[i]
		seen := map[string]bool{m.Name: true}
		need := func(name string) {
			if in[name] && !seen[name] {
				seen[name] = true
				m.Needs = append(m.Needs, name)
			}
		}
		for _, s := range d.Softdep[m.Name].Pre {
			for _, q := range d.resolve(s) {
				need(Name(q))
			}
		}
		for _, q := range d.Deps[m.Path] {
			need(Name(d.rel(q)))
		}
		m.Aliases = aliases[m.Name]
	}
}

// LoadFor loads the modules that the mini initrd of architecture a needs
// from the module directory (as Open takes it): a.Modules minus
// DefaultExcludes, with everything they need, in load order. A nil a is
// amd64's set (supermin 5's).
func LoadFor(fsys fs.FS, name, dir string, a *arch.Arch) ([]LoadedModule, error) {
	patterns := DefaultPatterns
	if a != nil {
		patterns = a.Modules
	}
	md, err := Open(fsys, name, dir)
	if err != nil {
		return nil, err
	}
	return md.Load(md.Select(patterns, DefaultExcludes))
}
