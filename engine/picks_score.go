package engine

import (
	"slices"
	"strings"
	"time"

	"github.com/omnipick/omnipick/index"
)

// Eligibility and scoring of one candidate: the hard filters (stock in the
// customer's size, purchases, exclusions, price) and the score formula.

// anyStock reports whether product p is in stock in some size at one of
// the query's locations: a bitmap test that needs nothing of the product.
func (pk *picker) anyStock(e *Engine, p uint32) bool {
	for _, l := range pk.locs {
		if e.idx.InStock(p, l, index.AnySize) {
			return true
		}
	}
	return false
}

// eligible applies the hard filters to an item.
func (pk *picker) eligible(e *Engine, it *index.Item) bool {
	if it == nil {
		return false
	}
	h := e.idx.Hot(it.Dense)
	return pk.eligibleHot(e, it.Dense, &h) == it
}

// eligibleHot applies the hard filters to product p, whose hot record is
// h, and returns its item if it passes, else nil. It reads the *Item only
// for the filters that need its strings (category, repurchase window):
// the rest come from h, the purchase and exclusion lists and the stock
// bitmaps, so that a candidate costs one cache line of the catalog.
func (pk *picker) eligibleHot(e *Engine, p uint32, h *index.Hot) *index.Item {
	if !h.Known || !h.Active {
		return nil
	}
	if slices.Contains(pk.excl, p) {
		return nil
	}
	if len(pk.excluded) > 0 {
		if until, ok := pk.excluded[p]; ok && until > pk.now {
			return nil
		}
	}
	if h.Price < pk.priceMin || (pk.priceMax > 0 && h.Price > pk.priceMax) {
		return nil
	}
	size := index.AnySize
	if int(h.Group) < len(pk.wear) {
		size = pk.wear[h.Group]
	}
	inStock := false
	for _, l := range pk.locs {
		if e.idx.InStock(p, l, size) {
			inStock = true
			break
		}
	}
	if !inStock {
		return nil
	}
	it := e.idx.ItemAt(p) // the pointer only: its fields stay unread unless needed
	if i, bought := slices.BinarySearch(pk.purchased, p); bought && !pk.mayRebuy(e, it, pk.boughtAt[i]) {
		return nil
	}
	if c := pk.category; c != "" && it.Category != c &&
		!(strings.HasPrefix(it.Category, c) && it.Category[len(c)] == '/') {
		return nil
	}
	return it
}

// mayRebuy reports whether an item bought at t may be recommended again:
// its category's repurchase window (the longest matching prefix) has
// passed.
func (pk *picker) mayRebuy(e *Engine, it *index.Item, t uint32) bool {
	best, win := -1, time.Duration(0)
	for _, w := range e.opts.RepurchaseWindows {
		c := w.Prefix
		if len(c) > best && (it.Category == c || (strings.HasPrefix(it.Category, c) && it.Category[len(c)] == '/')) {
			best, win = len(c), w.Window
		}
	}
	return best >= 0 && uint64(pk.now) >= uint64(t)+uint64(win.Seconds())
}

// score computes a candidate's score and the source that explains it, and
// whether it is demoted (buried or capped).
func (pk *picker) score(e *Engine, it *index.Item, flags uint8, rel float32) (float64, Reason, bool) {
	h := e.idx.Hot(it.Dense)
	return pk.scoreHot(e, it.Dense, &h, it, flags, rel, nil)
}

// scoreHot is score for product p with hot record h (and item it, read
// only when h cannot hold all its facets). With the learned blend
// (pk.learned) the score is its weights times the candidate's features;
// else the hand-set formula. parts, when not nil, receives the score's
// terms (ExplainPicks); the picks path passes nil.
func (pk *picker) scoreHot(e *Engine, p uint32, h *index.Hot, it *index.Item, flags uint8, rel float32, parts *ScoreParts) (float64, Reason, bool) {
	var x features
	reason, prior, bits := pk.terms(e, p, h, it, flags, rel, &x)
	o := pk.opts
	wAff, wRel, wPop := o.AffinityWeight, o.RelatedWeight, o.PopularityWeight
	if pk.learned {
		w := &pk.w
		prior = w[featCart]*x[featCart] + w[featViewed]*x[featViewed] + w[featRelated]*x[featRelated] + w[featTopFacet]*x[featTopFacet]
		wAff, wRel, wPop = w[featAffinity], w[featRelation], w[featPopularity]
	}
	score := prior + wAff*x[featAffinity] + wRel*x[featRelation] + wPop*x[featPopularity]
	repeat := 0.0
	if pk.repeat != 0 && pk.boughtLeaf(h.Leaf) {
		repeat = pk.repeat
		score += repeat
	}
	demoted := false
	if bits&facetBoost != 0 {
		score += o.BoostWeight
	}
	if bits&facetBury != 0 {
		score -= buryPenalty
		demoted = true
	}
	capped := false
	if len(pk.capped) > 0 {
		if _, capped = slices.BinarySearch(pk.capped, p); capped {
			score -= capPenalty
			demoted = true
		}
	}
	if parts != nil {
		*parts = ScoreParts{Reason: reason, Prior: prior, Affinity: wAff * x[featAffinity], Related: wRel * x[featRelation],
			Popularity: wPop * x[featPopularity], Category: repeat, Buried: bits&facetBury != 0, Capped: capped, Score: score}
		if bits&facetBoost != 0 {
			parts.Boost = o.BoostWeight
		}
	}
	return score, reason, demoted
}

// terms computes a candidate's features into x, the source that explains
// it with that source's hand-set prior, and its facets' scratch bits.
func (pk *picker) terms(e *Engine, p uint32, h *index.Hot, it *index.Item, flags uint8, rel float32, x *features) (Reason, float64, uint8) {
	reason, prior := ReasonPopular, pk.prior[ReasonPopular]
	consider := func(r Reason) {
		if p := pk.prior[r]; p > prior || (p == prior && r > reason) {
			reason, prior = r, p
		}
	}
	if flags&flagCart != 0 {
		consider(ReasonCart)
		x[featCart] = 1
	}
	if flags&flagViewed != 0 {
		consider(ReasonViewed)
		x[featViewed] = 1
	}
	if flags&flagRelated != 0 {
		consider(ReasonRelated)
		x[featRelated] = 1
	}
	var dot, shared float64
	var bits uint8
	facets := h.Facets[:min(int(h.NFacets), index.HotFacets)]
	if h.NFacets == index.HotSpill {
		facets = it.Facets
	}
	for _, f := range facets {
		fs := pk.facets[f]
		if fs.epoch != pk.epoch {
			continue
		}
		dot += float64(fs.aff)
		bits |= fs.bits
		if fs.bits&facetCtx != 0 {
			shared += float64(e.weights.Of(f))
		}
	}
	if bits&facetTop != 0 {
		consider(ReasonAffinity)
		x[featTopFacet] = 1
	}
	if pk.ctxNorm > 0 {
		if sim := shared / pk.ctxNorm; sim >= 0.5 {
			consider(ReasonRelated)
			x[featRelated] = 1
			rel += float32(sim * pk.opts.ContextWeight)
		}
	}
	if pk.affSum > 0 {
		dot /= pk.affSum
	}
	x[featAffinity] = dot
	x[featRelation] = float64(rel)
	if pk.popMax > 0 {
		v := e.pop.value(p) * pk.popDecay
		// At most 1: the global list's best is the most popular product,
		// and walkBound relies on the bound.
		x[featPopularity] = min(1, log1p(v)/pk.popLogMax)
	}
	return reason, prior, bits
}
