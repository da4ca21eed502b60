package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/omnipick/omnipick/engine/profile"
)

// applyExclusion keeps a product out of one actor's picks, or everyone's,
// until a time. A partial engine keeps an actor's exclusions if it holds
// the actor (editProfile).
func (e *Engine) applyExclusion(x *Exclusion) error {
	if x.Product == "" {
		return fieldErr("product", ErrMissingField)
	}
	if x.Customer != "" && x.AnonymousID != "" {
		return fieldErr("customer", ErrBothActors)
	}
	until := secsCeil(x.Until)
	if x.Customer == "" && x.AnonymousID == "" {
		e.mu.Lock()
		defer e.mu.Unlock()
		it, ok := e.idx.Item(x.Product)
		if !ok {
			return fieldErr("product", ErrUnknownProduct)
		}
		if e.excluded == nil {
			e.excluded = make(map[uint32]uint32)
		}
		e.excluded[it.Dense] = until
		return nil
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	it, ok := e.idx.Item(x.Product)
	if !ok {
		return fieldErr("product", ErrUnknownProduct)
	}
	return e.editProfile(x.Customer, x.AnonymousID, func(pr *profile.Profile) {
		pr.Exclude(it.Dense, until, e.opts.MaxExclusions)
	})
}

// editProfile applies edit to the profile now holding the history of the
// customer or anonymous id (following links), creating it if need be.
// e.mu must be held shared.
func (e *Engine) editProfile(customer, anonymousID string, edit func(pr *profile.Profile)) error {
	actor, anon := actorOf(customer, anonymousID)
	if e.opts.Holds != nil {
		if target, _ := e.profiles.Resolve(actor, anon); !e.opts.Holds(target) {
			return nil // a partial engine edits the profiles it holds
		}
	}
	if err := e.profiles.Edit(actor, anon, edit); err != nil {
		return profilesFull(err)
	}
	return nil
}

// applyCampaign stores the slots an email campaign showed an actor.
func (e *Engine) applyCampaign(c *Campaign) error {
	if c.Name == "" {
		return fieldErr("campaign", ErrMissingField)
	}
	switch {
	case c.Customer != "" && c.AnonymousID != "":
		return fieldErr("customer", ErrBothActors)
	case c.Customer == "" && c.AnonymousID == "":
		return fieldErr("customer", ErrUnknownActor)
	}
	if len(c.Products) > MaxK {
		return fieldErr("products", fmt.Errorf("%w: a campaign holds at most %d products", ErrBadValue, MaxK))
	}
	if c.TS == 0 {
		c.TS = e.nowMS()
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	items := make([]uint32, 0, len(c.Products))
	for _, id := range c.Products {
		it, ok := e.idx.Item(id)
		if !ok {
			return fieldErr("products", ErrUnknownProduct)
		}
		items = append(items, it.Dense)
	}
	camp := profile.Campaign{Name: strings.Clone(c.Name), T: secs(c.TS), Items: items}
	return e.editProfile(c.Customer, c.AnonymousID, func(pr *profile.Profile) {
		pr.SetCampaign(camp, uint32(e.opts.CampaignTTL.Seconds()), e.opts.MaxCampaigns)
	})
}

// actorOf returns the actor named by a customer or anonymous id.
func actorOf(customer, anonymousID string) (string, bool) {
	if customer != "" {
		return customer, false
	}
	return anonymousID, true
}

// secsCeil is secs rounding up, so that "until" never ends early.
func secsCeil(ms int64) uint32 {
	if ms <= 0 {
		return 0
	}
	return secs(ms + 999)
}

// CampaignPicksInto answers an email campaign: the same picks for the same
// actor and campaign within Options.CampaignTTL, so a re-opened email shows
// what it showed. A slot whose item is no longer eligible (sold out in her
// size, bought since, excluded, retired) is replaced by a fresh pick; the
// others keep their places. The first open, an expired campaign or a
// replacement returns the Campaign record to apply (through the log, so it
// survives restarts); otherwise rec is nil. The caller must make the
// record durable before it is shown, or accept that the next open may
// choose again.
//
// Unlike PicksInto, it allocates: email opens are not the hot path.
func (e *Engine) CampaignPicksInto(dst []Pick, q *Query, name string) (_ []Pick, rec *Record) {
	actor, anon := actorOf(q.Customer, q.AnonymousID)
	if actor == "" || name == "" {
		return e.PicksInto(dst, q), nil
	}
	k := q.k()
	nowMS := q.Now
	if nowMS == 0 {
		nowMS = e.nowMS()
	}
	var stored profile.Campaign
	found := false
	var pr profile.Profile // a profile of its own: stored outlives the call
	if ra, rAnon := e.profiles.Resolve(actor, anon); e.profiles.Read(ra, rAnon, &pr, true) {
		stored, found = pr.Campaign(name)
	}

	ttl := uint32(e.opts.CampaignTTL.Seconds())
	if !found || uint64(stored.T)+uint64(ttl) < uint64(secs(nowMS)) {
		base := len(dst)
		dst = e.PicksInto(dst, q)
		return dst, campaignRecord(q, name, dst[base:], nowMS)
	}

	// Keep the slots still eligible, in their places.
	base := len(dst)
	kept, holes := e.keepEligible(dst, q, stored.Items[:min(len(stored.Items), k)])
	dst = kept
	want := holes
	if n := min(len(stored.Items), k); n < k {
		want += k - n // the campaign asked for fewer: top up
	}
	if want == 0 {
		return dst, nil
	}
	fq := *q
	fq.K = min(want, MaxK)
	fq.Exclude = e.appendItemIDs(slices.Clone(q.Exclude), stored.Items)
	fresh := e.PicksInto(nil, &fq)
	// Fill the holes in slot order, then append the top-up.
	slotsPicks := slices.Clone(dst[base:]) // out overwrites dst from base on
	out := dst[:base]
	next := 0
	j := 0
	for i := range min(len(stored.Items), k) {
		if j < len(slotsPicks) && slotsPicks[j].Item.Dense == stored.Items[i] {
			out = append(out, slotsPicks[j])
			j++
			continue
		}
		if next < len(fresh) {
			out = append(out, fresh[next])
			next++
		}
	}
	out = append(out, fresh[next:]...)
	return out, campaignRecord(q, name, out[base:], int64(stored.T)*1000)
}

// campaignRecord returns the Campaign record of picks, first chosen at
// ts. Its strings are copies: q's may view a request buffer.
func campaignRecord(q *Query, name string, picks []Pick, ts int64) *Record {
	c := Campaign{Customer: strings.Clone(q.Customer), AnonymousID: strings.Clone(q.AnonymousID), Name: strings.Clone(name), TS: ts}
	c.Products = make([]string, len(picks))
	for i, p := range picks {
		c.Products[i] = p.Item.ID
	}
	return &Record{Op: OpCampaign, Campaign: c}
}

// appendItemIDs appends the external ids of dense product ids, under one
// read lock.
func (e *Engine) appendItemIDs(dst []string, ps []uint32) []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, p := range ps {
		if it := e.idx.ItemAt(p); it != nil {
			dst = append(dst, it.ID)
		}
	}
	return dst
}

// keepEligible appends to dst, in order, the items that still pass q's
// hard filters, each scored as PicksInto would; holes counts the others.
func (e *Engine) keepEligible(dst []Pick, q *Query, items []uint32) (_ []Pick, holes int) {
	pk := e.pickers.Get().(*picker)
	defer e.pickers.Put(pk)
	pk.begin(e, q)
	e.mu.RLock()
	defer e.mu.RUnlock()
	// The same personal sources as PicksInto, so a kept slot keeps the
	// reason and relation strength it was chosen for (scoring it on cart
	// and views alone turned a related scarf into "affinity" at reopen).
	if !e.preparePersonal(pk, q) {
		return dst, len(items)
	}
	for _, p := range items {
		it := e.idx.ItemAt(p)
		if !pk.eligible(e, it) {
			holes++
			continue
		}
		flags, rel := pk.sourceOf(p)
		score, reason, _ := pk.score(e, it, flags, rel)
		dst = append(dst, pk.pick(cand{item: it, score: score, reason: reason}, e.idx))
	}
	return dst, holes
}
