package engine

import (
	"fmt"
	"math"
	"testing"
)

// TestRepeatCategory: with RepeatCategoryWeight, a product in the leaf
// category of a recent purchase scores exactly the weight more than
// without it, and nothing else does. C1 bought the hat HT0
// (women/accessories/hats) and viewed nothing: the other hats get +0.5,
// gloves and scarves (other leaves under the same parent) and every
// other product get 0; the bought HT0 stays out.
func TestRepeatCategory(t *testing.T) {
	score := func(weight float64) map[string]ScoreParts {
		w := apparelInto(newWorld(t, Options{WeightsSet: false, RepeatCategoryWeight: weight}))
		w.event(EventPurchase, "C1", "HT0")
		w.event(EventPurchase, "C2", "GL1") // some popularity elsewhere
		q := Query{Customer: "C1", Channel: ChannelWeb, K: MaxK}
		picks := w.picks(q)
		parts := w.e.ExplainPicks(nil, &q, picks)
		out := map[string]ScoreParts{}
		for i, p := range picks {
			out[p.Item.ID] = parts[i]
		}
		return out
	}
	off, on := score(0), score(0.5)
	if _, ok := on["HT0"]; ok {
		t.Fatal("the bought HT0 is picked")
	}
	if len(on) != len(off) || len(on) < 20 {
		t.Fatalf("%d picks with the term, %d without", len(on), len(off))
	}
	for id, p := range on {
		want := 0.0
		if id == "HT1" || id == "HT2" || id == "HT3" {
			want = 0.5
		}
		if p.Category != want || math.Abs(p.Score-off[id].Score-want) > 1e-12 {
			t.Errorf("%s: category part %v, score %v against %v without; want +%v", id, p.Category, p.Score, off[id].Score, want)
		}
	}
}

// TestRepeatCategoryBound: walkBound counts the term, so a walked
// product in a bought leaf never scores above it (the personal
// candidates may skip the walks only below it). C9 bought the hat HT0;
// the hat HT1 is the best seller, bought by customers who bought nothing
// else, so only the walks propose it: it scores its popularity, its
// affinity and the term, above the bound without the term.
func TestRepeatCategoryBound(t *testing.T) {
	w := apparelInto(newWorld(t, Options{RepeatCategoryWeight: 0.5}))
	w.event(EventPurchase, "C9", "HT0")
	for i := range 5 {
		w.event(EventPurchase, fmt.Sprint("D", i), "HT1")
	}
	q := Query{Customer: "C9", Channel: ChannelWeb, K: 6, Now: w.now.UnixMilli()}
	pk := new(picker)
	pk.begin(w.e, &q)
	w.e.mu.RLock()
	if !w.e.gather(pk, &q, q.K, true) {
		t.Fatal("nothing qualifies")
	}
	w.e.walkAll(pk, q.K)
	w.e.mu.RUnlock()
	bound := pk.walkBound()
	found := false
	for _, c := range pk.cands {
		if sl := pk.slots.get(c.item.Dense, pk.epoch); sl != nil && sl.flags&(flagCart|flagViewed|flagRelated) != 0 {
			continue
		}
		if c.score > bound+1e-12 {
			t.Errorf("%s scores %v above the bound %v", c.item.ID, c.score, bound)
		}
		if c.item.ID == "HT1" {
			found = true
			if without := bound - 0.5; c.score <= without {
				t.Errorf("HT1 scores %v, not above the bound without the term (%v): the test tests nothing", c.score, without)
			}
		}
	}
	if !found {
		t.Fatal("HT1 was not walked")
	}
}
