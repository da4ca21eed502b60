package profile

import (
	"fmt"

	"github.com/omnipick/omnipick/internal/binfmt"
)

// Profiles are stored encoded, in one byte arena per shard, not as Go
// structs: a profile struct holds a dozen slices and strings, each a
// pointer with its own backing array, and at ten million customers the
// garbage collector would scan a hundred million pointers on every cycle.
// The arena and the profRef index into it hold no pointers at all.
//
// The arena holds each profile in the profile encoding (encoding.go),
// which snapshots store too, so a snapshot copies records as they are. Reading one decodes it into
// a reusable scratch profile (the working form, whose methods do the
// updates); a write decodes into the shard's scratch, changes it, encodes
// it and puts it back: over its old bytes when it fits in the room it has,
// else at the arena's end with some headroom, abandoning the old bytes.
// When bytes no encoding uses (abandoned records, and room left by records
// that shrank) pass half the arena, the shard compacts it.

// recAlign is the alignment of records in the arena: profRef.off counts
// in these units, so a uint32 offset reaches 32 GiB per shard.
const recAlign = 8

// profRef locates a profile's encoding in its shard's arena. It holds no
// pointers.
type profRef struct {
	off  uint32 // start in the arena, in recAlign units
	n    uint32 // bytes of the encoding; 0: the empty profile
	room uint32 // bytes reserved at off (a multiple of recAlign), n <= room
	// to is the profile's mergedTo, so that following links neither
	// decodes nor allocates: 0 for none, else 1 + the id of the target in
	// shard.targets, with toAnon set when the target is anonymous.
	to uint32
}

const toAnon = 1 << 31

// defaultMinGarbage is how many unused arena bytes a shard tolerates
// before it considers compacting: below it a compaction would free too
// little to pay for the copy.
const defaultMinGarbage = 1 << 20

// slotLocked returns the profile slot of an actor in s, creating an empty
// profile when create is set. s.mu must be held (exclusively when create
// is set).
func (s *shard) slotLocked(id string, h uint64, anon, create bool) (uint32, bool) {
	dict, slots := s.customers, &s.custProf
	if anon {
		dict, slots = s.anons, &s.anonProf
	}
	if !create {
		d, ok := dict.LookupHashed(h, id)
		if !ok {
			return 0, false
		}
		return (*slots)[d], true
	}
	if d, isNew := dict.InternHashed(h, id); !isNew {
		return (*slots)[d], true
	}
	slot := uint32(len(s.refs))
	*slots = append(*slots, slot)
	s.refs = append(s.refs, profRef{})
	return slot, true
}

// mergedLocked returns where the profile in slot was merged to, if it was.
// The string views an append-only arena: it stays valid after the lock is
// released. s.mu must be held.
func (s *shard) mergedLocked(slot uint32) (to string, anon bool) {
	t := s.refs[slot].to
	if t == 0 {
		return "", false
	}
	return s.targets.Name(t&^toAnon - 1), t&toAnon != 0
}

// readLocked decodes the profile in slot into pr, reusing pr's slices: once
// pr has grown to the profiles it reads, it allocates nothing. With strs
// unset the links and campaigns are left empty (the picks path needs
// neither, and copying their strings out would allocate). pr.mergedTo is
// set either way. s.mu must be held; pr must not be the profile of another
// reader.
func (s *shard) readLocked(slot uint32, pr *Profile, strs bool) {
	ref := s.refs[slot]
	to, toAnon := s.mergedLocked(slot)
	if ref.n == 0 {
		pr.reset()
	} else {
		pr.MergedTo = to // decode keeps an equal string rather than copy it
		off := uint64(ref.off) * recAlign
		var r binfmt.Reader
		r.Reset(s.data[off : off+uint64(ref.n)])
		if err := pr.decode(&r, Version, noLimit, noLimit, strs); err != nil {
			// The arena holds only what writeLocked encoded: a bug, not input.
			panic(fmt.Sprintf("profile: arena is corrupt at slot %d: %v", slot, err))
		}
	}
	pr.MergedTo, pr.MergedAnon = to, toAnon
}

// noLimit passes decode's product and facet range checks: the arena holds
// only what the engine itself encoded.
const noLimit = ^uint32(0)

// editLocked returns the profile in slot decoded into the shard's scratch,
// for a write to change and store back with writeLocked. s.mu must be held
// exclusively; the profile is valid until the next editLocked on s.
func (s *shard) editLocked(slot uint32) *Profile {
	s.readLocked(slot, &s.scratch, true)
	return &s.scratch
}

// writeLocked encodes pr as the profile in slot. s.mu must be held
// exclusively.
func (s *shard) writeLocked(slot uint32, pr *Profile) {
	s.enc = pr.appendEncoding(s.enc[:0])
	s.storeLocked(slot, pr, s.enc, 4)
}

// storeLocked stores enc, pr's encoding, as the profile in slot; a record
// that must move gets 1/headroom of its size as room to grow (0: none, for
// profiles loaded from a snapshot, most of which never change again). s.mu
// must be held.
func (s *shard) storeLocked(slot uint32, pr *Profile, enc []byte, headroom int) {
	n := len(enc)
	ref := &s.refs[slot]
	s.encoded += n - int(ref.n)
	ref.to = 0
	if pr.MergedTo != "" {
		id, _ := s.targets.Intern(pr.MergedTo)
		ref.to = id + 1
		if pr.MergedAnon {
			ref.to |= toAnon
		}
	}
	if n <= int(ref.room) {
		off := int(ref.off) * recAlign
		copy(s.data[off:off+n], enc)
		ref.n = uint32(n)
	} else {
		// It does not fit: move it to the end, with a quarter more room,
		// so that a growing profile moves a few times, not on every event.
		extra := 0
		if headroom > 0 {
			extra = n / headroom
		}
		*ref = s.appendRecord(enc, extra, ref.to)
	}
	if waste := len(s.data) - s.encoded; waste > s.minGarbage && waste > len(s.data)/2 {
		s.compactLocked()
	}
}

// appendRecord appends rec to the arena with at least extra bytes of room
// after it, and returns its ref.
func (s *shard) appendRecord(rec []byte, extra int, to uint32) profRef {
	room := (len(rec) + extra + recAlign - 1) / recAlign * recAlign
	if uint64(len(s.data))+uint64(room) > uint64(^uint32(0))*recAlign {
		panic("profile: a shard's arena passed 32 GiB; use more shards")
	}
	if need := len(s.data) + room; need > cap(s.data) {
		// Grow by a quarter, not append's double: the arena is most of
		// the engine's memory, and a doubled arena is mostly empty.
		grown := make([]byte, len(s.data), need+need/4)
		copy(grown, s.data)
		s.data = grown
	}
	off := len(s.data)
	s.data = s.data[:off+room]
	copy(s.data[off:], rec)
	clear(s.data[off+len(rec):])
	return profRef{off: uint32(off / recAlign), n: uint32(len(rec)), room: uint32(room), to: to}
}

// reserveLocked makes room for n more arena bytes at once: loading a
// snapshot knows about how much its shard will hold, and growing towards
// it a quarter at a time would copy the arena over and over. s.mu must be
// held.
func (s *shard) reserveLocked(n int) {
	if need := len(s.data) + n; need > cap(s.data) {
		grown := make([]byte, len(s.data), need)
		copy(grown, s.data)
		s.data = grown
	}
}

// compactLocked copies the live records into a new arena, each with no
// more room than it needs: a record that grows again moves again. It takes
// time proportional to the shard's profiles, under the shard's lock, and
// runs once the unused bytes pass the used ones, so its cost per byte
// written stays constant. s.mu must be held exclusively.
func (s *shard) compactLocked() {
	old := s.data
	s.data = make([]byte, 0, s.encoded+s.encoded/8)
	s.compactions++
	for i := range s.refs {
		ref := &s.refs[i]
		if ref.room == 0 {
			continue
		}
		off := int(ref.off) * recAlign
		*ref = s.appendRecord(old[off:off+int(ref.n)], 0, ref.to)
	}
}

// appendRecordOf appends the encoding of the profile in slot: the
// record itself. s.mu must be held.
func (s *shard) appendRecordOf(b []byte, slot uint32) []byte {
	ref := s.refs[slot]
	if ref.n == 0 {
		var empty Profile
		return empty.appendEncoding(b)
	}
	off := int(ref.off) * recAlign
	return append(b, s.data[off:off+int(ref.n)]...)
}
