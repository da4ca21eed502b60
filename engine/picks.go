package engine

import (
	"math"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/omnipick/omnipick/engine/profile"
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
	facetTop    uint8 = 1 << iota // one of the customer's strongest facets
	facetCtx                      // a facet of the context product
	facetBoost                    // boosted by the request
	facetBury                     // buried by the request
	facetBought                   // the leaf category of a recent purchase (an anchor)
)

// Demotions: a buried or frequency-capped candidate ranks below every
// candidate that is not, whatever its other merits (priors stay below
// 1e5), and a capped one below a buried one.
const (
	buryPenalty = 1e7
	capPenalty  = 1e8
)

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
	slots     slotSet            // of the products considered
	products  int                // the catalog's: products beyond have no slot
	facets    []facetSlot        // by facet
	topAff    []profile.AffEntry // loadAffinity's scratch: the strongest facets so far
	affSum    float64
	topFacets []uint32
	sizes     []profile.SizeEntry
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
	ids       []uint32       // proposed by personal sources, each once
	pending   []personalCand // considerPersonal's: ids with their sources and tiers
	byTier    []personalCand // pending in tier order
	top       []uint32       // a top list's prefix, being walked
	rels      []relEntry     // an anchor's relations
	sibs      []relEntry     // an anchor's most popular siblings (addSiblings)
	cands     []cand
	deferred  []cand
	leaves    []leafCount
	iter      roaring.IntIterator
	name      []byte
	popMax    float64
	popLogMax float64 // log1p(popMax), the popularity term's divisor
	popDecay  float64 // popularity values times this are counts now
	good      int     // candidates neither buried nor capped
	priceMin  float64
	priceMax  float64
	excluded  map[uint32]uint32 // the engine's global exclusions
	prof      profile.Profile   // the actor's profile, decoded (no links or campaigns)
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
	// learned: score with the learned blend's weights w, not the
	// hand-set formula.
	learned  bool
	w        features
	examples []features // the learning step's: the positive, then negatives
	repeat   float64    // RepeatCategoryWeight if a leaf is marked facetBought, else 0
	actor    string     // the customer asking (not an anonymous id), resolved
	nb       nbScratch  // the neighbour signal's
}

type leafCount struct {
	leaf uint32
	n    int
}

func (pk *picker) reset(products, facets int) {
	pk.epoch++
	if pk.epoch == 0 { // wrapped: stale epochs could match again
		clear(pk.facets)
		pk.epoch = 1
	}
	pk.slots.reset(pk.epoch)
	pk.products = products
	if len(pk.facets) < facets {
		pk.facets = make([]facetSlot, facets+facets/4+64)
	}
	pk.topAff, pk.topFacets, pk.sizes = pk.topAff[:0], pk.topFacets[:0], pk.sizes[:0]
	pk.purchased, pk.cart, pk.views, pk.anchors = pk.purchased[:0], pk.cart[:0], pk.views[:0], pk.anchors[:0]
	pk.boughtAt, pk.capped, pk.boost = pk.boughtAt[:0], pk.capped[:0], pk.boost[:0]
	pk.good, pk.priceMin, pk.priceMax, pk.excluded = 0, 0, 0, nil
	pk.wear, pk.locs, pk.excl, pk.ids, pk.top = pk.wear[:0], pk.locs[:0], pk.excl[:0], pk.ids[:0], pk.top[:0]
	pk.pending, pk.byTier = pk.pending[:0], pk.byTier[:0]
	pk.rels, pk.cands, pk.deferred, pk.leaves = pk.rels[:0], pk.cands[:0], pk.deferred[:0], pk.leaves[:0]
	pk.affSum, pk.ctx, pk.ctxNorm, pk.category = 0, nil, 0, ""
	pk.actor, pk.repeat = "", 0
}

// PicksInto appends to dst the picks for q, best first, and returns the
// extended slice. It never fails: an unknown customer gets non-personal
// picks, unknown locations hold no stock. The picks path allocates nothing
// once its pooled scratch has grown to the calls' size.
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
	pk := e.pickers.Get().(*picker)
	defer e.pickers.Put(pk)
	pk.begin(e, q)

	e.mu.RLock()
	defer e.mu.RUnlock()
	if !e.gather(pk, q, k, false) {
		return dst
	}
	base := len(dst)
	dst = pk.rank(dst, k, e.idx)
	if len(q.Pins) > 0 {
		dst = e.pin(pk, dst, base, q.Pins, k)
	}
	return dst
}

// gather fills pk.cands with the candidates of q, filtered and scored:
// the personal sources, then the top lists and the fallback when they
// may change the best k. With all, every personal candidate is
// considered, in the order proposed (the blend's learning step learns from
// them all); else those that cannot change the best k may be left out
// (considerPersonal). It returns false when nothing can qualify. e.mu must
// be held (shared).
func (e *Engine) gather(pk *picker, q *Query, k int, all bool) bool {
	// 1. Personal sources.
	if !e.preparePersonal(pk, q) {
		return false
	}
	if all {
		e.considerAll(pk)
	} else if e.considerPersonal(pk, k) {
		return true
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
	return true
}

// begin sets the picker up for q: the engine's options, the channel (web
// for an unknown one, which it returns) and its priors, the time, and the
// learned blend's weights when web or app picks use them.
func (pk *picker) begin(e *Engine, q *Query) Channel {
	nowMS := q.Now
	if nowMS == 0 {
		nowMS = e.nowMS()
	}
	ch := q.Channel
	if ch >= numChannels {
		ch = ChannelWeb
	}
	pk.opts = &e.opts
	pk.prior = &e.opts.Priors[ch]
	pk.now = secs(nowMS)
	pk.channel = ch
	pk.learned = false
	if e.opts.Blend && (ch == ChannelWeb || ch == ChannelApp) {
		w, n := e.blend.load()
		if int64(n) >= int64(e.opts.BlendMinPurchases) {
			pk.learned, pk.w = true, w
		}
	}
	return ch
}

// preparePersonal loads into pk (begun for q) the customer's profile, the
// query's filters and the popularity scale, and proposes the personal
// sources' products: what PicksInto, ExplainPicks and a campaign's kept
// slots all start from, so each scores a product alike. It returns false
// when the query can match nothing (an unknown location or category).
// e.mu must be held (shared).
func (e *Engine) preparePersonal(pk *picker, q *Query) bool {
	pk.reset(e.idx.Products(), e.idx.Facets())
	e.loadProfile(pk, q)
	ok := e.loadQuery(pk, q)
	pk.loadPopularity(e)
	if ok {
		e.proposePersonal(pk, pk.channel)
	}
	return ok
}

// sourceOf returns how the personal sources proposed p: its source flags
// and relation strength, zero when none did.
func (pk *picker) sourceOf(p uint32) (flags uint8, rel float32) {
	if s := pk.slots.get(p, pk.epoch); s != nil {
		return s.flags, s.rel
	}
	return 0, 0
}

// proposePersonal proposes the personal sources' products: the related
// items and same-group siblings of the context (weighing double) and of
// the customer's recent history, what similar customers bought (with
// NeighbourWeight), the cart and the recent views.
func (e *Engine) proposePersonal(pk *picker, ch Channel) {
	perAnchor := e.opts.RelatedPerAnchor
	if pk.ctx != nil {
		e.addRelated(pk, pk.ctx.Dense, 2, 2*perAnchor)
		e.addSiblings(pk, pk.ctx.Dense, 2, e.opts.SiblingsPerAnchor)
	}
	// A store screen with a scan shows what goes with the scanned product;
	// without one it knows her by her history, as every other channel does.
	if ch != ChannelScreen || pk.ctx == nil {
		for i, a := range pk.anchors {
			n := perAnchor
			if t := e.opts.TaperAnchors; t >= 0 && i >= t {
				n = max(2, perAnchor/4)
			}
			e.addRelated(pk, a, 1, n)
			e.addSiblings(pk, a, 1, e.opts.SiblingsPerAnchor)
		}
		e.proposeNeighbours(pk)
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
		if int(p) < len(e.pop.val) {
			acc += e.pop.val[p].Load()
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
	if pk.learned {
		return pk.learnedBound()
	}
	return pk.candBound(pk.basePrior(), 0)
}

// personalSuffice reports whether the candidates so far (the personal
// sources') hold k that score above walkBound within the diversity cap.
// Then the walks cannot change the answer: ranking takes those k first,
// before any product scoring at most the bound. Ads and email lead with
// the cart, views and related items (priors 100 and up, over an affinity
// tier of 10), so there it often saves the walks; on the web, whose priors
// are small, it rarely does.
func (pk *picker) personalSuffice(k int) bool { return pk.suffice(k, pk.walkBound()) }

// suffice reports whether the candidates so far hold k that score above
// bound within the diversity cap: then no candidate scoring at most bound
// can change the best k.
func (pk *picker) suffice(k int, bound float64) bool {
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
				pk.ctxNorm += float64(e.weights.Of(f))
				pk.markFacet(f, facetCtx)
			}
		}
	}
	pk.excluded = e.excluded
	pk.priceMin, pk.priceMax = q.PriceMin, q.PriceMax
	for _, facet := range q.Boost {
		if f, ok := pk.lookupFacet(e.idx, facet); ok {
			pk.markFacet(f, facetBoost)
			pk.boost = append(pk.boost, f)
		}
	}
	for _, facet := range q.Bury {
		if f, ok := pk.lookupFacet(e.idx, facet); ok {
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

// loadPopularity reads the decay to now and the most popular product's
// count now: popularity terms are relative to it, on a log scale.
func (pk *picker) loadPopularity(e *Engine) {
	pk.popDecay = e.pop.decayDown(pk.now)
	pk.popMax = e.global.best() * pk.popDecay
	pk.popLogMax = log1p(pk.popMax)
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

// propose marks product p as a personal candidate with the given flags
// and returns its slot (nil for a product beyond the catalog).
func (pk *picker) propose(p uint32, flags uint8) *slot {
	if int(p) >= pk.products {
		return nil
	}
	s, _ := pk.slots.put(p, pk.epoch)
	if s.flags&flagSeen == 0 {
		pk.ids = append(pk.ids, p)
	}
	s.flags |= flags | flagSeen
	return s
}

// addRelated proposes up to n of the strongest relations of anchor a, each
// with its weight relative to a's strongest relation, times w.
func (e *Engine) addRelated(pk *picker, a uint32, w float32, n int) {
	pk.rels = e.rel.appendTo(pk.rels[:0], a, n)
	if len(pk.rels) == 0 || pk.rels[0].w <= 0 {
		return
	}
	top := pk.rels[0].w
	if e.opts.RelatedPopNorm > 0 {
		top = e.normalizeRelated(pk)
	}
	for _, r := range pk.rels {
		if s := pk.propose(r.p, flagRelated); s != nil {
			s.rel += w * r.w / top
		}
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
		if int(p) >= pk.products {
			continue
		}
		// A store query rejects most of a list on stock: test that first,
		// one bit, and leave the product's scratch slot untouched (it would
		// fail again in a later walk, so it need not be marked).
		if pk.sparse && !pk.anyStock(e, p) {
			continue
		}
		s, isNew := pk.slots.put(p, pk.epoch)
		if !isNew {
			continue
		}
		s.flags = flagSeen
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
		if int(p) >= pk.products {
			return
		}
		s, isNew := pk.slots.put(p, pk.epoch)
		if !isNew {
			continue // already considered
		}
		*budget--
		s.flags = flagSeen
		e.consider(pk, p, 0, 0)
	}
}
