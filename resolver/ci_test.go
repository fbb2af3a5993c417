package resolver

import (
	"os"
	"testing"
)

// requireCI skips a test whose prerequisite is missing, except in CI, where
// .ci/run installs every prerequisite and a skip would hide a failure.
func requireCI(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: %s", why)
	}
	t.Skip(why)
}
