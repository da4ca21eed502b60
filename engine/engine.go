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
	"strings"
	"sync"
	"sync/atomic"
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
	// TaperAnchors: anchors after the first TaperAnchors (older history)
	// take a quarter of RelatedPerAnchor (at least 2); default 16 (the
	// evaluation scores it as no taper, at half the candidates for long
	// histories); negative: no taper.
	TaperAnchors int
	FallbackScan int // eligible products scanned when sources do not fill k; default 4096

	// FrequencyCaps: per channel of the request, an item shown (impression
	// events, on any channel) at least Max times within Window ranks below
	// every item not capped. Zero entries take DefaultFrequencyCap.
	FrequencyCaps  [numChannels]FrequencyCap
	MaxImpressions int // impressions remembered per profile; default 256

	// RepurchaseWindows let a bought item come back once its window has
	// passed, by category prefix (the longest matching prefix wins). An
	// item in no window never comes back, unless it is returned.
	RepurchaseWindows []RepurchaseWindow

	CampaignTTL   time.Duration // an email campaign shows the same picks this long; default 7 days
	MaxCampaigns  int           // campaigns remembered per profile; default 16
	MaxExclusions int           // exclusions per profile; default 256
	BoostWeight   float64       // added to the score of a boosted item; default 1

	Now func() time.Time // default time.Now
}

// FrequencyCap is how often an item may be shown before it is demoted.
type FrequencyCap struct {
	Max    int
	Window time.Duration
}

// DefaultFrequencyCap: three impressions within two days.
var DefaultFrequencyCap = FrequencyCap{Max: 3, Window: 48 * time.Hour}

// RepurchaseWindow is how long after a purchase items of a category prefix
// ("beauty/", "grocery/coffee") may be recommended again.
type RepurchaseWindow struct {
	Prefix string
	Window time.Duration
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
	if o.TaperAnchors == 0 {
		o.TaperAnchors = 16
	}
	def(&o.FallbackScan, 4096)
	for i := range o.FrequencyCaps {
		c := &o.FrequencyCaps[i]
		def(&c.Max, DefaultFrequencyCap.Max)
		defD(&c.Window, DefaultFrequencyCap.Window)
	}
	def(&o.MaxImpressions, 256)
	defD(&o.CampaignTTL, 7*24*time.Hour)
	def(&o.MaxCampaigns, 16)
	def(&o.MaxExclusions, 256)
	if o.BoostWeight == 0 {
		o.BoostWeight = 1
	}
	o.RepurchaseWindows = slices.Clone(o.RepurchaseWindows)
	for i := range o.RepurchaseWindows {
		o.RepurchaseWindows[i].Prefix = strings.Trim(o.RepurchaseWindows[i].Prefix, "/")
	}
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
	ErrIdentifyCycle  = errors.New("engine: the link would make a cycle of anonymous ids")
	ErrBothTargets    = errors.New("engine: give customer or to_anonymous_id, not both")
	ErrBadValue       = errors.New("engine: value out of range")
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

// shard holds the profiles of the actors whose ids hash to it. The
// profiles are encoded in one arena (see arena.go): nothing here holds a
// pointer per profile.
type shard struct {
	mu        sync.RWMutex
	customers *index.Dict
	anons     *index.Dict
	custProf  []uint32 // dense customer id -> profile slot
	anonProf  []uint32 // dense anonymous id -> profile slot

	refs        []profRef // by profile slot
	data        []byte    // the arena of encoded profiles
	encoded     int       // the sum of profRef.n
	compactions int
	minGarbage  int         // compaction waits for this much garbage
	targets     *index.Dict // the ids profiles were merged to (profRef.to)
	scratch     profile     // the profile a write is changing; mu held exclusively
	enc         []byte      // the encoding a write is storing

	// A snapshot in progress waits for this shard's profiles (see Capture).
	snapPending bool
	snap        []byte
}

// Engine is the live state. See the package doc for concurrency.
type Engine struct {
	opts       Options
	capHorizon uint32 // the longest frequency-cap window, seconds

	mu      sync.RWMutex // see lock order
	idx     *index.Index
	weights facetWeights
	tops    []topList // by facet id
	global  topList

	shards []shard
	// excluded holds products kept out of everyone's picks: dense id ->
	// until (unix seconds). Guarded by mu.
	excluded map[uint32]uint32
	rel      relations
	pop      popularity
	scans    scans

	pickers sync.Pool  // *picker
	snapMu  sync.Mutex // one snapshot capture at a time

	// A snapshot in progress waits for the index (see Capture). Catalog
	// writes hold mu exclusively when they capture it, WriteTo shared.
	idxSnap        sync.Mutex
	idxSnapPending bool
	idxSnapBytes   []byte

	// applied counts events by type: an atomic each, so parallel ingest
	// shares no lock for it.
	applied [numEventTypes]atomic.Uint64
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
		e.shards[i].targets = index.NewDict()
		e.shards[i].minGarbage = defaultMinGarbage
	}
	for _, c := range opts.FrequencyCaps {
		e.capHorizon = max(e.capHorizon, uint32(c.Window.Seconds()))
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
	case OpExclusion:
		return e.applyExclusion(&r.Exclusion)
	case OpCampaign:
		return e.applyCampaign(&r.Campaign)
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
		Variants:   make([]index.Variant, len(p.Variants)),
		Attributes: NormalizeAttributes(slices.Clone(p.Attributes)),
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
	e.scans.catalogChanged()
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
	e.scans.stockChanged(inv.Location)
	return nil
}

func (e *Engine) applyLocation(l *Location) error {
	if l.ID == "" {
		return fieldErr("id", ErrMissingField)
	}
	e.mu.Lock()
	e.captureIndexLocked()
	d := e.idx.Location(l.ID)
	if l.Name != "" {
		e.idx.SetLocationDisplayName(d, l.Name)
	}
	e.mu.Unlock()
	return nil
}

// shardOf returns the shard of an actor id and the id's hash.
func (e *Engine) shardOf(id string) (*shard, uint64) {
	h := xxhash.Sum64String(id)
	return &e.shards[h%uint64(len(e.shards))], h
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

// maxLinkHops bounds how far an anonymous id's links are followed; Identify
// keeps chains acyclic, the bound keeps a bug from spinning.
const maxLinkHops = 16

// resolveActor follows an anonymous id's merges (cookie -> device ->
// customer) to the actor that now holds its history.
func (e *Engine) resolveActor(id string, anon bool) (string, bool) {
	for hops := 0; anon && hops < maxLinkHops; hops++ {
		to, toAnon := e.linkOf(id)
		if to == "" {
			break
		}
		id, anon = to, toAnon
	}
	return id, anon
}

// linkOf returns where anonymous id's history went, if it was linked: a
// customer, or another anonymous id (toAnon).
func (e *Engine) linkOf(id string) (to string, toAnon bool) {
	s, h := e.shardOf(id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if slot, ok := s.slotLocked(id, h, true, false); ok {
		return s.mergedLocked(slot)
	}
	return "", false
}

// chainPasses reports whether following anonymous id from's links reaches
// anonymous id via (from itself included).
func (e *Engine) chainPasses(from, via string) bool {
	id := from
	for hops := 0; hops < maxLinkHops; hops++ {
		if id == via {
			return true
		}
		to, toAnon := e.linkOf(id)
		if to == "" || !toAnon {
			return false
		}
		id = to
	}
	return true // too long to be sure: refuse
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
	slot, _ := s.slotLocked(actor, h, anon, true)
	pr := s.editLocked(slot)
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
	case EventImpression:
		pr.addShown(p, t, t-min(t, e.capHorizon), o.MaxImpressions)
	}
	s.writeLocked(slot, pr)
	s.mu.Unlock()

	e.rel.addAll(p, anchors, relW)
	for _, a := range anchors {
		e.rel.add(a.p, p, min(relW, a.w))
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
	e.applied[ev.Type].Add(1)
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
	target, targetAnon := id.Customer, false
	switch {
	case id.Customer != "" && id.ToAnonymousID != "":
		return fieldErr("to_anonymous_id", ErrBothTargets)
	case id.ToAnonymousID != "":
		target, targetAnon = id.ToAnonymousID, true
	case id.Customer == "":
		return fieldErr("customer", ErrMissingField)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	// The history goes where the target's own history now lives; a link
	// that leads back to the anonymous id itself would make a cycle.
	if targetAnon && e.chainPasses(target, id.AnonymousID) {
		return fieldErr("to_anonymous_id", ErrIdentifyCycle)
	}
	dest, destAnon := e.resolveActor(target, targetAnon)

	// Take the anonymous profile out of its shard, leaving a forward link.
	as, ah := e.shardOf(id.AnonymousID)
	as.mu.Lock()
	as.captureLocked()
	slot, _ := as.slotLocked(id.AnonymousID, ah, true, true)
	if to, toAnon := as.mergedLocked(slot); to == target && toAnon == targetAnon {
		as.mu.Unlock()
		return nil
	}
	// moved is a profile of its own, not a scratch: it outlives the lock.
	var moved profile
	as.readLocked(slot, &moved, true)
	link := &as.scratch
	link.reset()
	link.mergedTo, link.mergedAnon = target, targetAnon
	as.writeLocked(slot, link)
	as.mu.Unlock()
	if moved.mergedTo != "" {
		// Linked before: its history already lives with the earlier
		// target. Only the link moves.
		return nil
	}

	ds, dh := e.shardOf(dest)
	ds.mu.Lock()
	ds.captureLocked()
	dslot, _ := ds.slotLocked(dest, dh, destAnon, true)
	dp := ds.editLocked(dslot)
	dp.merge(&moved, e.opts.AffinityHalfLife.Seconds(), &e.opts)
	dp.links = appendUnique(dp.links, id.AnonymousID)
	ds.writeLocked(dslot, dp)
	ds.mu.Unlock()
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
	for _, s := range o.shown {
		pr.addShown(s.p, s.t, 0, opts.MaxImpressions)
	}
	for _, x := range o.excl {
		pr.exclude(x.p, max32(x.t, pr.exclusionOf(x.p)), opts.MaxExclusions)
	}
	for _, c := range o.camps {
		if _, ok := pr.campaign(c.name); !ok {
			pr.setCampaign(c, math.MaxUint32, opts.MaxCampaigns)
		}
	}
	for _, l := range o.links {
		pr.links = appendUnique(pr.links, l)
	}
}

// exclusionOf returns until when p is excluded for this actor, else 0.
func (pr *profile) exclusionOf(p uint32) uint32 {
	for _, x := range pr.excl {
		if x.p == p {
			return x.t
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

// Stats is a snapshot of the engine's counters, for metrics.
type Stats struct {
	Products  int
	SKUs      int
	Locations int
	Facets    int
	Profiles  int
	// ProfileBytes is the size of the profiles' encodings: what the state
	// holds, whatever its history. The arenas that hold them are larger,
	// by the room left for growth and the bytes awaiting compaction.
	ProfileBytes int64
	Events       [numEventTypes]uint64
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
		st.Profiles += len(s.refs)
		st.ProfileBytes += int64(s.encoded)
		s.mu.RUnlock()
	}
	for i := range e.applied {
		st.Events[i] = e.applied[i].Load()
	}
	return st
}

// String describes the engine briefly, for logs.
func (e *Engine) String() string {
	st := e.Stats()
	return fmt.Sprintf("engine{products=%d skus=%d locations=%d profiles=%d}", st.Products, st.SKUs, st.Locations, st.Profiles)
}
