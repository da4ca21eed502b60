package engine

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/omnipick/omnipick/index"
)

// Candidate flags: which personal sources proposed a product.
const (
	flagSeen uint8 = 1 << iota // considered (or queued to be) in this call
	flagCart
	flagViewed
	flagRelated
)

// Facet scratch bits.
const (
	facetTop   uint8 = 1 << iota // one of the customer's strongest facets
	facetCtx                     // a facet of the context product
	facetBoost                   // boosted by the request
	facetBury                    // buried by the request
)

// Demotions: a buried or frequency-capped candidate ranks below every
// candidate that is not, whatever its other merits (priors stay below
// 1e5), and a capped one below a buried one.
const (
	buryPenalty = 1e7
	capPenalty  = 1e8
)

// slot is a picker's per-product scratch, valid while epoch matches.
type slot struct {
	epoch uint32
	flags uint8
	rel   float32
}

// facetSlot is a picker's per-facet scratch, valid while epoch matches.
type facetSlot struct {
	epoch uint32
	bits  uint8
	aff   float32
}

type cand struct {
	item   *index.Item // not read while ranking: see index.Hot
	score  float64
	leaf   uint32
	reason Reason
}

// picker is the scratch of one PicksInto call, pooled so the picks path
// allocates nothing once warm. Nothing in it outlives the call.
type picker struct {
	epoch     uint32
	slots     []slot      // by product
	facets    []facetSlot // by facet
	aff       []affEntry  // the profile's affinity vector
	affSum    float64
	topFacets []uint32
	sizes     []sizeEntry
	purchased []uint32 // sorted
	boughtAt  []uint32 // purchase times, parallel to purchased
	capped    []uint32 // shown too often lately, sorted
	boost     []uint32 // facets
	cart      []uint32
	views     []uint32
	anchors   []uint32
	wear      []uint32 // by size group
	locs      []uint32
	excl      []uint32
	ids       []uint32   // proposed by personal sources, each once
	top       []uint32   // a top list's prefix, being walked
	rels      []relEntry // an anchor's relations
	cands     []cand
	deferred  []cand
	leaves    []leafCount
	iter      roaring.IntIterator
	name      []byte
	popMax    float64
	popLogMax float64 // log1p(popMax), the popularity term's divisor
	good      int     // candidates neither buried nor capped
	priceMin  float64
	priceMax  float64
	excluded  map[uint32]uint32 // the engine's global exclusions
	prof      profile           // the actor's profile, decoded (no links or campaigns)
	ctx       *index.Item       // the query's context product, if known
	ctxNorm   float64           // the context's similarity to itself
	category  string
	now       uint32
	channel   Channel
	sink      uint64 // keeps touch's loads from being optimized away
	// sparse: the query asks only for stores, whose stock covers little of
	// the catalog, so candidates are tested against it before anything.
	sparse bool
	opts   *Options
	prior  *[numReasons]float64
}

type leafCount struct {
	leaf uint32
	n    int
}

func (pk *picker) reset(products, facets int) {
	pk.epoch++
	if pk.epoch == 0 { // wrapped: stale epochs could match again
		clear(pk.slots)
		clear(pk.facets)
		pk.epoch = 1
	}
	if len(pk.slots) < products {
		pk.slots = make([]slot, products+products/4+64)
	}
	if len(pk.facets) < facets {
		pk.facets = make([]facetSlot, facets+facets/4+64)
	}
	pk.aff, pk.topFacets, pk.sizes = pk.aff[:0], pk.topFacets[:0], pk.sizes[:0]
	pk.purchased, pk.cart, pk.views, pk.anchors = pk.purchased[:0], pk.cart[:0], pk.views[:0], pk.anchors[:0]
	pk.boughtAt, pk.capped, pk.boost = pk.boughtAt[:0], pk.capped[:0], pk.boost[:0]
	pk.good, pk.priceMin, pk.priceMax, pk.excluded = 0, 0, 0, nil
	pk.wear, pk.locs, pk.excl, pk.ids, pk.top = pk.wear[:0], pk.locs[:0], pk.excl[:0], pk.ids[:0], pk.top[:0]
	pk.rels, pk.cands, pk.deferred, pk.leaves = pk.rels[:0], pk.cands[:0], pk.deferred[:0], pk.leaves[:0]
	pk.affSum, pk.ctx, pk.ctxNorm, pk.category = 0, nil, 0, ""
}

// PicksInto appends to dst the picks for q, best first, and returns the
// extended slice. It never fails: an unknown customer gets non-personal
// picks, unknown locations hold no stock. The picks path allocates nothing
// once its pooled scratch has grown to the catalog's size.
//
// Candidates come, in this order, from
//
//  1. personal sources: the cart, recent views, and the strongest learned
//     relations of q.Context and of the customer's recent history;
//  2. top lists walked best first, each until it yields its quota of
//     products that pass the filters: the context's facets (k each), the
//     customer's strongest facets (k each), then the category's or the
//     global popularity list (2k);
//  3. when fewer than k passed, the category's products, or those in stock
//     at each location in turn, in id order.
//
// Every candidate passes the hard filters before it is scored (active, in
// stock at one of the locations in a size the customer wears, not bought,
// not excluded, within the category):
//
//	score = prior[channel][best source] + AffinityWeight*affinity
//	      + RelatedWeight*related + PopularityWeight*popularity
//
// where related adds learned relation strength and attribute similarity to
// the context. Ties go to the smaller product id. At most ceil(k/3) picks
// share a leaf category unless too few other candidates qualify.
func (e *Engine) PicksInto(dst []Pick, q *Query) []Pick {
	k := q.k()
	nowMS := q.Now
	if nowMS == 0 {
		nowMS = e.nowMS()
	}
	ch := q.Channel
	if ch >= numChannels {
		ch = ChannelWeb
	}

	pk := e.pickers.Get().(*picker)
	defer e.pickers.Put(pk)
	pk.opts = &e.opts
	pk.prior = &e.opts.Priors[ch]
	pk.now = secs(nowMS)
	pk.channel = ch

	e.mu.RLock()
	defer e.mu.RUnlock()
	pk.reset(e.idx.Products(), e.idx.Facets())
	e.loadProfile(pk, q)
	if !e.loadQuery(pk, q) {
		return dst
	}
	pk.loadPopularity(e)

	// 1. Personal sources.
	e.proposePersonal(pk, ch)
	e.touch(pk, pk.ids)
	for _, p := range pk.ids {
		s := &pk.slots[p]
		e.consider(pk, p, s.flags, s.rel)
	}

	// 2. Top lists, walked best first with quotas, and 3. anything
	// eligible when the sources fell short: unless the personal
	// candidates already fill k places that nothing walked could reach.
	if !pk.personalSuffice(k) {
		e.walkAll(pk, k)
		if pk.good < k {
			e.fallback(pk, k)
		}
	}

	base := len(dst)
	dst = pk.rank(dst, k, e.idx)
	if len(q.Pins) > 0 {
		dst = e.pin(pk, dst, base, q.Pins, k)
	}
	return dst
}

// proposePersonal proposes the personal sources' products: the related
// items of the context (weighing double) and of the customer's recent
// history, the cart and the recent views.
func (e *Engine) proposePersonal(pk *picker, ch Channel) {
	perAnchor := e.opts.RelatedPerAnchor
	if pk.ctx != nil {
		e.addRelated(pk, pk.ctx.Dense, 2, 2*perAnchor)
	}
	if ch != ChannelScreen {
		for i, a := range pk.anchors {
			n := perAnchor
			if t := e.opts.TaperAnchors; t >= 0 && i >= t {
				n = max(2, perAnchor/4)
			}
			e.addRelated(pk, a, 1, n)
		}
	}
	for _, p := range pk.cart {
		pk.propose(p, flagCart)
	}
	for _, p := range pk.views {
		pk.propose(p, flagViewed)
	}
}

// touch loads the hot records and popularity of the products in ids
// before they are considered, so that their cache misses overlap (at a
// million products nearly every candidate's are misses) instead of
// coming one after another.
func (e *Engine) touch(pk *picker, ids []uint32) {
	var acc uint64
	for _, p := range ids {
		acc += uint64(e.idx.Touch(p))
		if int(p) < len(e.pop.ls) {
			acc += e.pop.ls[p].Load()
		}
	}
	pk.sink += acc
}

// walkAll walks the top lists: the context's facets and the customer's
// strongest (k each), the boosted facets (k each), then the category's or
// the global list (2k).
func (e *Engine) walkAll(pk *picker, k int) {
	if pk.ctx != nil {
		for _, f := range pk.ctx.Facets {
			e.walk(pk, &e.tops[f], k, k)
		}
	}
	for _, f := range pk.topFacets {
		e.walk(pk, &e.tops[f], k, k)
	}
	for _, f := range pk.boost {
		e.walk(pk, &e.tops[f], k, k)
	}
	if pk.category != "" {
		pk.name = append(append(pk.name[:0], index.FacetCategory...), pk.category...)
		f, _ := e.idx.FacetBytes(pk.name) // known: loadQuery checked
		e.walk(pk, &e.tops[f], 2*k, k)
		return
	}
	e.walk(pk, &e.global, 2*k, k)
}

// walkBound is the highest score a product no personal source proposed can
// have: the best prior it can earn (popular; affinity, if it shares one of
// the customer's strongest facets; related, if similar to the context),
// full affinity, full context similarity, full popularity, and the boost.
func (pk *picker) walkBound() float64 {
	o := pk.opts
	prior := pk.prior[ReasonPopular]
	if len(pk.topFacets) > 0 {
		prior = max(prior, pk.prior[ReasonAffinity])
	}
	rel := 0.0
	if pk.ctxNorm > 0 {
		prior = max(prior, pk.prior[ReasonRelated])
		rel = o.ContextWeight
	}
	b := prior + o.AffinityWeight + o.RelatedWeight*rel + o.PopularityWeight
	if len(pk.boost) > 0 {
		b += o.BoostWeight
	}
	return b
}

// personalSuffice reports whether the candidates so far (the personal
// sources') hold k that score above walkBound within the diversity cap.
// Then the walks cannot change the answer: ranking takes those k first,
// before any product scoring at most the bound. Ads and email lead with
// the cart, views and related items (priors 100 and up, over an affinity
// tier of 10), so there it often saves the walks; on the web, whose priors
// are small, it rarely does.
func (pk *picker) personalSuffice(k int) bool {
	bound := pk.walkBound()
	limit := (k + 2) / 3
	pk.leaves = pk.leaves[:0]
	n := 0
	for _, c := range pk.cands {
		if c.score > bound && pk.bumpLeaf(c.leaf) <= limit {
			if n++; n == k {
				return true
			}
		}
	}
	return false
}

// pin places the query's pinned products at their positions among the
// picks from base on, moving the others down and keeping k.
func (e *Engine) pin(pk *picker, dst []Pick, base int, pins []Pin, k int) []Pick {
	for _, pn := range pins {
		it, ok := e.idx.Item(pn.Product)
		if !ok || !pk.eligible(e, it) {
			continue
		}
		picks := dst[base:]
		if i := slices.IndexFunc(picks, func(p Pick) bool { return p.Item == it }); i >= 0 {
			dst = slices.Delete(dst, base+i, base+i+1)
		}
		pos := base + min(max(pn.Pos, 1)-1, len(dst)-base)
		score, _, _ := pk.score(e, it, 0, 0)
		dst = slices.Insert(dst, pos, pk.pick(cand{item: it, score: score, reason: ReasonPinned}, e.idx))
		if len(dst)-base > k {
			dst = dst[:base+k]
		}
	}
	return dst
}

// loadProfile copies what ranking needs out of the actor's profile, so the
// shard lock is held only for the copy.
func (e *Engine) loadProfile(pk *picker, q *Query) {
	actor, anon := q.Customer, false
	if actor == "" {
		actor, anon = q.AnonymousID, true
	}
	if actor == "" {
		return
	}
	actor, anon = e.resolveActor(actor, anon)
	s, h := e.shardOf(actor)
	s.mu.RLock()
	defer s.mu.RUnlock()
	slot, ok := s.slotLocked(actor, h, anon, false)
	if !ok {
		return
	}
	pr := &pk.prof
	s.readLocked(slot, pr, false)
	for _, a := range pr.aff {
		pk.affSum += float64(a.w)
		if int(a.facet) < len(pk.facets) {
			pk.facets[a.facet] = facetSlot{epoch: pk.epoch, aff: a.w}
		}
	}
	// The strongest facets source candidates.
	for range e.opts.AffinityFacets {
		best := -1
		for i, a := range pr.aff {
			if slices.Contains(pk.topFacets, a.facet) {
				continue
			}
			if best < 0 || a.w > pr.aff[best].w || (a.w == pr.aff[best].w && a.facet < pr.aff[best].facet) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		f := pr.aff[best].facet
		pk.topFacets = append(pk.topFacets, f)
		if int(f) < len(pk.facets) {
			pk.facets[f].bits |= facetTop
		}
	}
	pk.sizes = append(pk.sizes, pr.sizes...)
	for _, s := range pr.purchased {
		pk.purchased = append(pk.purchased, s.p)
		pk.boughtAt = append(pk.boughtAt, s.t)
	}
	for _, x := range pr.excl {
		if x.t > pk.now {
			pk.excl = append(pk.excl, x.p)
		}
	}
	pk.loadCaps(pr.shown, e.opts.FrequencyCaps[pk.channel])
	cartCutoff := uint32(0)
	if ttl := uint32(e.opts.CartTTL.Seconds()); pk.now > ttl {
		cartCutoff = pk.now - ttl
	}
	for i := len(pr.cart) - 1; i >= 0; i-- {
		if c := pr.cart[i]; c.t >= cartCutoff && !slices.Contains(pk.cart, c.p) {
			pk.cart = append(pk.cart, c.p)
		}
	}
	for i := len(pr.views) - 1; i >= 0; i-- {
		pk.views = append(pk.views, pr.views[i].p)
	}
	// Anchors: the most recent history, cart first, then views, then purchases.
	add := func(p uint32) {
		if len(pk.anchors) < e.opts.Anchors && !slices.Contains(pk.anchors, p) {
			pk.anchors = append(pk.anchors, p)
		}
	}
	for _, p := range pk.cart {
		add(p)
	}
	for _, p := range pk.views {
		add(p)
	}
	pk.appendRecentPurchases(pr.purchased, e.opts.Anchors)
}

// loadQuery resolves the query's locations, sizes, exclusions, context and
// category. It returns false when nothing can qualify.
func (e *Engine) loadQuery(pk *picker, q *Query) bool {
	if len(q.Locations) == 0 {
		pk.locs = append(pk.locs, 0) // "online" is always location 0
	}
	for _, l := range q.Locations {
		if d, ok := e.idx.LookupLocation(l); ok {
			pk.locs = append(pk.locs, d)
		}
	}
	if len(pk.locs) == 0 {
		return false
	}
	pk.sparse = !slices.Contains(pk.locs, 0) // location 0 is "online"

	for g := range e.idx.Groups() {
		w := index.AnySize
		if g > 0 {
			w = wearOf(pk.sizes, uint32(g))
		}
		pk.wear = append(pk.wear, w)
	}
	for _, x := range q.Exclude {
		if it, ok := e.idx.Item(x); ok {
			pk.excl = append(pk.excl, it.Dense)
		}
	}
	if q.Context != "" {
		if it, ok := e.idx.Item(q.Context); ok {
			pk.ctx = it
			pk.excl = append(pk.excl, it.Dense)
			for _, f := range it.Facets {
				pk.ctxNorm += float64(e.weights.of(f))
				pk.markFacet(f, facetCtx)
			}
		}
	}
	pk.excluded = e.excluded
	pk.priceMin, pk.priceMax = q.PriceMin, q.PriceMax
	for _, name := range q.Boost {
		if f, ok := e.idx.Facet(name); ok {
			pk.markFacet(f, facetBoost)
			pk.boost = append(pk.boost, f)
		}
	}
	for _, name := range q.Bury {
		if f, ok := e.idx.Facet(name); ok {
			pk.markFacet(f, facetBury)
		}
	}
	if c := normalCategory(q.Category); c != "" {
		pk.name = append(append(pk.name[:0], index.FacetCategory...), c...)
		if _, ok := e.idx.FacetBytes(pk.name); !ok {
			return false // no such category
		}
		pk.category = c
	}
	return true
}

// loadPopularity reads the most popular product's value now: popularity
// terms are relative to it, on a log scale.
func (pk *picker) loadPopularity(e *Engine) {
	pk.popMax = e.pop.valueAt(e.global.best(), pk.now)
	pk.popLogMax = math.Log1p(pk.popMax)
}

// normalCategory returns c as the catalog spells categories
// (index.NormalizeCategory: lower case, no empty or padded segments). A
// category already in that form, as clients usually send it, is returned
// as it is, without allocating.
func normalCategory(c string) string {
	for i := 0; i < len(c); i++ {
		b := c[i]
		if ('A' <= b && b <= 'Z') || b >= 0x80 || b == ' ' || b == '\t' ||
			(b == '/' && (i == 0 || i == len(c)-1 || c[i+1] == '/')) {
			return index.NormalizeCategory(c)
		}
	}
	return c
}

// markFacet sets scratch bits on facet f.
func (pk *picker) markFacet(f uint32, bits uint8) {
	if int(f) >= len(pk.facets) {
		return
	}
	fs := &pk.facets[f]
	if fs.epoch != pk.epoch {
		*fs = facetSlot{epoch: pk.epoch}
	}
	fs.bits |= bits
}

// loadCaps collects the products shown at least c.Max times within
// c.Window. shown is sorted by time.
func (pk *picker) loadCaps(shown []stamp, c FrequencyCap) {
	from := pk.now - min(pk.now, uint32(c.Window.Seconds()))
	i, _ := slices.BinarySearchFunc(shown, from, func(s stamp, t uint32) int { return cmpU32(s.t, t) })
	recent := shown[i:]
	if len(recent) < c.Max {
		return
	}
	// Sort the recent products and keep those that run c.Max or longer.
	for _, s := range recent {
		pk.capped = append(pk.capped, s.p)
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
func (pk *picker) appendRecentPurchases(purchased []stamp, max int) {
	for len(pk.anchors) < max {
		best := -1
		for i, s := range purchased {
			if slices.Contains(pk.anchors, s.p) {
				continue
			}
			if best < 0 || s.t > purchased[best].t || (s.t == purchased[best].t && s.p < purchased[best].p) {
				best = i
			}
		}
		if best < 0 {
			return
		}
		pk.anchors = append(pk.anchors, purchased[best].p)
	}
}

func wearOf(sizes []sizeEntry, g uint32) uint32 {
	pr := profile{sizes: sizes}
	return pr.wear(g)
}

// propose marks product p as a personal candidate with the given flags.
func (pk *picker) propose(p uint32, flags uint8) {
	if int(p) >= len(pk.slots) {
		return
	}
	s := &pk.slots[p]
	if s.epoch != pk.epoch {
		*s = slot{epoch: pk.epoch}
	}
	if s.flags&flagSeen == 0 {
		pk.ids = append(pk.ids, p)
	}
	s.flags |= flags | flagSeen
}

// addRelated proposes up to n of the strongest relations of anchor a, each
// with its weight relative to a's strongest relation, times w.
func (e *Engine) addRelated(pk *picker, a uint32, w float32, n int) {
	pk.rels = e.rel.appendTo(pk.rels[:0], a, n)
	if len(pk.rels) == 0 || pk.rels[0].w <= 0 {
		return
	}
	top := pk.rels[0].w
	for _, r := range pk.rels {
		pk.propose(r.p, flagRelated)
		pk.slots[r.p].rel += w * r.w / top
	}
}

// walk considers the products of a top list, best first, skipping those
// already considered, until quota of them pass the filters. Products beyond
// the diversity cap of their leaf category (ceil(k/3) within this walk) are
// kept as candidates but do not count toward the quota, so a list led by
// one category still yields enough variety to fill k.
func (e *Engine) walk(pk *picker, t *topList, quota, k int) {
	pk.top = t.appendTo(pk.top[:0], math.MaxInt)
	pk.leaves = pk.leaves[:0]
	limit := (k + 2) / 3
	n := 0
	for _, p := range pk.top {
		if int(p) >= len(pk.slots) {
			continue
		}
		s := &pk.slots[p]
		if s.epoch == pk.epoch {
			continue
		}
		*s = slot{epoch: pk.epoch, flags: flagSeen}
		if e.consider(pk, p, 0, 0) && pk.bumpLeaf(pk.cands[len(pk.cands)-1].leaf) <= limit {
			if n++; n == quota {
				return
			}
		}
	}
}

// consider filters product p and, if it qualifies, scores it as a
// candidate. It reports whether p qualified.
func (e *Engine) consider(pk *picker, p uint32, flags uint8, rel float32) bool {
	if pk.sparse && !pk.anyStock(e, p) {
		return false // most of a store's walks: rejected before its hot record is fetched
	}
	h := e.idx.Hot(p)
	it := pk.eligibleHot(e, p, &h)
	if it == nil {
		return false
	}
	score, reason, demoted := pk.scoreHot(e, p, &h, it, flags, rel, nil)
	pk.cands = append(pk.cands, cand{item: it, score: score, leaf: h.Leaf, reason: reason})
	if demoted {
		return false
	}
	pk.good++
	return true
}

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
// only when h cannot hold all its facets). parts, when not nil, receives
// the score's terms (ExplainPicks); the picks path passes nil.
func (pk *picker) scoreHot(e *Engine, p uint32, h *index.Hot, it *index.Item, flags uint8, rel float32, parts *ScoreParts) (float64, Reason, bool) {
	reason, prior := ReasonPopular, pk.prior[ReasonPopular]
	consider := func(r Reason) {
		if p := pk.prior[r]; p > prior || (p == prior && r > reason) {
			reason, prior = r, p
		}
	}
	if flags&flagCart != 0 {
		consider(ReasonCart)
	}
	if flags&flagViewed != 0 {
		consider(ReasonViewed)
	}
	if flags&flagRelated != 0 {
		consider(ReasonRelated)
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
			shared += float64(e.weights.of(f))
		}
	}
	if bits&facetTop != 0 {
		consider(ReasonAffinity)
	}
	if pk.ctxNorm > 0 {
		if sim := shared / pk.ctxNorm; sim >= 0.5 {
			consider(ReasonRelated)
			rel += float32(sim * pk.opts.ContextWeight)
		}
	}
	if pk.affSum > 0 {
		dot /= pk.affSum
	}
	popularity := 0.0
	if pk.popMax > 0 {
		v := e.pop.valueAt(e.pop.logScore(p), pk.now)
		// At most 1: the global list's best is the most popular product,
		// and walkBound relies on the bound.
		popularity = min(1, math.Log1p(v)/pk.popLogMax)
	}
	o := pk.opts
	score := prior + o.AffinityWeight*dot + o.RelatedWeight*float64(rel) + o.PopularityWeight*popularity
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
		*parts = ScoreParts{Reason: reason, Prior: prior, Affinity: o.AffinityWeight * dot, Related: o.RelatedWeight * float64(rel),
			Popularity: o.PopularityWeight * popularity, Buried: bits&facetBury != 0, Capped: capped, Score: score}
		if bits&facetBoost != 0 {
			parts.Boost = o.BoostWeight
		}
	}
	return score, reason, demoted
}

// fallback considers products no source proposed until k candidates
// qualify or FallbackScan products were looked at: the category's products
// when a category is asked, else the products in stock (in any size) at
// each asked location in turn, each in id order. It walks the index's own
// bitmaps with a reused iterator, so it allocates nothing.
func (e *Engine) fallback(pk *picker, k int) {
	budget := e.opts.FallbackScan
	if pk.category != "" {
		pk.name = append(append(pk.name[:0], index.FacetCategory...), pk.category...)
		f, _ := e.idx.FacetBytes(pk.name)
		e.scan(pk, e.idx.Posting(f), k, &budget)
		return
	}
	for _, l := range pk.locs {
		if b := e.idx.StockBitmap(l, index.AnySize); b != nil {
			e.scan(pk, b, k, &budget)
		}
	}
}

func (e *Engine) scan(pk *picker, b *roaring.Bitmap, k int, budget *int) {
	it := &pk.iter
	it.Initialize(b)
	for it.HasNext() && *budget > 0 && pk.good < k {
		p := it.Next()
		if int(p) >= len(pk.slots) {
			return
		}
		s := &pk.slots[p]
		if s.epoch == pk.epoch {
			continue // already considered
		}
		*budget--
		*s = slot{epoch: pk.epoch, flags: flagSeen}
		e.consider(pk, p, 0, 0)
	}
}

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
