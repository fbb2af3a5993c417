package supermin

import (
	"context"
	"path/filepath"
	"testing"
)

// Each long phase reports from 0 to its total, never backwards, in the
// order the build runs them; the copy counts the bytes of the files.
func TestBuildProgress(t *testing.T) {
	dir := t.TempDir()
	sd, _ := prepareBase(t, quiet(t), "app")
	var got []Progress
	o := quiet(t)
	o.Progress = func(p Progress) { got = append(got, p) }
	b := BuildOptions{Options: o, Inputs: []string{sd}, Out: filepath.Join(dir, "out"), Format: Chroot{}, Firstboot: true}
	if err := Build(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	var phases []string
	for i, p := range got {
		if p.Done < 0 || p.Done > p.Total || p.Bytes != (p.Phase == PhaseChroot) {
			t.Errorf("report %d: %+v", i, p)
		}
		if i == 0 || got[i-1].Phase != p.Phase {
			phases = append(phases, p.Phase)
			if p.Done != 0 {
				t.Errorf("%s starts at %d", p.Phase, p.Done)
			}
		} else if p.Done < got[i-1].Done || p.Total != got[i-1].Total {
			t.Errorf("%s goes from %+v to %+v", p.Phase, got[i-1], p)
		}
		if i == len(got)-1 || got[i+1].Phase != p.Phase {
			if p.Done != p.Total {
				t.Errorf("%s ends at %d of %d", p.Phase, p.Done, p.Total)
			}
		}
	}
	want := []string{PhaseFiles, PhaseFirstboot, PhaseChroot}
	if len(phases) != len(want) {
		t.Fatalf("phases %q, want %q", phases, want)
	}
	for i := range want {
		if phases[i] != want[i] {
			t.Fatalf("phases %q, want %q", phases, want)
		}
	}
	for _, p := range got {
		if p.Phase == PhaseFiles && p.Total < 9 || p.Phase == PhaseChroot && p.Total < 100 {
			t.Errorf("%s: total %d is too small for the fixture", p.Phase, p.Total)
		}
	}
}

// The meter reports at most meterSteps times, whatever the number of
// additions, and its last report is the total.
func TestMeter(t *testing.T) {
	var n int
	var last Progress
	o := Options{Progress: func(p Progress) { n++; last = p }}
	m := o.meter("x", 1_000_000, true)
	for i := 0; i < 100_000; i++ {
		m.add(10)
	}
	m.add(5) // past the total: clamped
	m.end()
	if n > meterSteps+2 || last.Done != 1_000_000 {
		t.Errorf("%d reports, the last %+v", n, last)
	}
	var nilMeter *meter
	nilMeter.add(1) // no one told: nothing to do
	nilMeter.end()
	if (&Options{}).meter("x", 1, true) != nil {
		t.Error("a meter with no one to tell")
	}
}
