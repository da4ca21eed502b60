package engine

import (
	"cmp"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/omnipick/omnipick/engine/profile"
)

// Batches: ApplyBatch gives exactly the state and errors of Apply on each
// record in order, but edits the profiles of a run of events on several
// goroutines. An event changes two kinds of state: its actor's profile
// (editProfile, which also reads the anchors from it) and the catalog
// signals every actor shares (a signalUpdate: relations, popularity, top
// lists, baskets, scans, counters). The signals depend on the order of
// events, the profile only on the order of its own actor's events; and a
// profile shard's bytes (its dictionaries, slots and arena) only on the
// order of the edits in that shard; and a relation list only on the order
// of its own updates. So a run of events is applied in three phases:
//
//  1. on the workers, a share of the run each: the checks that depend on
//     the record and the catalog alone (type, actor, time, product), the
//     actor resolved through links to the profile it edits; then
//     serially, in record order: event ids reserved (a duplicate changes
//     nothing), times stamped, ids released for invalid events;
//  2. in parallel: each worker edits, in record order, the profiles of
//     the profile shards it was given (the busiest shards first, each to
//     the least loaded worker), and fills in each event's signal update
//     (with the anchors the edit found);
//  3. in parallel: each worker updates the relation lists of its parts
//     (relPart) in record order, while the first also applies, in record
//     order, each event's popularity rebase check and the rest of its
//     signal update (popularity, top lists, baskets, scans, counters).
//     A run in which an event could rebase popularity (it takes Engine.mu
//     exclusively) does all of phase 3 on one goroutine.
//
// No state one phase writes is read by another phase of the same run: a run
// holds events only (any other record ends it and is applied alone,
// through Apply, between runs), profile edits read no signals, signal
// updates read no profile, and phase 1 reads only the records, the
// catalog and the links, which no event changes. The results that could
// still depend on the interleaving are avoided by applying serially: with
// the learned blend on (it reads the signals just before a purchase
// changes them), and when a profile shard could reach its share of
// Options.MaxProfiles within the run (which new actor is refused, or which
// profile is evicted and its links with it, would then depend on the
// order of shards). An event id repeated within a run needs no care: ids
// are reserved and released in record order in phase 1, and phase 2
// cannot reject an event once the cap has room.

// batchChunk is the most events one run applies; a longer run of events
// is cut into runs of this many. It bounds the scratch and how long a run
// holds Engine.mu shared.
const batchChunk = 1024

// minParallelRun is the shortest run of events worth starting goroutines
// for (three starts and waits a run, a few microseconds); shorter runs are
// applied one by one. BenchmarkApplyBatchWorld with every run parallel
// (2026-12-05, on the loaded 2-core machine, medians of 3): at 32, 64 and
// 256 events a batch two workers used within 6% of one worker's CPU per
// event and took 3-12% less wall time; at 64 the starts are about 2% of a
// run.
const minParallelRun = 64

// Stages of an event in a run.
const (
	stageRejected   = iota // rejected before the rebase check: nothing to do
	stageRebaseOnly        // rejected after it: the rebase check only
	stageEdit              // applied: rebase check and signal update
)

// batchEvent is phase 1's result for one event of a run.
type batchEvent struct {
	x          eventEdit
	target     string // the actor whose profile the event edits (links followed)
	targetAnon bool
	shard      int // the target's profile shard
	stage      uint8
	hasID      bool
	id         uint64 // the event id's hash, if hasID
	ts         int64  // the event's time (unix milliseconds), stamped or its own
	invalid    error  // Apply's error for the event, but for its id and profile
	err        error  // phase 2's error
	u          signalUpdate
}

// applyBatch is a run's scratch, pooled by the engine.
type applyBatch struct {
	events []batchEvent
	need   []int    // new profiles per profile shard (room)
	owner  []int    // the worker that edits each profile shard's profiles (balance)
	load   []int    // events per profile shard (balance)
	order  []int    // profile shards, busiest first (balance)
	parts  []uint32 // the relation parts of each worker (assignParts)
	latest uint32   // the latest event time of the run (unix seconds)
	wg     sync.WaitGroup
}

// ApplyBatch applies recs in order as Apply would, one by one, and stores
// each record's error in errs (len(errs) >= len(recs)): the same errors and
// the same state, byte for byte. It is faster on several cores: the
// checks, the profile edits (by the actor's profile shard) and the
// relation updates (by list) of a run of events go to
// Options.ApplyWorkers goroutines (see the comment above batchChunk).
func (e *Engine) ApplyBatch(recs []Record, errs []error) {
	errs = errs[:len(recs)]
	workers := e.opts.ApplyWorkers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if workers < 2 || e.opts.Blend || len(recs) < minParallelRun {
		for i := range recs {
			errs[i] = e.applyAt(&recs[i], i)
		}
		return
	}
	b := e.batches.Get().(*applyBatch)
	for i := 0; i < len(recs); {
		if recs[i].Op != OpEvent {
			errs[i] = e.applyAt(&recs[i], i)
			i++
			continue
		}
		j := i + 1
		for j < len(recs) && recs[j].Op == OpEvent && j-i < batchChunk {
			j++
		}
		if j-i < minParallelRun || !b.room(e, recs[i:j]) {
			for ; i < j; i++ {
				errs[i] = e.applyAt(&recs[i], i)
			}
			continue
		}
		b.run(e, recs[i:j], errs[i:j], workers, i)
		i = j
	}
	e.batches.Put(b)
}

// room reports whether the profile shards have room under
// Options.MaxProfiles for every new actor the run's events could bring
// (each event counted as a new profile in the shard it edits).
func (b *applyBatch) room(e *Engine, recs []Record) bool {
	if e.opts.MaxProfiles <= 0 {
		return true
	}
	if len(b.need) != e.profiles.Shards() {
		b.need = make([]int, e.profiles.Shards())
	}
	clear(b.need)
	for k := range recs {
		if actor, anon, err := checkedActor(recs[k].Event.Customer, recs[k].Event.AnonymousID); err == nil {
			target, _ := e.profiles.Resolve(actor, anon)
			b.need[e.profiles.ShardIndex(target)]++
		}
	}
	return e.profiles.Room(b.need)
}

// run applies a run of events (see the comment above batchChunk), the
// first at index base of the ApplyBatch call.
func (b *applyBatch) run(e *Engine, recs []Record, errs []error, workers, base int) {
	if cap(b.events) < len(recs) {
		b.events = make([]batchEvent, batchChunk)
	}
	evs := b.events[:len(recs)]
	b.assignParts(workers)
	b.latest = 0
	e.mu.RLock()
	// Phase 1: what depends on nothing but the record and the catalog on
	// the workers, a share of the run each; then, in record order, the
	// event ids and what follows from them.
	b.wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		go func() {
			defer b.wg.Done()
			e.prepareEvents(recs[w*len(recs)/workers:(w+1)*len(recs)/workers], evs[w*len(recs)/workers:], workers)
		}()
	}
	e.prepareEvents(recs[:len(recs)/workers], evs, workers)
	b.wg.Wait()
	for k := range evs {
		errs[k] = e.admitBatchEvent(&evs[k], &recs[k])
		if evs[k].stage != stageRejected {
			b.latest = max(b.latest, evs[k].x.t)
		}
	}
	b.balance(e, evs, workers)

	b.wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		go func() {
			defer b.wg.Done()
			b.edit(e, recs, evs, w)
		}()
	}
	b.edit(e, recs, evs, 0)
	b.wg.Wait()

	if e.opts.Holds != nil {
		// A partial engine derives the signal updates rather than apply
		// them: phase 3 is their list, in record order.
		b.derive(e, recs, evs, errs, base)
	} else {
		b.signals(e, evs, errs, workers)
	}
	e.mu.RUnlock()
	for k := range evs { // the scratch keeps no strings or items alive
		be := &evs[k]
		be.x, be.target, be.err, be.invalid = eventEdit{}, "", nil, nil
		be.u.facets, be.u.buyer, be.u.scanAt, be.u.scan = nil, "", "", Scan{}
	}
}

// signals is phase 3 of a run (see the comment above batchChunk). The
// caller holds Engine.mu shared, which a popularity rebase releases for a
// while.
func (b *applyBatch) signals(e *Engine, evs []batchEvent, errs []error, workers int) {
	// Phase 3. The relation lists go to the workers by part, unless an
	// event rebases popularity: that takes Engine.mu exclusively, which
	// this run holds shared for its workers. Popularity's offset only
	// grows with time, so if the run's latest event does not rebase, none
	// does.
	ordered := ^uint32(0)
	if !e.pop.needsRebase(b.latest) {
		ordered = b.parts[0]
		b.wg.Add(workers - 1)
		for w := 1; w < workers; w++ {
			go func() {
				defer b.wg.Done()
				b.relate(e, evs, b.parts[w])
			}()
		}
	}
	for k := range evs {
		be := &evs[k]
		if be.err != nil { // phase 2 rejected it (not with room in the cap)
			errs[k] = e.editFailed(be)
		}
		if be.stage >= stageRebaseOnly && e.pop.needsRebase(be.x.t) {
			e.mu.RUnlock()
			e.rebasePopularity(be.x.t)
			e.mu.RLock()
		}
		if be.stage == stageEdit {
			if ordered == ^uint32(0) {
				e.applySignals(&be.u)
			} else {
				e.applyOrdered(&be.u)
			}
		}
	}
	if ordered != ^uint32(0) {
		b.relate(e, evs, ordered)
		b.wg.Wait()
	}
}

// derive is phase 3 of a run on a partial engine, in record order: the
// errors of phase 2, and what Apply derives for each event (its signal, or
// the clock-only signal of an event rejected after the rebase check; see
// applyEventPartial). The caller holds Engine.mu shared.
func (b *applyBatch) derive(e *Engine, recs []Record, evs []batchEvent, errs []error, base int) {
	for k := range evs {
		be := &evs[k]
		switch {
		case be.err != nil: // phase 2 rejected it (not with room in the cap)
			errs[k] = e.editFailed(be)
			e.deriveClock(base+k, be.target, be.x.t)
		case be.stage == stageEdit:
			e.derived.add(base+k, strings.Clone(be.target), Record{Op: OpSignal, Signal: signalOf(&be.u)})
		case be.stage == stageRebaseOnly && be.invalid != nil && e.pop.needsRebase(be.x.t):
			// Rare: the target is resolved here rather than for every
			// rejected event in phase 1 (links do not change in a run).
			actor, anon, _ := checkedActor(recs[k].Event.Customer, recs[k].Event.AnonymousID)
			if target, _ := e.profiles.Resolve(actor, anon); e.opts.Holds(target) {
				e.deriveClock(base+k, target, be.x.t)
			}
		}
	}
}

// editFailed returns the error phase 2 left on be, releasing be's event
// id: the event changed nothing, so its retry must not count as a
// duplicate.
func (e *Engine) editFailed(be *batchEvent) error {
	if be.hasID {
		e.ids.release(be.id)
	}
	return be.err
}

// prepareEvents is phase 1's first part for the events of recs (evs[k]
// is recs[k]'s): Apply's checks of each, up to the profile edit, that
// depend only on the record and the catalog. The caller holds Engine.mu
// shared.
func (e *Engine) prepareEvents(recs []Record, evs []batchEvent, workers int) {
	for k := range recs {
		r, be := &recs[k], &evs[k]
		be.x, be.target, be.targetAnon, be.shard, be.stage, be.err = eventEdit{}, "", false, 0, stageRejected, nil
		be.id, be.hasID = 0, r.EventID != ""
		if be.hasID {
			be.id = hashEventID(r.EventID)
		}
		be.invalid = e.prepareEdit(be, &r.Event, workers)
	}
}

// An event without a time is stamped later, in record order
// (admitBatchEvent): Options.Now is read once per stamp, in record order,
// as Apply reads it, and never for a duplicate.
func (e *Engine) prepareEdit(be *batchEvent, ev *Event, workers int) error {
	actor, anon, err := checkEventActor(ev)
	if err != nil {
		return err
	}
	be.ts, be.stage = ev.TS, stageRebaseOnly
	if err := e.startEdit(&be.x, ev, ev.TS); err != nil {
		return err
	}
	be.target, be.targetAnon = e.profiles.Resolve(actor, anon)
	if e.opts.Holds != nil && !e.opts.Holds(be.target) {
		return nil // valid, and nothing to do here: another node's actor
	}
	be.shard = e.profiles.ShardIndex(be.target)
	be.stage = stageEdit
	return nil
}

// admitBatchEvent is phase 1's second part for one event, in record
// order: its event id reserved (a duplicate changes nothing), its time
// stamped (Options.Now read here, as Apply reads it), the id released if the event is invalid, as Apply does.
func (e *Engine) admitBatchEvent(be *batchEvent, r *Record) error {
	if be.hasID && !e.ids.reserve(be.id, secs(r.Received)) {
		be.stage = stageRejected
		return ErrDuplicate
	}
	if be.stage != stageRejected {
		if be.ts == 0 {
			be.ts = e.nowMS()
			be.x.t = secs(be.ts)
		}
		r.Event.TS = be.ts
	}
	if be.invalid != nil && be.hasID {
		e.ids.release(be.id)
	}
	return be.invalid
}

// relate is phase 3's part for a worker: the relation updates of the
// events in the lists of the parts in mask, in record order.
func (b *applyBatch) relate(e *Engine, evs []batchEvent, mask uint32) {
	if mask == 0 {
		return
	}
	for k := range evs {
		if be := &evs[k]; be.stage == stageEdit {
			e.relate(&be.u, mask)
		}
	}
}

// assignParts gives each of workers its relation parts in b.parts: the
// first worker, which also applies the ordered part of every signal update
// (about 0.3 of the relations' time, BenchmarkApplyBatchWorld's profile),
// fewer.
func (b *applyBatch) assignParts(workers int) {
	if len(b.parts) == workers {
		return
	}
	b.parts = make([]uint32, workers)
	first := int(math.Round(relParts * max(0, (1-0.3*float64(workers-1))/float64(workers))))
	for i := range relParts {
		w := 0
		if i >= first {
			w = 1 + (i-first)%(workers-1)
		}
		b.parts[w] |= 1 << i
	}
}

// balance gives each profile shard with events in the run to a worker
// (b.owner), the busiest shards first, each to the worker with the fewest
// events so far: which worker edits a shard changes nothing but the time.
func (b *applyBatch) balance(e *Engine, evs []batchEvent, workers int) {
	n := e.profiles.Shards()
	if len(b.owner) != n {
		b.owner, b.load, b.order = make([]int, n), make([]int, n), make([]int, 0, n)
	}
	clear(b.load)
	for k := range evs {
		if evs[k].stage == stageEdit {
			b.load[evs[k].shard]++
		}
	}
	b.order = b.order[:0]
	for i, c := range b.load {
		if c > 0 {
			b.order = append(b.order, i)
		}
	}
	load := b.load
	slices.SortFunc(b.order, func(x, y int) int { return cmp.Or(load[y]-load[x], x-y) })
	var perWorker [64]int
	for _, i := range b.order {
		w := 0
		for v := 1; v < min(workers, len(perWorker)); v++ {
			if perWorker[v] < perWorker[w] {
				w = v
			}
		}
		b.owner[i] = w
		perWorker[w] += load[i]
	}
}

// edit is phase 2 for worker w: the profile edits of its events, in
// record order, each event's signal update filled in.
func (b *applyBatch) edit(e *Engine, recs []Record, evs []batchEvent, w int) {
	for k := range evs {
		be := &evs[k]
		if be.stage != stageEdit || b.owner[be.shard] != w {
			continue
		}
		x, anchors := &be.x, be.u.anchors[:0:e.opts.EventAnchors]
		// Edit follows the actor's links itself, as Apply's does: from
		// be.target, the end of the links Resolve follows in one go, a
		// longer chain would lead further.
		actor, anon, _ := checkedActor(recs[k].Event.Customer, recs[k].Event.AnonymousID)
		if err := e.profiles.Edit(actor, anon, func(pr *profile.Profile) { anchors = x.editProfile(pr, anchors) }); err != nil {
			be.err, be.stage = profilesFull(err), stageRebaseOnly
			continue
		}
		x.signals(&be.u, &recs[k].Event, len(anchors), be.target, be.targetAnon)
	}
}
