package engine

import (
	"errors"
	"slices"
	"sync/atomic"

	"github.com/omnipick/omnipick/index"
)

// Removing profiles: erasure on request (OpErase), expiry of anonymous
// profiles (OpExpire) and the profile cap (Options.MaxProfiles). The
// shards' dictionaries only grow, so a shard that drops profiles is
// rebuilt: new dictionaries, slot arrays and arena holding the profiles
// that stay, in their old order. That takes time in proportion to the
// shard's profiles, under its lock: erasures are rare, expiry runs once an
// hour and drops all it can at once, and the cap drops an eighth of a full
// shard's share at a time, so the cost per profile removed stays constant.
// An audience stream scanning a shard across a rebuild may miss or repeat
// a few rows (its cursor is a dense id, and dense ids shift).

// ErrProfilesFull is Apply's error for a record that needs a new profile
// in a shard holding Options.MaxProfiles/Shards profiles, every one of
// them a customer's: nothing can make room without dropping a known
// customer, which the engine never does. Writers answer 503.
var ErrProfilesFull = errors.New("engine: the profile limit is reached and only known customers' profiles are left")

// removals counts profiles removed, for Stats.
type removals struct {
	erased, expired, evicted atomic.Uint64
}

// rebuildLocked drops from s every profile for which drop returns true and
// returns how many went. s.mu must be held exclusively, and a capture
// waiting for the shard must have it (captureLocked) first.
func (s *shard) rebuildLocked(drop func(id string, anon bool, slot uint32) bool) int {
	type keep struct {
		id   string
		anon bool
		slot uint32
	}
	var kept []keep
	removed := 0
	for _, side := range []struct {
		dict  *index.Dict
		slots []uint32
		anon  bool
	}{{s.customers, s.custProf, false}, {s.anons, s.anonProf, true}} {
		for d, name := range side.dict.All() {
			slot := side.slots[d]
			if drop(name, side.anon, slot) {
				removed++
				continue
			}
			kept = append(kept, keep{name, side.anon, slot})
		}
	}
	if removed == 0 {
		return 0
	}
	// In the old slot order: the arena is copied front to back.
	slices.SortFunc(kept, func(a, b keep) int { return int(a.slot) - int(b.slot) })
	old, oldRefs, oldTargets := s.data, s.refs, s.targets
	s.customers, s.anons, s.targets = index.NewDict(), index.NewDict(), index.NewDict()
	s.custProf, s.anonProf = nil, nil
	s.refs = make([]profRef, 0, len(kept))
	s.data = make([]byte, 0, s.encoded+s.encoded/8)
	s.encoded = 0
	for _, k := range kept {
		dict, slots := s.customers, &s.custProf
		if k.anon {
			dict, slots = s.anons, &s.anonProf
		}
		dict.Intern(k.id)
		*slots = append(*slots, uint32(len(s.refs)))
		ref := oldRefs[k.slot]
		to := uint32(0)
		if ref.to != 0 {
			id, _ := s.targets.Intern(oldTargets.Name(ref.to&^toAnon - 1))
			to = (id + 1) | ref.to&toAnon
		}
		if ref.n == 0 {
			s.refs = append(s.refs, profRef{to: to})
			continue
		}
		off := int(ref.off) * recAlign
		s.refs = append(s.refs, s.appendRecord(old[off:off+int(ref.n)], 0, to))
		s.encoded += int(ref.n)
	}
	s.compactions++
	return removed
}

// removeActor drops one actor's profile (or link) and returns what it
// held (links and where it was merged to), and whether it was there.
func (e *Engine) removeActor(id string, anon bool) (pr profile, ok bool) {
	s, h := e.shardOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, ok := s.slotLocked(id, h, anon, false)
	if !ok {
		return pr, false
	}
	s.captureLocked()
	s.readLocked(slot, &pr, true)
	s.rebuildLocked(func(name string, a bool, sl uint32) bool { return sl == slot })
	e.removed.erased.Add(1)
	return pr, true
}

// applyErase forgets an actor: its profile, the anonymous ids whose links
// lead to it (their histories were merged into it), its impressions,
// campaigns and exclusions (all in the profile), and its part in the
// stores' last scans. An anonymous id that was linked into another actor
// is also taken out of that actor's linked ids, with the ids linked
// through it.
func (e *Engine) applyErase(x *Erase) error {
	id, anon := x.Customer, false
	switch {
	case x.Customer != "" && x.AnonymousID != "":
		return fieldErr("customer", ErrBothActors)
	case x.AnonymousID != "":
		id, anon = x.AnonymousID, true
	case x.Customer == "":
		return fieldErr("customer", ErrUnknownActor)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	pr, ok := e.removeActor(id, anon)
	if !ok {
		return fieldErr("id", ErrUnknownActor)
	}
	// The ids linked into it: drop those whose links still lead here.
	for _, l := range pr.links {
		if to, toAnon := e.resolveActor(l, true); to == id && toAnon == anon {
			e.removeActor(l, true)
		}
	}
	if pr.mergedTo != "" {
		// A link: its history is the destination's now. Take the id, and
		// the ids linked through it, out of the destination's links.
		dest, destAnon := e.resolveActor(pr.mergedTo, pr.mergedAnon)
		ds, dh := e.shardOf(dest)
		var links []string
		ds.mu.RLock()
		if slot, ok := ds.slotLocked(dest, dh, destAnon, false); ok {
			var dp profile
			ds.readLocked(slot, &dp, true)
			links = dp.links
		}
		ds.mu.RUnlock()
		gone := map[string]bool{id: true}
		for _, l := range links {
			if e.linkPasses(l, id) {
				gone[l] = true
			}
		}
		ds.mu.Lock()
		if slot, ok := ds.slotLocked(dest, dh, destAnon, false); ok {
			ds.captureLocked()
			dp := ds.editLocked(slot)
			dp.links = slices.DeleteFunc(dp.links, func(l string) bool { return gone[l] })
			ds.writeLocked(slot, dp)
		}
		ds.mu.Unlock()
		for l := range gone {
			if l != id {
				e.removeActor(l, true)
			}
		}
	}
	e.scans.forget(id, anon)
	return nil
}

// linkPasses reports whether anonymous id from's link chain passes via
// (from itself excluded). It takes shard locks one at a time: the caller
// must hold none.
func (e *Engine) linkPasses(from, via string) bool {
	id := from
	for hops := 0; hops < maxLinkHops; hops++ {
		to, toAnon := e.linkOf(id)
		if to == "" || !toAnon {
			return false
		}
		if to == via {
			return true
		}
		id = to
	}
	return false
}

// forget takes an erased actor out of the last scans: the screen keeps
// the scanned product, no longer personalised.
func (s *scans) forget(id string, anon bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for loc, sc := range s.latest {
		if (!anon && sc.Customer == id) || (anon && sc.AnonymousID == id) {
			sc.Customer, sc.AnonymousID = "", ""
			s.latest[loc] = sc
		}
	}
}

// applyExpire drops every anonymous profile unused since x.Before.
// Customers never expire, and neither do links (anonymous ids merged into
// another actor): they hold no history, and they go with an erasure of
// the actor they lead to, or for the profile cap.
func (e *Engine) applyExpire(x *Expire) error {
	before := secs(x.Before)
	e.mu.RLock()
	defer e.mu.RUnlock()
	var pr profile
	for i := range e.shards {
		s := &e.shards[i]
		s.mu.Lock()
		s.captureLocked()
		n := s.rebuildLocked(func(_ string, anon bool, slot uint32) bool {
			if !anon || s.refs[slot].to != 0 {
				return false // customers never; links lead to someone
			}
			s.readLocked(slot, &pr, false)
			return pr.last < before
		})
		s.mu.Unlock()
		e.removed.expired.Add(uint64(n))
	}
	return nil
}

// newSlotLocked returns the slot of an actor in s, creating its profile
// if need be after making room for it (makeRoomLocked). s.mu must be held
// exclusively.
func (e *Engine) newSlotLocked(s *shard, id string, h uint64, anon bool) (uint32, error) {
	if slot, ok := s.slotLocked(id, h, anon, false); ok {
		return slot, nil
	}
	if err := e.makeRoomLocked(s); err != nil {
		return 0, err
	}
	slot, _ := s.slotLocked(id, h, anon, true)
	return slot, nil
}

// roomFor makes sure an actor has a profile or that its shard has room
// for one, before a write that changes several shards starts changing
// any. e.mu must be held shared, and no shard lock.
func (e *Engine) roomFor(id string, anon bool) error {
	if e.perShardProfiles == 0 {
		return nil
	}
	s, h := e.shardOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.slotLocked(id, h, anon, false); ok {
		return nil
	}
	return e.makeRoomLocked(s)
}

// makeRoomLocked is called before a new profile is created in s: when the
// shard holds its share of Options.MaxProfiles, the least recently active
// eighth of that share among its unlinked anonymous profiles goes (at
// least one; links next, oldest first, if no profile is left to drop);
// ErrProfilesFull when only customers are left. s.mu must be held
// exclusively.
func (e *Engine) makeRoomLocked(s *shard) error {
	limit := e.perShardProfiles
	if limit == 0 || len(s.refs) < limit {
		return nil
	}
	type cand struct {
		slot, last uint32
		link       bool
	}
	var cands []cand
	var pr profile
	for d := range s.anons.Len() {
		slot := s.anonProf[d]
		if s.refs[slot].to != 0 {
			cands = append(cands, cand{slot: slot, link: true})
			continue
		}
		s.readLocked(slot, &pr, false)
		cands = append(cands, cand{slot: slot, last: pr.last})
	}
	if len(cands) == 0 {
		return ErrProfilesFull
	}
	// Profiles before links, least recently active first, then by slot:
	// the same state drops the same profiles.
	slices.SortFunc(cands, func(a, b cand) int {
		switch {
		case a.link != b.link:
			if a.link {
				return 1
			}
			return -1
		case a.last != b.last:
			return int(int64(a.last) - int64(b.last))
		}
		return int(a.slot) - int(b.slot)
	})
	n := min(len(cands), max(1, limit/8))
	drop := make(map[uint32]bool, n)
	for _, c := range cands[:n] {
		drop[c.slot] = true
	}
	s.captureLocked()
	e.removed.evicted.Add(uint64(s.rebuildLocked(func(_ string, _ bool, slot uint32) bool { return drop[slot] })))
	return nil
}
