//go:build !race

package engine

import "testing"

// TestPicksAllocateNothing proves the picks path allocates nothing once its
// pooled scratch is warm (the race detector's instrumentation allocates, so
// this runs without it).
func TestPicksAllocateNothing(t *testing.T) {
	e, _ := benchWorld(t, 3000, 300)
	for _, bq := range benchQueries {
		t.Run(bq.name, func(t *testing.T) {
			q := bq.q
			dst := make([]Pick, 0, MaxK)
			dst = e.PicksInto(dst, &q) // warm the pool
			if n := testing.AllocsPerRun(200, func() { dst = e.PicksInto(dst[:0], &q) }); n != 0 {
				t.Fatalf("%v allocations per call", n)
			}
			if len(dst) == 0 {
				t.Fatal("no picks")
			}
		})
	}
}
