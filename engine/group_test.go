package engine

import (
	"fmt"
	"math"
	"slices"
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

// TestSiblingsByPopularity checks on a hand-computed case that an anchor
// proposes its group's SiblingsPerAnchor most popular products, not the
// first by id: of five colour-ways of a dress, c1 bought dress-a; with two
// siblings per anchor, dress-d (3 purchases by others) and dress-e (2) are
// proposed, dress-b and dress-c (none) are not.
func TestSiblingsByPopularity(t *testing.T) {
	w := newWorld(t, Options{SiblingsPerAnchor: 2})
	for _, id := range []string{"dress-a", "dress-b", "dress-c", "dress-d", "dress-e", "belt"} {
		group := "dress"
		if id == "belt" {
			group = ""
		}
		w.apply(Record{Op: OpProduct, Product: Product{ID: id, Category: "women/dresses", Group: group, Variants: []Variant{{SKU: id}}}})
		w.stock(id, "online", 5)
	}
	// Others buy dress-d three times and dress-e twice, each alone, a
	// week apart, so no relation ties them to dress-a.
	ts := int64(1_700_000_000_000)
	for i, id := range []string{"dress-d", "dress-d", "dress-d", "dress-e", "dress-e"} {
		w.apply(Record{Op: OpEvent, Event: Event{Type: EventPurchase, Customer: fmt.Sprintf("o%d", i), Product: id, TS: ts}})
		ts += 7 * 24 * 3600 * 1000
	}
	w.apply(Record{Op: OpEvent, Event: Event{Type: EventPurchase, Customer: "c1", Product: "dress-a", TS: ts}})
	pk := w.e.pickers.Get().(*picker)
	defer w.e.pickers.Put(pk)
	q := Query{Customer: "c1", Channel: ChannelWeb, K: 4, Now: ts + 1000}
	pk.begin(w.e, &q)
	w.e.mu.RLock()
	w.e.preparePersonal(pk, &q)
	w.e.mu.RUnlock()
	for _, c := range []struct {
		id      string
		sibling bool
	}{{"dress-d", true}, {"dress-e", true}, {"dress-b", false}, {"dress-c", false}, {"belt", false}} {
		it, _ := w.e.idx.Item(c.id)
		flags, rel := pk.sourceOf(it.Dense)
		if got := flags&flagRelated != 0 && rel == 1; got != c.sibling {
			t.Errorf("%s: proposed as a sibling (flags %b, strength %v) = %v, want %v", c.id, flags, rel, got, c.sibling)
		}
	}
}

// TestOfferSibling checks the bounded most-popular list on hand-computed
// sequences, ties kept in arrival (id) order.
func TestOfferSibling(t *testing.T) {
	cases := []struct {
		name string
		n    int
		in   []relEntry
		want []uint32
	}{
		{"fewer than n", 3, []relEntry{{1, 2}, {2, 5}}, []uint32{2, 1}},
		{"best n of many", 2, []relEntry{{1, 1}, {2, 4}, {3, 3}, {4, 9}, {5, 0}}, []uint32{4, 2}},
		{"ties keep the earlier id", 2, []relEntry{{1, 3}, {2, 3}, {3, 3}}, []uint32{1, 2}},
		{"all zero", 2, []relEntry{{7, 0}, {8, 0}, {9, 0}}, []uint32{7, 8}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var top []relEntry
			for _, r := range c.in {
				top = offerSibling(top, c.n, r.p, r.w)
			}
			got := make([]uint32, len(top))
			for i, r := range top {
				got[i] = r.p
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
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
