package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/omnipick/omnipick/index"
)

// TestRankEqualsFullSort: selecting the best 4k before sorting gives what
// sorting every candidate gives, whatever the leaves and ties.
func TestRankEqualsFullSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := index.New()
	for trial := range 500 {
		n := 1 + rng.IntN(400)
		k := 1 + rng.IntN(30)
		leaves := 1 + rng.IntN(6) // few leaves: the cap often bites
		crowd := rng.IntN(2) == 0 // the best candidates crowd into leaf 0
		items := make([]*index.Item, n)
		cands := make([]cand, n)
		for i := range cands {
			items[i] = &index.Item{ID: fmt.Sprintf("P%04d", i), Leaf: uint32(rng.IntN(leaves))}
			score := float64(rng.IntN(20)) // many ties
			if rng.IntN(3) == 0 {
				score = rng.Float64()
			}
			if crowd && score >= 10 {
				items[i].Leaf = 0
			}
			cands[i] = cand{item: items[i], score: score, leaf: items[i].Leaf}
		}
		want := func() []string {
			pk := &picker{cands: slices.Clone(cands)}
			slices.SortFunc(pk.cands, candOrder)
			out, _ := pk.diversify(nil, pk.cands, k, x)
			return pickIDs(out)
		}()
		pk := &picker{cands: slices.Clone(cands)}
		if got := pickIDs(pk.rank(nil, k, x)); !slices.Equal(got, want) {
			t.Fatalf("trial %d (n %d, k %d, %d leaves): rank %v, full sort %v", trial, n, k, leaves, got, want)
		}
	}
}

func pickIDs(ps []Pick) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Item.ID
	}
	return out
}
