package engine

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/omnipick/omnipick/engine/profile"
)

// A partial engine (Options.Holds set) is a node of a partitioned cluster
// (issue 14): it applies every record, as every node does, but keeps the
// profiles of only the actors it holds, and the global effects of the
// events it holds become records of their own, derived records, that the
// owner of the actor's partition publishes and every node applies in
// stream order. The global signals (relations, popularity, top lists,
// baskets, scans, counters) then change only through those records: same
// derived records in the same order, same global signals, byte for byte,
// on every node; and picks equal those of a single engine fed the same
// records, once the derived records are applied where a single engine
// applied the event's signals.
//
// With Holds set:
//
//   - OpEvent: the same checks and verdicts on every node (event ids are
//     reserved everywhere). If the actor, links followed, is held, its
//     profile is edited as Apply always does and the event's global
//     effect is not applied but derived: an OpSignal record. Otherwise
//     nothing changes. ErrProfilesFull comes only from a holder (and only
//     with Options.MaxProfiles, see below).
//   - OpSignal: applied by every engine, Holds set or not: the
//     popularity rebase check, relations, popularity, top lists, baskets,
//     scans and counters, as Apply of the event would have.
//   - OpIdentify: the links are global. Every node writes the anonymous
//     id's forward link, and keeps the destination's list of linked ids
//     (profile.Profile.Links: an actor it does not hold keeps an entry
//     with that list alone, a link-only profile), so that every node
//     resolves later events alike, and erasures remove the same links.
//     The history leaves the anonymous id, and every holder of the
//     anonymous id derives an OpMerge carrying it (owner and standby
//     derive the same record).
//   - OpMerge: applied by every engine that holds the destination (the
//     target, links followed at apply), the anonymous id's holders too:
//     all of them merge at the same point of the stream, and so keep the
//     same profile whatever came between the identify and the merge.
//     Elsewhere, and without Holds (a single engine merged at the
//     identify), nothing.
//   - OpCampaign, an actor's OpExclusion: applied by the actor's holders
//     only. OpErase: the actor's profile on its holders, its links
//     everywhere; an actor not held is not known to be unknown, so only
//     holders answer ErrUnknownActor. Its part in the scans and baskets
//     goes through a derived OpForget, applied by every engine: after the
//     signal records of the actor's earlier events, which may reach the
//     stream after the erasure itself.
//     OpExpire: a node drops the expired anonymous profiles it holds; the
//     entries of links it keeps for ids it does not hold go when the
//     ids' owner derives an OpExpire naming each (see applyExpire).
//
// Catalog, stock, locations and global exclusions are applied by every
// node as always.
//
// Options.MaxProfiles on a partial engine caps each node on its own, the
// entries of links it keeps for every actor included: which profiles and
// link entries a full shard evicts then depends on what the node holds,
// and nodes may come to resolve an anonymous id differently. A cluster
// that needs its nodes to agree leaves it at 0 (the default) and relies
// on Expire. Derived records are kept until TakeDerived; a snapshot does
// not hold them: take them (and publish them) before a snapshot's
// position counts as applied.

// Derived is a record the engine produced while applying records with
// Options.Holds set: what the owner of Actor's partition publishes for
// every node to apply.
type Derived struct {
	// Index is the index of the record that produced it, within the Apply
	// (0) or ApplyBatch call.
	Index int
	// Actor is the actor whose partition the record belongs to: the
	// actor, links followed, for a signal; the anonymous id for a merge.
	Actor string
	Rec   Record
}

// Signal is one event's effect beyond its actor's profile (OpSignal): the
// relations between its product and the actor's recent items (Anchors,
// read from the profile by its holder), popularity and the top lists, the
// buyer's basket, the latest scan at a location and the event counters.
// Products and facets are dense ids: every node has the same catalog
// records in the same order.
type Signal struct {
	// Type is the event's; 0 marks a clock-only signal: the popularity
	// rebase check of an event rejected after it (see derivedClock),
	// every other field zero but T.
	Type      EventType
	Product   uint32   // dense product id
	Facets    []uint32 // the product's facets when the event happened
	T         uint32   // the event's time, unix seconds
	Weight    float32  // popularity weight (Options.EventWeights)
	RelWeight float32  // relation weight (relationWeight)
	Anchors   []Anchor // at most 64
	Buyer     string   // the customer whose basket a purchase joins; "" for none
	ScanAt    string   // the location of a scan; "" for none
	Scan      Scan     // the scan at ScanAt (Seq is the receiver's)
}

// Anchor is one of the actor's recent items an event relates to, with the
// strength of the anchor's own event kind.
type Anchor struct {
	Product uint32 // dense product id
	Weight  float32
}

// Merge is an anonymous id's history moving to another partition's actor
// (OpMerge): its holder linked it, and the holders of the destination
// merge Profile into it.
type Merge struct {
	AnonymousID string
	Target      string // a customer, or with TargetAnon an anonymous id
	TargetAnon  bool
	// Profile is the history moved, in the profile encoding of version
	// ProfileVersion (package profile).
	ProfileVersion byte
	Profile        []byte
}

// ErrBadSignal is Apply's error for an OpSignal or OpMerge whose content
// does not fit the engine (a product, facet or count out of range, a bad
// profile): wrapped with what is wrong.
var ErrBadSignal = errors.New("engine: bad derived record")

// ErrPartialBlend is New's refusal of Options.Blend with Options.Holds:
// the blend's step reads the global signals at the time of a purchase,
// which a partial node sees at another point of the stream. The engine New
// returns then applies nothing: Apply returns this error (Check reports it
// before).
var ErrPartialBlend = errors.New("engine: the learned blend (Blend) cannot run on a partial engine (Holds)")

// Check reports an Options combination New refuses.
func (o Options) Check() error {
	if o.Holds != nil && o.Blend {
		return fmt.Errorf("options: %w", ErrPartialBlend)
	}
	return nil
}

// derivedLog is what a partial engine derived since the last TakeDerived.
type derivedLog struct {
	mu   sync.Mutex
	recs []Derived
}

func (d *derivedLog) add(index int, actor string, rec Record) {
	d.mu.Lock()
	d.recs = append(d.recs, Derived{Index: index, Actor: actor, Rec: rec})
	d.mu.Unlock()
}

// TakeDerived appends the derived records produced since the last call,
// in record order, to dst and forgets them. Without Options.Holds there
// are none.
func (e *Engine) TakeDerived(dst []Derived) []Derived {
	d := &e.derived
	d.mu.Lock()
	defer d.mu.Unlock()
	dst = append(dst, d.recs...)
	clear(d.recs)
	d.recs = d.recs[:0]
	return dst
}

// signalOf returns u as a Signal, its slices copies.
func signalOf(u *signalUpdate) Signal {
	// The strings may view a request's buffer: the record outlives it.
	s := Signal{
		Type: u.typ, Product: u.p, Facets: slices.Clone(u.facets), T: u.t, Weight: u.w, RelWeight: u.relW,
		Buyer: strings.Clone(u.buyer), ScanAt: strings.Clone(u.scanAt), Scan: u.scan,
	}
	s.Scan.Customer, s.Scan.AnonymousID = strings.Clone(s.Scan.Customer), strings.Clone(s.Scan.AnonymousID)
	if u.nAnchors > 0 {
		s.Anchors = make([]Anchor, u.nAnchors)
		for i, a := range u.anchors[:u.nAnchors] {
			s.Anchors[i] = Anchor{Product: a.p, Weight: a.w}
		}
	}
	return s
}

// updateOf fills u from s, checking it against the catalog. The caller
// holds Engine.mu shared.
func (e *Engine) updateOf(u *signalUpdate, s *Signal) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: signal: %s", ErrBadSignal, fmt.Sprintf(format, args...))
	}
	if int(s.Type) >= numEventTypes {
		return bad("event type %d", s.Type)
	}
	if s.Type == 0 && (s.Product != 0 || len(s.Facets) > 0 || len(s.Anchors) > 0 || s.Weight != 0 || s.RelWeight != 0 || s.Buyer != "" || s.ScanAt != "") {
		return bad("a clock-only signal with content")
	}
	products, facets := uint32(e.idx.Products()), uint32(len(e.tops))
	if s.Type != 0 && s.Product >= products {
		return bad("product %d of %d", s.Product, products)
	}
	for _, f := range s.Facets {
		if f >= facets {
			return bad("facet %d of %d", f, facets)
		}
	}
	if len(s.Anchors) > len(u.anchors) {
		return bad("%d anchors", len(s.Anchors))
	}
	if !finite32(s.Weight) || !finite32(s.RelWeight) {
		return bad("weight not finite")
	}
	for i, a := range s.Anchors {
		if a.Product >= products || !finite32(a.Weight) {
			return bad("anchor %d: product %d of %d, weight %v", i, a.Product, products, a.Weight)
		}
		u.anchors[i] = relEntry{p: a.Product, w: a.Weight}
	}
	u.typ, u.p, u.facets, u.t, u.w, u.relW, u.nAnchors = s.Type, s.Product, s.Facets, s.T, s.Weight, s.RelWeight, uint8(len(s.Anchors))
	u.buyer, u.scanAt, u.scan = s.Buyer, s.ScanAt, s.Scan
	u.scan.Seq = 0
	return nil
}

func finite32(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }

// applyEventPartial is applyEvent with Options.Holds set, for a checked
// event stamped with its time: the profile edit if the engine holds the
// actor (links followed), and the signal update derived rather than
// applied.
func (e *Engine) applyEventPartial(ev *Event, actor string, anon bool, index int) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	target, targetAnon := e.profiles.Resolve(actor, anon)
	held := e.opts.Holds(target)
	var x eventEdit
	if err := e.startEdit(&x, ev, ev.TS); err != nil {
		if held {
			e.deriveClock(index, target, x.t)
		}
		return err
	}
	if !held {
		return nil
	}
	var u signalUpdate
	anchors := u.anchors[:0:e.opts.EventAnchors]
	if err := e.profiles.Edit(actor, anon, func(pr *profile.Profile) { anchors = x.editProfile(pr, anchors) }); err != nil {
		e.deriveClock(index, target, x.t)
		return profilesFull(err)
	}
	x.signals(&u, ev, len(anchors), target, targetAnon)
	e.derived.add(index, strings.Clone(target), Record{Op: OpSignal, Signal: signalOf(&u)})
	return nil
}

// deriveClock derives the clock-only signal of an event rejected after
// Apply's popularity rebase check, if the check would rebase: a single
// engine rebases for it, and the nodes of a cluster rebase only on
// signals. (Whether it would is judged on this node's popularity, which
// may lag the stream of signals; a node that skips it leaves the
// rebase to the next signal, a few ulps apart at worst.)
func (e *Engine) deriveClock(index int, actor string, t uint32) {
	if e.pop.needsRebase(t) {
		e.derived.add(index, strings.Clone(actor), Record{Op: OpSignal, Signal: Signal{T: t}})
	}
}

// applySignal applies one event's signal update (OpSignal), as applyEvent
// applies it: the popularity rebase check, then relations and the rest.
func (e *Engine) applySignal(s *Signal) error {
	var u signalUpdate
	e.mu.RLock()
	err := e.updateOf(&u, s)
	e.mu.RUnlock()
	if err != nil {
		return err
	}
	if e.pop.needsRebase(u.t) {
		e.rebasePopularity(u.t)
	}
	if u.typ == 0 {
		return nil // clock only
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	e.applySignals(&u)
	return nil
}

// applyMerge merges an anonymous id's history that its holder took out
// (OpMerge) into the destination, on an engine that holds the destination
// (the target, links followed now).
func (e *Engine) applyMerge(m *Merge) error {
	if m.AnonymousID == "" || m.Target == "" {
		return fmt.Errorf("%w: merge: missing anonymous id or target", ErrBadSignal)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	var moved profile.Profile
	if err := moved.Decode(m.Profile, m.ProfileVersion, uint32(e.idx.Facets()), uint32(e.idx.Products())); err != nil {
		return fmt.Errorf("%w: merge of %q: %w", ErrBadSignal, m.AnonymousID, err)
	}
	if e.opts.Holds == nil {
		return nil // a single engine merged at the identify
	}
	dest, destAnon := e.profiles.Resolve(m.Target, m.TargetAnon)
	if !e.opts.Holds(dest) {
		return nil
	}
	// An erasure between the identify and this record (of the anonymous
	// id, whose link went, or of the destination, whose entry the
	// identify made on every node went) leaves the history nowhere to
	// go: merging it would bring the erased actor back.
	if to, toAnon := e.profiles.Resolve(m.AnonymousID, true); to == m.AnonymousID && toAnon {
		return nil
	}
	var pr profile.Profile
	if !e.profiles.Read(dest, destAnon, &pr, false) {
		return nil
	}
	return profilesFull(e.profiles.Merge(m.AnonymousID, dest, destAnon, &moved))
}

// deriveMerge derives the OpMerge of an anonymous id's history (moved,
// its encoding) that leaves it for target's holders.
func (e *Engine) deriveMerge(index int, anonID, target string, targetAnon bool, moved []byte) {
	m := Merge{
		AnonymousID: strings.Clone(anonID), Target: strings.Clone(target), TargetAnon: targetAnon,
		ProfileVersion: profile.Version, Profile: moved,
	}
	e.derived.add(index, m.AnonymousID, Record{Op: OpMerge, Merge: m})
}
