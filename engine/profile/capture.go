package profile

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/omnipick/omnipick/index"
	"github.com/omnipick/omnipick/internal/binfmt"
)

// The profiles part of an engine snapshot is one section per shard of the
// store that wrote it:
//
//	section: n:uvarint n×(kind:byte id:string profile)
//
// kind is 0 for a customer, 1 for an anonymous id, and profile is the
// profile encoding (encoding.go). A profile is stored with its id, so a
// snapshot loads into any number of shards.

// ErrBadProfile reports a profile section that does not decode.
var ErrBadProfile = errors.New("profile: malformed profile")

// BeginCapture marks every shard as waited for by a snapshot: the next
// write to a shard, or TakeCapture, encodes its profiles first. The
// caller must make sure no write runs during the call.
func (st *Store) BeginCapture() {
	for i := range st.shards {
		s := &st.shards[i]
		s.mu.Lock()
		s.snapPending, s.snap = true, nil
		s.mu.Unlock()
	}
}

// TakeCapture returns shard i's section as BeginCapture saw it, encoding
// it now if no write did it first, and forgets it.
func (st *Store) TakeCapture(i int) []byte {
	s := &st.shards[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.captureLocked()
	b := s.snap
	s.snap = nil
	return b
}

// captureLocked encodes the shard's profiles if a capture is waiting for
// them. s.mu must be held exclusively.
func (s *shard) captureLocked() {
	if !s.snapPending {
		return
	}
	s.snapPending = false
	b := make([]byte, 0, 64+len(s.data)+len(s.refs)*16)
	b = binfmt.AppendUvarint(b, uint64(len(s.custProf)+len(s.anonProf)))
	for kind, d := range []*index.Dict{s.customers, s.anons} {
		slots := s.custProf
		if kind == 1 {
			slots = s.anonProf
		}
		for i, name := range d.All() {
			b = append(b, byte(kind))
			b = binfmt.AppendString(b, name)
			b = s.appendRecordOf(b, slots[i])
		}
	}
	s.snap = b
}

// Reserve gives the arenas room for about n bytes of profiles in all, at
// once: loading a snapshot knows about how much the store will hold, and
// growing towards it a quarter at a time would copy the arenas over and
// over. sections is how many sections the snapshot holds: as many as the
// shards, each section is one shard's, and LoadSection sizes the shard's
// slot tables by the section's count. Call it before the store is shared.
func (st *Store) Reserve(n, sections int) {
	for i := range st.shards {
		st.shards[i].reserveLocked(n/len(st.shards) + n/len(st.shards)/16)
	}
	st.sectionPerShard = sections == len(st.shards)
}

// LoadSection reads one section of profiles written in profile encoding
// version (1, 2 or 3) into the store, checking products and facets against
// the given bounds. Call it before the store is shared; several sections
// may load at once, each on its own goroutine: a profile is stored under
// its shard's lock. A section written by a store of as many shards lands
// whole in one shard, so concurrent sections then never wait for each
// other; the lock is held from one profile to the next while they stay in
// the same shard, and only one lock is held at a time.
func (st *Store) LoadSection(r *binfmt.Reader, version byte, facets, products uint32) error {
	n := r.Count(math.MaxInt32)
	var held *shard
	defer func() {
		if held != nil {
			held.mu.Unlock()
		}
	}()
	for range n {
		// The name views the snapshot's bytes, not a copy: the shard's
		// dictionary keeps its own copy, and a copy per profile here
		// would be ten million allocations at the scale of issue 13.
		kind, nb := r.Byte(), r.Bytes()
		if r.Err() != nil || kind > 1 || len(nb) == 0 {
			return fmt.Errorf("%w: header", ErrBadProfile)
		}
		name := unsafe.String(&nb[0], len(nb))
		s, h := st.shardOf(name)
		if s != held {
			if held != nil {
				held.mu.Unlock()
			}
			held = s
			s.mu.Lock()
			if st.sectionPerShard && len(s.refs) == 0 {
				// This section is all this shard will hold: size its
				// tables at once. (Not its dictionary's map: sized
				// ahead it came out larger than grown, 19 MB more heap
				// at 1M profiles, for no time measurably saved.)
				s.custProf = slices.Grow(s.custProf, n)
				s.refs = slices.Grow(s.refs, n)
			}
		}
		slot, _ := s.slotLocked(name, h, kind == 1, true)
		pr := &s.scratch
		rest := r.Rest()
		if err := pr.decode(r, version, facets, products, true); err != nil {
			return fmt.Errorf("%w: %q: %w", ErrBadProfile, string(nb), err)
		}
		if version == Version {
			// The arena holds profiles in this very encoding: store the
			// checked bytes as they are, without encoding again.
			s.storeLocked(slot, pr, rest[:len(rest)-r.Len()], 0)
		} else {
			// An older encoding, encoded again, with no room to grow
			// either: loaded profiles mostly never change again.
			s.enc = pr.appendEncoding(s.enc[:0])
			s.storeLocked(slot, pr, s.enc, 0)
		}
	}
	return r.Err()
}
