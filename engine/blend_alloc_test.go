//go:build !race

package engine

import "testing"

// TestLearnedPicksAllocateNothing: scoring with the learned blend keeps the
// picks path free of allocations.
func TestLearnedPicksAllocateNothing(t *testing.T) {
	e, _ := benchWorld(t, 3000, 300)
	e.opts.Blend, e.opts.BlendMinPurchases = true, -1
	checkPicksAllocateNothing(t, e)
}
