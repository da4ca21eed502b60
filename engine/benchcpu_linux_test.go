package engine

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPU returns the CPU time the calling thread has used, or false.
func threadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// cpuLoop runs f in b.Loop on a locked thread and reports, besides the
// wall time, the thread's CPU time per op (cpu-ns/op): on a machine
// shared with other work, wall time counts the time the benchmark waited
// for a core, and CPU time does not, so it compares two builds measured
// under different loads far better.
func cpuLoop(b *testing.B, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0, ok := threadCPU()
	n := 0
	for b.Loop() {
		f()
		n++
	}
	if t1, ok1 := threadCPU(); ok && ok1 && n > 0 {
		b.ReportMetric(float64(t1-t0)/float64(n), "cpu-ns/op")
	}
}
