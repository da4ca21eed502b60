package profile

import (
	"math"
	"slices"

	"github.com/omnipick/omnipick/index"
)

// Profile is what the engine knows of one customer or anonymous id. Times
// are unix seconds (uint32 lasts until 2106). All slices are bounded by
// Limits (engine.Options), so a profile's size is bounded whatever the traffic.
type Profile struct {
	Last      uint32     // time the affinity vector was last decayed to
	Aff       []AffEntry // sparse facet weights, sorted by facet
	Sizes     []SizeEntry
	Purchased []Stamp // sorted by product
	Cart      []CartEntry
	Views     []Stamp // most recent last
	Shown     []Stamp // impressions, oldest first, for frequency caps
	Excl      []Stamp // products excluded for this actor: p, until (unix seconds)
	Camps     []Campaign
	Links     []string
	MergedTo  string // non-empty: this anonymous profile now lives in that actor
	// MergedAnon says mergedTo is another anonymous id (a cookie merged
	// into a device id), not a customer.
	MergedAnon bool
}

// Campaign is the slots an email campaign showed, as first chosen at T.
type Campaign struct {
	Name  string
	T     uint32
	Items []uint32
}

// AffEntry is the affinity to one facet.
type AffEntry struct {
	Facet uint32
	W     float32
}

// SizeEntry is a size learned for a size group, at T.
type SizeEntry struct {
	Group    uint32
	Size     uint32
	T        uint32
	Purchase bool // learned from a purchase (beats cart adds)
}

// Stamp is a product with a time: a purchase, view, impression, or
// exclusion (then T is until when).
type Stamp struct {
	P uint32
	T uint32
}

// CartEntry is one cart line: a SKU (NoSKU when no size was chosen) of
// product P, added at T.
type CartEntry struct {
	SKU uint32
	P   uint32
	T   uint32
}

// DecayTo brings the affinity vector to time t.
func (pr *Profile) DecayTo(t uint32, halfLife float64) {
	if t <= pr.Last {
		return
	}
	if pr.Last != 0 && len(pr.Aff) > 0 {
		f := float32(math.Exp2(-float64(t-pr.Last) / halfLife))
		for i := range pr.Aff {
			pr.Aff[i].W *= f
		}
	}
	pr.Last = t
}

// AddAffinity adds w to every facet of an item, scaled per facet kind.
func (pr *Profile) AddAffinity(facets []uint32, w float32, weights *FacetWeights, max int) {
	for _, f := range facets {
		pr.addAffinityFacet(f, w*weights.Of(f), max)
	}
}

// addAffinityFacet adds w to one facet's weight, keeping at most max
// entries (a newcomer weaker than every entry is dropped, else the weakest
// entry is). Entries that fall to zero or below are removed.
func (pr *Profile) addAffinityFacet(f uint32, w float32, max int) {
	i, found := slices.BinarySearchFunc(pr.Aff, f, func(e AffEntry, f uint32) int { return cmpU32(e.Facet, f) })
	if found {
		pr.Aff[i].W += w
		if pr.Aff[i].W <= 1e-6 {
			pr.Aff = slices.Delete(pr.Aff, i, i+1)
		}
		return
	}
	if w <= 0 {
		return
	}
	if len(pr.Aff) >= max {
		weakest := 0
		for j := range pr.Aff {
			if pr.Aff[j].W < pr.Aff[weakest].W {
				weakest = j
			}
		}
		if pr.Aff[weakest].W >= w {
			return
		}
		pr.Aff = slices.Delete(pr.Aff, weakest, weakest+1)
		if weakest < i {
			i--
		}
	}
	pr.Aff = slices.Insert(pr.Aff, i, AffEntry{Facet: f, W: w})
}

// LearnSize records that the customer chose size k of group g at time t.
func (pr *Profile) LearnSize(g, k, t uint32, purchase bool, max int) {
	for i := range pr.Sizes {
		e := &pr.Sizes[i]
		if e.Group == g && e.Size == k {
			if t >= e.T {
				e.T = t
			}
			e.Purchase = e.Purchase || purchase
			return
		}
	}
	if len(pr.Sizes) >= max {
		oldest := 0
		for i := range pr.Sizes {
			if pr.Sizes[i].T < pr.Sizes[oldest].T {
				oldest = i
			}
		}
		pr.Sizes = slices.Delete(pr.Sizes, oldest, oldest+1)
	}
	pr.Sizes = append(pr.Sizes, SizeEntry{Group: g, Size: k, T: t, Purchase: purchase})
}

// ForgetSize drops size k of group g: a return says it did not fit.
func (pr *Profile) ForgetSize(g, k uint32) {
	pr.Sizes = slices.DeleteFunc(pr.Sizes, func(e SizeEntry) bool { return e.Group == g && e.Size == k })
}

// Wear returns the customer's size key for group g: the most recent size
// learned from a purchase, else from a cart add, else index.AnySize.
func (pr *Profile) Wear(g uint32) uint32 {
	best, bestT, bestP := index.AnySize, uint32(0), false
	for _, e := range pr.Sizes {
		if e.Group != g {
			continue
		}
		if best == index.AnySize || (e.Purchase && !bestP) || (e.Purchase == bestP && e.T >= bestT) {
			best, bestT, bestP = e.Size, e.T, e.Purchase
		}
	}
	return best
}

// Bought reports whether p was purchased (and not returned).
func (pr *Profile) Bought(p uint32) bool {
	_, found := slices.BinarySearchFunc(pr.Purchased, p, func(s Stamp, p uint32) int { return cmpU32(s.P, p) })
	return found
}

// AddPurchase records a purchase of p at t; past max, the oldest
// purchase is forgotten.
func (pr *Profile) AddPurchase(p, t uint32, max int) {
	i, found := slices.BinarySearchFunc(pr.Purchased, p, func(s Stamp, p uint32) int { return cmpU32(s.P, p) })
	if found {
		if t > pr.Purchased[i].T {
			pr.Purchased[i].T = t
		}
		return
	}
	if len(pr.Purchased) >= max {
		oldest := earliest(pr.Purchased)
		pr.Purchased = slices.Delete(pr.Purchased, oldest, oldest+1)
		if oldest < i {
			i--
		}
	}
	pr.Purchased = slices.Insert(pr.Purchased, i, Stamp{P: p, T: t})
}

// RemovePurchase forgets a purchase of p: it was returned.
func (pr *Profile) RemovePurchase(p uint32) {
	i, found := slices.BinarySearchFunc(pr.Purchased, p, func(s Stamp, p uint32) int { return cmpU32(s.P, p) })
	if found {
		pr.Purchased = slices.Delete(pr.Purchased, i, i+1)
	}
}

// AddCart adds a cart line, or refreshes its time; past max, the oldest
// line makes room.
func (pr *Profile) AddCart(sku, p, t uint32, max int) {
	for i := range pr.Cart {
		if pr.Cart[i].SKU == sku && pr.Cart[i].P == p {
			pr.Cart[i].T = max32(pr.Cart[i].T, t)
			return
		}
	}
	if len(pr.Cart) >= max {
		pr.Cart = slices.Delete(pr.Cart, 0, 1) // oldest first: entries are appended
	}
	pr.Cart = append(pr.Cart, CartEntry{SKU: sku, P: p, T: t})
}

// RemoveCart drops a SKU of product p from the cart, with any line of p
// whose size was not chosen; sku == noSKU drops every line of p.
func (pr *Profile) RemoveCart(sku, p uint32) {
	pr.Cart = slices.DeleteFunc(pr.Cart, func(c CartEntry) bool {
		return c.P == p && (sku == NoSKU || c.SKU == sku || c.SKU == NoSKU)
	})
}

// ExpireCart drops cart entries added before cutoff.
func (pr *Profile) ExpireCart(cutoff uint32) {
	pr.Cart = slices.DeleteFunc(pr.Cart, func(c CartEntry) bool { return c.T < cutoff })
}

// AddView records a view of p at t as the most recent; past max, the
// oldest view is dropped.
func (pr *Profile) AddView(p, t uint32, max int) {
	if i := slices.IndexFunc(pr.Views, func(s Stamp) bool { return s.P == p }); i >= 0 {
		pr.Views = slices.Delete(pr.Views, i, i+1)
	}
	if len(pr.Views) >= max {
		pr.Views = slices.Delete(pr.Views, 0, 1)
	}
	pr.Views = append(pr.Views, Stamp{P: p, T: t})
}

// AddShown records an impression of p at t, dropping impressions before
// horizon (older than every frequency-cap window) and, past max, the
// oldest.
func (pr *Profile) AddShown(p, t, horizon uint32, max int) {
	drop := 0
	for drop < len(pr.Shown) && pr.Shown[drop].T < horizon {
		drop++
	}
	if len(pr.Shown)-drop >= max {
		drop = len(pr.Shown) - max + 1
	}
	if drop > 0 {
		pr.Shown = slices.Delete(pr.Shown, 0, drop)
	}
	// Events may arrive slightly out of order: keep the list sorted by time.
	i := len(pr.Shown)
	for i > 0 && pr.Shown[i-1].T > t {
		i--
	}
	pr.Shown = slices.Insert(pr.Shown, i, Stamp{P: p, T: t})
}

// Exclude keeps p out of this actor's picks until until (unix seconds),
// replacing an earlier exclusion of p; past max, the exclusion ending
// first makes room.
func (pr *Profile) Exclude(p, until uint32, max int) {
	for i := range pr.Excl {
		if pr.Excl[i].P == p {
			pr.Excl[i].T = until
			return
		}
	}
	if len(pr.Excl) >= max {
		first := earliest(pr.Excl)
		pr.Excl = slices.Delete(pr.Excl, first, first+1)
	}
	pr.Excl = append(pr.Excl, Stamp{P: p, T: until})
}

// SetCampaign stores a campaign's slots, dropping campaigns that expired
// before t and, past max, the oldest.
func (pr *Profile) SetCampaign(c Campaign, ttl uint32, max int) {
	pr.Camps = slices.DeleteFunc(pr.Camps, func(o Campaign) bool {
		return o.Name == c.Name || uint64(o.T)+uint64(ttl) < uint64(c.T)
	})
	if len(pr.Camps) >= max {
		oldest := 0
		for i := range pr.Camps {
			if pr.Camps[i].T < pr.Camps[oldest].T {
				oldest = i
			}
		}
		pr.Camps = slices.Delete(pr.Camps, oldest, oldest+1)
	}
	pr.Camps = append(pr.Camps, c)
}

// Campaign returns the stored campaign of that name.
func (pr *Profile) Campaign(name string) (Campaign, bool) {
	for _, c := range pr.Camps {
		if c.Name == name {
			return c, true
		}
	}
	return Campaign{}, false
}

// earliest returns the index of the stamp with the smallest time (the
// first of equals); s must not be empty.
func earliest(s []Stamp) int {
	e := 0
	for i := range s {
		if s[i].T < s[e].T {
			e = i
		}
	}
	return e
}

// NoSKU is the SKU of a cart line whose size was not chosen.
const NoSKU = ^uint32(0)

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

// Facet kinds, for FacetWeights.
const (
	KindCategory = iota
	KindBrand
	KindTag
)

// FacetWeights scale what an event adds to a facet's affinity by the
// facet's kind. The engine keeps Kind in step with the catalog's facets.
type FacetWeights struct {
	Kind []uint8 // by facet id: KindCategory, KindBrand or KindTag
	W    [3]float32
}

// Of returns the weight of facet; 0 for a facet it does not know.
func (f *FacetWeights) Of(facet uint32) float32 {
	if int(facet) >= len(f.Kind) {
		return 0
	}
	return f.W[f.Kind[facet]]
}

// merge folds another profile into pr: affinities added once both are
// decayed to the same time, purchases, cart and views unioned, sizes kept
// by recency.
func (pr *Profile) merge(o *Profile, opts *Limits) {
	t := max32(pr.Last, o.Last)
	pr.DecayTo(t, opts.HalfLife)
	o.DecayTo(t, opts.HalfLife)
	for _, a := range o.Aff {
		pr.addAffinityFacet(a.Facet, a.W, opts.Affinity)
	}
	for _, s := range o.Purchased {
		pr.AddPurchase(s.P, s.T, opts.Purchases)
	}
	for _, c := range o.Cart {
		if !pr.Bought(c.P) {
			pr.AddCart(c.SKU, c.P, c.T, opts.Cart)
		}
	}
	for _, v := range o.Views {
		pr.AddView(v.P, v.T, opts.Views)
	}
	for _, s := range o.Sizes {
		pr.LearnSize(s.Group, s.Size, s.T, s.Purchase, opts.Sizes)
	}
	for _, s := range o.Shown {
		pr.AddShown(s.P, s.T, 0, opts.Impressions)
	}
	for _, x := range o.Excl {
		pr.Exclude(x.P, max32(x.T, pr.exclusionOf(x.P)), opts.Exclusions)
	}
	for _, c := range o.Camps {
		if _, ok := pr.Campaign(c.Name); !ok {
			pr.SetCampaign(c, math.MaxUint32, opts.Campaigns)
		}
	}
	for _, l := range o.Links {
		pr.Links = appendUnique(pr.Links, l)
	}
}

// exclusionOf returns until when p is excluded for this actor, else 0.
func (pr *Profile) exclusionOf(p uint32) uint32 {
	for _, x := range pr.Excl {
		if x.P == p {
			return x.T
		}
	}
	return 0
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// reset empties pr, keeping its slices' capacity.
func (pr *Profile) reset() {
	*pr = Profile{
		Aff: pr.Aff[:0], Sizes: pr.Sizes[:0], Purchased: pr.Purchased[:0],
		Cart: pr.Cart[:0], Views: pr.Views[:0], Shown: pr.Shown[:0],
		Excl: pr.Excl[:0], Camps: pr.Camps[:0], Links: pr.Links[:0],
	}
}
