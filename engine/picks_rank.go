package engine

import (
	"slices"
	"strings"

	"github.com/omnipick/omnipick/index"
)

// Ranking the scored candidates: selection of the best, diversity across
// leaf categories, and the Pick each becomes.

// candOrder orders candidates best first: by score, ties to the smaller
// product id.
func candOrder(a, b cand) int {
	switch {
	case a.score > b.score:
		return -1
	case a.score < b.score:
		return 1
	}
	return strings.Compare(a.item.ID, b.item.ID)
}

// rank appends the best k candidates to dst in order, diversified. Only
// the best few need an order: it selects the 4k best, sorts those and
// diversifies them; only when they hold fewer than k picks within the
// diversity cap (one leaf category crowds them) does it sort everything
// and start again. Either way the answer is what sorting all of them
// would give.
func (pk *picker) rank(dst []Pick, k int, x *index.Index) []Pick {
	base := len(dst)
	m := min(len(pk.cands), 4*k)
	if m < len(pk.cands) {
		selectBest(pk.cands, m)
	}
	slices.SortFunc(pk.cands[:m], candOrder)
	pk.leaves, pk.deferred = pk.leaves[:0], pk.deferred[:0]
	out, accepted := pk.diversify(dst, pk.cands[:m], k, x)
	if accepted == k || m == len(pk.cands) {
		return out
	}
	slices.SortFunc(pk.cands, candOrder)
	pk.leaves, pk.deferred = pk.leaves[:0], pk.deferred[:0]
	out, _ = pk.diversify(dst[:base], pk.cands, k, x)
	return out
}

// selectBest reorders cands so that its first m are the m best (in no
// particular order): quickselect, median-of-three pivots.
func selectBest(cands []cand, m int) {
	lo, hi := 0, len(cands)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// Median of three to cands[hi] as the pivot.
		if candOrder(cands[mid], cands[lo]) < 0 {
			cands[mid], cands[lo] = cands[lo], cands[mid]
		}
		if candOrder(cands[hi], cands[lo]) < 0 {
			cands[hi], cands[lo] = cands[lo], cands[hi]
		}
		if candOrder(cands[mid], cands[hi]) < 0 {
			cands[mid], cands[hi] = cands[hi], cands[mid]
		}
		pivot := cands[hi]
		i := lo
		for j := lo; j < hi; j++ {
			if candOrder(cands[j], pivot) < 0 {
				cands[i], cands[j] = cands[j], cands[i]
				i++
			}
		}
		cands[i], cands[hi] = cands[hi], cands[i]
		switch {
		case i == m-1 || i == m:
			return
		case i < m:
			lo = i + 1
		default:
			hi = i - 1
		}
	}
}

// diversify appends to dst, from cands in order, the first k candidates
// within ceil(k/3) of a leaf category, then fills from the held-back ones
// when too few were within it. accepted counts those within the cap.
func (pk *picker) diversify(dst []Pick, cands []cand, k int, x *index.Index) (_ []Pick, accepted int) {
	limit := (k + 2) / 3
	n := 0
	for _, c := range cands {
		if n == k {
			break
		}
		if pk.bumpLeaf(c.leaf) > limit {
			pk.deferred = append(pk.deferred, c)
			continue
		}
		dst = append(dst, pk.pick(c, x))
		n++
	}
	accepted = n
	for _, c := range pk.deferred {
		if n == k {
			break
		}
		dst = append(dst, pk.pick(c, x))
		n++
	}
	return dst, accepted
}

func (pk *picker) bumpLeaf(leaf uint32) int {
	for i := range pk.leaves {
		if pk.leaves[i].leaf == leaf {
			pk.leaves[i].n++
			return pk.leaves[i].n
		}
	}
	pk.leaves = append(pk.leaves, leafCount{leaf: leaf, n: 1})
	return 1
}

func (pk *picker) pick(c cand, x *index.Index) Pick {
	size := index.AnySize
	if int(c.item.Group) < len(pk.wear) {
		size = pk.wear[c.item.Group]
	}
	return Pick{Item: c.item, Reason: c.reason, Score: c.score, SizeMask: x.FitMask(c.item, pk.locs, size)}
}
