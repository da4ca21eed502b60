// Package engine holds Omnipick's live state beyond the catalog: a profile
// per customer or anonymous id, item-to-item relations and popularity, all
// learned from events as they arrive, and the ranking that turns them into
// picks. It knows nothing of HTTP or files: every change arrives as a Record
// through Apply, and picks come from PicksInto.
//
// # Concurrency and lock order
//
// An Engine is safe for concurrent use. Locks are taken in this order and
// never the other way round:
//
//  1. Engine.mu: an RWMutex over the index (catalog and stock) and over the
//     length of every per-product array. Catalog and stock writes hold it
//     exclusively; events and picks hold it shared.
//  2. shard.mu: one per customer shard (a customer's shard is
//     xxhash(id) % Shards). Picks copy what they need out of the profile and
//     release the shard before ranking.
//  3. relation stripe locks, top-list locks: leaf locks, held for a few
//     hundred nanoseconds, never while taking another lock.
package engine

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/omnipick/omnipick/index"
)

// Options configure an Engine. Zero values take the documented defaults.
type Options struct {
	Shards int // customer shards; default 64

	AffinityHalfLife   time.Duration // default 1 day
	PopularityHalfLife time.Duration // default 2 days
	CartTTL            time.Duration // cart items older than this are dropped; default 30 days
	ViewWindow         time.Duration // views this recent relate to the next item; default 1 day
	PurchaseWindow     time.Duration // purchases this recent relate to the next item (a basket); default 1 hour

	// EventWeights is how much each event type adds to affinity and
	// popularity; zero entries take DefaultEventWeights.
	EventWeights [numEventTypes]float32
	// FacetWeights scales affinity per facet kind: category, brand, tag.
	FacetWeights [3]float32

	MaxAffinity  int // facets per profile; default 64
	MaxViews     int // recent views per profile; default 20
	MaxCart      int // cart lines per profile; default 50
	MaxPurchases int // purchased products remembered per profile; default 1000
	MaxSizes     int // learned sizes per profile; default 16
	MaxRelated   int // related products kept per product; default 128
	EventAnchors int // recent items (at most 64) a new event relates to; default 64
	TopPerFacet  int // popular products kept per facet; default 64
	TopGlobal    int // popular products kept overall; default 512

	// Ranking: score = prior[channel][reason] + AffinityWeight*affinity +
	// RelatedWeight*related + PopularityWeight*popularity.
	Priors           [numChannels][numReasons]float64
	AffinityWeight   float64 // default 0.25
	RelatedWeight    float64 // default 0.25
	PopularityWeight float64 // default 0.5
	// ContextWeight scales the attribute similarity of a candidate to the
	// query's context product (shared category prefixes, brand, tags,
	// weighted like affinity); a candidate at least half as similar as the
	// context is to itself counts as related. Default 1.
	ContextWeight    float64
	AffinityFacets   int // top facets of a profile that source candidates; default 4
	Anchors          int // most recent history items whose relations source candidates; default 48
	RelatedPerAnchor int // strongest relations taken per anchor (twice that for the context); default 16
	FallbackScan     int // eligible products scanned when sources do not fill k; default 4096

	Now func() time.Time // default time.Now
}

// DefaultEventWeights weigh what each event says about a customer's taste.
var DefaultEventWeights = [numEventTypes]float32{
	EventView:       0.25,
	EventCartAdd:    3,
	EventCartRemove: 0,
	EventPurchase:   5,
	EventReturn:     -5,
	EventScan:       2,
	EventEmailClick: 1.5,
	EventAdClick:    1.5,
	EventImpression: 0,
}

// DefaultPriors order candidate sources per channel. Ads and email lead
// with the cart, then views, then related items; a store screen leads with
// items related to the scanned product. Web and app blend: only the cart
// keeps a lead, and learned relation strength, popularity and affinity
// decide the rest (chosen by the offline evaluation, bench/eval).
var DefaultPriors = [numChannels][numReasons]float64{
	ChannelWeb:    {ReasonPopular: 0, ReasonAffinity: 0, ReasonRelated: 0.125, ReasonViewed: 0, ReasonCart: 2},
	ChannelApp:    {ReasonPopular: 0, ReasonAffinity: 0, ReasonRelated: 0.125, ReasonViewed: 0, ReasonCart: 2},
	ChannelAds:    {ReasonPopular: 0, ReasonAffinity: 10, ReasonRelated: 100, ReasonViewed: 1000, ReasonCart: 10000},
	ChannelEmail:  {ReasonPopular: 0, ReasonAffinity: 10, ReasonRelated: 100, ReasonViewed: 1000, ReasonCart: 10000},
	ChannelScreen: {ReasonPopular: 0, ReasonAffinity: 10, ReasonRelated: 1000, ReasonViewed: 10, ReasonCart: 10},
}

func (o *Options) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Shards, 64)
	defD(&o.AffinityHalfLife, 24*time.Hour)
	defD(&o.PopularityHalfLife, 48*time.Hour)
	defD(&o.CartTTL, 30*24*time.Hour)
	defD(&o.ViewWindow, 24*time.Hour)
	defD(&o.PurchaseWindow, time.Hour)
	for i := range o.EventWeights {
		if o.EventWeights[i] == 0 {
			o.EventWeights[i] = DefaultEventWeights[i]
		}
	}
	if o.FacetWeights == [3]float32{} {
		o.FacetWeights = [3]float32{1, 0.5, 0.5}
	}
	def(&o.MaxAffinity, 64)
	def(&o.MaxViews, 20)
	def(&o.MaxCart, 50)
	def(&o.MaxPurchases, 1000)
	def(&o.MaxSizes, 16)
	def(&o.MaxRelated, 128)
	def(&o.EventAnchors, 64)
	o.EventAnchors = min(o.EventAnchors, 64)
	def(&o.TopPerFacet, 64)
	def(&o.TopGlobal, 512)
	if o.Priors == [numChannels][numReasons]float64{} {
		o.Priors = DefaultPriors
	}
	if o.AffinityWeight == 0 {
		o.AffinityWeight = 0.25
	}
	if o.RelatedWeight == 0 {
		o.RelatedWeight = 0.25
	}
	if o.PopularityWeight == 0 {
		o.PopularityWeight = 0.5
	}
	if o.ContextWeight == 0 {
		o.ContextWeight = 1
	}
	def(&o.AffinityFacets, 4)
	def(&o.Anchors, 48)
	def(&o.RelatedPerAnchor, 16)
	def(&o.FallbackScan, 4096)
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Errors of Apply. A *FieldError wraps them with the input field at fault.
var (
	ErrUnknownActor   = errors.New("engine: event has no customer or anonymous_id")
	ErrBothActors     = errors.New("engine: event has both customer and anonymous_id")
	ErrUnknownProduct = errors.New("engine: unknown product")
	ErrUnknownSKU     = errors.New("engine: unknown sku")
	ErrSKUMismatch    = errors.New("engine: sku is not a variant of product")
	ErrMissingField   = errors.New("engine: missing field")
	ErrBadOp          = errors.New("engine: unknown record op")
	ErrBadEventType   = errors.New("engine: unknown event type")
)

// FieldError is an error caused by one input field.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, err error) error { return &FieldError{Field: field, Err: err} }

// facet kinds, for FacetWeights.
const (
	kindCategory = iota
	kindBrand
	kindTag
)

type facetWeights struct {
	kind []uint8 // by facet id
	w    [3]float32
}

func (f *facetWeights) of(facet uint32) float32 {
	if int(facet) >= len(f.kind) {
		return 0
	}
	return f.w[f.kind[facet]]
}

type shard struct {
	mu        sync.RWMutex
	customers *index.Dict
	anons     *index.Dict
	custProf  []uint32 // dense customer id -> profiles index
	anonProf  []uint32 // dense anonymous id -> profiles index
	profiles  []profile

	// A snapshot in progress waits for this shard's profiles (see Capture).
	snapPending bool
	snap        []byte
}

// Engine is the live state. See the package doc for concurrency.
type Engine struct {
	opts Options

	mu      sync.RWMutex // see lock order
	idx     *index.Index
	weights facetWeights
	tops    []topList // by facet id
	global  topList

	shards []shard
	rel    relations
	pop    popularity
	scans  scans

	pickers sync.Pool  // *picker
	snapMu  sync.Mutex // one snapshot capture at a time

	// A snapshot in progress waits for the index (see Capture). Catalog
	// writes hold mu exclusively when they capture it, WriteTo shared.
	idxSnap        sync.Mutex
	idxSnapPending bool
	idxSnapBytes   []byte

	stats struct {
		sync.Mutex
		applied [numEventTypes]uint64
	}
}

// New returns an empty engine.
func New(opts Options) *Engine {
	opts.setDefaults()
	e := &Engine{opts: opts, idx: index.New()}
	e.weights.w = opts.FacetWeights
	e.shards = make([]shard, opts.Shards)
	for i := range e.shards {
		e.shards[i].customers = index.NewDict()
		e.shards[i].anons = index.NewDict()
	}
	e.rel.max = opts.MaxRelated
	e.pop.halfLife = opts.PopularityHalfLife.Seconds()
	e.pickers.New = func() any { return new(picker) }
	return e
}

// Options returns the engine's options with defaults filled in.
func (e *Engine) Options() Options { return e.opts }

// Apply applies one state change. It is the only way state changes: HTTP
// writes, WAL replay and evaluation replays all call it. An event with
// TS == 0 is stamped with Options.Now; callers that log records stamp them
// first, so replay gives the same state. A rejected record changes nothing
// and returns an error, a *FieldError where one input field is at fault.
func (e *Engine) Apply(r *Record) error {
	switch r.Op {
	case OpProduct:
		return e.applyProduct(&r.Product)
	case OpInventory:
		return e.applyInventory(&r.Inventory)
	case OpEvent:
		return e.applyEvent(&r.Event)
	case OpIdentify:
		return e.applyIdentify(&r.Identify)
	case OpLocation:
		return e.applyLocation(&r.Location)
	}
	return ErrBadOp
}

func (e *Engine) applyProduct(p *Product) error {
	if p.ID == "" {
		return fieldErr("id", ErrMissingField)
	}
	it := &index.Item{
		ID: p.ID, Title: p.Title, URL: p.URL, Image: p.Image, Price: p.Price,
		Currency: p.Currency, Category: p.Category, Brand: p.Brand,
		Tags: p.Tags, SizeGroup: p.SizeGroup, Active: !p.Inactive,
		Variants: make([]index.Variant, len(p.Variants)),
	}
	for i, v := range p.Variants {
		it.Variants[i] = index.Variant{SKU: v.SKU, Size: v.Size}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.captureIndexLocked()
	old, _ := e.idx.Item(p.ID)
	if err := e.idx.Upsert(it); err != nil {
		return fieldErr("variants", err)
	}
	e.syncFacets()
	e.rel.grow(e.idx.Products())
	e.pop.grow(e.idx.Products())
	// The product's popularity moves to the top lists of its new facets.
	if old != nil {
		ls := e.pop.logScore(it.Dense)
		for _, f := range old.Facets {
			if !slices.Contains(it.Facets, f) {
				e.tops[f].offer(it.Dense, noScore, 0, false)
			}
		}
		if ls != noScore {
			for _, f := range it.Facets {
				e.tops[f].offer(it.Dense, ls, e.opts.TopPerFacet, false)
			}
		}
	}
	return nil
}

func (e *Engine) applyInventory(inv *Inventory) error {
	if inv.SKU == "" {
		return fieldErr("sku", ErrMissingField)
	}
	if inv.Location == "" {
		return fieldErr("location", ErrMissingField)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.captureIndexLocked()
	if err := e.idx.SetStock(inv.SKU, inv.Location, inv.Quantity); err != nil {
		if errors.Is(err, index.ErrNegativeQuantity) {
			return fieldErr("quantity", err)
		}
		return fieldErr("sku", err)
	}
	return nil
}

func (e *Engine) applyLocation(l *Location) error {
	if l.ID == "" {
		return fieldErr("id", ErrMissingField)
	}
	e.mu.Lock()
	e.captureIndexLocked()
	e.idx.Location(l.ID)
	e.mu.Unlock()
	return nil
}

// shardOf returns the shard of an actor id and the id's hash.
func (e *Engine) shardOf(id string) (*shard, uint64) {
	h := xxhash.Sum64String(id)
	return &e.shards[h%uint64(len(e.shards))], h
}

// profileLocked returns the profile of an actor in s, creating it when
// create is set. s.mu must be held (exclusively when create is set).
func (s *shard) profileLocked(id string, h uint64, anon, create bool) *profile {
	dict, slots := s.customers, &s.custProf
	if anon {
		dict, slots = s.anons, &s.anonProf
	}
	if d, ok := dict.LookupHashed(h, id); ok {
		return &s.profiles[(*slots)[d]]
	}
	if !create {
		return nil
	}
	dict.Intern(id)
	*slots = append(*slots, uint32(len(s.profiles)))
	s.profiles = append(s.profiles, profile{})
	return &s.profiles[len(s.profiles)-1]
}

func secs(ms int64) uint32 {
	if ms <= 0 {
		return 0
	}
	s := ms / 1000
	if s > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(s)
}

// nowMS returns Options.Now in unix milliseconds.
func (e *Engine) nowMS() int64 { return e.opts.Now().UnixMilli() }

// resolveActor follows an anonymous id's merge into a customer. It returns
// the actor to apply an event to.
func (e *Engine) resolveActor(id string, anon bool) (string, bool) {
	for hops := 0; anon && hops < 8; hops++ {
		s, h := e.shardOf(id)
		s.mu.RLock()
		pr := s.profileLocked(id, h, true, false)
		to := ""
		if pr != nil {
			to = pr.mergedTo
		}
		s.mu.RUnlock()
		if to == "" {
			break
		}
		id, anon = to, false
	}
	return id, anon
}

func (e *Engine) applyEvent(ev *Event) error {
	if ev.Type == 0 || int(ev.Type) >= numEventTypes {
		return fieldErr("type", ErrBadEventType)
	}
	actor, anon := ev.Customer, false
	switch {
	case ev.Customer != "" && ev.AnonymousID != "":
		return fieldErr("customer", ErrBothActors)
	case ev.AnonymousID != "":
		actor, anon = ev.AnonymousID, true
	case ev.Customer == "":
		return fieldErr("customer", ErrUnknownActor)
	}
	if ev.TS == 0 {
		ev.TS = e.nowMS()
	}
	t := secs(ev.TS)

	e.mu.RLock()
	defer e.mu.RUnlock()

	// Resolve the item; the SKU carries the size.
	var it *index.Item
	variant := -1
	if ev.SKU != "" {
		var ok bool
		it, variant, ok = e.idx.SKU(ev.SKU)
		if !ok {
			return fieldErr("sku", ErrUnknownSKU)
		}
		if ev.Product != "" && ev.Product != it.ID {
			return fieldErr("sku", ErrSKUMismatch)
		}
	} else {
		if ev.Product == "" {
			return fieldErr("product", ErrMissingField)
		}
		var ok bool
		if it, ok = e.idx.Item(ev.Product); !ok {
			return fieldErr("product", ErrUnknownProduct)
		}
		if len(it.Variants) == 1 {
			variant = 0 // a one-variant product needs no SKU to say which
		}
	}
	p := it.Dense
	sku, sizeKey := noSKU, index.OneSize
	if variant >= 0 {
		sku, sizeKey = it.Variants[variant].Dense, it.Variants[variant].SizeKey
	}

	actor, anon = e.resolveActor(actor, anon)
	w := e.opts.EventWeights[ev.Type]
	o := &e.opts

	// Update the profile, and collect the recent items the new one relates to.
	var anchorBuf [64]relEntry
	anchors := anchorBuf[:0:o.EventAnchors]
	relW := float32(0)
	switch ev.Type {
	case EventView, EventScan, EventEmailClick, EventAdClick:
		relW = 1
	case EventCartAdd:
		relW = 2
	case EventPurchase:
		relW = 3
	}
	s, h := e.shardOf(actor)
	s.mu.Lock()
	s.captureLocked()
	pr := s.profileLocked(actor, h, anon, true)
	if relW > 0 {
		anchors = pr.appendAnchors(anchors, p, t, uint32(o.ViewWindow.Seconds()), uint32(o.PurchaseWindow.Seconds()))
	}
	pr.decayTo(t, o.AffinityHalfLife.Seconds())
	if w != 0 {
		pr.addAffinity(it.Facets, w, &e.weights, o.MaxAffinity)
	}
	if t > uint32(o.CartTTL.Seconds()) {
		pr.expireCart(t - uint32(o.CartTTL.Seconds()))
	}
	switch ev.Type {
	case EventView, EventScan, EventEmailClick, EventAdClick:
		pr.addView(p, t, o.MaxViews)
	case EventCartAdd:
		pr.addCart(sku, p, t, o.MaxCart) // sku is noSKU when no size was chosen
		if sizeKey != index.OneSize {
			pr.learnSize(it.Group, sizeKey, t, false, o.MaxSizes)
		}
	case EventCartRemove:
		pr.removeCart(sku, p)
	case EventPurchase:
		pr.addPurchase(p, t, o.MaxPurchases)
		pr.removeCart(noSKU, p)
		if sizeKey != index.OneSize {
			pr.learnSize(it.Group, sizeKey, t, true, o.MaxSizes)
		}
	case EventReturn:
		pr.removePurchase(p)
		if sizeKey != index.OneSize {
			pr.forgetSize(it.Group, sizeKey)
		}
	}
	s.mu.Unlock()

	for _, a := range anchors {
		rw := min(relW, a.w)
		e.rel.add(p, a.p, rw)
		e.rel.add(a.p, p, rw)
	}
	if w != 0 {
		ls := e.pop.add(p, float64(w), t)
		for _, f := range it.Facets {
			e.tops[f].offer(p, ls, o.TopPerFacet, w > 0)
		}
		e.global.offer(p, ls, o.TopGlobal, w > 0)
	}
	if ev.Type == EventScan && ev.Location != "" {
		e.scans.record(ev.Location, Scan{Product: it.ID, Customer: ev.Customer, AnonymousID: ev.AnonymousID, TS: ev.TS})
	}
	e.stats.Lock()
	e.stats.applied[ev.Type]++
	e.stats.Unlock()
	return nil
}

// appendAnchors appends the profile's recent items that a new event on
// product p at time t relates to, each with the strength of its own event
// kind: views 1, cart 2, purchases 3.
func (pr *profile) appendAnchors(dst []relEntry, p, t, viewWin, buyWin uint32) []relEntry {
	add := func(q uint32, w float32) {
		if q == p || len(dst) == cap(dst) {
			return
		}
		for i := range dst {
			if dst[i].p == q {
				dst[i].w = max(dst[i].w, w)
				return
			}
		}
		dst = append(dst, relEntry{p: q, w: w})
	}
	// Purchases are sorted by product, not time: keep the newest that fit,
	// then add them newest first. Lines of one order share a time; among
	// them the product that entered the catalog later (higher dense id)
	// goes first.
	var recent [64]stamp
	n := 0
	room := cap(dst) - len(dst)
	for _, s := range pr.purchased {
		if s.t+buyWin < t || s.p == p || room == 0 {
			continue
		}
		if n < room {
			recent[n] = s
			n++
			continue
		}
		oldest := 0
		for i := 1; i < n; i++ {
			if newer(recent[oldest], recent[i]) {
				oldest = i
			}
		}
		if newer(s, recent[oldest]) {
			recent[oldest] = s
		}
	}
	slices.SortFunc(recent[:n], func(a, b stamp) int {
		if newer(a, b) {
			return -1
		}
		return 1
	})
	for _, s := range recent[:n] {
		add(s.p, 3)
	}
	for i := len(pr.cart) - 1; i >= 0; i-- {
		add(pr.cart[i].p, 2)
	}
	for i := len(pr.views) - 1; i >= 0; i-- {
		if s := pr.views[i]; s.t+viewWin >= t {
			add(s.p, 1)
		}
	}
	return dst
}

// newer orders purchases by time, then by dense product id, newest first.
func newer(a, b stamp) bool { return a.t > b.t || (a.t == b.t && a.p > b.p) }

func (e *Engine) applyIdentify(id *Identify) error {
	if id.AnonymousID == "" {
		return fieldErr("anonymous_id", ErrMissingField)
	}
	if id.Customer == "" {
		return fieldErr("customer", ErrMissingField)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	// Take the anonymous profile out of its shard, leaving a forward link.
	as, ah := e.shardOf(id.AnonymousID)
	as.mu.Lock()
	as.captureLocked()
	ap := as.profileLocked(id.AnonymousID, ah, true, true)
	if ap.mergedTo == id.Customer {
		as.mu.Unlock()
		return nil
	}
	moved := *ap
	*ap = profile{mergedTo: id.Customer}
	as.mu.Unlock()

	cs, ch := e.shardOf(id.Customer)
	cs.mu.Lock()
	cs.captureLocked()
	cp := cs.profileLocked(id.Customer, ch, false, true)
	cp.merge(&moved, e.opts.AffinityHalfLife.Seconds(), &e.opts)
	cp.links = appendUnique(cp.links, id.AnonymousID)
	cs.mu.Unlock()
	return nil
}

// merge folds another profile into pr: affinities added once both are
// decayed to the same time, purchases, cart and views unioned, sizes kept
// by recency.
func (pr *profile) merge(o *profile, halfLife float64, opts *Options) {
	t := max32(pr.last, o.last)
	pr.decayTo(t, halfLife)
	o.decayTo(t, halfLife)
	for _, a := range o.aff {
		pr.addAffinityFacet(a.facet, a.w, opts.MaxAffinity)
	}
	for _, s := range o.purchased {
		pr.addPurchase(s.p, s.t, opts.MaxPurchases)
	}
	for _, c := range o.cart {
		if !pr.bought(c.p) {
			pr.addCart(c.sku, c.p, c.t, opts.MaxCart)
		}
	}
	for _, v := range o.views {
		pr.addView(v.p, v.t, opts.MaxViews)
	}
	for _, s := range o.sizes {
		pr.learnSize(s.group, s.size, s.t, s.purchase, opts.MaxSizes)
	}
	for _, l := range o.links {
		pr.links = appendUnique(pr.links, l)
	}
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// Stats is a snapshot of the engine's counters, for metrics.
type Stats struct {
	Products  int
	SKUs      int
	Locations int
	Facets    int
	Profiles  int
	Events    [numEventTypes]uint64
}

// EventCount returns how many events of a type were applied.
func (s *Stats) EventCount(t EventType) uint64 { return s.Events[t] }

// Stats returns current counters.
func (e *Engine) Stats() Stats {
	var st Stats
	e.mu.RLock()
	st.Products, st.SKUs, st.Locations, st.Facets = e.idx.Products(), e.idx.SKUs(), e.idx.Locations(), e.idx.Facets()
	e.mu.RUnlock()
	for i := range e.shards {
		s := &e.shards[i]
		s.mu.RLock()
		st.Profiles += len(s.profiles)
		s.mu.RUnlock()
	}
	e.stats.Lock()
	st.Events = e.stats.applied
	e.stats.Unlock()
	return st
}

// String describes the engine briefly, for logs.
func (e *Engine) String() string {
	st := e.Stats()
	return fmt.Sprintf("engine{products=%d skus=%d locations=%d profiles=%d}", st.Products, st.SKUs, st.Locations, st.Profiles)
}
