package engine

import (
	"fmt"
	"testing"
)

// TestPersonalTiersExact: picks that leave out personal candidates by
// their tier (considerPersonal) equal the picks ranked from every
// candidate, on the benchmark world's queries for a hundred customers,
// and the tiers do leave candidates out (ads and email mostly).
func TestPersonalTiersExact(t *testing.T) {
	e, _ := benchWorld(t, 4000, 400)
	pruned := 0
	for _, bq := range benchQueries {
		for c := range 100 {
			q := bq.q
			if q.Customer != "" {
				q.Customer = fmt.Sprint("C", c)
			}
			got := e.PicksInto(nil, &q)
			k := q.k()
			pk := new(picker)
			pk.begin(e, &q)
			e.mu.RLock()
			var want []Pick
			if e.gather(pk, &q, k, true) {
				want = pk.rank(nil, k, e.idx)
			}
			all := len(pk.cands)
			pk2 := new(picker)
			pk2.begin(e, &q)
			e.gather(pk2, &q, k, false)
			e.mu.RUnlock()
			if len(pk2.cands) < all {
				pruned++
			}
			if len(got) != len(want) {
				t.Fatalf("%s for %s: %d picks, %d from every candidate", bq.name, q.Customer, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s for %s: pick %d is %+v, from every candidate %+v", bq.name, q.Customer, i, got[i], want[i])
				}
			}
		}
	}
	if pruned < 100 {
		t.Fatalf("the tiers left candidates out in %d queries of %d", pruned, 100*len(benchQueries))
	}
}
