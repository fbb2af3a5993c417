package resolver

import (
	"strings"
	"testing"

	"github.com/gosupermin/gosupermin/backends"
)

func TestPacmanResolve(t *testing.T) {
	db := &memDB{family: backends.Pacman}
	db.pkg("app 1:1.5-2 any", []string{"lib >= 1:1.0", "virt >= 1.5", "sh", "mta", "gone >= 2"})
	db.pkg("lib 1:1.5-2 x86_64", nil, "virt = 2.0")
	db.pkg("unversioned 1-1 any", nil, "virt") // cannot satisfy virt>=1.5
	db.pkg("bash 5.2-1 x86_64", []string{"mta-b"}, "sh")
	db.pkg("mta-a 1-1 any", nil, "mta")
	db.pkg("mta-b 1-1 any", nil, "mta")
	db.pkg("gone 1-1 any", nil)
	ids, warnings := closureIDs(t, db, "app")
	want := []string{"app-1:1.5-2.any", "bash-5.2-1.x86_64", "gone-1-1.any", "lib-1:1.5-2.x86_64", "mta-b-1-1.any"}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("closure\n got %v\nwant %v", ids, want)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "gone") {
		t.Errorf("warnings %v: want one about gone >= 2", warnings)
	}
}
