// Package engine holds Omnipick's live state beyond the catalog: a profile
// per customer or anonymous id (through package profile), item-to-item
// relations and popularity, all learned from events as they arrive, and
// the ranking that turns them into picks. It knows nothing of HTTP or
// files: every change arrives as a Record through Apply, and picks come
// from PicksInto.
//
// # Floor plan
//
// Each package imports only those below it:
//
//	cmd/omnipick       the binary: flags, demo loading, serve, eval
//	     |
//	    api            HTTP: decode requests, call the engine, encode answers
//	     |
//	engine/store       durability: one order of log appends and Applies, snapshots
//	     |      \
//	     |     engine/wal        the write-ahead log's files (payloads opaque)
//	     |
//	  engine           Apply dispatch, catalog signals, ranking, the record
//	     |      \       codec (record_codec.go) and snapshot format (snapshot.go)
//	     |     engine/profile    profiles: shards, arenas, the profile encoding
//	     |      /
//	   index           catalog and stock: dense ids, facet postings, stock bitmaps
//	     |
//	internal/binfmt    varints, strings and floats, and a Reader that never panics
//
// internal/jsonenc (JSON strings and numbers appended to a buffer) is a
// leaf used by api and bench/world. bench/ sits beside cmd and may import
// any of them.
//
// A partial engine (Options.Holds: a node of a partitioned cluster)
// holds only some actors' profiles and turns its events' global effects
// into derived records (partial.go) that every node applies.
//
// engine owns: the index (behind Engine.mu), the profile store, relations
// (signals.go), popularity and top lists, scans, global exclusions, the
// event counters and Options. It may import engine/profile, index,
// internal/binfmt and the libraries of the design card, never api or
// engine/store.
//
// # Concurrency and lock order
//
// An Engine is safe for concurrent use. Over the whole service, locks are
// taken in this order and never the other way round; a package's locks
// are never held while calling a package above it:
//
//  1. store.snapMu, then store.applyMu (engine/store): one snapshot at a
//     time; log append and Apply as one step. The log's own locks
//     (engine/wal) are taken under applyMu and are leaves.
//  2. Engine.snapMu: one snapshot capture at a time, from BeginSnapshot to
//     the end of WriteTo (writes and reads go on meanwhile).
//  3. Engine.mu: an RWMutex over the index (catalog and stock) and over the
//     length of every per-product array. Catalog and stock writes hold it
//     exclusively; events and picks hold it shared. Engine.idxSnap is
//     taken under it, for the index part of a capture.
//  4. profile shard locks (engine/profile): one per shard, taken one at a
//     time inside profile.Store's methods. Picks copy what they need out
//     of the profile and release the shard before ranking.
//  5. relation stripe locks, top-list locks, the scans lock: leaf locks,
//     held for a few hundred nanoseconds, never while taking another lock.
//
// ApplyBatch (apply_batch.go) holds Engine.mu shared for a run of events
// on behalf of the goroutines it starts; they take profile shard locks
// and relation stripe locks as Apply does, each goroutine its own shards
// and its own stripes. A run that rebases popularity releases Engine.mu
// for the exclusive lock the rebase takes, as Apply does, and then has no
// goroutine running.
package engine

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/omnipick/omnipick/engine/profile"
	"github.com/omnipick/omnipick/index"
)

// Engine is the live state. See the package doc for concurrency.
type Engine struct {
	opts       Options
	capHorizon uint32 // the longest frequency-cap window, seconds

	mu      sync.RWMutex // see lock order
	idx     *index.Index
	weights profile.FacetWeights
	tops    []topList // by facet id
	global  topList

	profiles *profile.Store
	// excluded holds products kept out of everyone's picks: dense id ->
	// until (unix seconds). Guarded by mu.
	excluded map[uint32]uint32
	rel      relations
	pop      popularity
	scans    scans
	ids      *eventIDs  // Record.EventID values applied within the window
	blend    blend      // the learned ranking model (blend.go)
	nb       neighbours // the user-neighbour signal (neighbours.go)

	pickers sync.Pool  // *picker
	batches sync.Pool  // *applyBatch
	snapMu  sync.Mutex // one snapshot capture at a time

	// A snapshot in progress waits for the index (see Capture). Catalog
	// writes hold mu exclusively when they capture it, WriteTo shared.
	idxSnap        sync.Mutex
	idxSnapPending bool
	idxSnapBytes   []byte

	// applied counts events by type: an atomic each, so parallel ingest
	// shares no lock for it.
	applied [numEventTypes]atomic.Uint64

	derived derivedLog // a partial engine's derived records (partial.go)
	refused error      // Options.Check's verdict: Apply applies nothing
}

// New returns an empty engine. Options that Check refuses give an engine
// whose Apply returns Check's error.
func New(opts Options) *Engine {
	opts.setDefaults()
	e := &Engine{opts: opts, idx: index.New()}
	e.weights.W = opts.FacetWeights
	e.profiles = profile.New(opts.Shards, opts.profileLimits())
	e.profiles.SetMaxProfiles(opts.MaxProfiles)
	e.ids = newEventIDs(int64(opts.EventIDWindow.Seconds()), opts.MaxEventIDs)
	for _, c := range opts.FrequencyCaps {
		e.capHorizon = max(e.capHorizon, uint32(c.Window.Seconds()))
	}
	e.rel.max = opts.MaxRelated
	e.pop.halfLife = opts.PopularityHalfLife.Seconds()
	e.pickers.New = func() any { return new(picker) }
	e.batches.New = func() any { return new(applyBatch) }
	e.blend.w = initialWeights(&e.opts)
	e.nb.init(&e.opts)
	e.refused = opts.Check()
	return e
}

// Options returns the engine's options with defaults filled in.
func (e *Engine) Options() Options { return e.opts }

func secs(ms int64) uint32 {
	if ms <= 0 {
		return 0
	}
	s := ms / 1000
	if s > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(s)
}

// nowMS returns Options.Now in unix milliseconds.
func (e *Engine) nowMS() int64 { return e.opts.Now().UnixMilli() }

// Stats is a snapshot of the engine's counters, for metrics.
type Stats struct {
	Products  int
	SKUs      int
	Locations int
	Facets    int
	Profiles  int
	// ProfileBytes is the size of the profiles' encodings: what the state
	// holds, whatever its history. The arenas that hold them are larger,
	// by the room left for growth and the bytes awaiting compaction.
	ProfileBytes int64
	Events       [numEventTypes]uint64
	// EventIDs are the event ids kept for deduplication; EventIDsEvicted
	// those dropped before their window ended, for MaxEventIDs.
	EventIDs        int
	EventIDsEvicted uint64
	// Profiles removed since start (replayed records included): by
	// erasure (profiles and links), by expiry, and to stay under
	// Options.MaxProfiles.
	ProfilesErased, ProfilesExpired, ProfilesEvicted uint64
}

// EventCount returns how many events of a type were applied.
func (s *Stats) EventCount(t EventType) uint64 { return s.Events[t] }

// Stats returns current counters.
func (e *Engine) Stats() Stats {
	var st Stats
	e.mu.RLock()
	st.Products, st.SKUs, st.Locations, st.Facets = e.idx.Products(), e.idx.SKUs(), e.idx.Locations(), e.idx.Facets()
	e.mu.RUnlock()
	st.Profiles, st.ProfileBytes = e.profiles.Stats()
	for i := range e.applied {
		st.Events[i] = e.applied[i].Load()
	}
	e.ids.mu.Lock()
	st.EventIDs, st.EventIDsEvicted = len(e.ids.seen), e.ids.evicted
	e.ids.mu.Unlock()
	rm := e.profiles.Removed()
	st.ProfilesErased, st.ProfilesExpired, st.ProfilesEvicted = rm.Erased, rm.Expired, rm.Evicted
	return st
}

// String describes the engine briefly, for logs.
func (e *Engine) String() string {
	st := e.Stats()
	return fmt.Sprintf("engine{products=%d skus=%d locations=%d profiles=%d}", st.Products, st.SKUs, st.Locations, st.Profiles)
}
