package engine

import (
	"runtime"
	"testing"

	"github.com/omnipick/omnipick/internal/cputime"
)

// cpuLoop runs f in b.Loop on a locked thread and reports, besides the
// wall time, the thread's CPU time per op (cpu-ns/op): on a machine
// shared with other work, wall time counts the time the benchmark waited
// for a core, and CPU time does not, so it compares two builds measured
// under different loads far better.
func cpuLoop(b *testing.B, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0, ok := cputime.Thread()
	n := 0
	for b.Loop() {
		f()
		n++
	}
	if t1, ok1 := cputime.Thread(); ok && ok1 && n > 0 {
		b.ReportMetric(float64(t1-t0)/float64(n), "cpu-ns/op")
	}
}
