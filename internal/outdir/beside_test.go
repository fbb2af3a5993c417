package outdir

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCheckBeside(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "appliance.d")
	if err := os.MkdirAll(filepath.Join(out, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(out, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		out, file string
		ok        bool
	}{
		{out, filepath.Join(dir, "sbom.json"), true},
		{out, filepath.Join(dir, "appliance.d.json"), true},
		{out, filepath.Join(dir, "missing", "sbom.json"), true},
		{filepath.Join(dir, "new.d"), filepath.Join(dir, "sbom.json"), true},
		{out, out, false},
		{out, filepath.Join(out, "sbom.json"), false},
		{out, filepath.Join(out, "sub", "..", "sbom.json"), false},
		{out, filepath.Join(dir, "link", "sbom.json"), false}, // the same directory through a symlink
		{out, filepath.Join(dir, "link"), false},
		{filepath.Join(dir, "new.d"), filepath.Join(dir, "new.d", "sbom.json"), false},
	} {
		if err := CheckBeside(c.out, c.file); (err == nil) != c.ok {
			t.Errorf("CheckBeside(%s, %s) = %v, want ok %v", c.out, c.file, err, c.ok)
		}
	}
}
