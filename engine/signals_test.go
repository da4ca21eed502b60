package engine

import (
	"cmp"
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
