package engine

import (
	"math"
	"slices"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/omnipick/omnipick/index"
)

// Candidate flags: which sources proposed a product.
const (
	flagSeen uint8 = 1 << iota
	flagCart
	flagViewed
	flagRelated
)

// slot is a picker's per-product scratch, valid while epoch matches.
type slot struct {
	epoch uint32
	flags uint8
	rel   float32
}

type cand struct {
	item   *index.Item
	score  float64
	reason Reason
}

// picker is the scratch of one PicksInto call, pooled so the picks path
// allocates nothing once warm. Nothing in it outlives the call.
type picker struct {
	epoch     uint32
	slots     []slot
	aff       []affEntry // the profile's affinity vector, sorted by facet
	affSum    float64
	topFacets []uint32
	sizes     []sizeEntry
	purchased []uint32 // sorted
	cart      []uint32
	views     []uint32
	anchors   []uint32
	wear      []uint32 // by size group
	locs      []uint32
	excl      []uint32
	ids       []uint32 // proposed products, each once
	top       []uint32 // top-list members, with repeats
	rels      []relEntry
	cands     []cand
	deferred  []cand
	leaves    []leafCount
	elig      *roaring.Bitmap
	scratch   *roaring.Bitmap
	name      []byte
	popMax    float64
	now       uint32
	opts      *Options
	prior     *[numReasons]float64
}

type leafCount struct {
	leaf uint32
	n    int
}

func (pk *picker) reset(products int) {
	pk.epoch++
	if pk.epoch == 0 { // wrapped: stale epochs could match again
		clear(pk.slots)
		pk.epoch = 1
	}
	if len(pk.slots) < products {
		pk.slots = slices.Grow(pk.slots[:0], products+products/4+64)[:products+products/4+64]
	}
	pk.aff, pk.topFacets, pk.sizes = pk.aff[:0], pk.topFacets[:0], pk.sizes[:0]
	pk.purchased, pk.cart, pk.views, pk.anchors = pk.purchased[:0], pk.cart[:0], pk.views[:0], pk.anchors[:0]
	pk.wear, pk.locs, pk.excl, pk.ids = pk.wear[:0], pk.locs[:0], pk.excl[:0], pk.ids[:0]
	pk.rels, pk.cands, pk.deferred, pk.leaves = pk.rels[:0], pk.cands[:0], pk.deferred[:0], pk.leaves[:0]
	pk.affSum = 0
	if pk.elig == nil {
		pk.elig, pk.scratch = roaring.New(), roaring.New()
	}
}

// PicksInto appends to dst the picks for q, best first, and returns the
// extended slice. It never fails: an unknown customer gets non-personal
// picks, unknown locations hold no stock. The picks path allocates nothing
// once its pooled scratch has grown to the catalog's size.
//
// Ranking: every product proposed by a source (cart, recent views, items
// related to the customer's history or to q.Context, products popular in
// the customer's top facets, popular products) or, when those do not fill
// k, any eligible product, is filtered first (active, in stock at one of
// the locations in a size the customer wears, not bought, not excluded,
// within the category) and then scored:
//
//	score = prior[channel][best source] + AffinityWeight*affinity
//	      + RelatedWeight*related + PopularityWeight*popularity
//
// Ties go to the smaller product id. At most ceil(k/3) picks share a leaf
// category unless too few other candidates qualify.
func (e *Engine) PicksInto(dst []Pick, q *Query) []Pick {
	k := q.K
	if k <= 0 {
		k = 10
	}
	if k > MaxK {
		k = MaxK
	}
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

	e.mu.RLock()
	defer e.mu.RUnlock()
	pk.reset(e.idx.Products())
	e.loadProfile(pk, q, ch)

	// Where, what size, what not.
	if len(q.Locations) == 0 {
		pk.locs = append(pk.locs, 0) // "online" is always location 0
	}
	for _, l := range q.Locations {
		if d, ok := e.idx.LookupLocation(l); ok {
			pk.locs = append(pk.locs, d)
		}
	}
	for g := 0; g < e.idx.Groups(); g++ {
		pk.wear = append(pk.wear, index.AnySize)
	}
	for g := range pk.wear {
		if g > 0 {
			pk.wear[g] = wearOf(pk.sizes, uint32(g))
		}
	}
	for _, x := range q.Exclude {
		if it, ok := e.idx.Item(x); ok {
			pk.excl = append(pk.excl, it.Dense)
		}
	}
	var ctx *index.Item
	if q.Context != "" {
		if it, ok := e.idx.Item(q.Context); ok {
			ctx = it
			pk.excl = append(pk.excl, it.Dense)
		}
	}
	category := strings.Trim(q.Category, "/")

	// Sources. Relations of the context come first and weigh double.
	if ctx != nil {
		e.addRelated(pk, ctx.Dense, 2)
	}
	if ch != ChannelScreen {
		for _, a := range pk.anchors {
			e.addRelated(pk, a, 1)
		}
	}
	for _, p := range pk.cart {
		pk.propose(p, flagCart)
	}
	for _, p := range pk.views {
		pk.propose(p, flagViewed)
	}
	pk.top = pk.top[:0]
	for _, f := range pk.topFacets {
		pk.top = e.tops[f].appendTo(pk.top)
	}
	if category != "" {
		pk.name = append(append(pk.name[:0], index.FacetCategory...), category...)
		if f, ok := e.idx.FacetBytes(pk.name); ok {
			pk.top = e.tops[f].appendTo(pk.top)
		} else {
			category = "\x00" // no such category: nothing qualifies
		}
	}
	pk.top = e.global.appendTo(pk.top)
	for _, p := range pk.top {
		pk.propose(p, 0)
	}
	pk.popMax = e.pop.valueAt(e.global.best(), pk.now)

	// Filter, then score, every proposed product.
	e.scoreProposed(pk, category)
	if len(pk.cands) < k {
		e.fallback(pk, category, k)
	}

	slices.SortFunc(pk.cands, func(a, b cand) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return strings.Compare(a.item.ID, b.item.ID)
	})
	return pk.diversify(dst, k, e.idx)
}

// loadProfile copies what ranking needs out of the actor's profile, so the
// shard lock is held only for the copy.
func (e *Engine) loadProfile(pk *picker, q *Query, ch Channel) {
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
	pr := s.profileLocked(actor, h, anon, false)
	if pr == nil {
		return
	}
	pk.aff = append(pk.aff, pr.aff...)
	for _, a := range pr.aff {
		pk.affSum += float64(a.w)
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
		pk.topFacets = append(pk.topFacets, pr.aff[best].facet)
	}
	pk.sizes = append(pk.sizes, pr.sizes...)
	for _, s := range pr.purchased {
		pk.purchased = append(pk.purchased, s.p)
	}
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

// propose marks product p as a candidate with the given source flags.
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

// addRelated proposes the relations of anchor a, each with its weight
// relative to a's strongest relation, times w.
func (e *Engine) addRelated(pk *picker, a uint32, w float32) {
	pk.rels = e.rel.appendTo(pk.rels[:0], a)
	var top float32
	for _, r := range pk.rels {
		top = max(top, r.w)
	}
	if top <= 0 {
		return
	}
	for _, r := range pk.rels {
		pk.propose(r.p, flagRelated)
		pk.slots[r.p].rel += w * r.w / top
	}
}

// scoreProposed filters and scores every product proposed so far.
func (e *Engine) scoreProposed(pk *picker, category string) {
	for _, p := range pk.ids {
		s := &pk.slots[p]
		if s.epoch != pk.epoch || s.flags&flagSeen == 0 {
			continue
		}
		s.flags &^= flagSeen // scored: a repeat of p in ids is skipped
		e.consider(pk, p, s.flags, s.rel, category)
	}
}

// consider filters product p and, if it qualifies, scores it as a candidate.
func (e *Engine) consider(pk *picker, p uint32, flags uint8, rel float32, category string) {
	it := e.idx.ItemAt(p)
	if !pk.eligible(e.idx, it, category) {
		return
	}
	score, reason := pk.score(e, it, flags, rel)
	pk.cands = append(pk.cands, cand{item: it, score: score, reason: reason})
}

// eligible applies the hard filters.
func (pk *picker) eligible(x *index.Index, it *index.Item, category string) bool {
	if it == nil || !it.Active {
		return false
	}
	if _, bought := slices.BinarySearch(pk.purchased, it.Dense); bought {
		return false
	}
	if slices.Contains(pk.excl, it.Dense) {
		return false
	}
	if category != "" && it.Category != category &&
		!(strings.HasPrefix(it.Category, category) && it.Category[len(category)] == '/') {
		return false
	}
	size := index.AnySize
	if int(it.Group) < len(pk.wear) {
		size = pk.wear[it.Group]
	}
	for _, l := range pk.locs {
		if x.InStock(it.Dense, l, size) {
			return true
		}
	}
	return false
}

// score computes a candidate's score and the source that explains it.
func (pk *picker) score(e *Engine, it *index.Item, flags uint8, rel float32) (float64, Reason) {
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
	var dot float64
	affine := false
	for _, f := range it.Facets {
		if i, ok := slices.BinarySearchFunc(pk.aff, f, func(a affEntry, f uint32) int { return cmpU32(a.facet, f) }); ok {
			dot += float64(pk.aff[i].w)
		}
		if !affine && slices.Contains(pk.topFacets, f) {
			affine = true
		}
	}
	if affine {
		consider(ReasonAffinity)
	}
	if pk.affSum > 0 {
		dot /= pk.affSum
	}
	popularity := 0.0
	if pk.popMax > 0 {
		v := e.pop.valueAt(e.pop.logScore(it.Dense), pk.now)
		popularity = math.Log1p(v) / math.Log1p(pk.popMax)
	}
	o := pk.opts
	return prior + o.AffinityWeight*dot + o.RelatedWeight*float64(rel) + o.PopularityWeight*popularity, reason
}

// fallback scans eligible products that no source proposed, in id order,
// until k candidates qualify or FallbackScan products were looked at.
func (e *Engine) fallback(pk *picker, category string, k int) {
	e.idx.EligibleInto(pk.elig, pk.scratch, pk.locs, pk.wear)
	if category != "" {
		pk.name = append(append(pk.name[:0], index.FacetCategory...), category...)
		f, ok := e.idx.FacetBytes(pk.name)
		if !ok {
			return
		}
		pk.elig.And(e.idx.Posting(f))
	}
	it := pk.elig.Iterator()
	for n := 0; it.HasNext() && n < e.opts.FallbackScan; n++ {
		p := it.Next()
		s := &pk.slots[p]
		if s.epoch == pk.epoch {
			continue // proposed by a source: already considered
		}
		*s = slot{epoch: pk.epoch}
		e.consider(pk, p, 0, 0, category)
	}
}

// diversify appends the best k candidates to dst, at most ceil(k/3) from one
// leaf category, filling from the held-back ones when too few remain.
func (pk *picker) diversify(dst []Pick, k int, x *index.Index) []Pick {
	limit := (k + 2) / 3
	n := 0
	for _, c := range pk.cands {
		if n == k {
			break
		}
		if pk.bumpLeaf(c.item.Leaf) > limit {
			pk.deferred = append(pk.deferred, c)
			continue
		}
		dst = append(dst, pk.pick(c, x))
		n++
	}
	for _, c := range pk.deferred {
		if n == k {
			break
		}
		dst = append(dst, pk.pick(c, x))
		n++
	}
	return dst
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
