package engine

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTopListIsExactTopN: with scores that only rise, a saturated top list
// holds exactly the best max products (ties: smaller id), fast path and all.
func TestTopListIsExactTopN(t *testing.T) {
	for seed := range 50 {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		var tl topList
		const max = 8
		score := map[uint32]float64{}
		for range 2000 {
			d := uint32(rng.IntN(40))
			score[d] += float64(rng.IntN(3) + 1) // integer steps: ties happen
			tl.offer(d, score[d], max, true)
		}
		var want []uint32
		for d := range score {
			want = append(want, d)
		}
		slices.SortFunc(want, func(a, b uint32) int {
			if score[a] != score[b] {
				return cmp.Compare(score[b], score[a])
			}
			return cmp.Compare(a, b)
		})
		if got := tl.appendTo(nil, max); !slices.Equal(got, want[:max]) {
			t.Fatalf("seed %d: list %v, want %v", seed, got, want[:max])
		}
	}
}

// refRelations is the plain relation list the engine started with: a scan
// for b, then a pairwise bubble. The engine's lists must stay equal to it,
// entry for entry and in the same order, ties included.
type refRelations struct {
	lists [][]relEntry
	max   int
}

func (r *refRelations) add(a, b uint32, w float32) {
	if a == b || int(a) >= len(r.lists) || w <= 0 {
		return
	}
	l := r.lists[a]
	i := 0
	for i < len(l) && l[i].p != b {
		i++
	}
	switch {
	case i < len(l):
		l[i].w += w
	case len(l) < r.max:
		l = append(l, relEntry{p: b, w: w})
		r.lists[a] = l
	default:
		i = len(l) - 1
		l[i] = relEntry{p: b, w: l[i].w + w}
	}
	for ; i > 0 && l[i].w > l[i-1].w; i-- {
		l[i], l[i-1] = l[i-1], l[i]
	}
}

// TestRelationsMatchReference drives random relation updates into both and
// compares every list. Few products, small bounds and integer-ish weights
// make full lists, evictions and ties common.
func TestRelationsMatchReference(t *testing.T) {
	for _, tc := range []struct {
		products, max int
		weights       []float32
	}{
		{products: 6, max: 3, weights: []float32{1}},
		{products: 20, max: 4, weights: []float32{1, 2, 3}},
		{products: 40, max: 16, weights: []float32{1, 2, 3}},
		{products: 300, max: 128, weights: []float32{1, 2, 3}},
		{products: 300, max: 128, weights: []float32{0.25, 1, 1.5, 2, 3}},
		{products: 50, max: 300, weights: []float32{1, 2}}, // beyond addAll's scratch
	} {
		for seed := range 20 {
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(tc.max)))
			var r relations
			r.max = tc.max
			r.grow(tc.products)
			ref := refRelations{lists: make([][]relEntry, tc.products), max: tc.max}
			for op := range 3000 {
				a := uint32(rng.IntN(tc.products + 5)) // some out of range
				w := tc.weights[rng.IntN(len(tc.weights))]
				if rng.IntN(4) == 0 {
					b := uint32(rng.IntN(tc.products))
					r.add(a, b, w)
					ref.add(a, b, w)
				} else {
					// One event's anchors: distinct, never a itself; but
					// sometimes not, which addAll must take too.
					var buf [64]relEntry
					anchors := buf[:0]
					sloppy := rng.IntN(10) == 0
					for range rng.IntN(65) {
						q := uint32(rng.IntN(tc.products))
						if sloppy || q != a && !slices.ContainsFunc(anchors, func(x relEntry) bool { return x.p == q }) {
							anchors = append(anchors, relEntry{p: q, w: tc.weights[rng.IntN(len(tc.weights))]})
						}
					}
					r.addAll(a, anchors, w)
					for _, x := range anchors {
						ref.add(a, x.p, min(w, x.w))
					}
				}
				if op%100 == 99 || op == 2999 {
					for p := range tc.products {
						got := r.appendTo(nil, uint32(p), tc.max+1)
						if want := ref.lists[p]; !slices.Equal(got, want) && len(got)+len(want) > 0 {
							t.Fatalf("products %d max %d seed %d op %d: list %d\n got %v\nwant %v", tc.products, tc.max, seed, op, p, got, want)
						}
					}
				}
			}
		}
	}
}

// BenchmarkRelationsEvent measures the relation updates of one event (its
// product to n anchors and back) on full lists of 128, against the plain
// reference the engine started with. Products are drawn with a skew, so
// popular lists stay in cache and the tail does not.
func BenchmarkRelationsEvent(b *testing.B) {
	const products = 20000
	for _, n := range []int{8, 64} {
		draw := func(rng *rand.Rand) uint32 {
			return uint32(float64(products) * rng.Float64() * rng.Float64())
		}
		events := make([][]relEntry, 4096)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range events {
			for len(events[i]) < n+1 {
				q := draw(rng)
				if !slices.ContainsFunc(events[i], func(x relEntry) bool { return x.p == q }) {
					events[i] = append(events[i], relEntry{p: q, w: float32(1 + rng.IntN(3))})
				}
			}
		}
		b.Run(fmt.Sprintf("anchors=%d/impl=reference", n), func(b *testing.B) {
			r := refRelations{lists: make([][]relEntry, products), max: 128}
			apply := func(ev []relEntry) {
				for _, a := range ev[1:] {
					r.add(ev[0].p, a.p, min(1, a.w))
					r.add(a.p, ev[0].p, min(1, a.w))
				}
			}
			for _, ev := range events { // fill the lists first
				apply(ev)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				apply(events[i%len(events)])
				i++
			}
		})
		b.Run(fmt.Sprintf("anchors=%d/impl=engine", n), func(b *testing.B) {
			var r relations
			r.max = 128
			r.grow(products)
			apply := func(ev []relEntry) {
				r.addAll(ev[0].p, ev[1:], 1)
				for _, a := range ev[1:] {
					r.add(a.p, ev[0].p, min(1, a.w))
				}
			}
			for _, ev := range events {
				apply(ev)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				apply(events[i%len(events)])
				i++
			}
		})
	}
}
