//go:build !race

package engine

import "testing"

// TestLearnedPicksAllocateNothing: scoring with the learned blend keeps the
// picks path free of allocations.
func TestLearnedPicksAllocateNothing(t *testing.T) {
	e, _ := benchWorld(t, 3000, 300)
	e.opts.Blend, e.opts.BlendMinPurchases = true, -1
	for _, bq := range benchQueries {
		t.Run(bq.name, func(t *testing.T) {
			q := bq.q
			dst := e.PicksInto(make([]Pick, 0, MaxK), &q)
			if n := testing.AllocsPerRun(200, func() { dst = e.PicksInto(dst[:0], &q) }); n != 0 {
				t.Fatalf("%v allocations per call", n)
			}
			if len(dst) == 0 {
				t.Fatal("no picks")
			}
		})
	}
}
