//go:build !race

package engine

import (
	"testing"
)

// TestPicksAllocateNothing proves the picks path allocates nothing once its
// pooled scratch is warm (the race detector's instrumentation allocates, so
// this runs without it).
func TestPicksAllocateNothing(t *testing.T) {
	e, _ := benchWorld(t, 3000, 300)
	checkPicksAllocateNothing(t, e)
}

// checkPicksAllocateNothing runs every bench query on e, once to warm the
// pooled scratch, then checks that a call allocates nothing and picks.
func checkPicksAllocateNothing(t *testing.T, e *Engine) {
	t.Helper()
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

// TestPicksForLinkedAnonymousAllocateNothing follows an anonymous id's
// link to its customer: the link's target comes out of the shard without
// a copy.
func TestPicksForLinkedAnonymousAllocateNothing(t *testing.T) {
	e, _ := benchWorld(t, 3000, 300)
	for _, id := range []Identify{{AnonymousID: "cookie-1", ToAnonymousID: "device-1"}, {AnonymousID: "device-1", Customer: "C17"}} {
		if err := e.Apply(&Record{Op: OpIdentify, Identify: id}); err != nil {
			t.Fatal(err)
		}
	}
	q := Query{AnonymousID: "cookie-1", Channel: ChannelWeb, K: 10}
	dst := e.PicksInto(make([]Pick, 0, MaxK), &q)
	want := e.PicksInto(nil, &Query{Customer: "C17", Channel: ChannelWeb, K: 10})
	if n := testing.AllocsPerRun(200, func() { dst = e.PicksInto(dst[:0], &q) }); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
	if len(dst) == 0 || len(dst) != len(want) || dst[0].Item != want[0].Item {
		t.Fatal("the linked id does not get its customer's picks")
	}
}
