package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	spdxjson "github.com/spdx/tools-golang/json"
)

// --sbom writes an SPDX document naming this version, the same twice with
// SOURCE_DATE_EPOCH.
func TestSBOMOption(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, "supermin.d")
	const root = "../../fixtures/dpkg/edge"
	if r := gosupermin(t, "--prepare", "app", "--root", root, "-o", sd); r.code != 0 {
		t.Fatalf("prepare: %+v", r)
	}
	sbom := filepath.Join(dir, "appliance.spdx.json")
	var docs [2][]byte
	for i := range docs {
		cmd := exec.Command(bin, "--build", "-f", "chroot", "--root", root, sd, "-o", filepath.Join(dir, "appliance.d"), "--sbom", sbom)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		var err error
		if docs[i], err = os.ReadFile(sbom); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(docs[0], docs[1]) {
		t.Error("two builds with SOURCE_DATE_EPOCH give different SBOMs")
	}
	doc, err := spdxjson.Read(bytes.NewReader(docs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if doc.CreationInfo.Creators[0].Creator != "gosupermin-"+Version || doc.DocumentName != "appliance.d" || len(doc.Packages) != 10 {
		t.Errorf("document %s by %v with %d packages", doc.DocumentName, doc.CreationInfo.Creators, len(doc.Packages))
	}
	if r := gosupermin(t, "--build", "-f", "chroot", "--root", root, sd, "-o", filepath.Join(dir, "appliance.d"),
		"--sbom", filepath.Join(dir, "appliance.d", "sbom.json")); r.code != 1 || !strings.Contains(r.stderr, "inside the output") {
		t.Errorf("an SBOM inside the output: %+v", r)
	}
}
