package engine

import (
	"math"
	"slices"

	"github.com/omnipick/omnipick/index"
)

// profile is what the engine knows of one customer or anonymous id. Times
// are unix seconds (uint32 lasts until 2106). All slices are bounded by
// Options, so a profile's size is bounded whatever the traffic.
type profile struct {
	last      uint32     // time the affinity vector was last decayed to
	aff       []affEntry // sparse facet weights, sorted by facet
	sizes     []sizeEntry
	purchased []stamp // sorted by product
	cart      []cartEntry
	views     []stamp // most recent last
	shown     []stamp // impressions, oldest first, for frequency caps
	excl      []stamp // products excluded for this actor: p, until (unix seconds)
	camps     []campaign
	links     []string
	mergedTo  string // non-empty: this anonymous profile now lives in that actor
	// mergedAnon says mergedTo is another anonymous id (a cookie merged
	// into a device id), not a customer.
	mergedAnon bool
}

// campaign is the slots an email campaign showed, as first chosen at t.
type campaign struct {
	name  string
	t     uint32
	items []uint32
}

type affEntry struct {
	facet uint32
	w     float32
}

type sizeEntry struct {
	group    uint32
	size     uint32
	t        uint32
	purchase bool // learned from a purchase (beats cart adds)
}

type stamp struct {
	p uint32
	t uint32
}

type cartEntry struct {
	sku uint32
	p   uint32
	t   uint32
}

// decayTo brings the affinity vector to time t.
func (pr *profile) decayTo(t uint32, halfLife float64) {
	if t <= pr.last {
		return
	}
	if pr.last != 0 && len(pr.aff) > 0 {
		f := float32(math.Exp2(-float64(t-pr.last) / halfLife))
		for i := range pr.aff {
			pr.aff[i].w *= f
		}
	}
	pr.last = t
}

// addAffinity adds w to every facet of an item, scaled per facet kind.
func (pr *profile) addAffinity(facets []uint32, w float32, weights *facetWeights, max int) {
	for _, f := range facets {
		pr.addAffinityFacet(f, w*weights.of(f), max)
	}
}

// addAffinityFacet adds w to one facet's weight, keeping at most max
// entries (a newcomer weaker than every entry is dropped, else the weakest
// entry is). Entries that fall to zero or below are removed.
func (pr *profile) addAffinityFacet(f uint32, w float32, max int) {
	i, found := slices.BinarySearchFunc(pr.aff, f, func(e affEntry, f uint32) int { return cmpU32(e.facet, f) })
	if found {
		pr.aff[i].w += w
		if pr.aff[i].w <= 1e-6 {
			pr.aff = slices.Delete(pr.aff, i, i+1)
		}
		return
	}
	if w <= 0 {
		return
	}
	if len(pr.aff) >= max {
		weakest := 0
		for j := range pr.aff {
			if pr.aff[j].w < pr.aff[weakest].w {
				weakest = j
			}
		}
		if pr.aff[weakest].w >= w {
			return
		}
		pr.aff = slices.Delete(pr.aff, weakest, weakest+1)
		if weakest < i {
			i--
		}
	}
	pr.aff = slices.Insert(pr.aff, i, affEntry{facet: f, w: w})
}

// learnSize records that the customer chose size k of group g at time t.
func (pr *profile) learnSize(g, k, t uint32, purchase bool, max int) {
	for i := range pr.sizes {
		e := &pr.sizes[i]
		if e.group == g && e.size == k {
			if t >= e.t {
				e.t = t
			}
			e.purchase = e.purchase || purchase
			return
		}
	}
	if len(pr.sizes) >= max {
		oldest := 0
		for i := range pr.sizes {
			if pr.sizes[i].t < pr.sizes[oldest].t {
				oldest = i
			}
		}
		pr.sizes = slices.Delete(pr.sizes, oldest, oldest+1)
	}
	pr.sizes = append(pr.sizes, sizeEntry{group: g, size: k, t: t, purchase: purchase})
}

// forgetSize drops size k of group g: a return says it did not fit.
func (pr *profile) forgetSize(g, k uint32) {
	pr.sizes = slices.DeleteFunc(pr.sizes, func(e sizeEntry) bool { return e.group == g && e.size == k })
}

// wear returns the customer's size key for group g: the most recent size
// learned from a purchase, else from a cart add, else index.AnySize.
func (pr *profile) wear(g uint32) uint32 {
	best, bestT, bestP := index.AnySize, uint32(0), false
	for _, e := range pr.sizes {
		if e.group != g {
			continue
		}
		if best == index.AnySize || (e.purchase && !bestP) || (e.purchase == bestP && e.t >= bestT) {
			best, bestT, bestP = e.size, e.t, e.purchase
		}
	}
	return best
}

func (pr *profile) bought(p uint32) bool {
	_, found := slices.BinarySearchFunc(pr.purchased, p, func(s stamp, p uint32) int { return cmpU32(s.p, p) })
	return found
}

func (pr *profile) addPurchase(p, t uint32, max int) {
	i, found := slices.BinarySearchFunc(pr.purchased, p, func(s stamp, p uint32) int { return cmpU32(s.p, p) })
	if found {
		if t > pr.purchased[i].t {
			pr.purchased[i].t = t
		}
		return
	}
	if len(pr.purchased) >= max {
		oldest := earliest(pr.purchased)
		pr.purchased = slices.Delete(pr.purchased, oldest, oldest+1)
		if oldest < i {
			i--
		}
	}
	pr.purchased = slices.Insert(pr.purchased, i, stamp{p: p, t: t})
}

func (pr *profile) removePurchase(p uint32) {
	i, found := slices.BinarySearchFunc(pr.purchased, p, func(s stamp, p uint32) int { return cmpU32(s.p, p) })
	if found {
		pr.purchased = slices.Delete(pr.purchased, i, i+1)
	}
}

func (pr *profile) addCart(sku, p, t uint32, max int) {
	for i := range pr.cart {
		if pr.cart[i].sku == sku && pr.cart[i].p == p {
			pr.cart[i].t = max32(pr.cart[i].t, t)
			return
		}
	}
	if len(pr.cart) >= max {
		pr.cart = slices.Delete(pr.cart, 0, 1) // oldest first: entries are appended
	}
	pr.cart = append(pr.cart, cartEntry{sku: sku, p: p, t: t})
}

// removeCart drops a SKU of product p from the cart, with any line of p
// whose size was not chosen; sku == noSKU drops every line of p.
func (pr *profile) removeCart(sku, p uint32) {
	pr.cart = slices.DeleteFunc(pr.cart, func(c cartEntry) bool {
		return c.p == p && (sku == noSKU || c.sku == sku || c.sku == noSKU)
	})
}

// expireCart drops cart entries added before cutoff.
func (pr *profile) expireCart(cutoff uint32) {
	pr.cart = slices.DeleteFunc(pr.cart, func(c cartEntry) bool { return c.t < cutoff })
}

func (pr *profile) addView(p, t uint32, max int) {
	if i := slices.IndexFunc(pr.views, func(s stamp) bool { return s.p == p }); i >= 0 {
		pr.views = slices.Delete(pr.views, i, i+1)
	}
	if len(pr.views) >= max {
		pr.views = slices.Delete(pr.views, 0, 1)
	}
	pr.views = append(pr.views, stamp{p: p, t: t})
}

// addShown records an impression of p at t, dropping impressions before
// horizon (older than every frequency-cap window) and, past max, the
// oldest.
func (pr *profile) addShown(p, t, horizon uint32, max int) {
	drop := 0
	for drop < len(pr.shown) && pr.shown[drop].t < horizon {
		drop++
	}
	if len(pr.shown)-drop >= max {
		drop = len(pr.shown) - max + 1
	}
	if drop > 0 {
		pr.shown = slices.Delete(pr.shown, 0, drop)
	}
	// Events may arrive slightly out of order: keep the list sorted by time.
	i := len(pr.shown)
	for i > 0 && pr.shown[i-1].t > t {
		i--
	}
	pr.shown = slices.Insert(pr.shown, i, stamp{p: p, t: t})
}

// exclude keeps p out of this actor's picks until until (unix seconds),
// replacing an earlier exclusion of p; past max, the exclusion ending
// first makes room.
func (pr *profile) exclude(p, until uint32, max int) {
	for i := range pr.excl {
		if pr.excl[i].p == p {
			pr.excl[i].t = until
			return
		}
	}
	if len(pr.excl) >= max {
		first := earliest(pr.excl)
		pr.excl = slices.Delete(pr.excl, first, first+1)
	}
	pr.excl = append(pr.excl, stamp{p: p, t: until})
}

// setCampaign stores a campaign's slots, dropping campaigns that expired
// before t and, past max, the oldest.
func (pr *profile) setCampaign(c campaign, ttl uint32, max int) {
	pr.camps = slices.DeleteFunc(pr.camps, func(o campaign) bool {
		return o.name == c.name || uint64(o.t)+uint64(ttl) < uint64(c.t)
	})
	if len(pr.camps) >= max {
		oldest := 0
		for i := range pr.camps {
			if pr.camps[i].t < pr.camps[oldest].t {
				oldest = i
			}
		}
		pr.camps = slices.Delete(pr.camps, oldest, oldest+1)
	}
	pr.camps = append(pr.camps, c)
}

func (pr *profile) campaign(name string) (campaign, bool) {
	for _, c := range pr.camps {
		if c.name == name {
			return c, true
		}
	}
	return campaign{}, false
}

// earliest returns the index of the stamp with the smallest time (the
// first of equals); s must not be empty.
func earliest(s []stamp) int {
	e := 0
	for i := range s {
		if s[i].t < s[e].t {
			e = i
		}
	}
	return e
}

const noSKU = ^uint32(0)

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func max32(a, b uint32) uint32 {
	if a > b {
		return a
	}
	return b
}
