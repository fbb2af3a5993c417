package ext2

import (
	"testing"

	"github.com/gosupermin/gosupermin/appliance"
)

// CheckImage lets the tests of package ext2_test (the example) check
// their images as this package's tests do.
func CheckImage(t testing.TB, img string, m *appliance.Manifest) {
	t.Helper()
	needTools(t)
	fsck(t, img)
	compareTree(t, img, m.Entries(), "")
}
