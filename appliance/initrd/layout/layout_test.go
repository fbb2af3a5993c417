package layout

import (
	"bytes"
	"reflect"
	"testing"
)

func TestConfigRoundTrip(t *testing.T) {
	for _, c := range []Config{
		{Format: FormatExt2, Kernel: "6.1.0-28-amd64"},
		{Format: FormatCPIO, Kernel: "6.1.0-28-amd64", ApplianceInit: true},
		{Format: FormatExt2, Kernel: "6.1.0-28-amd64", Drivers: []string{"virtio_pci", "virtio_blk"}},
		{},
	} {
		if got := ParseConfig(c.Marshal()); !reflect.DeepEqual(got, c) {
			t.Errorf("ParseConfig(Marshal(%+v)) = %+v", c, got)
		}
	}
}

func TestParseIndex(t *testing.T) {
	in := "virtio_blk\tvirtio_ring,virtio\tvirtio:d00000002v*\n" +
		"\n" + // blank lines are skipped
		"ext4\tjbd2,mbcache\n" + // no aliases
		"crc32c_intel\t\tcpu:type:x86,ven*fam*mod*:feature:*0094*\tcrypto-crc32c\n" +
		"broken\n" // no needs column: not an entry
	want := []IndexEntry{
		{Name: "virtio_blk", Needs: []string{"virtio_ring", "virtio"}, Aliases: []string{"virtio:d00000002v*"}},
		{Name: "ext4", Needs: []string{"jbd2", "mbcache"}},
		{Name: "crc32c_intel", Aliases: []string{"cpu:type:x86,ven*fam*mod*:feature:*0094*", "crypto-crc32c"}},
	}
	if got := ParseIndex([]byte(in)); !reflect.DeepEqual(got, want) {
		t.Errorf("ParseIndex = %+v\nwant %+v", got, want)
	}
	if got := ParseIndex(MarshalIndex(want)); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip = %+v\nwant %+v", got, want)
	}
}

// FuzzIndex checks that what ParseIndex reads, MarshalIndex writes back
// to a file that reads the same.
func FuzzIndex(f *testing.F) {
	f.Add([]byte("a\tb,c\td\te\n"))
	f.Add([]byte("x\t\n\n\ty\tz"))
	f.Fuzz(func(t *testing.T, b []byte) {
		first := ParseIndex(b)
		out := MarshalIndex(first)
		if again := ParseIndex(out); !reflect.DeepEqual(again, first) {
			t.Fatalf("round trip of %q: %+v != %+v", b, again, first)
		}
		if !bytes.Equal(MarshalIndex(ParseIndex(out)), out) {
			t.Fatalf("MarshalIndex not stable for %q", b)
		}
	})
}

func FuzzConfig(f *testing.F) {
	f.Add([]byte("format=ext2\nkernel=6.1\nappliance-init=/x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := ParseConfig(b)
		if got := ParseConfig(c.Marshal()); !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip of %q: %+v != %+v", b, got, c)
		}
	})
}
