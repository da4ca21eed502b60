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
	checkPicksAllocateNothing(t, e)
}
