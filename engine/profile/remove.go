package profile

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/omnipick/omnipick/index"
)

// Removing profiles: erasure on request (Erase), expiry of anonymous
// profiles (Expire) and the profile cap (SetMaxProfiles). The shards'
// dictionaries only grow, so a shard that drops profiles is rebuilt: new
// dictionaries, slot arrays and arena holding the profiles that stay, in
// their old order. That takes time in proportion to the shard's profiles,
// under its lock: erasures are rare, expiry runs once an hour and drops
// all it can at once, and the cap drops an eighth of a full shard's share
// at a time, so the cost per profile removed stays constant. A Scan
// across a rebuild may miss or repeat a few profiles (its cursor is a
// dense id, and dense ids shift).

// ErrFull is Edit's and Link's error when a new profile is needed in a
// shard at its share of the cap and every profile there is a customer's.
var ErrFull = errors.New("profile: the profile limit is reached and only customers' profiles are left")

// Removed counts the profiles removed since the store was made.
type Removed struct {
	Erased  uint64 // profiles and links, by Erase
	Expired uint64 // anonymous profiles, by Expire
	Evicted uint64 // least recently active anonymous profiles, for the cap
}

// removals is Removed, updated concurrently.
type removals struct {
	erased, expired, evicted atomic.Uint64
}

// Removed returns what was removed so far.
func (st *Store) Removed() Removed {
	return Removed{Erased: st.removed.erased.Load(), Expired: st.removed.expired.Load(), Evicted: st.removed.evicted.Load()}
}

// SetMaxProfiles caps the profiles held at n (0: no cap), n/shards per
// shard, rounded up: a new actor in a full shard makes the least recently
// active anonymous profiles go first (see makeRoomLocked). Call it before
// the store is shared.
func (st *Store) SetMaxProfiles(n int) {
	st.perShard = 0
	if n > 0 {
		st.perShard = (n + len(st.shards) - 1) / len(st.shards)
	}
}

// Room reports whether every shard i can take need[i] new profiles
// without reaching its share of the cap (always, without a cap): then no
// Edit of that many new actors removes a profile or fails, so the order
// in which the shards' edits interleave cannot change which profiles
// exist. need has one entry per shard (Shards, ShardIndex).
func (st *Store) Room(need []int) bool {
	if st.perShard == 0 {
		return true
	}
	for i := range st.shards {
		if need[i] == 0 {
			continue
		}
		s := &st.shards[i]
		s.mu.RLock()
		full := len(s.refs)+need[i] > st.perShard
		s.mu.RUnlock()
		if full {
			return false
		}
	}
	return true
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

// remove drops one actor's profile (or link) and returns what it held
// (links, and where it was merged to), and whether it was there.
func (st *Store) remove(id string, anon bool) (pr Profile, ok bool) {
	s, h := st.shardOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, ok := s.slotLocked(id, h, anon, false)
	if !ok {
		return pr, false
	}
	s.captureLocked()
	s.readLocked(slot, &pr, true)
	s.rebuildLocked(func(_ string, _ bool, sl uint32) bool { return sl == slot })
	st.removed.erased.Add(1)
	return pr, true
}

// Erase drops an actor's profile and reports whether it had one: with it
// go its impressions, campaigns and exclusions, and the anonymous ids
// whose links lead to it (their histories were merged into it). An
// anonymous id that was itself linked into another actor is taken out of
// that actor's linked ids, with the ids linked through it; the history it
// brought stays, as the other actor's. Shard locks are taken one at a
// time.
func (st *Store) Erase(id string, anon bool) bool {
	pr, ok := st.remove(id, anon)
	if !ok {
		return false
	}
	for _, l := range pr.Links {
		if to, toAnon := st.Resolve(l, true); to == id && toAnon == anon {
			st.remove(l, true)
		}
	}
	if pr.MergedTo == "" {
		return true
	}
	dest, destAnon := st.Resolve(pr.MergedTo, pr.MergedAnon)
	var dp Profile
	if !st.Read(dest, destAnon, &dp, true) {
		return true
	}
	gone := map[string]bool{id: true}
	for _, l := range dp.Links {
		if st.linkPasses(l, id) {
			gone[l] = true
		}
	}
	ds, dh := st.shardOf(dest)
	ds.mu.Lock()
	if slot, ok := ds.slotLocked(dest, dh, destAnon, false); ok {
		ds.captureLocked()
		p := ds.editLocked(slot)
		p.Links = slices.DeleteFunc(p.Links, func(l string) bool { return gone[l] })
		ds.writeLocked(slot, p)
	}
	ds.mu.Unlock()
	for l := range gone {
		if l != id {
			st.remove(l, true)
		}
	}
	return true
}

// linkPasses reports whether anonymous id from's link chain passes via
// (from itself excluded). It takes shard locks one at a time: the caller
// must hold none.
func (st *Store) linkPasses(from, via string) bool {
	id := from
	for range maxLinkHops {
		to, toAnon := st.linkOf(id)
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

// Expire drops every anonymous profile whose last activity is before
// before (unix seconds) and returns how many went. Customers never
// expire, and neither do links (anonymous ids merged into another actor):
// they hold no history, and go with an erasure of the actor they lead to,
// or for the cap.
func (st *Store) Expire(before uint32) int {
	n, _ := st.ExpireHeld(before, nil)
	return n
}

// ExpireHeld is Expire on a store that holds the histories of only the
// actors held reports true for (nil: every actor; see LinkHeld): it drops
// the profiles Expire drops among those it holds, and returns, with how
// many went, the ids of those that others were linked into. The entries
// it keeps of anonymous ids it does not hold (their Links alone) stay: it
// cannot know when they were last active; their holders tell (DropLinks).
func (st *Store) ExpireHeld(before uint32, held func(string) bool) (int, []string) {
	total := 0
	var linked []string
	var pr Profile
	for i := range st.shards {
		s := &st.shards[i]
		s.mu.Lock()
		s.captureLocked()
		n := s.rebuildLocked(func(id string, anon bool, slot uint32) bool {
			if !anon || s.refs[slot].to != 0 || (held != nil && !held(id)) {
				return false
			}
			s.readLocked(slot, &pr, held != nil)
			if pr.Last >= before {
				return false
			}
			if held != nil && len(pr.Links) > 0 {
				linked = append(linked, strings.Clone(id))
			}
			return true
		})
		s.mu.Unlock()
		total += n
	}
	st.removed.expired.Add(uint64(total))
	return total, linked
}

// DropLinks drops the entry of anonymous id id, if it has one that is
// not linked itself: on a store that does not hold id, its Links alone,
// which its holders dropped with its expired history (ExpireHeld).
func (st *Store) DropLinks(id string) bool {
	s, h := st.shardOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, ok := s.slotLocked(id, h, true, false)
	if !ok || s.refs[slot].to != 0 {
		return false
	}
	s.captureLocked()
	s.rebuildLocked(func(_ string, _ bool, sl uint32) bool { return sl == slot })
	st.removed.expired.Add(1)
	return true
}

// newSlotLocked returns the slot of an actor in s, creating its profile
// if need be, after making room for it (makeRoomLocked). s.mu must be
// held exclusively.
func (st *Store) newSlotLocked(s *shard, id string, h uint64, anon bool) (uint32, error) {
	if slot, ok := s.slotLocked(id, h, anon, false); ok {
		return slot, nil
	}
	if err := st.makeRoomLocked(s); err != nil {
		return 0, err
	}
	slot, _ := s.slotLocked(id, h, anon, true)
	return slot, nil
}

// roomFor makes sure an actor has a profile, or its shard room for one,
// before a change of several shards (Link) starts changing any. No shard
// lock may be held.
func (st *Store) roomFor(id string, anon bool) error {
	if st.perShard == 0 {
		return nil
	}
	s, h := st.shardOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.slotLocked(id, h, anon, false); ok {
		return nil
	}
	s.captureLocked()
	return st.makeRoomLocked(s)
}

// makeRoomLocked runs before a new profile is created in s: when the
// shard holds its share of the cap, the least recently active eighth of
// that share among its anonymous profiles goes (at least one; links, which
// hold no history, after every profile, oldest first); ErrFull when only
// customers are left. The same state drops the same profiles, so replay
// agrees. s.mu must be held exclusively, s captured.
func (st *Store) makeRoomLocked(s *shard) error {
	limit := st.perShard
	if limit == 0 || len(s.refs) < limit {
		return nil
	}
	type cand struct {
		slot, last uint32
		link       bool
	}
	cands := make([]cand, 0, len(s.anonProf))
	var pr Profile
	for _, slot := range s.anonProf {
		if s.refs[slot].to != 0 {
			cands = append(cands, cand{slot: slot, link: true})
			continue
		}
		s.readLocked(slot, &pr, false)
		cands = append(cands, cand{slot: slot, last: pr.Last})
	}
	if len(cands) == 0 {
		return ErrFull
	}
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
	st.removed.evicted.Add(uint64(s.rebuildLocked(func(_ string, _ bool, slot uint32) bool { return drop[slot] })))
	return nil
}
