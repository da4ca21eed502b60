package index

import (
	"iter"
	"math"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// Dict maps external string ids to dense uint32 ids, assigned in order of
// first sight starting at 0. Lookups hash the id once with xxhash; the
// string is kept, so two ids whose hashes collide both keep working (the
// later one lives in a small overflow map).
//
// The names live back to back in one byte arena with an end offset per id,
// not as a []string: a Dict of ten million ids is then two pointer-free
// arrays the garbage collector does not scan, instead of ten million string
// headers it does. The byHash map holds no pointers either.
//
// Dict is not safe for concurrent use; its owner holds a lock.
type Dict struct {
	byHash   map[uint64]uint32
	overflow map[string]uint32 // ids whose hash was already taken by another id
	// arena holds the names back to back. It is append-only: bytes once
	// written never change. When append moves it, the old array stays
	// alive as long as a string returned by Name points into it, so those
	// strings stay valid and immutable.
	arena []byte
	ends  []uint32 // ends[id] is where name id ends in arena
}

// maxArena bounds the bytes of all names of one Dict: offsets are uint32.
const maxArena = math.MaxUint32

// NewDict returns an empty Dict.
func NewDict() *Dict {
	return &Dict{byHash: make(map[uint64]uint32), overflow: make(map[string]uint32)}
}

// Len is the number of ids assigned.
func (d *Dict) Len() int { return len(d.ends) }

// Lookup returns the dense id of s, if it has one. It does not allocate.
func (d *Dict) Lookup(s string) (uint32, bool) {
	return d.LookupHashed(xxhash.Sum64String(s), s)
}

// LookupBytes is Lookup for a byte slice; it does not allocate.
func (d *Dict) LookupBytes(b []byte) (uint32, bool) {
	id, ok := d.byHash[xxhash.Sum64(b)]
	if !ok {
		return 0, false
	}
	if d.Name(id) == string(b) {
		return id, true
	}
	id, ok = d.overflow[string(b)]
	return id, ok
}

// LookupHashed is Lookup with the caller's xxhash of s, for callers that
// already hashed s (to pick a shard, say).
func (d *Dict) LookupHashed(h uint64, s string) (uint32, bool) {
	id, ok := d.byHash[h]
	if !ok {
		return 0, false
	}
	if d.Name(id) == s {
		return id, true
	}
	id, ok = d.overflow[s]
	return id, ok
}

// Intern returns the dense id of s, assigning the next one if s is new.
// The bool reports whether s was new. The Dict keeps a copy of s, never s
// itself. It panics if the names of one Dict would pass 4 GiB, a limit
// far beyond what fits in memory next to the rest of the state.
func (d *Dict) Intern(s string) (uint32, bool) {
	return d.InternHashed(xxhash.Sum64String(s), s)
}

// InternHashed is Intern with the caller's xxhash of s, for callers that
// already hashed s (to pick a shard, say).
func (d *Dict) InternHashed(h uint64, s string) (uint32, bool) {
	id, ok := d.byHash[h]
	if ok {
		if d.Name(id) == s {
			return id, false
		}
		if id, ok := d.overflow[s]; ok {
			return id, false
		}
	}
	if uint64(len(d.arena))+uint64(len(s)) > maxArena || len(d.ends) == math.MaxUint32 {
		panic("index: a Dict holds more than 4 GiB of names or 2^32 ids")
	}
	id = uint32(len(d.ends))
	d.arena = append(d.arena, s...)
	d.ends = append(d.ends, uint32(len(d.arena)))
	if ok {
		d.overflow[d.Name(id)] = id
	} else {
		d.byHash[h] = id
	}
	return id, true
}

// Name returns the external id of a dense id. It does not allocate: the
// string views the Dict's arena, and stays valid (and unchanged) for as
// long as the caller keeps it, whatever the Dict does later. It panics if
// id was never assigned, which is a programming error, not bad input.
func (d *Dict) Name(id uint32) string {
	end := d.ends[id]
	start := uint32(0)
	if id > 0 {
		start = d.ends[id-1]
	}
	if start == end {
		return ""
	}
	return unsafe.String(&d.arena[start], end-start)
}

// All yields the ids and their names in dense-id order. The Dict must not
// change during the iteration.
func (d *Dict) All() iter.Seq2[uint32, string] {
	return func(yield func(uint32, string) bool) {
		for id := range uint32(len(d.ends)) {
			if !yield(id, d.Name(id)) {
				return
			}
		}
	}
}
