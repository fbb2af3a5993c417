package initproc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gosupermin/gosupermin/appliance/initrd/layout"
)

// plugSys is a sysfs with devices; loading a bus driver adds the devices
// it finds, as the kernel would.
type plugSys struct {
	t      *testing.T
	dir    string
	loaded []string
	adds   map[string][][2]string // module -> devices (bus/name, modalias) it brings
}

func (f *plugSys) device(bus, name, modalias string) {
	d := filepath.Join(f.dir, "bus", bus, "devices", name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "modalias"), []byte(modalias+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *plugSys) load(name string) error {
	f.loaded = append(f.loaded, name)
	for _, d := range f.adds[name] {
		bus, dev := filepath.Split(d[0])
		f.device(filepath.Clean(bus), dev, d[1])
	}
	return nil
}

var index = []layout.IndexEntry{
	{Name: "crc16"},
	{Name: "crc32c_intel", Aliases: []string{"cpu:type:x86,ven*fam*mod*:feature:*0094*"}},
	{Name: "jbd2"},
	{Name: "mbcache"},
	{Name: "ext4", Needs: []string{"crc16", "jbd2", "mbcache"}},
	{Name: "scsi_common"},
	{Name: "scsi_mod", Needs: []string{"scsi_common"}},
	{Name: "libata", Needs: []string{"scsi_mod"}},
	{Name: "ata_piix", Needs: []string{"libata"}, Aliases: []string{"pci:v00008086d00007010sv*sd*bc*sc*i*"}},
	{Name: "sd_mod", Needs: []string{"scsi_mod"}, Aliases: []string{"scsi:t-0x00*"}},
	{Name: "virtio"},
	{Name: "virtio_ring"},
	{Name: "virtio_pci", Needs: []string{"virtio", "virtio_ring"}, Aliases: []string{"pci:v00001AF4d*sv*sd*bc*sc*i*"}},
	{Name: "virtio_blk", Needs: []string{"virtio", "virtio_ring"}, Aliases: []string{"virtio:d00000002v*"}},
	{Name: "virtio_scsi", Needs: []string{"virtio", "virtio_ring", "scsi_mod"}, Aliases: []string{"virtio:d00000008v*"}},
	{Name: "virtio_console", Needs: []string{"virtio", "virtio_ring"}, Aliases: []string{"virtio:d00000003v*"}},
	{Name: "nfit", Aliases: []string{"acpi*:ACPI0012:*"}},
}

var pciDrivers = []string{"virtio_pci", "virtio_blk", "virtio_console", "virtio_scsi", "sd_mod"}

// TestColdplugDrivers: the machine's drivers, tried first, bring the root
// without any matching; in run mode the serial ports' driver comes too;
// when they do not bring it, matching finds the driver that does.
func TestColdplugDrivers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		run, piix bool
		want      []string
	}{
		{name: "virtio disk", want: []string{"crc16", "jbd2", "mbcache", "ext4", "virtio", "virtio_ring", "virtio_pci", "virtio_blk"}},
		{name: "run mode", run: true, want: []string{"crc16", "jbd2", "mbcache", "ext4", "virtio", "virtio_ring", "virtio_pci", "virtio_blk", "virtio_console"}},
		{name: "root on an IDE disk", piix: true, want: []string{"crc16", "jbd2", "mbcache", "ext4", "virtio", "virtio_ring", "virtio_pci", "virtio_blk",
			"virtio_console", "scsi_common", "scsi_mod", "virtio_scsi", "sd_mod", "libata", "ata_piix"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := machine(t)
			c := newColdplug(index, f.dir)
			c.load, c.log = f.load, t.Logf
			root := "virtio_blk"
			if tc.piix {
				root = "ata_piix"
			}
			c.run([]string{"ext4"}, pciDrivers, func() bool {
				return slices.Contains(f.loaded, root) && (!tc.run || c.done("virtio_console"))
			})
			if !slices.Equal(f.loaded, tc.want) {
				t.Errorf("loaded %v\nwant   %v", f.loaded, tc.want)
			}
			if c.matchings > 0 && !tc.piix {
				t.Errorf("devices matched %d times although the machine's drivers brought the root", c.matchings)
			}
		})
	}
}

func machine(t *testing.T) *plugSys {
	f := &plugSys{t: t, dir: t.TempDir(), adds: map[string][][2]string{
		"virtio_pci": {{"virtio/virtio0", "virtio:d00000002v00001AF4"}},
		"virtio_blk": {{"block/vda", "block:vda"}},
	}}
	f.device("pci", "0000:00:01.1", "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80")
	f.device("pci", "0000:00:04.0", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00")
	os.MkdirAll(filepath.Join(f.dir, "devices/system/cpu"), 0o755)
	os.WriteFile(filepath.Join(f.dir, "devices/system/cpu/modalias"), []byte("cpu:type:x86,ven0000fam0006mod003F:feature:,0001,0094,00E5\n"), 0o644)
	return f
}

func TestColdplugStopsAtRoot(t *testing.T) {
	f := machine(t)
	c := newColdplug(index, f.dir)
	c.load, c.log = f.load, t.Logf
	rootThere := func() bool { return slices.Contains(f.loaded, "virtio_blk") }
	c.run([]string{"ext4", "ext2"}, nil, rootThere)
	want := []string{"crc16", "jbd2", "mbcache", "ext4", "virtio", "virtio_ring", "virtio_pci", "virtio_blk"}
	if !slices.Equal(f.loaded, want) {
		t.Errorf("loaded %v, want %v (the PIIX and CPU drivers are not needed for a virtio root)", f.loaded, want)
	}
}

func TestColdplugFallback(t *testing.T) {
	f := machine(t)
	delete(f.adds, "virtio_pci") // the virtio disk never shows up
	c := newColdplug(index, f.dir)
	c.load, c.log = f.load, t.Logf
	n := c.run([]string{"ext4"}, nil, func() bool { return false })
	if n != len(index) || len(f.loaded) != len(index) {
		t.Errorf("loaded %d of %d modules (%v), want all when the root never comes", len(f.loaded), len(index), f.loaded)
	}
	// The devices' drivers come before the fallback, CPU helpers last of them.
	i := slices.Index(f.loaded, "ata_piix")
	if i < 0 || i > slices.Index(f.loaded, "crc32c_intel") || slices.Index(f.loaded, "virtio_pci") > i {
		t.Errorf("order %v: virtio first, then other devices, then the CPU's", f.loaded)
	}
}

func TestColdplugEveryMatch(t *testing.T) {
	f := machine(t)
	c := newColdplug(index, f.dir)
	c.load, c.log = f.load, t.Logf
	for c.candidates() != nil {
		c.need(c.candidates()[0])
	}
	for _, m := range []string{"ata_piix", "virtio_blk", "crc32c_intel"} {
		if !slices.Contains(f.loaded, m) {
			t.Errorf("%s not loaded: %v", m, f.loaded)
		}
	}
	if slices.Contains(f.loaded, "nfit") || slices.Contains(f.loaded, "sd_mod") {
		t.Errorf("a driver for a device the machine lacks was loaded: %v", f.loaded)
	}
}
