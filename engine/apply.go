package engine

import (
	"errors"
	"slices"

	"github.com/omnipick/omnipick/engine/profile"
	"github.com/omnipick/omnipick/index"
)

// Apply applies one state change. It is the only way state changes: HTTP
// writes, WAL replay and evaluation replays all call it. An event with
// TS == 0 is stamped with Options.Now; callers that log records stamp them
// first, so replay gives the same state. A rejected record changes nothing
// and returns an error, a *FieldError where one input field is at fault.
// ApplyBatch applies many records with the same result as Apply on each
// in turn, faster on several cores.
//
// A record with an EventID (events, identify, exclusions) whose id was
// applied within Options.EventIDWindow changes nothing and returns
// ErrDuplicate; a rejected record does not use up its id.
func (e *Engine) Apply(r *Record) error { return e.applyAt(r, 0) }

// applyAt is Apply of the record at index in its Apply or ApplyBatch call
// (the Index of what it derives).
func (e *Engine) applyAt(r *Record, index int) error {
	if e.refused != nil {
		return e.refused
	}
	if r.EventID != "" {
		switch r.Op {
		case OpEvent, OpIdentify, OpExclusion:
		default:
			return fieldErr("event_id", ErrNoEventID)
		}
		h := hashEventID(r.EventID)
		if !e.ids.reserve(h, secs(r.Received)) {
			return ErrDuplicate
		}
		err := e.apply(r, index)
		if err != nil {
			e.ids.release(h)
		}
		return err
	}
	return e.apply(r, index)
}

func (e *Engine) apply(r *Record, index int) error {
	switch r.Op {
	case OpProduct:
		return e.applyProduct(&r.Product)
	case OpInventory:
		return e.applyInventory(&r.Inventory)
	case OpEvent:
		return e.applyEvent(&r.Event, index)
	case OpIdentify:
		return e.applyIdentify(&r.Identify, index)
	case OpLocation:
		return e.applyLocation(&r.Location)
	case OpExclusion:
		return e.applyExclusion(&r.Exclusion)
	case OpCampaign:
		return e.applyCampaign(&r.Campaign)
	case OpErase:
		return e.applyErase(&r.Erase, index)
	case OpForget:
		return e.applyForget(&r.Erase)
	case OpExpire:
		return e.applyExpire(&r.Expire, index)
	case OpSignal:
		return e.applySignal(&r.Signal)
	case OpMerge:
		return e.applyMerge(&r.Merge)
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
		Tags: p.Tags, SizeGroup: p.SizeGroup, Active: !p.Inactive, ProductGroup: p.Group,
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
		ls := e.pop.value(it.Dense)
		for _, f := range old.Facets {
			if !slices.Contains(it.Facets, f) {
				e.tops[f].offer(it.Dense, 0, 0, false)
			}
		}
		if ls != 0 {
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

func (e *Engine) applyEvent(ev *Event, index int) error {
	actor, anon, err := checkEventActor(ev)
	if err != nil {
		return err
	}
	// An event without a time is stamped now, before the popularity
	// rebase it may cause (ApplyBatch stamps in admitBatchEvent).
	if ev.TS == 0 {
		ev.TS = e.nowMS()
	}
	if e.opts.Holds != nil {
		return e.applyEventPartial(ev, actor, anon, index)
	}
	if e.pop.needsRebase(secs(ev.TS)) { // rare: once every 64 half-lives of time
		e.rebasePopularity(secs(ev.TS))
	}

	e.mu.RLock()
	defer e.mu.RUnlock()
	var x eventEdit
	if err := e.startEdit(&x, ev, ev.TS); err != nil {
		return err
	}
	var examples *picker // the learned blend's, gathered before the purchase changes anything
	if ev.Type == EventPurchase && e.opts.Blend {
		examples = e.blendExamples(ev, x.it.Dense)
	}
	// The anchors live in u, on this stack: editProfile returns them
	// rather than store them through a pointer, which would move the
	// buffer to the heap.
	var u signalUpdate
	anchors := u.anchors[:0:e.opts.EventAnchors]
	if err := e.profiles.Edit(actor, anon, func(pr *profile.Profile) { anchors = x.editProfile(pr, anchors) }); err != nil {
		e.blendStep(examples, false)
		return profilesFull(err)
	}
	e.blendStep(examples, true)
	target, targetAnon := actor, anon
	if ev.Type == EventPurchase && e.opts.NeighbourWeight > 0 {
		target, targetAnon = e.profiles.Resolve(actor, anon)
	}
	x.signals(&u, ev, len(anchors), target, targetAnon)
	e.applySignals(&u)
	return nil
}

// signalUpdate is what one event changes beyond its actor's profile: the
// relations between its product and the anchors (the actor's recent items,
// read from the profile by editProfile), popularity and the top lists, the
// buyer's basket for the neighbour signal, the latest scan at a location
// and the event counters. It is a value of its own, needing no profile to
// apply: ApplyBatch edits the profiles of different actors in parallel and
// then applies these, each relation list and every other signal in record
// order (relate, applyOrdered), and it is also what a partitioned
// cluster's owner of an actor would publish to the other nodes (issue 14:
// owners publish the signal updates their events produce), since every
// node keeps the catalog signals whole.
type signalUpdate struct {
	typ    EventType
	p      uint32   // dense product id
	facets []uint32 // the product's facets, for the top lists
	t      uint32   // unix seconds
	w      float32  // popularity weight (EventWeights)
	relW   float32  // relation weight (relationWeight)
	buyer  string   // the customer whose basket a purchase joins; "" for none
	scanAt string   // the location of a scan; "" for none
	scan   Scan
	// The anchors are held here rather than by a slice: a slice would
	// send the buffer to the heap, as the strings above go there.
	anchors  [maxSignalAnchors]relEntry
	nAnchors uint8
}

// signals fills u, but for its anchors (already in u.anchors), with the
// signal update of an event whose profile edit found n anchors. target is
// the profile the edit went to (links followed), for the buyer of a
// purchase.
func (x *eventEdit) signals(u *signalUpdate, ev *Event, n int, target string, targetAnon bool) {
	u.typ, u.p, u.facets, u.t, u.w, u.relW, u.nAnchors = x.typ, x.p, x.it.Facets, x.t, x.w, x.relW, uint8(n)
	u.buyer, u.scanAt, u.scan = "", "", Scan{}
	if x.typ == EventPurchase && x.o.NeighbourWeight > 0 && !targetAnon { // baskets are customers'
		u.buyer = target
	}
	if x.typ == EventScan && ev.Location != "" {
		u.scanAt = ev.Location
		u.scan = Scan{Product: x.it.ID, Customer: ev.Customer, AnonymousID: ev.AnonymousID, TS: ev.TS}
	}
}

// applySignals applies an event's signal update. The caller holds
// Engine.mu shared.
func (e *Engine) applySignals(u *signalUpdate) {
	e.relate(u, allParts)
	e.applyOrdered(u)
}

// applyOrdered applies what of a signal update depends on the order of
// all events: popularity, top lists, baskets, scans, counters. The caller
// holds Engine.mu shared.
func (e *Engine) applyOrdered(u *signalUpdate) {
	e.learn(u)
	if u.buyer != "" {
		e.nb.record(u.buyer, u.p, u.t, 1)
	}
	if u.scanAt != "" {
		e.scans.record(u.scanAt, u.scan)
	}
	e.applied[u.typ].Add(1)
}

// checkEventActor checks an event's type and actor and returns the
// actor.
func checkEventActor(ev *Event) (actor string, anon bool, err error) {
	if ev.Type == 0 || int(ev.Type) >= numEventTypes {
		return "", false, fieldErr("type", ErrBadEventType)
	}
	return checkedActor(ev.Customer, ev.AnonymousID)
}

// startEdit fills x for a checked event at time ts (unix milliseconds),
// resolving its product. The caller holds Engine.mu shared. On an error
// x.t is still the event's time.
func (e *Engine) startEdit(x *eventEdit, ev *Event, ts int64) error {
	*x = eventEdit{typ: ev.Type, t: secs(ts), o: &e.opts, weights: &e.weights, capHorizon: e.capHorizon}
	if err := x.resolveItem(e.idx, ev); err != nil {
		return err
	}
	x.w = e.opts.EventWeights[ev.Type]
	x.relW = relationWeight(ev.Type)
	return nil
}

// checkedActor returns the actor of an event or erasure from its customer
// and anonymous id: the customer, or the anonymous id (anon), never both
// (actorOf, unchecked, is for requests validated before).
func checkedActor(customer, anonymousID string) (id string, anon bool, err error) {
	switch {
	case customer != "" && anonymousID != "":
		return "", false, fieldErr("customer", ErrBothActors)
	case anonymousID != "":
		return anonymousID, true, nil
	case customer == "":
		return "", false, fieldErr("customer", ErrUnknownActor)
	}
	return customer, false, nil
}

// relationWeight is how strongly an event of type typ relates its product
// to the actor's recent items: views 1, cart adds 2, purchases 3, others
// not at all.
func relationWeight(typ EventType) float32 {
	switch typ {
	case EventView, EventScan, EventEmailClick, EventAdClick:
		return 1
	case EventCartAdd:
		return 2
	case EventPurchase:
		return 3
	}
	return 0
}

// eventEdit is what one event changes: its actor's profile (editProfile,
// under the profile's shard lock), then relations and popularity (learn).
type eventEdit struct {
	typ        EventType
	it         *index.Item
	p          uint32 // dense product id
	sku        uint32 // dense SKU id; profile.NoSKU when no size was chosen
	sizeKey    uint32 // the SKU's size; index.OneSize for none
	t          uint32 // unix seconds
	w          float32
	relW       float32
	o          *Options
	weights    *profile.FacetWeights
	capHorizon uint32
}

// resolveItem finds the event's product and, from the SKU, its size. The
// caller holds Engine.mu.
func (x *eventEdit) resolveItem(idx *index.Index, ev *Event) error {
	variant := -1
	if ev.SKU != "" {
		var ok bool
		x.it, variant, ok = idx.SKU(ev.SKU)
		if !ok {
			return fieldErr("sku", ErrUnknownSKU)
		}
		if ev.Product != "" && ev.Product != x.it.ID {
			return fieldErr("sku", ErrSKUMismatch)
		}
	} else {
		if ev.Product == "" {
			return fieldErr("product", ErrMissingField)
		}
		var ok bool
		if x.it, ok = idx.Item(ev.Product); !ok {
			return fieldErr("product", ErrUnknownProduct)
		}
		if len(x.it.Variants) == 1 {
			variant = 0 // a one-variant product needs no SKU to say which
		}
	}
	x.p = x.it.Dense
	x.sku, x.sizeKey = profile.NoSKU, index.OneSize
	if variant >= 0 {
		x.sku, x.sizeKey = x.it.Variants[variant].Dense, x.it.Variants[variant].SizeKey
	}
	return nil
}

// editProfile updates the actor's profile, first appending to anchors the
// recent items the event's product relates to. It runs under the profile's
// shard lock (profile.Store.Edit).
func (x *eventEdit) editProfile(pr *profile.Profile, anchors []relEntry) []relEntry {
	o := x.o
	if x.relW > 0 {
		anchors = appendAnchors(pr, anchors, x.p, x.t, uint32(o.ViewWindow.Seconds()), uint32(o.PurchaseWindow.Seconds()))
	}
	pr.DecayTo(x.t, o.AffinityHalfLife.Seconds())
	if x.w != 0 {
		pr.AddAffinity(x.it.Facets, x.w, x.weights, o.MaxAffinity)
	}
	if ttl := uint32(o.CartTTL.Seconds()); x.t > ttl {
		pr.ExpireCart(x.t - ttl)
	}
	switch x.typ {
	case EventView, EventScan, EventEmailClick, EventAdClick:
		pr.AddView(x.p, x.t, o.MaxViews)
	case EventCartAdd:
		pr.AddCart(x.sku, x.p, x.t, o.MaxCart)
		x.learnSize(pr, false)
	case EventCartRemove:
		pr.RemoveCart(x.sku, x.p)
	case EventPurchase:
		pr.AddPurchase(x.p, x.t, o.MaxPurchases)
		pr.RemoveCart(profile.NoSKU, x.p)
		x.learnSize(pr, true)
	case EventReturn:
		pr.RemovePurchase(x.p)
		if x.sizeKey != index.OneSize {
			pr.ForgetSize(x.it.Group, x.sizeKey)
		}
	case EventImpression:
		pr.AddShown(x.p, x.t, x.t-min(x.t, x.capHorizon), o.MaxImpressions)
	}
	return anchors
}

// learnSize records the size chosen, if the product has sizes.
func (x *eventEdit) learnSize(pr *profile.Profile, purchase bool) {
	if x.sizeKey != index.OneSize {
		pr.LearnSize(x.it.Group, x.sizeKey, x.t, purchase, x.o.MaxSizes)
	}
}

// relParts is how many parts the relation lists are cut into for
// ApplyBatch (relPart); allParts selects every one.
const (
	relParts = 8
	allParts = 1<<relParts - 1
)

// relPart returns the part of product p's relation list. Each list
// depends only on the order of its own updates, so the parts can be
// updated in parallel, each in event order. p's stripe lock (p % stripes)
// determines the part: parts take disjoint locks.
func relPart(p uint32) uint32 { return p % relParts }

// relate updates the relations between the product and the anchors, in
// the lists of the parts in mask (a bit per relPart). The caller holds
// Engine.mu shared.
func (e *Engine) relate(x *signalUpdate, mask uint32) {
	anchors := x.anchors[:x.nAnchors]
	if mask&(1<<relPart(x.p)) != 0 {
		e.rel.addAll(x.p, anchors, x.relW)
	}
	for _, a := range anchors {
		if mask&(1<<relPart(a.p)) != 0 {
			e.rel.add(a.p, x.p, min(x.relW, a.w))
		}
	}
}

// learn updates popularity and the top lists after the profile. The
// caller holds Engine.mu shared.
func (e *Engine) learn(x *signalUpdate) {
	if x.w != 0 {
		ls := e.pop.add(x.p, float64(x.w), x.t)
		for _, f := range x.facets {
			e.tops[f].offer(x.p, ls, e.opts.TopPerFacet, x.w > 0)
		}
		e.global.offer(x.p, ls, e.opts.TopGlobal, x.w > 0)
	}
}

// appendAnchors appends pr's recent items that a new event on
// product p at time t relates to, each with the strength of its own event
// kind: views 1, cart 2, purchases 3.
func appendAnchors(pr *profile.Profile, dst []relEntry, p, t, viewWin, buyWin uint32) []relEntry {
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
	var recent [64]profile.Stamp
	n := 0
	room := cap(dst) - len(dst)
	for _, s := range pr.Purchased {
		if s.T+buyWin < t || s.P == p || room == 0 {
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
	slices.SortFunc(recent[:n], func(a, b profile.Stamp) int {
		if newer(a, b) {
			return -1
		}
		return 1
	})
	for _, s := range recent[:n] {
		add(s.P, 3)
	}
	for i := len(pr.Cart) - 1; i >= 0; i-- {
		add(pr.Cart[i].P, 2)
	}
	for i := len(pr.Views) - 1; i >= 0; i-- {
		if s := pr.Views[i]; s.T+viewWin >= t {
			add(s.P, 1)
		}
	}
	return dst
}

// newer orders purchases by time, then by dense product id, newest first.
func newer(a, b profile.Stamp) bool { return a.T > b.T || (a.T == b.T && a.P > b.P) }

func (e *Engine) applyIdentify(id *Identify, index int) error {
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
	moved, err := e.profiles.LinkHeld(id.AnonymousID, target, targetAnon, e.opts.Holds)
	if err != nil {
		if errors.Is(err, profile.ErrFull) {
			return profilesFull(err)
		}
		return fieldErr("to_anonymous_id", ErrIdentifyCycle)
	}
	if moved != nil { // a partial engine's history travelling to its destination's holders
		e.deriveMerge(index, id.AnonymousID, target, targetAnon, moved)
	}
	return nil
}
