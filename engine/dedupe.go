package engine

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/omnipick/omnipick/internal/binfmt"
)

// ErrDuplicate is returned by Apply for a record whose EventID was applied
// within Options.EventIDWindow: it changes nothing. Writers acknowledge it
// as a duplicate, not as a rejection.
var ErrDuplicate = errors.New("engine: duplicate event_id")

// Event ids (Record.EventID) make retries safe: a record whose id was
// applied within the window changes nothing. The table that says so is
// state like any other: Apply fills it, snapshots carry it, replay
// rebuilds it, so a duplicate is refused the same way live, after a
// restart and after a crash.
//
// Memory is bounded: an id is kept as its 64-bit xxhash (two different
// ids collide with probability n/2^64 per lookup, n the ids kept: 1 in
// 9e12 at 2M) in a map to the receipt second, plus the hash again in a
// FIFO ring that drives expiry: about 55 bytes an id with the map's and
// the ring's room to grow (TestEventIDMemory: 26 MiB for 500,000 ids), so
// 110 MiB at the default cap of 2M. Ids leave when older than the window, measured on
// the receipt stamps of the records themselves (Record.Received), never
// on the wall clock, so replay expires exactly as the live run did; and,
// past Options.MaxEventIDs, the oldest leave early (counted in
// Stats.EventIDsEvicted): a retry older than that is applied again.
type eventIDs struct {
	mu      sync.Mutex
	window  int64 // seconds
	max     int
	seen    map[uint64]uint32 // id hash -> receipt, unix seconds
	ring    []uint64          // id hashes, oldest first from head
	head    int
	latest  uint32 // the newest receipt seen
	evicted uint64 // ids dropped before their window ended, for the cap
}

func newEventIDs(window int64, max int) *eventIDs {
	return &eventIDs{window: window, max: max, seen: map[uint64]uint32{}}
}

// hashEventID is an id's key in the table.
func hashEventID(id string) uint64 { return xxhash.Sum64String(id) }

// reserve records id h as received at t and reports true, or reports
// false if it is already there (a duplicate). A reservation whose record
// then fails is taken back with release.
func (d *eventIDs) reserve(h uint64, t uint32) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.latest = max(d.latest, t)
	d.expireLocked()
	if _, ok := d.seen[h]; ok {
		return false
	}
	d.seen[h] = t
	d.ring = append(d.ring, h)
	for len(d.seen) > d.max {
		d.popLocked()
		d.evicted++
	}
	d.compactLocked()
	return true
}

// release forgets a reservation whose record was rejected, so that a
// corrected retry with the same id is applied. Its ring entry stays and
// is skipped when it comes up.
func (d *eventIDs) release(h uint64) {
	d.mu.Lock()
	delete(d.seen, h)
	d.mu.Unlock()
}

// expireLocked drops ids received more than the window before the newest.
func (d *eventIDs) expireLocked() {
	horizon := int64(d.latest) - d.window
	for d.head < len(d.ring) {
		t, ok := d.seen[d.ring[d.head]]
		if ok && int64(t) >= horizon {
			return
		}
		d.popLocked()
	}
}

// popLocked drops the oldest ring entry and its id.
func (d *eventIDs) popLocked() {
	if d.head == len(d.ring) {
		return
	}
	delete(d.seen, d.ring[d.head])
	d.ring[d.head] = 0
	d.head++
}

// compactLocked moves the ring's live part to the front once the dropped
// part is as long, so the ring stays within twice the ids kept.
func (d *eventIDs) compactLocked() {
	if d.head > 1024 && d.head >= len(d.ring)-d.head {
		n := copy(d.ring, d.ring[d.head:])
		clear(d.ring[n:])
		d.ring = d.ring[:n]
		d.head = 0
	}
}

// len returns how many ids are kept.
func (d *eventIDs) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

// appendSnapshot appends the table: latest:uvarint n:uvarint, then n ×
// (hash:uvarint, receipt:uvarint) oldest first. Ring entries whose id
// was released or re-reserved later are left out.
func (d *eventIDs) appendSnapshot(b []byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	b = binfmt.AppendUvarint(b, uint64(d.latest))
	b = binfmt.AppendUvarint(b, uint64(len(d.seen)))
	seen := make(map[uint64]bool, len(d.seen))
	for _, h := range d.ring[d.head:] {
		if _, ok := d.seen[h]; !ok || seen[h] {
			continue
		}
		seen[h] = true
		b = binfmt.AppendUvarint(b, h)
		b = binfmt.AppendUvarint(b, uint64(d.seen[h]))
	}
	return b
}

// loadSnapshot reads what appendSnapshot wrote.
func (d *eventIDs) loadSnapshot(r *binfmt.Reader) error {
	d.latest = uint32(r.Uvarint())
	n := r.Count(1 << 30)
	if r.Err() != nil {
		return r.Err()
	}
	d.seen = make(map[uint64]uint32, min(n, d.max))
	d.ring = make([]uint64, 0, min(n, d.max))
	for range n {
		h, t := r.Uvarint(), uint32(r.Uvarint())
		if r.Err() != nil {
			return r.Err()
		}
		if _, dup := d.seen[h]; dup {
			return fmt.Errorf("event id %x twice", h)
		}
		d.seen[h] = t
		d.ring = append(d.ring, h)
	}
	// A smaller MaxEventIDs than the snapshot's writer had: drop the oldest.
	for len(d.seen) > d.max {
		d.popLocked()
		d.evicted++
	}
	return nil
}
