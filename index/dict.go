package index

import "github.com/cespare/xxhash/v2"

// Dict maps external string ids to dense uint32 ids, assigned in order of
// first sight starting at 0. Lookups hash the id once with xxhash; the
// string is kept, so two ids whose hashes collide both keep working (the
// later one lives in a small overflow map).
//
// Dict is not safe for concurrent use; its owner holds a lock.
type Dict struct {
	byHash   map[uint64]uint32
	overflow map[string]uint32 // ids whose hash was already taken by another id
	names    []string
}

// NewDict returns an empty Dict.
func NewDict() *Dict {
	return &Dict{byHash: make(map[uint64]uint32), overflow: make(map[string]uint32)}
}

// Len is the number of ids assigned.
func (d *Dict) Len() int { return len(d.names) }

// Lookup returns the dense id of s, if it has one. It does not allocate.
func (d *Dict) Lookup(s string) (uint32, bool) {
	id, ok := d.byHash[xxhash.Sum64String(s)]
	if !ok {
		return 0, false
	}
	if d.names[id] == s {
		return id, true
	}
	id, ok = d.overflow[s]
	return id, ok
}

// LookupBytes is Lookup for a byte slice; it does not allocate.
func (d *Dict) LookupBytes(b []byte) (uint32, bool) {
	id, ok := d.byHash[xxhash.Sum64(b)]
	if !ok {
		return 0, false
	}
	if d.names[id] == string(b) {
		return id, true
	}
	id, ok = d.overflow[string(b)]
	return id, ok
}

// Intern returns the dense id of s, assigning the next one if s is new.
// The bool reports whether s was new.
func (d *Dict) Intern(s string) (uint32, bool) {
	h := xxhash.Sum64String(s)
	id, ok := d.byHash[h]
	if ok {
		if d.names[id] == s {
			return id, false
		}
		if id, ok := d.overflow[s]; ok {
			return id, false
		}
	}
	id = uint32(len(d.names))
	d.names = append(d.names, s)
	if ok {
		d.overflow[s] = id
	} else {
		d.byHash[h] = id
	}
	return id, true
}

// Name returns the external id of a dense id. It panics if id was never
// assigned, which is a programming error, not bad input.
func (d *Dict) Name(id uint32) string { return d.names[id] }

// Names returns the external ids in dense-id order. The caller must not
// modify the slice; it stays valid until the next Intern.
func (d *Dict) Names() []string { return d.names }

// LookupHashed is Lookup with the caller's xxhash of s, for callers that
// already hashed s (to pick a shard, say).
func (d *Dict) LookupHashed(h uint64, s string) (uint32, bool) {
	id, ok := d.byHash[h]
	if !ok {
		return 0, false
	}
	if d.names[id] == s {
		return id, true
	}
	id, ok = d.overflow[s]
	return id, ok
}
