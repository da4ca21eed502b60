package engine

import (
	"math"
	"testing"
)

// TestSiblings checks the sibling signal on a hand-computed case: the
// colour-ways of a bought product are proposed as related, with relation
// strength SiblingWeight, and a snapshot keeps the groups.
func TestSiblings(t *testing.T) {
	build := func(opts Options) *world {
		w := newWorld(t, opts)
		for _, p := range []struct{ id, cat, group string }{
			{"tee-black", "women/tops", "tee"}, {"tee-white", "women/tops", "tee"},
			{"tee-red", "men/tops", "tee"}, {"cap", "men/hats", ""}, {"sock", "men/socks", "sock"},
		} {
			w.apply(Record{Op: OpProduct, Product: Product{ID: p.id, Category: p.cat, Group: p.group, Variants: []Variant{{SKU: p.id}}}})
			w.stock(p.id, "online", 5)
		}
		w.event(EventPurchase, "c1", "tee-black")
		return w
	}
	w := build(Options{})
	picks := w.picks(Query{Customer: "c1", Channel: ChannelWeb, K: 4})
	// Web priors: related 0.125, popular 0. Only tee-black was bought,
	// so every other product has popularity 0. Both other tees are
	// siblings: related prior 0.125 + RelatedWeight 0.25 x SiblingWeight 1.
	for _, id := range []string{"tee-white", "tee-red"} {
		p, ok := pickOf(picks, id)
		if !ok || p.Reason != ReasonRelated {
			t.Fatalf("%s: not a related pick: %+v", id, ids(picks))
		}
		if p.Score < 0.125+0.25 {
			t.Errorf("%s: score %v below related prior + sibling strength 0.375", id, p.Score)
		}
	}
	if got := ids(picks); got[0] != "tee-white" || got[1] != "tee-red" {
		t.Errorf("siblings do not lead: %v", got)
	}
	pw, _ := pickOf(picks, "tee-white")
	pr, _ := pickOf(picks, "tee-red")
	pc, _ := pickOf(picks, "cap")
	// tee-red and cap share the same affinity terms with c1 (none of
	// c1's women/tops facets) and popularity 0: they differ by exactly
	// the related prior plus RelatedWeight x SiblingWeight.
	if d := pr.Score - pc.Score; math.Abs(d-(0.125+0.25)) > 1e-9 {
		t.Errorf("tee-red - cap = %v, want 0.375", d)
	}
	if pw.Score <= pr.Score {
		t.Errorf("tee-white (shares c1's facets) %v not above tee-red %v", pw.Score, pr.Score)
	}

	// Off: no sibling is related.
	off := build(Options{SiblingWeight: -1})
	for _, p := range off.picks(Query{Customer: "c1", Channel: ChannelWeb, K: 4}) {
		if p.Reason == ReasonRelated {
			t.Errorf("siblings off: %s is related", p.Item.ID)
		}
	}

	// A snapshot keeps the groups.
	e2, err := LoadSnapshot(w.e.Options(), snapshotBytes(t, w.e))
	if err != nil {
		t.Fatal(err)
	}
	got := e2.PicksInto(nil, &Query{Customer: "c1", Channel: ChannelWeb, K: 4})
	if ids(got)[0] != "tee-white" || got[0].Score != pw.Score {
		t.Errorf("after a snapshot: %v (%v), want tee-white first at %v", ids(got), got[0].Score, pw.Score)
	}
}

// TestNormalizeRelated checks the item-CF normalisation of relations on a
// hand-computed case: weight / (1 + popularity)^0.5.
func TestNormalizeRelated(t *testing.T) {
	e := New(Options{RelatedPopNorm: 0.5})
	e.pop.grow(4)
	const now = 1000
	e.pop.add(1, 8, now) // product 1: popularity 8 now; 2 and 3: none
	pk := &picker{now: now, popDecay: e.pop.decayDown(now), rels: []relEntry{{p: 1, w: 4}, {p: 3, w: 2}, {p: 2, w: 2}}}
	top := e.normalizeRelated(pk)
	// 1: 4/sqrt(9) = 1.333; 2 and 3: 2/sqrt(1) = 2. The order is kept.
	want := []relEntry{{p: 1, w: 4.0 / 3}, {p: 3, w: 2}, {p: 2, w: 2}}
	for i, r := range pk.rels {
		if r.p != want[i].p || math.Abs(float64(r.w-want[i].w)) > 1e-6 {
			t.Fatalf("normalized %+v, want %+v", pk.rels, want)
		}
	}
	if top != 2 {
		t.Errorf("largest normalized weight %v, want 2", top)
	}
	// Another exponent takes the general path: 4/9 = 0.444, 2/1.
	e2 := New(Options{RelatedPopNorm: 1})
	e2.pop.grow(4)
	e2.pop.add(1, 8, now)
	pk.rels = []relEntry{{p: 1, w: 4}, {p: 2, w: 2}}
	pk.popDecay = e2.pop.decayDown(now)
	if top := e2.normalizeRelated(pk); top != 2 || math.Abs(float64(pk.rels[0].w)-4.0/9) > 1e-6 {
		t.Errorf("exponent 1: %+v, top %v", pk.rels, top)
	}
	if o := New(Options{}).Options(); o.RelatedPopNorm != 0 {
		t.Errorf("RelatedPopNorm defaults to %v, want 0 (off)", o.RelatedPopNorm)
	}
}
