//go:build !race

package engine

import "testing"

// TestNeighbourPicksAllocateNothing: with the neighbour signal on, the
// picks path stays free of allocations once its scratch is warm.
func TestNeighbourPicksAllocateNothing(t *testing.T) {
	e, _ := benchWorldWith(t, 3000, 300, neighbourOptions())
	if len(e.nb.baskets) == 0 {
		t.Fatal("no baskets")
	}
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
