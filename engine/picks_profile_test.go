package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/omnipick/omnipick/engine/profile"
)

// topFacetsNaive is loadAffinity's choice of the n strongest facets the
// straightforward way (and as it was written before): n passes, each
// taking the strongest facet not yet taken, ties to the smaller id.
func topFacetsNaive(aff []profile.AffEntry, n int) []uint32 {
	var top []uint32
	for range n {
		best := -1
		for i, a := range aff {
			if !slices.Contains(top, a.Facet) && (best < 0 || stronger(a, aff[best])) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		top = append(top, aff[best].Facet)
	}
	return top
}

// randomAffinity returns a profile's affinity vector of n facets (sorted
// by facet, as profiles keep it), with ties in weight.
func randomAffinity(rng *rand.Rand, n int) []profile.AffEntry {
	aff := make([]profile.AffEntry, 0, n)
	f := uint32(0)
	for range n {
		f += 1 + uint32(rng.IntN(5))
		aff = append(aff, profile.AffEntry{Facet: f, W: float32(rng.IntN(8)) / 4})
	}
	return aff
}

// TestLoadAffinityTopFacets compares loadAffinity's strongest facets, in
// order, with the naive choice, on random vectors of 0-64 facets.
func TestLoadAffinityTopFacets(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pk := &picker{}
	for i := range 2000 {
		aff := randomAffinity(rng, rng.IntN(65))
		n := rng.IntN(7)
		pk.reset(1, 400)
		pk.loadAffinity(&profile.Profile{Aff: aff}, n)
		if want := topFacetsNaive(aff, n); !slices.Equal(pk.topFacets, want) && !(len(want) == 0 && len(pk.topFacets) == 0) {
			t.Fatalf("case %d, n=%d, %v: top facets %v, want %v", i, n, aff, pk.topFacets, want)
		}
		for _, a := range aff {
			if top := slices.Contains(pk.topFacets, a.Facet); (pk.facets[a.Facet].bits&facetTop != 0) != top || pk.facets[a.Facet].aff != a.W {
				t.Fatalf("case %d: facet %d slot %+v, top %v", i, a.Facet, pk.facets[a.Facet], top)
			}
		}
	}
}

// BenchmarkLoadAffinity: a full profile's 64 facets, the default 4 top.
func BenchmarkLoadAffinity(b *testing.B) {
	aff := randomAffinity(rand.New(rand.NewPCG(5, 6)), 64)
	pr := &profile.Profile{Aff: aff}
	for _, n := range []int{4} {
		b.Run(fmt.Sprint("one pass/", n), func(b *testing.B) {
			pk := &picker{}
			b.ReportAllocs()
			for b.Loop() {
				pk.reset(1, 400)
				pk.loadAffinity(pr, n)
			}
		})
		b.Run(fmt.Sprint("n passes/", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				topFacetsNaive(aff, n)
			}
		})
	}
}
