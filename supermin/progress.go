package supermin

import (
	"sync"
	"sync/atomic"

	"github.com/gosupermin/gosupermin/appliance"
	"github.com/gosupermin/gosupermin/internal/gather"
)

// Progress is how far one long phase of a build is.
type Progress struct {
	// Phase is one of the Phase constants.
	Phase string
	// Done of Total: bytes of file data when Bytes, else packages.
	Done, Total int64
	Bytes       bool
}

// The phases Options.Progress is told of.
const (
	PhaseFiles     = gather.PhaseFiles     // reading the packages' file lists: packages
	PhaseFirstboot = gather.PhaseFirstboot // reading maintainer scripts: packages
	PhaseImage     = "writing the root image"
	PhaseInitramfs = "compressing the initramfs"
	PhaseChroot    = "copying files"
)

// meter reports the progress of one phase whose work may be done by
// several goroutines, a report every step at most, one at a time.
type meter struct {
	fn   func(Progress)
	p    Progress
	step int64
	done atomic.Int64
	mu   sync.Mutex   // held while reporting
	last atomic.Int64 // what was reported last
}

// meterSteps is how many reports a phase gives at most: enough for a
// smooth indicator, few enough to cost nothing.
const meterSteps = 500

// meter starts a phase of total units; nil when no one is told.
func (o *Options) meter(phase string, total int64, bytes bool) *meter {
	if o.Progress == nil {
		return nil
	}
	m := &meter{fn: o.Progress, p: Progress{Phase: phase, Total: total, Bytes: bytes}, step: max(1, total/meterSteps)}
	m.fn(m.p)
	return m
}

// add counts n more units done.
func (m *meter) add(n int64) {
	if m == nil {
		return
	}
	done := min(m.done.Add(n), m.p.Total)
	if done-m.last.Load() < m.step && done < m.p.Total {
		return
	}
	m.report(done)
}

func (m *meter) report(done int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if done <= m.last.Load() {
		return
	}
	m.last.Store(done)
	p := m.p
	p.Done = done
	m.fn(p)
}

// end reports the phase done, whatever was counted (holes of sparse
// files are never read).
func (m *meter) end() {
	if m != nil {
		m.report(m.p.Total)
	}
}

// addFunc is add, or nil for no meter: what a writer's Progress option takes.
func (m *meter) addFunc() func(int64) {
	if m == nil {
		return nil
	}
	return m.add
}

// meter starts a phase of writing the regular files of m.
func (a *Appliance) meter(phase string, m *appliance.Manifest) *meter {
	if a.opt.Progress == nil {
		return nil
	}
	_, bytes := m.Stats()
	return a.opt.meter(phase, bytes, true)
}

// gatherProgress passes gather's package counts on.
func (o *Options) gatherProgress() func(phase string, done, total int64) {
	if o.Progress == nil {
		return nil
	}
	return func(phase string, done, total int64) { o.Progress(Progress{Phase: phase, Done: done, Total: total}) }
}
