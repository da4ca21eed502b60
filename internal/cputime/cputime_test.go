package cputime

import (
	"runtime"
	"testing"
	"time"
)

// TestClocksAdvance: spinning for a while shows in both clocks, and a
// thread never has used more than its process.
func TestClocksAdvance(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p0, okP := Process()
	t0, okT := Thread()
	if !okP || (runtime.GOOS == "linux" && !okT) {
		t.Skipf("no CPU clock on %s", runtime.GOOS)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	p1, _ := Process()
	t1, _ := Thread()
	if p1 <= p0 {
		t.Fatalf("process CPU %v -> %v after spinning", p0, p1)
	}
	if okT && (t1 <= t0 || t1 > p1) {
		t.Fatalf("thread CPU %v -> %v, process %v", t0, t1, p1)
	}
}
