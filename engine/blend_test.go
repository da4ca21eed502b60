package engine

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// TestBlendStep checks one SGD step against weights computed by hand:
// for each negative j, d = w·(pos - x_j), and w += lr/len(negs) times the
// sum of sigmoid(-d)·(pos - x_j).
func TestBlendStep(t *testing.T) {
	sig := func(d float64) float64 { return 1 / (1 + math.Exp(-d)) }
	for _, tc := range []struct {
		name  string
		w     features
		pos   features
		negs  []features
		lr    float64
		want  features
		steps uint64
	}{
		{
			name: "from zero: d = 0, sigmoid 0.5",
			pos:  features{featCart: 1}, negs: []features{{featViewed: 1}}, lr: 0.1,
			want:  features{featCart: 0.05, featViewed: -0.05},
			steps: 1,
		},
		{
			name: "two negatives, one already ranked below",
			w:    features{featCart: 1},
			pos:  features{featCart: 1}, negs: []features{{}, {featCart: 1, featViewed: 1}}, lr: 0.1,
			// d1 = 1: sigmoid(-1)·(1, 0); d2 = 0: 0.5·(0, -1); mean times 0.1.
			want:  features{featCart: 1 + 0.05*sig(-1), featViewed: -0.05 * 0.5},
			steps: 1,
		},
		{
			name: "real-valued features",
			w:    features{featAffinity: 0.5, featPopularity: 1},
			pos:  features{featAffinity: 1, featPopularity: 0.2}, negs: []features{{featAffinity: 0.2, featPopularity: 0.8}}, lr: 1,
			// d = 0.5·0.8 + 1·(-0.6) = -0.2: sigmoid(0.2)·(0.8, -0.6).
			want:  features{featAffinity: 0.5 + 0.8*sig(0.2), featPopularity: 1 - 0.6*sig(0.2)},
			steps: 1,
		},
		{
			name: "no negative: no step",
			w:    features{featCart: 2},
			pos:  features{featCart: 1}, lr: 0.1,
			want: features{featCart: 2},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b blend
			b.w = tc.w
			b.step(&tc.pos, tc.negs, tc.lr)
			w, n := b.load()
			if n != tc.steps {
				t.Errorf("steps %d, want %d", n, tc.steps)
			}
			for i := range w {
				if math.Abs(w[i]-tc.want[i]) > 1e-12 {
					t.Errorf("weight %d: %v, want %v", i, w[i], tc.want[i])
				}
			}
		})
	}
}

func blendOptions() Options {
	return Options{Blend: true, BlendMinPurchases: 5, BlendRate: 0.2}
}

// TestBlendStartsAtTheHandSetRanking: before any purchase the weights are
// the web priors over the popular one and the term weights.
func TestBlendStartsAtTheHandSetRanking(t *testing.T) {
	e := New(blendOptions())
	o := e.Options()
	p := o.Priors[ChannelWeb]
	want := []float64{p[ReasonCart], p[ReasonViewed], p[ReasonRelated], p[ReasonAffinity], o.AffinityWeight, o.RelatedWeight, o.PopularityWeight}
	if got := e.Blend(); !slices.Equal(got.Weights, want) || got.Steps != 0 {
		t.Fatalf("initial blend %+v, want %v", got, want)
	}
}

// TestBlendIsState: the weights learned from a log are the same bit for
// bit when the same log is applied again, and after a snapshot is loaded
// and the log goes on.
func TestBlendIsState(t *testing.T) {
	run := func() *world {
		w := apparelInto(newWorld(t, blendOptions()))
		replayWorld(w, 0, 300)
		return w
	}
	a, b := run(), run()
	ba := a.e.Blend()
	if ba.Steps < 5 {
		t.Fatalf("the blend learned from %d purchases only", ba.Steps)
	}
	if init := New(blendOptions()).Blend(); slices.Equal(ba.Weights, init.Weights) {
		t.Fatalf("the weights did not move: %v", ba.Weights)
	}
	if bb := b.e.Blend(); !slices.Equal(ba.Weights, bb.Weights) || ba.Steps != bb.Steps {
		t.Fatalf("replayed: %+v vs %+v", ba, bb)
	}

	loaded, err := LoadSnapshot(a.e.Options(), snapshotBytes(t, a.e))
	if err != nil {
		t.Fatal(err)
	}
	if bl := loaded.Blend(); !slices.Equal(ba.Weights, bl.Weights) || ba.Steps != bl.Steps {
		t.Fatalf("loaded: %+v vs %+v", bl, ba)
	}
	sameAnswers(t, a.e, loaded, a.now)
	// The loaded engine learns on as the original does.
	c := &world{t: t, e: loaded, now: a.now}
	loaded.opts.Now = func() time.Time { return c.now }
	replayWorld(a, 300, 400)
	replayWorld(c, 300, 400)
	if x, y := a.e.Blend(), loaded.Blend(); !slices.Equal(x.Weights, y.Weights) || x.Steps != y.Steps || x.Steps == ba.Steps {
		t.Fatalf("after more events: %+v vs %+v (was %d steps)", x, y, ba.Steps)
	}
	sameAnswers(t, a.e, loaded, a.now)
}

// TestBlendOrdersOnlyWebAndApp: with the learned weights in use, web and
// app picks follow them (here: the cart last, popularity first) while ads
// keep the cart first; bought products stay out whatever the weights.
func TestBlendOrdersOnlyWebAndApp(t *testing.T) {
	opts := blendOptions()
	opts.BlendMinPurchases = -1 // the weights below are used at once
	w := apparelInto(newWorld(t, opts))
	w.event(EventCartAdd, "C1", "HT1")
	w.event(EventPurchase, "C1", "GL2")
	for range 3 {
		w.event(EventPurchase, "C2", "SC3")
	}
	w.e.blend.set(features{featCart: -10, featPopularity: 1}, 1)
	for _, tc := range []struct {
		ch        Channel
		cartFirst bool
	}{
		{ChannelWeb, false}, {ChannelApp, false}, {ChannelAds, true}, {ChannelEmail, true},
	} {
		got := ids(w.picks(Query{Customer: "C1", Channel: tc.ch, K: 12}))
		if slices.Contains(got, "GL2") {
			t.Errorf("channel %d: the bought GL2 in %v", tc.ch, got)
		}
		if first := len(got) > 0 && got[0] == "HT1"; first != tc.cartFirst {
			t.Errorf("channel %d: picks %v, cart first %v, want %v", tc.ch, got, first, tc.cartFirst)
		}
		if !tc.cartFirst && (len(got) == 0 || got[0] != "SC3") {
			t.Errorf("channel %d: picks %v, want the most popular SC3 first", tc.ch, got)
		}
	}
}

// BenchmarkPurchase measures Apply of a purchase with the hand-set
// ranking, with the learned blend (the difference is the learning step:
// gathering the web candidates, their features, one SGD step) and with
// the neighbour signal on (its basket and buyers-list update).
func BenchmarkPurchase(b *testing.B) {
	for _, name := range []string{"hand", "learn", "neighbours"} {
		b.Run(name, func(b *testing.B) {
			e, now := benchWorld(b, 20000, 1000)
			e.opts.Blend = name == "learn"
			if name == "neighbours" { // the neighbour signal's baskets and buyers lists
				e.opts.NeighbourWeight = 4
			}
			products := make([]string, 1000)
			for i := range products {
				products[i] = fmt.Sprintf("P%07d", (i*7919)%20000)
			}
			r := Record{Op: OpEvent, Event: Event{Type: EventPurchase}}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r.Event.Customer = benchCustomers[i%len(benchCustomers)]
				r.Event.Product = products[i%len(products)]
				r.Event.TS = now.UnixMilli() + int64(i)
				i++
				if err := e.Apply(&r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPicksLearned is BenchmarkPicks' web queries scored with the
// learned blend's weights.
func BenchmarkPicksLearned(b *testing.B) {
	e, _ := benchWorld(b, 20000, 5000)
	e.opts.Blend, e.opts.BlendMinPurchases = true, -1
	for _, bq := range benchQueries {
		if bq.q.Channel != ChannelWeb {
			continue
		}
		b.Run(bq.name, func(b *testing.B) {
			q := bq.q
			var dst []Pick
			b.ReportAllocs()
			for b.Loop() {
				dst = e.PicksInto(dst[:0], &q)
			}
		})
	}
}

// TestLearnedBoundHolds: with learned weights of either sign, no product
// that only the top lists propose scores above walkBound, which lets the
// personal candidates skip the walks.
func TestLearnedBoundHolds(t *testing.T) {
	opts := blendOptions()
	opts.BlendMinPurchases = -1
	w := apparelInto(newWorld(t, opts))
	replayWorld(w, 0, 200)
	weights := []features{
		initialWeights(&w.e.opts),
		{featCart: -1, featViewed: 2, featRelated: -0.5, featTopFacet: 3, featAffinity: 2, featRelation: -1, featPopularity: 4},
		{featTopFacet: -2, featAffinity: -1, featRelation: 3, featRelated: 1, featPopularity: -1},
	}
	queries := []Query{
		{Customer: "C1", Channel: ChannelWeb, K: 6},
		{Customer: "C2", Channel: ChannelApp, K: 4, Context: "SW1"},
		{Customer: "C3", Channel: ChannelWeb, K: 6, Boost: []Facet{{Kind: FacetCategory, Name: "women/leggings"}}},
		{AnonymousID: "cookie-1", Channel: ChannelWeb, K: 6, Context: "HT2"},
	}
	walked := 0
	for wi, wt := range weights {
		w.e.blend.set(wt, 1)
		for qi, q := range queries {
			pk := new(picker)
			q.Now = w.now.UnixMilli()
			pk.begin(w.e, &q)
			w.e.mu.RLock()
			if !w.e.gather(pk, &q, q.K, true) {
				t.Fatalf("query %d: nothing qualifies", qi)
			}
			w.e.walkAll(pk, q.K) // whether or not the personal candidates sufficed
			w.e.mu.RUnlock()
			if !pk.learned {
				t.Fatal("the learned weights are not in use")
			}
			bound := pk.walkBound()
			for _, c := range pk.cands {
				if sl := pk.slots.get(c.item.Dense, pk.epoch); sl != nil && sl.flags&(flagCart|flagViewed|flagRelated) != 0 {
					continue
				}
				walked++
				if c.score > bound+1e-12 {
					t.Errorf("weights %d, query %d: %s scores %v above the bound %v", wi, qi, c.item.ID, c.score, bound)
				}
			}
		}
	}
	if walked == 0 {
		t.Fatal("no walked candidate")
	}
}
