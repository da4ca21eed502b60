package profile

import (
	"errors"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/omnipick/omnipick/index"
)

// Limits bound what one profile holds, so a profile's size is bounded
// whatever the traffic; engine.Options documents each (MaxAffinity,
// MaxViews, ...). HalfLife is the affinity half-life in seconds: a merge
// decays both profiles to the same time before adding them.
type Limits struct {
	Affinity, Views, Cart, Purchases, Sizes, Impressions, Exclusions, Campaigns int
	HalfLife                                                                    float64
}

// ErrCycle is Link's error for a link that would make a cycle of
// anonymous ids.
var ErrCycle = errors.New("profile: the link would make a cycle of anonymous ids")

// Store holds every profile, in shards by a stable hash of the actor id.
// It is safe for concurrent use; see the package doc for its locks.
type Store struct {
	shards   []shard
	lim      Limits
	perShard int // the profile cap per shard (SetMaxProfiles); 0: none
	removed  removals
	// sectionPerShard: the snapshot being loaded has a section per shard
	// (Reserve).
	sectionPerShard bool
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
	scratch     Profile     // the profile a write is changing; mu held exclusively
	enc         []byte      // the encoding a write is storing

	// A snapshot in progress waits for this shard's profiles (see
	// BeginCapture).
	snapPending bool
	snap        []byte
}

// New returns an empty store of n shards (at least 1).
func New(n int, lim Limits) *Store {
	st := &Store{shards: make([]shard, max(n, 1)), lim: lim}
	for i := range st.shards {
		st.shards[i].customers = index.NewDict()
		st.shards[i].anons = index.NewDict()
		st.shards[i].targets = index.NewDict()
		st.shards[i].minGarbage = defaultMinGarbage
	}
	return st
}

// SetMinGarbage sets how many unused arena bytes each shard tolerates
// before it compacts (default 1 MiB). Tests set 0 to make compaction run
// often; call it before the store is shared.
func (st *Store) SetMinGarbage(n int) {
	for i := range st.shards {
		st.shards[i].minGarbage = n
	}
}

// shardOf returns the shard of an actor id and the id's hash.
func (st *Store) shardOf(id string) (*shard, uint64) {
	h := xxhash.Sum64String(id)
	return &st.shards[st.shardIndex(h)], h
}

// shardIndex is the shard of an id hash: shardOf and ShardIndex agree
// (ApplyBatch relies on it).
func (st *Store) shardIndex(h uint64) int { return int(h % uint64(len(st.shards))) }

// ShardIndex returns the shard that holds actor id's profile (links not
// followed: see Resolve). Edits of profiles in different shards touch
// nothing in common, so they may run in parallel in any order; edits in
// one shard, in the same order, leave the same shard byte for byte.
func (st *Store) ShardIndex(id string) int {
	return st.shardIndex(xxhash.Sum64String(id))
}

// Read decodes the profile of an actor, as it is stored (links not
// followed: see Resolve), into pr, reusing pr's slices; once pr has grown
// to the profiles it reads, it allocates nothing. With strs unset the
// links and campaigns are left empty. It reports whether the actor has a
// profile. pr is the caller's: it stays valid after Read returns.
func (st *Store) Read(id string, anon bool, pr *Profile, strs bool) bool {
	s, h := st.shardOf(id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	slot, ok := s.slotLocked(id, h, anon, false)
	if ok {
		s.readLocked(slot, pr, strs)
	}
	return ok
}

// Edit calls edit with the profile now holding the history of an actor
// (links followed), created empty if need be, and stores what edit left
// in it. edit runs under the shard's lock: it must not keep pr, call the
// store or take any lock. With a profile cap (SetMaxProfiles) it returns
// ErrFull, having called nothing, when the actor is new and its shard
// cannot make room.
func (st *Store) Edit(id string, anon bool, edit func(pr *Profile)) error {
	id, anon = st.Resolve(id, anon)
	return st.editResolved(id, anon, edit)
}

// editResolved is Edit of an actor whose links are already followed: the
// profile edited is id's own, wherever links would lead.
func (st *Store) editResolved(id string, anon bool, edit func(pr *Profile)) error {
	s, h := st.shardOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.captureLocked()
	slot, err := st.newSlotLocked(s, id, h, anon)
	if err != nil {
		return err
	}
	pr := s.editLocked(slot)
	edit(pr)
	s.writeLocked(slot, pr)
	return nil
}

// maxLinkHops bounds how far an anonymous id's links are followed; Link
// keeps chains acyclic, the bound keeps a bug from spinning.
const maxLinkHops = 16

// Resolve follows an anonymous id's links (cookie -> device -> customer)
// to the actor that now holds its history.
func (st *Store) Resolve(id string, anon bool) (string, bool) {
	for hops := 0; anon && hops < maxLinkHops; hops++ {
		to, toAnon := st.linkOf(id)
		if to == "" {
			break
		}
		id, anon = to, toAnon
	}
	return id, anon
}

// linkOf returns where anonymous id's history went, if it was linked: a
// customer, or another anonymous id (toAnon).
func (st *Store) linkOf(id string) (to string, toAnon bool) {
	s, h := st.shardOf(id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if slot, ok := s.slotLocked(id, h, true, false); ok {
		return s.mergedLocked(slot)
	}
	return "", false
}

// chainPasses reports whether following anonymous id from's links reaches
// anonymous id via (from itself included).
func (st *Store) chainPasses(from, via string) bool {
	id := from
	for hops := 0; hops < maxLinkHops; hops++ {
		if id == via {
			return true
		}
		to, toAnon := st.linkOf(id)
		if to == "" || !toAnon {
			return false
		}
		id = to
	}
	return true // too long to be sure: refuse
}

// Link moves the history of anonymous id anonID to target (a customer, or
// with targetAnon another anonymous id), leaving a forward link: later
// events of anonID land on target. The history is merged into wherever
// target's own history now lives. Linking again to the same target
// changes nothing; linking a linked id to another target moves only the
// link. A link that would lead back to anonID returns ErrCycle and
// changes nothing. Two shard locks are taken one after the other, never
// together.
func (st *Store) Link(anonID, target string, targetAnon bool) error {
	_, err := st.LinkHeld(anonID, target, targetAnon, nil)
	return err
}

// LinkHeld is Link on a store that holds the histories of only the
// actors held reports true for (nil: every actor, and it is Link). The
// links are kept whole whatever is held: anonID's forward link is
// written, and the destination (target, links followed) gets anonID and
// the ids linked into it in its Links, in an entry of Links alone (a
// link-only profile) if it is not held. The history does not move here:
// it leaves anonID, and LinkHeld returns its encoding (version Version,
// without its Links, which every store adds to the destination itself)
// if anonID is held, for every store that holds the destination to Merge
// at the same point of its records; nil otherwise.
func (st *Store) LinkHeld(anonID, target string, targetAnon bool, held func(string) bool) ([]byte, error) {
	if targetAnon && st.chainPasses(target, anonID) {
		return nil, ErrCycle
	}
	dest, destAnon := st.Resolve(target, targetAnon)
	// Room for the destination first: nothing changes if there is none.
	if err := st.roomFor(dest, destAnon); err != nil {
		return nil, err
	}

	// Take the anonymous profile out of its shard, leaving a forward link.
	as, ah := st.shardOf(anonID)
	as.mu.Lock()
	as.captureLocked()
	slot, err := st.newSlotLocked(as, anonID, ah, true)
	if err != nil {
		as.mu.Unlock()
		return nil, err
	}
	if to, toAnon := as.mergedLocked(slot); to == target && toAnon == targetAnon {
		as.mu.Unlock()
		return nil, nil
	}
	// moved is a profile of its own, not a scratch: it outlives the lock.
	var moved Profile
	as.readLocked(slot, &moved, true)
	link := &as.scratch
	link.reset()
	link.MergedTo, link.MergedAnon = target, targetAnon
	as.writeLocked(slot, link)
	as.mu.Unlock()
	if moved.MergedTo != "" {
		// Linked before: its history already lives with the earlier
		// target. Only the link moves.
		return nil, nil
	}
	var out []byte
	if held != nil && held(anonID) {
		// Without its Links: every store adds them to the destination's
		// below, and their number has no bound (a merge record carrying
		// thousands of linked ids would pass what a stream message may
		// hold).
		links := moved.Links
		moved.Links = nil
		out = moved.appendEncoding(nil)
		moved.Links = links
	}

	ds, dh := st.shardOf(dest)
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.captureLocked()
	dslot, err := st.newSlotLocked(ds, dest, dh, destAnon)
	if err != nil {
		// roomFor made room, and the link's own profile took it in the
		// same shard, which holds customers only: the link stands, the
		// history it brought is lost. Only a cap of customers gets here.
		return nil, err
	}
	dp := ds.editLocked(dslot)
	if held == nil {
		dp.merge(&moved, &st.lim)
	} else {
		// The history travels (Merge): the links stay.
		for _, l := range moved.Links {
			dp.Links = appendUnique(dp.Links, l)
		}
	}
	dp.Links = appendUnique(dp.Links, anonID)
	ds.writeLocked(dslot, dp)
	return out, nil
}

// Merge merges moved, the history of anonymous id anonID that another
// store took out (LinkHeld), into the profile of dest (an actor links
// already resolved), as Link merges, anonID joining its Links.
func (st *Store) Merge(anonID, dest string, destAnon bool, moved *Profile) error {
	// Kept although editResolved makes room under the lock too: over a cap
	// lowered below what a shard holds, each makeRoomLocked evicts again,
	// so dropping this call would change which profiles a merge evicts.
	if err := st.roomFor(dest, destAnon); err != nil {
		return err
	}
	return st.editResolved(dest, destAnon, func(dp *Profile) {
		dp.merge(moved, &st.lim)
		dp.Links = appendUnique(dp.Links, anonID)
	})
}

// Stats returns how many profiles the store holds and the bytes of their
// encodings (not counting the arenas' room for growth and garbage).
func (st *Store) Stats() (profiles int, bytes int64) {
	for i := range st.shards {
		s := &st.shards[i]
		s.mu.RLock()
		profiles += len(s.refs)
		bytes += int64(s.encoded)
		s.mu.RUnlock()
	}
	return profiles, bytes
}

// Shards returns the number of shards, for Scan.
func (st *Store) Shards() int { return len(st.shards) }

// Scan visits, under shard i's read lock, the profiles of the customers
// (or, with anon, anonymous ids) of shard i from dense id d on, skipping
// profiles linked into another actor: each is decoded into pr (links and
// campaigns left out) and visit is called with its id. Scan stops after
// max ids, or once visit returns false. It returns the dense id to resume
// from and whether ids remain. Walking the dense ids rather than the
// profiles gives each profile's id without a reverse map: the
// dictionaries only grow. visit must not call the store or take a lock
// that a writer of profiles could hold.
func (st *Store) Scan(i int, anon bool, d, max int, pr *Profile, visit func(id string, pr *Profile) bool) (int, bool) {
	s := &st.shards[i]
	s.mu.RLock()
	defer s.mu.RUnlock()
	dict, slots := s.customers, s.custProf
	if anon {
		dict, slots = s.anons, s.anonProf
	}
	n := min(dict.Len(), len(slots))
	end := min(n, d+max)
	for d < end {
		slot := slots[d]
		id := uint32(d)
		d++
		if s.refs[slot].to != 0 {
			continue // merged: its history lives with another actor
		}
		s.readLocked(slot, pr, false)
		if !visit(dict.Name(id), pr) {
			break
		}
	}
	return d, d < n
}
