package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/wal"
)

// eventBatch returns a batch of n records, nearly all events of many
// customers and anonymous ids (long runs of events: ApplyBatch edits their
// profiles in parallel), with identifies, stock changes, duplicate event
// ids and invalid records among them.
func eventBatch(rng *rand.Rand, products, n int, ts *int64, ids *int) []engine.Record {
	recs := make([]engine.Record, 0, n)
	types := []engine.EventType{engine.EventView, engine.EventView, engine.EventCartAdd, engine.EventPurchase, engine.EventReturn, engine.EventCartRemove, engine.EventScan, engine.EventImpression}
	for range n {
		*ts += rng.Int64N(20_000)
		i := rng.IntN(products + 1) // products+1: sometimes unknown
		id := fmt.Sprintf("P%03d", i)
		var r engine.Record
		switch k := rng.IntN(100); {
		case k < 2:
			r = engine.Record{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: fmt.Sprint("cookie-", rng.IntN(200)), Customer: fmt.Sprint("C", rng.IntN(500))}}
		case k < 3:
			r = engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: id, Location: "online", Quantity: rng.Int64N(3)}}
		default:
			ev := engine.Event{Type: types[rng.IntN(len(types))], Customer: fmt.Sprint("C", rng.IntN(500)), TS: *ts, Product: id, Location: "online"}
			if rng.IntN(4) == 0 {
				ev.Customer, ev.AnonymousID = "", fmt.Sprint("cookie-", rng.IntN(200))
			}
			if i%2 == 0 && rng.IntN(2) == 0 {
				ev.Product, ev.SKU = "", id+"-M"
			}
			r = engine.Record{Op: engine.OpEvent, Event: ev}
		}
		if r.Op != engine.OpInventory && rng.IntN(4) == 0 {
			*ids++
			r.EventID, r.Received = fmt.Sprint("e", *ids-rng.IntN(min(*ids, 3))), *ts // some repeat a recent id
		}
		recs = append(recs, r)
	}
	return recs
}

// TestParallelBatchesReplayAsLive writes batches long enough for ApplyBatch
// to apply their events in parallel, then reopens the store from its log
// alone: the replayed state, the live state and the state of Apply one
// record at a time are the same bytes, and Write returned Apply's errors.
func TestParallelBatchesReplayAsLive(t *testing.T) {
	for _, workers := range []int{2, 3} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			fs := wal.NewMemFS()
			tweak := func(o *Options) { o.Engine.ApplyWorkers = workers; o.SegmentBytes = 1 << 20 }
			s, _ := openMem(t, fs, tweak)
			defer s.Close()
			all := catalog(60)
			write(t, s, all)
			rng := rand.New(rand.NewPCG(uint64(workers), 1))
			ts, ids := t0.UnixMilli(), 0
			ref := engine.New(engineOpts())
			for i := range all {
				ref.Apply(&all[i])
			}
			rejected := 0
			for range 12 {
				b := eventBatch(rng, 60, 200+rng.IntN(1500), &ts, &ids)
				want := make([]error, len(b))
				for i := range b {
					r := b[i]
					want[i] = ref.Apply(&r)
				}
				errs := make([]error, len(b))
				if err := s.Write(b, errs); err != nil {
					t.Fatal(err)
				}
				for i := range b {
					if fmt.Sprint(errs[i]) != fmt.Sprint(want[i]) {
						t.Fatalf("record %d: Write says %v, Apply %v", i, errs[i], want[i])
					}
					if want[i] != nil {
						rejected++
					}
				}
				all = append(all, b...)
			}
			if rejected == 0 {
				t.Fatal("nothing was rejected: the batches test too little")
			}
			live := stateBytes(t, s.Engine())
			if !bytes.Equal(live, stateBytes(t, ref)) {
				t.Fatal("the live state differs from Apply's one record at a time")
			}
			s2, info := openMem(t, fs.CrashClone(), tweak)
			defer s2.Close()
			if info.Replayed != len(all) {
				t.Fatalf("replayed %d of %d records", info.Replayed, len(all))
			}
			if !bytes.Equal(stateBytes(t, s2.Engine()), live) {
				t.Fatalf("the replayed state differs from the live state (recovery %+v)", info)
			}
		})
	}
}
