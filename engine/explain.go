package engine

import (
	"math"
	"strings"
)

// Read-only views for people asking "why did she see this?" (the
// explorer page, support): what a pick's score is made of, what a product
// relates to, where it is in stock, how popular it is. They allocate and
// take the engine's read lock; none is on the picks path.

// ScoreParts are the terms of a pick's score (see PicksInto):
//
//	Score = Prior + Affinity + Related + Popularity + Boost
//	      - 1e7 if Buried - 1e8 if Capped
type ScoreParts struct {
	Reason     Reason  // the source whose prior counts
	Prior      float64 // Options.Priors[channel][Reason]
	Affinity   float64 // AffinityWeight x the customer's affinity to the item's facets
	Related    float64 // RelatedWeight x learned relation strength and similarity to the context
	Popularity float64 // PopularityWeight x popularity relative to the most popular item
	Boost      float64 // BoostWeight when a boosted facet matched
	Category   float64 // RepeatCategoryWeight when the item's leaf category is a recent purchase's
	Buried     bool    // a buried facet matched: ranks below every item not buried
	Capped     bool    // shown too often lately (frequency cap): ranks below everything else
	Score      float64
}

// ExplainPicks appends to dst the score parts of each of picks as q scores
// them now: call it with the query and the picks PicksInto just answered.
// A pinned pick is explained as the item scores unpinned (its Reason
// stays ReasonPinned in the pick).
func (e *Engine) ExplainPicks(dst []ScoreParts, q *Query, picks []Pick) []ScoreParts {
	pk := e.pickers.Get().(*picker)
	defer e.pickers.Put(pk)
	pk.begin(e, q)

	e.mu.RLock()
	defer e.mu.RUnlock()
	e.preparePersonal(pk, q) // on false, the picks are scored without personal sources
	for _, p := range picks {
		var parts ScoreParts
		if p.Item != nil {
			d := p.Item.Dense
			flags, rel := pk.sourceOf(d)
			h := e.idx.Hot(d)
			pk.scoreHot(e, d, &h, p.Item, flags, rel, &parts)
		}
		dst = append(dst, parts)
	}
	return dst
}

// RelatedItem is a product learned to go with another, with the strength
// of the relation (decay-free co-occurrence weight).
type RelatedItem struct {
	Product  string
	Strength float64
}

// Related returns up to n of the strongest learned relations of product
// id, strongest first; ok is false for an unknown product.
func (e *Engine) Related(id string, n int) (_ []RelatedItem, ok bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	it, ok := e.idx.Item(id)
	if !ok {
		return nil, false
	}
	rels := e.rel.appendTo(nil, it.Dense, n)
	out := make([]RelatedItem, 0, len(rels))
	for _, r := range rels {
		if other := e.idx.ItemAt(r.p); other != nil {
			out = append(out, RelatedItem{Product: other.ID, Strength: float64(r.w)})
		}
	}
	return out, true
}

// StockLevel is the quantity of one SKU at one location.
type StockLevel struct {
	Location     string
	LocationName string // as registered; "" when none
	SKU          string
	Size         string // "" for one-size
	Quantity     int64
}

// Stock returns the stock of every variant of product id at "online" and
// at every location holding some of it (with the variants sold out there
// as 0), locations in the order they became known; ok is false for an
// unknown product.
func (e *Engine) Stock(id string) (_ []StockLevel, ok bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	it, ok := e.idx.Item(id)
	if !ok {
		return nil, false
	}
	var out []StockLevel
	for l := range e.idx.Locations() {
		loc := uint32(l)
		held := loc == 0 // "online" is always listed
		for _, v := range it.Variants {
			held = held || e.idx.Quantity(v.Dense, loc) > 0
		}
		if !held {
			continue
		}
		name := strings.Clone(e.idx.LocationName(loc))
		for _, v := range it.Variants {
			out = append(out, StockLevel{Location: name, LocationName: e.idx.LocationDisplayName(loc),
				SKU: v.SKU, Size: v.Size, Quantity: int64(e.idx.Quantity(v.Dense, loc))})
		}
	}
	return out, true
}

// Popularity is how popular a product is now.
type Popularity struct {
	// Value is the product's time-decayed event weight now (purchases
	// count most; halves every Options.PopularityHalfLife without
	// events); Relative is Value over the most popular product's.
	Value, Relative float64
	// Rank is the product's place in the overall top list (1 is the most
	// popular), CategoryRank in its leaf category's; 0 when it is not in
	// the list (which holds the leaders only).
	Rank, CategoryRank int
}

// PopularityOf returns the popularity of product id now; ok is false for
// an unknown product.
func (e *Engine) PopularityOf(id string) (_ Popularity, ok bool) {
	now := secs(e.nowMS())
	e.mu.RLock()
	defer e.mu.RUnlock()
	it, ok := e.idx.Item(id)
	if !ok {
		return Popularity{}, false
	}
	var p Popularity
	if v := e.pop.value(it.Dense); v != 0 {
		decay := e.pop.decayDown(now)
		p.Value = v * decay
		if best := e.global.best() * decay; best > 0 && !math.IsInf(best, 0) {
			p.Relative = p.Value / best
		}
	}
	p.Rank = rankIn(&e.global, it.Dense)
	if int(it.Leaf) < len(e.tops) {
		p.CategoryRank = rankIn(&e.tops[it.Leaf], it.Dense)
	}
	return p, true
}

// rankIn returns d's 1-based place in t, or 0.
func rankIn(t *topList, d uint32) int {
	ids := t.appendTo(nil, math.MaxInt)
	for i, x := range ids {
		if x == d {
			return i + 1
		}
	}
	return 0
}
