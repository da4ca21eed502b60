package engine

import (
	"cmp"
	"slices"

	"github.com/omnipick/omnipick/engine/profile"
)

// The picker's view of the actor's profile: what ranking needs, copied
// out of the profile store.

// loadProfile copies what ranking needs out of the actor's profile; the
// profile's shard is locked only while Read decodes it.
func (e *Engine) loadProfile(pk *picker, q *Query) {
	actor, anon := q.Customer, false
	if actor == "" {
		actor, anon = q.AnonymousID, true
	}
	if actor == "" {
		return
	}
	actor, anon = e.profiles.Resolve(actor, anon)
	if !anon {
		pk.actor = actor
	}
	pr := &pk.prof
	if !e.profiles.Read(actor, anon, pr, false) {
		return
	}
	pk.loadAffinity(pr, e.opts.AffinityFacets)
	pk.sizes = append(pk.sizes, pr.Sizes...)
	for _, s := range pr.Purchased {
		pk.purchased = append(pk.purchased, s.P)
		pk.boughtAt = append(pk.boughtAt, s.T)
	}
	for _, x := range pr.Excl {
		if x.T > pk.now {
			pk.excl = append(pk.excl, x.P)
		}
	}
	pk.loadCaps(pr.Shown, e.opts.FrequencyCaps[pk.channel])
	pk.loadRecent(pr, uint32(e.opts.CartTTL.Seconds()))
	pk.loadAnchors(pr.Purchased, e.opts.Anchors)
	if e.opts.RepeatCategoryWeight != 0 {
		pk.markBoughtLeaves(e)
	}
}

// markBoughtLeaves marks the leaf categories of the purchases among the
// anchors (the most recent history), for RepeatCategoryWeight.
func (pk *picker) markBoughtLeaves(e *Engine) {
	for _, a := range pk.anchors {
		if _, bought := slices.BinarySearch(pk.purchased, a); bought {
			pk.markFacet(e.idx.Hot(a).Leaf, facetBought)
			pk.repeat = e.opts.RepeatCategoryWeight
		}
	}
}

// boughtLeaf reports whether leaf is the leaf category of a recent
// purchase (markBoughtLeaves).
func (pk *picker) boughtLeaf(leaf uint32) bool {
	if int(leaf) >= len(pk.facets) {
		return false
	}
	fs := pk.facets[leaf]
	return fs.epoch == pk.epoch && fs.bits&facetBought != 0
}

// loadAffinity marks the profile's facets with their affinity and its n
// strongest facets (ties: the smaller facet id) as candidate sources,
// strongest first. One pass keeps the n best so far in pk.topAff: a profile
// holds up to 64 facets, and choosing the best n by n passes over them was
// 4% of a picks call.
func (pk *picker) loadAffinity(pr *profile.Profile, n int) {
	top := pk.topAff[:0]
	for _, a := range pr.Aff {
		pk.affSum += float64(a.W)
		if int(a.Facet) < len(pk.facets) {
			pk.facets[a.Facet] = facetSlot{epoch: pk.epoch, aff: a.W}
		}
		if n <= 0 || (len(top) == n && !stronger(a, top[n-1])) {
			continue
		}
		if len(top) < n {
			top = append(top, a)
		}
		i := len(top) - 1
		for ; i > 0 && stronger(a, top[i-1]); i-- {
			top[i] = top[i-1]
		}
		top[i] = a
	}
	for _, a := range top {
		pk.topFacets = append(pk.topFacets, a.Facet)
		if int(a.Facet) < len(pk.facets) {
			pk.facets[a.Facet].bits |= facetTop
		}
	}
	pk.topAff = top[:0]
}

// stronger orders affinity entries strongest first, ties by facet id.
func stronger(a, b profile.AffEntry) bool {
	return a.W > b.W || (a.W == b.W && a.Facet < b.Facet)
}

// loadRecent collects the cart (lines younger than cartTTL seconds) and
// the views, most recent first.
func (pk *picker) loadRecent(pr *profile.Profile, cartTTL uint32) {
	cartCutoff := uint32(0)
	if pk.now > cartTTL {
		cartCutoff = pk.now - cartTTL
	}
	for i := len(pr.Cart) - 1; i >= 0; i-- {
		if c := pr.Cart[i]; c.T >= cartCutoff && !slices.Contains(pk.cart, c.P) {
			pk.cart = append(pk.cart, c.P)
		}
	}
	for i := len(pr.Views) - 1; i >= 0; i-- {
		pk.views = append(pk.views, pr.Views[i].P)
	}
}

// loadAnchors picks at most max anchors, the items whose relations source
// candidates: the most recent history, cart first, then views, then
// purchases.
func (pk *picker) loadAnchors(purchased []profile.Stamp, max int) {
	for _, list := range [2][]uint32{pk.cart, pk.views} {
		for _, p := range list {
			if len(pk.anchors) < max && !slices.Contains(pk.anchors, p) {
				pk.anchors = append(pk.anchors, p)
			}
		}
	}
	pk.appendRecentPurchases(purchased, max)
}

// loadCaps collects the products shown at least c.Max times within
// c.Window. shown is sorted by time.
func (pk *picker) loadCaps(shown []profile.Stamp, c FrequencyCap) {
	from := pk.now - min(pk.now, uint32(c.Window.Seconds()))
	i, _ := slices.BinarySearchFunc(shown, from, func(s profile.Stamp, t uint32) int { return cmp.Compare(s.T, t) })
	recent := shown[i:]
	if len(recent) < c.Max {
		return
	}
	// Sort the recent products and keep those that run c.Max or longer.
	for _, s := range recent {
		pk.capped = append(pk.capped, s.P)
	}
	slices.Sort(pk.capped)
	n := 0
	for i := 0; i < len(pk.capped); {
		j := i
		for j < len(pk.capped) && pk.capped[j] == pk.capped[i] {
			j++
		}
		if j-i >= c.Max {
			pk.capped[n] = pk.capped[i]
			n++
		}
		i = j
	}
	pk.capped = pk.capped[:n]
}

// appendRecentPurchases adds the most recent purchases as anchors until
// there are max anchors.
func (pk *picker) appendRecentPurchases(purchased []profile.Stamp, max int) {
	for len(pk.anchors) < max {
		best := -1
		for i, s := range purchased {
			if slices.Contains(pk.anchors, s.P) {
				continue
			}
			if best < 0 || s.T > purchased[best].T || (s.T == purchased[best].T && s.P < purchased[best].P) {
				best = i
			}
		}
		if best < 0 {
			return
		}
		pk.anchors = append(pk.anchors, purchased[best].P)
	}
}

func wearOf(sizes []profile.SizeEntry, g uint32) uint32 {
	pr := profile.Profile{Sizes: sizes}
	return pr.Wear(g)
}
