//go:build !race

package scale

import "testing"

// TestPicksAtScaleAllocateNothing: the picks calls Run times allocate
// nothing once warm (the race detector allocates, hence the build tag).
func TestPicksAtScaleAllocateNothing(t *testing.T) {
	rep, err := Run(Options{World: smallWorld(), Dir: t.TempDir(), Queries: 3000})
	if err != nil {
		t.Fatal(err)
	}
	if rep.AllocsPerCall > 0.01 {
		t.Fatalf("%.3f allocations per picks call (%d collections during the measurement)", rep.AllocsPerCall, rep.GCsDuringPicks)
	}
}
