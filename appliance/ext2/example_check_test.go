package ext2_test

import (
	"path/filepath"
	"testing"

	"github.com/gosupermin/gosupermin/appliance/ext2"
)

// TestExampleImage checks the image the example makes, as every image the
// tests make is checked.
func TestExampleImage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "root")
	m, err := writeAppliance(img)
	if err != nil {
		t.Fatal(err)
	}
	ext2.CheckImage(t, img, m)
}
