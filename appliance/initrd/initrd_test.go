package initrd

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/appliance/initrd/layout"
	"github.com/gosupermin/gosupermin/internal/xz/xztest"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func elfData(name string) []byte { return []byte("\x7fELF fake module " + name) }

func compress(t *testing.T, kind string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch kind {
	case "xz":
		w, err = xz.NewWriter(&buf)
	case "zst":
		w, err = zstd.NewWriter(&buf)
	case "gz":
		w = gzip.NewWriter(&buf)
	default:
		return data
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fakeModDir writes a module directory whose modules are compressed in
// every supported way.
func fakeModDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"modules.dep": `kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.zst kernel/fs/mbcache.ko.gz kernel/fs/jbd2/jbd2.ko.xz
kernel/lib/crc16.ko.zst:
kernel/fs/mbcache.ko.gz:
kernel/fs/jbd2/jbd2.ko.xz:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/gpu/drm/virtio/virtio-gpu.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/gpu/drm/drm.ko
kernel/drivers/gpu/drm/drm.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko:
kernel/drivers/net/wireguard.ko: kernel/lib/chacha.ko
kernel/lib/chacha.ko:
kernel/drivers/scsi/sd_mod.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/cycle/a.ko: kernel/drivers/cycle/b.ko
kernel/drivers/cycle/b.ko: kernel/drivers/cycle/a.ko
`,
		"modules.softdep": `# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crypto-crc32c
softdep jbd2 pre: crypto-crc32c
softdep sd_mod post: wireguard nonexistent
softdep cifs gcm
softdep virtio_blk pre: builtin_thing
`,
		"modules.alias": `alias crypto-crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
`,
		"modules.builtin": "kernel/lib/builtin_thing.ko\n",
	}
	for p, s := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deps, err := ParseDeps(strings.NewReader(files["modules.dep"]))
	if err != nil {
		t.Fatal(err)
	}
	for p := range deps {
		hp := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
			t.Fatal(err)
		}
		kind := strings.TrimPrefix(filepath.Ext(p), ".")
		if err := os.WriteFile(hp, compress(t, kind, elfData(Name(p))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func names(mods []Module) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Name)
	}
	return out
}

func TestSelect(t *testing.T) {
	d, err := openDir(fakeModDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		patterns, excludes []string
		want               []string
	}{
		{[]string{"ext4"}, nil, []string{"crc32c_intel", "crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"}},
		{[]string{"virtio*"}, DefaultExcludes, []string{"virtio_ring", "virtio", "virtio_blk"}},
		{[]string{"virtio*"}, nil, []string{"virtio_ring", "virtio", "virtio_blk", "drm", "virtio_gpu"}},
		{[]string{"virtio_gpu"}, nil, []string{"drm", "virtio_ring", "virtio", "virtio_gpu"}},
		{[]string{"sd_mod"}, nil, []string{"scsi_common", "scsi_mod", "sd_mod", "chacha", "wireguard"}},
		{[]string{"a"}, nil, []string{"b", "a"}},
		{[]string{"nothing*"}, nil, nil},
	} {
		got := names(d.Select(tc.patterns, tc.excludes))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Select(%q, %q) = %q, want %q", tc.patterns, tc.excludes, got, tc.want)
		}
	}
	// Every module comes after what it depends on, and once.
	all := d.Select([]string{"*"}, nil)
	pos := map[string]int{}
	for i, m := range all {
		if _, dup := pos[m.Path]; dup {
			t.Errorf("%s twice", m.Path)
		}
		pos[m.Path] = i
	}
	for p, deps := range d.Deps {
		for _, q := range deps {
			if pos[q] > pos[p] && !strings.Contains(p, "cycle") {
				t.Errorf("%s loads before %s, which it needs", p, q)
			}
		}
	}
	if len(all) != len(d.Deps) {
		t.Errorf("Select(*) gave %d modules of %d", len(all), len(d.Deps))
	}
}

func TestLoad(t *testing.T) {
	d, err := openDir(fakeModDir(t))
	if err != nil {
		t.Fatal(err)
	}
	mods := d.Select([]string{"ext4", "virtio_blk"}, nil)
	data, err := d.Load(mods)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range mods {
		if want := elfData(m.Name); !bytes.Equal(data[i].Data, want) || data[i].Module != m {
			t.Errorf("%s: %+v, want %q", m.Path, data[i], want)
		}
		if !strings.HasSuffix(m.FileName(), ".ko") || strings.Contains(m.FileName(), "-") {
			t.Errorf("%s: file name %q", m.Path, m.FileName())
		}
	}
	// Not a module.
	bad := filepath.Join(d.Dir, "kernel/lib/crc16.ko.zst")
	if err := os.WriteFile(bad, compress(t, "zst", []byte("not elf")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Load(mods); err == nil || !strings.Contains(err.Error(), "not a kernel module") {
		t.Errorf("corrupt module: %v", err)
	}
	if err := os.WriteFile(bad, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Load(mods); err == nil {
		t.Error("garbage .zst accepted")
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := openDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "depmod") {
		t.Errorf("no modules.dep: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte("no colon here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := openDir(dir); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad modules.dep: %v", err)
	}
}

func TestParseSoftdeps(t *testing.T) {
	got, err := ParseSoftdeps(strings.NewReader("softdep a-b pre: x y post: z\nsoftdep a_b pre: w\nsoftdep c d e\n# softdep no pre: q\noptions x y=1\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Softdep{"a_b": {Pre: []string{"x", "y", "w"}, Post: []string{"z"}}, "c": {}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestHostModules reads this host's module directories, if any.
func TestHostModules(t *testing.T) {
	dirs, _ := filepath.Glob("/lib/modules/*/modules.dep")
	if len(dirs) == 0 {
		t.Skip("no /lib/modules/*/modules.dep on this host")
	}
	for _, f := range dirs {
		d, err := openDir(filepath.Dir(f))
		if err != nil {
			t.Fatal(err)
		}
		mods := d.Select(DefaultPatterns, DefaultExcludes)
		got := map[string]bool{}
		for _, m := range mods {
			got[m.Name] = true
		}
		for _, want := range []string{"ext4", "virtio_blk", "virtio_pci", "sd_mod", "virtio_scsi"} {
			if !got[want] && !d.Builtin[want] {
				t.Errorf("%s: %s not selected", d.Dir, want)
			}
		}
		if got["virtio_gpu"] {
			t.Errorf("%s: virtio_gpu selected", d.Dir)
		}
		t.Logf("%s: %d modules", d.Dir, len(mods))
	}
}

func FuzzParseDeps(f *testing.F) {
	f.Add("kernel/a.ko: kernel/b.ko kernel/c.ko\nkernel/b.ko:\n# c\n\n")
	f.Add(":\n")
	f.Fuzz(func(t *testing.T, s string) {
		deps, err := ParseDeps(strings.NewReader(s))
		if err != nil {
			return
		}
		d := &ModDir{Dir: "/m", Deps: deps}
		d.index()
		mods := d.Select([]string{"*"}, nil)
		seen := map[string]bool{}
		for _, m := range mods {
			if seen[m.Path] {
				t.Fatalf("%s selected twice", m.Path)
			}
			seen[m.Path] = true
		}
	})
}

func FuzzParseSoftdeps(f *testing.F) {
	f.Add("softdep ext4 pre: crypto-crc32c\nsoftdep x post: y pre: z\n")
	f.Add("softdep\n")
	f.Fuzz(func(t *testing.T, s string) {
		soft, err := ParseSoftdeps(strings.NewReader(s))
		if err != nil {
			return
		}
		deps := map[string][]string{}
		for name, sd := range soft {
			deps[name+".ko"] = nil
			for _, x := range append(sd.Pre, sd.Post...) {
				deps[x+".ko"] = nil
			}
		}
		d := &ModDir{Dir: "/m", Deps: deps, Softdep: soft, Aliases: []Alias{{Pattern: "*", Module: "x"}}}
		d.index()
		_ = d.Select([]string{"*"}, nil) // must terminate, whatever the cycles
	})
}

var when = time.Unix(1700000000, 0)

func TestManifestExt2(t *testing.T) {
	mods := []LoadedModule{
		{Module: Module{Name: "virtio_ring", Path: "kernel/drivers/virtio/virtio_ring.ko"}, Data: []byte("a")},
		{Module: Module{Name: "crc32c_intel", Path: "kernel/arch/x86/crypto/crc32c-intel.ko.xz"}, Data: []byte("bb"),
			Needs: []string{"virtio_ring"}, Aliases: []string{"cpu:type:x86,ven*fam*mod*:feature:*0094*", "crypto-crc32c"}}}
	m, err := Manifest(Options{Format: FormatExt2, Kernel: "6.1.0-1-amd64", Init: appliance.Bytes("init"), InitSize: 4,
		Modules: mods, Time: when, Drivers: []string{"virtio_ring"}})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range m.Entries() {
		paths = append(paths, e.Path)
		if !e.ModTime.Equal(when) {
			t.Errorf("%s: time %v", e.Path, e.ModTime)
		}
	}
	want := []string{"/", "/.gosupermin", "/.gosupermin/config", "/.gosupermin/ko", "/.gosupermin/ko/crc32c_intel.ko",
		"/.gosupermin/ko/virtio_ring.ko", "/.gosupermin/modules", "/.gosupermin/modules.index", "/dev", "/dev/console", "/init", "/proc", "/root", "/sys"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("paths %q, want %q", paths, want)
	}
	e, _ := m.Get(ModulesFile)
	if b := e.Data.(appliance.Bytes); string(b) != "virtio_ring.ko\ncrc32c_intel.ko\n" {
		t.Errorf("modules file %q", b)
	}
	e, _ = m.Get(IndexFile)
	if idx := layout.ParseIndex(e.Data.(appliance.Bytes)); !reflect.DeepEqual(idx, []layout.IndexEntry{{Name: "virtio_ring"},
		{Name: "crc32c_intel", Needs: []string{"virtio_ring"}, Aliases: []string{"cpu:type:x86,ven*fam*mod*:feature:*0094*", "crypto-crc32c"}}}) {
		t.Errorf("index %+v", idx)
	}
	e, _ = m.Get(ConfigFile)
	if c := layout.ParseConfig(e.Data.(appliance.Bytes)); !reflect.DeepEqual(c, layout.Config{Format: FormatExt2, Kernel: "6.1.0-1-amd64", Drivers: []string{"virtio_ring"}}) {
		t.Errorf("config %+v", c)
	}
	if e, _ := m.Get("/dev/console"); e.Kind != appliance.CharDev || e.Major != 5 || e.Minor != 1 {
		t.Errorf("/dev/console: %+v", e)
	}
}

// TestOverlayKeepsApplianceInit: the appliance's /init, hard-linked to
// /sbin/init, moves aside with its links intact, and the appliance's
// manifest is left as it was.
func TestOverlayKeepsApplianceInit(t *testing.T) {
	app := appliance.New()
	for _, e := range []appliance.Entry{
		{Path: "/", Kind: appliance.Dir, Mode: 0o755},
		{Path: "/dev", Kind: appliance.Symlink, Link: "run/dev"},
		{Path: "/init", Kind: appliance.Regular, Mode: 0o755, Size: 9, Data: appliance.Bytes("#!/bin/sh")},
		{Path: "/sbin", Kind: appliance.Dir, Mode: 0o755},
		{Path: "/sbin/init", Kind: appliance.Hardlink, Link: "/init"},
		{Path: "/sbin/other", Kind: appliance.Hardlink, Link: "/init"},
	} {
		if err := app.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Seal(); err != nil {
		t.Fatal(err)
	}
	m, err := Overlay(app, Options{Format: FormatCPIO, Kernel: "k", Init: appliance.Bytes("ours"), InitSize: 4, Time: when})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := app.Get(InitPath); e.Kind != appliance.Regular || string(e.Data.(appliance.Bytes)) != "#!/bin/sh" || app.Len() != 6 {
		t.Errorf("the appliance's manifest changed: /init %+v, %d entries", e, app.Len())
	}
	a, _ := m.Get(ApplianceInit)
	if a == nil || a.Kind != appliance.Regular || string(a.Data.(appliance.Bytes)) != "#!/bin/sh" {
		t.Fatalf("appliance init: %+v", a)
	}
	for _, p := range []string{"/sbin/init", "/sbin/other"} {
		if e, _ := m.Get(p); e.Kind != appliance.Hardlink || e.Link != ApplianceInit {
			t.Errorf("%s: %+v", p, e)
		}
	}
	if e, _ := m.Get(InitPath); string(e.Data.(appliance.Bytes)) != "ours" {
		t.Errorf("/init is not ours: %+v", e)
	}
	if e, _ := m.Get("/dev"); e.Kind != appliance.Symlink {
		t.Errorf("the appliance's /dev symlink was replaced: %+v", e)
	}
	if _, ok := m.Get("/root"); ok {
		t.Error("/root added to a cpio appliance")
	}
	e, _ := m.Get(ConfigFile)
	if c := layout.ParseConfig(e.Data.(appliance.Bytes)); !c.ApplianceInit || c.Format != FormatCPIO {
		t.Errorf("config %+v", c)
	}

	// /init as the link, /sbin/init holding the data.
	app = appliance.New()
	for _, e := range []appliance.Entry{
		{Path: "/", Kind: appliance.Dir, Mode: 0o755},
		{Path: "/a", Kind: appliance.Regular, Mode: 0o755, Size: 1, Data: appliance.Bytes("x")},
		{Path: "/init", Kind: appliance.Hardlink, Link: "/a"},
	} {
		if err := app.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	if m, err = Overlay(app, Options{Format: FormatCPIO, Init: appliance.Bytes("ours"), InitSize: 4, Time: when}); err != nil {
		t.Fatal(err)
	}
	if e, _ := m.Get(ApplianceInit); e.Kind != appliance.Regular {
		t.Errorf("appliance init: %+v", e)
	}
	if e, _ := m.Get("/a"); e.Kind != appliance.Hardlink || e.Link != ApplianceInit {
		t.Errorf("/a: %+v", e)
	}
}

func TestInitBinary(t *testing.T) {
	if _, _, err := InitBinary("/nonexistent", nil); err == nil {
		t.Error("missing init accepted")
	}
	txt := filepath.Join(t.TempDir(), "x")
	os.WriteFile(txt, []byte("#!/bin/sh\n"), 0o755)
	if _, _, err := InitBinary(txt, nil); err == nil {
		t.Error("script accepted as init")
	}
	if _, err := os.Stat("/bin/sh"); err == nil {
		if _, _, err := InitBinary("/bin/sh", nil); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
			t.Errorf("dynamic /bin/sh: %v", err)
		}
	}
}

// openDir opens a module directory of the host.
func openDir(dir string) (*ModDir, error) { return Open(os.DirFS(dir), ".", dir) }

// TestDecompressHugeDictionary: a .ko.xz whose header claims a 4 GiB
// dictionary (a hostile tree's) decodes within the reader's bound
// instead of allocating it.
func TestDecompressHugeDictionary(t *testing.T) {
	dir := t.TempDir()
	b := compress(t, "xz", elfData("huge"))
	if err := xztest.ClaimHugeDict(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "huge.ko.xz"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := Decompress(os.DirFS(dir), "huge.ko.xz")
	runtime.ReadMemStats(&after)
	if err != nil || !bytes.Equal(got, elfData("huge")) {
		t.Fatalf("%q, %v", got, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 100<<20 {
		t.Errorf("allocated %d MiB for a %d-byte module", grew>>20, len(got))
	}
}
