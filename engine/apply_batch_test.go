package engine

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// batchWorld describes a random stream of records for the ApplyBatch
// tests: a catalog, then events of many customers and anonymous ids with
// every kind of record mixed in (identifies, stock and product changes,
// exclusions, campaigns, erasures, expiries), duplicate event ids (some
// within a batch), rejected records and events stamped on receipt.
type batchWorld struct {
	seed      uint64
	products  int
	customers int
	anons     int
	records   int
	barriers  float64 // the share of records that are not events
	jumpDays  int     // every 2000 records time jumps this far (popularity rebases)
}

// batchLocations are where a batch world's scans happen. The latest scan
// of each is live state that snapshots leave out: the tests compare it
// apart.
var batchLocations = []string{"online", "s1", "s2"}

// generate returns the world's records; the same world gives the same
// records.
func (bw batchWorld) generate() []Record {
	rng := rand.New(rand.NewPCG(bw.seed, 7))
	var recs []Record
	sizes := []string{"S", "M", "L"}
	product := func(i int, cat int) Record {
		id := fmt.Sprint("P", i)
		p := Product{ID: id, Title: id, Category: fmt.Sprintf("c%d/l%d", cat%3, cat%11), Brand: fmt.Sprint("b", i%5),
			Tags: []string{fmt.Sprint("t", i%4)}, Group: fmt.Sprint("g", i/3), Price: 10}
		if i%3 == 0 {
			p.SizeGroup = "apparel"
			for _, s := range sizes {
				p.Variants = append(p.Variants, Variant{SKU: id + "-" + s, Size: s})
			}
		} else {
			p.Variants = []Variant{{SKU: id}}
		}
		return Record{Op: OpProduct, Product: p}
	}
	sku := func(i int) string {
		if i%3 == 0 {
			return fmt.Sprint("P", i, "-", sizes[i%len(sizes)])
		}
		return fmt.Sprint("P", i)
	}
	for i := range bw.products {
		recs = append(recs, product(i, i))
		recs = append(recs, Record{Op: OpInventory, Inventory: Inventory{SKU: sku(i), Location: "online", Quantity: 5}})
	}
	now := t0
	actor := func() (string, string) {
		if rng.IntN(10) < 3 {
			return "", fmt.Sprint("a", rng.IntN(bw.anons))
		}
		return fmt.Sprint("C", rng.IntN(bw.customers)), ""
	}
	ids := 0
	for n := range bw.records {
		now = now.Add(time.Duration(rng.IntN(120_000)) * time.Millisecond)
		if bw.jumpDays > 0 && n%2000 == 1999 {
			now = now.Add(time.Duration(bw.jumpDays) * 24 * time.Hour)
		}
		at := now.UnixMilli()
		var r Record
		if rng.Float64() < bw.barriers {
			c, a := actor()
			switch rng.IntN(10) {
			case 0, 1, 2:
				r = Record{Op: OpIdentify, Identify: Identify{AnonymousID: fmt.Sprint("a", rng.IntN(bw.anons)), Customer: fmt.Sprint("C", rng.IntN(bw.customers))}}
				if rng.IntN(3) == 0 {
					r.Identify.Customer, r.Identify.ToAnonymousID = "", fmt.Sprint("a", rng.IntN(bw.anons))
				}
			case 3, 4:
				r = Record{Op: OpInventory, Inventory: Inventory{SKU: sku(rng.IntN(bw.products)), Location: "online", Quantity: int64(rng.IntN(3))}}
			case 5:
				r = product(rng.IntN(bw.products+5), rng.IntN(50)) // a new product, or a changed category
			case 6:
				r = Record{Op: OpExclusion, Exclusion: Exclusion{Customer: c, AnonymousID: a, Product: fmt.Sprint("P", rng.IntN(bw.products)), Until: at + 3_600_000}}
			case 7:
				r = Record{Op: OpCampaign, Campaign: Campaign{Customer: c, AnonymousID: a, Name: "camp", Products: []string{fmt.Sprint("P", rng.IntN(bw.products))}, TS: at}}
			case 8:
				r = Record{Op: OpErase, Erase: Erase{Customer: c, AnonymousID: a}}
			default:
				r = Record{Op: OpExpire, Expire: Expire{Before: at - 6*3_600_000}}
			}
		} else {
			c, a := actor()
			p := int(float64(bw.products) * rng.Float64() * rng.Float64())
			ev := Event{Type: EventType(1 + rng.IntN(numEventTypes-1)), Customer: c, AnonymousID: a, Channel: "web", TS: at}
			if rng.IntN(2) == 0 {
				ev.SKU = sku(p)
			} else {
				ev.Product = fmt.Sprint("P", p)
			}
			if ev.Type == EventScan {
				ev.Location = batchLocations[n%len(batchLocations)]
			}
			switch rng.IntN(50) {
			case 0:
				ev.Product, ev.SKU = "P-none", "" // unknown product
			case 1:
				ev.Type = 0
			case 2:
				ev.Customer, ev.AnonymousID = "C1", "a1" // both actors
			case 3:
				ev.TS = 0 // stamped on receipt
			case 4:
				ev.SKU = sku(p + 1) // another product's SKU
			}
			r = Record{Op: OpEvent, Event: ev}
		}
		if r.Op == OpEvent || r.Op == OpIdentify || r.Op == OpExclusion {
			switch d := rng.IntN(10); {
			case d < 3:
				ids++
				r.EventID, r.Received = fmt.Sprint("id", ids), at
			case d == 3 && ids > 0: // a retry, most often of a recent record
				r.EventID, r.Received = fmt.Sprint("id", ids-rng.IntN(min(ids, 40))), at
			}
		} else if rng.IntN(40) == 0 {
			r.EventID = "not-an-event" // refused: only events, identifies and exclusions have ids
		}
		recs = append(recs, r)
	}
	return recs
}

// TestApplyBatchIsApply applies random worlds' records once by Apply, one
// by one, and once by ApplyBatch in batches of random sizes: the errors
// and the snapshot bytes must be the same.
func TestApplyBatchIsApply(t *testing.T) {
	base := batchWorld{seed: 1, products: 300, customers: 400, anons: 150, records: 12_000, barriers: 0.01}
	cases := []struct {
		name  string
		world func(batchWorld) batchWorld
		opts  Options
		step  time.Duration // Options.Now advances this much a call (0: a fixed clock)
	}{
		{"defaults", nil, Options{}, 0},
		{"two workers", nil, Options{ApplyWorkers: 2}, 0},
		{"five workers, neighbours", nil, Options{ApplyWorkers: 5, NeighbourWeight: 0.3, WeightsSet: false}, 0},
		{"one shard", nil, Options{Shards: 1, ApplyWorkers: 3}, 0},
		{"few barriers", func(w batchWorld) batchWorld { w.barriers = 0.002; w.seed = 2; return w }, Options{ApplyWorkers: 4}, 0},
		{"many barriers", func(w batchWorld) batchWorld { w.barriers = 0.2; w.seed = 3; return w }, Options{ApplyWorkers: 4}, 0},
		{"popularity rebases", func(w batchWorld) batchWorld { w.jumpDays = 70; w.seed = 4; return w }, Options{ApplyWorkers: 3}, 0},
		{"profile cap with room", func(w batchWorld) batchWorld { w.seed = 5; w.anons = 2000; w.barriers = 0.005; return w }, Options{ApplyWorkers: 4, MaxProfiles: 2000, Shards: 8}, 0},
		{"profile cap reached", func(w batchWorld) batchWorld { w.seed = 8; w.anons = 2000; w.barriers = 0.005; return w }, Options{ApplyWorkers: 4, MaxProfiles: 640, Shards: 8}, 0},
		{"blend", func(w batchWorld) batchWorld { w.seed = 6; return w }, Options{ApplyWorkers: 4, Blend: true, BlendMinPurchases: 10}, 0},
		{"few anchors, small caps", func(w batchWorld) batchWorld { w.seed = 7; return w }, Options{ApplyWorkers: 2, EventAnchors: 5, MaxViews: 4, MaxRelated: 8}, 0},
		// Events without a time are stamped with Options.Now in record
		// order, once each, as Apply does: a clock that moves between
		// calls must give the same stamps.
		{"moving clock", func(w batchWorld) batchWorld { w.seed = 10; return w }, Options{ApplyWorkers: 3}, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bw := base
			if tc.world != nil {
				bw = tc.world(base)
			}
			if testing.Short() || raceDetector {
				bw.records /= 4
			}
			serial, batched := New(withClock(tc.opts, tc.step)), New(withClock(tc.opts, tc.step))

			wantRecs := bw.generate()
			want := make([]error, len(wantRecs))
			for i := range wantRecs {
				want[i] = serial.Apply(&wantRecs[i])
			}
			recs := bw.generate()
			got := make([]error, len(recs))
			rng := rand.New(rand.NewPCG(bw.seed, 11))
			for i := 0; i < len(recs); {
				n := min(len(recs)-i, []int{1, 10, 70, 500, 3000}[rng.IntN(5)])
				batched.ApplyBatch(recs[i:i+n], got[i:i+n])
				i += n
			}
			rejected := 0
			for i := range want {
				if fmt.Sprint(want[i]) != fmt.Sprint(got[i]) {
					t.Fatalf("record %d (%v): Apply says %v, ApplyBatch %v", i, recs[i].Op, want[i], got[i])
				}
				if recs[i].Event.TS != wantRecs[i].Event.TS { // events without a time are stamped alike
					t.Fatalf("record %d: Apply stamps %d, ApplyBatch %d", i, wantRecs[i].Event.TS, recs[i].Event.TS)
				}
				if want[i] != nil {
					rejected++
				}
			}
			if rejected == 0 {
				t.Fatal("no record was rejected: the world tests too little")
			}
			if a, b := snapshotBytes(t, serial), snapshotBytes(t, batched); !bytes.Equal(a, b) {
				t.Fatalf("snapshots differ: %d bytes one by one, %d batched (%v / %v)", len(a), len(b), serial.Stats(), batched.Stats())
			}
			for _, loc := range batchLocations {
				if a, b := serial.LastScan(loc), batched.LastScan(loc); a != b {
					t.Fatalf("the latest scan at %s: %+v one by one, %+v batched", loc, a, b)
				}
			}
			if serial.Stats() != batched.Stats() {
				t.Fatalf("stats differ:\n%+v\n%+v", serial.Stats(), batched.Stats())
			}
		})
	}
}

// withClock returns o with an Options.Now of its own, at 40 days past t0,
// that moves on by step at each call.
func withClock(o Options, step time.Duration) Options {
	var calls atomic.Int64
	start := t0.Add(40 * 24 * time.Hour)
	o.Now = func() time.Time { return start.Add(time.Duration(calls.Add(1)-1) * step) }
	return o
}

// TestApplyBatchWithReaders runs picks, stats and snapshots while
// ApplyBatch applies (the race detector watches the parallel phases
// against readers), and the state still ends as Apply's one by one.
func TestApplyBatchWithReaders(t *testing.T) {
	bw := batchWorld{seed: 9, products: 200, customers: 300, anons: 100, records: 6000, barriers: 0.01}
	if raceDetector {
		bw.records /= 2
	}
	now := t0.Add(40 * 24 * time.Hour)
	opts := Options{ApplyWorkers: 3, Now: func() time.Time { return now }}
	serial, batched := New(opts), New(opts)
	recs := bw.generate()
	for i := range recs {
		serial.Apply(&recs[i])
	}
	recs = bw.generate()
	errs := make([]error, len(recs))
	stopReaders := readWhileApplying(t, batched, bw.customers)
	for i := 0; i < len(recs); i += 700 {
		n := min(700, len(recs)-i)
		batched.ApplyBatch(recs[i:i+n], errs[i:i+n])
	}
	stopReaders()
	if !bytes.Equal(snapshotBytes(t, serial), snapshotBytes(t, batched)) {
		t.Fatal("the state applied in batches among readers differs from Apply's one by one")
	}
}

// readWhileApplying runs two readers of e (picks of customers C0..Cn-1,
// stats, and snapshots on one of them) until the returned function is
// called, which waits for them.
func readWhileApplying(t *testing.T, e *Engine, customers int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			var dst []Pick
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				q := Query{Customer: fmt.Sprint("C", i%customers), Channel: ChannelWeb, K: 10}
				dst = e.PicksInto(dst[:0], &q)
				e.Stats()
				if r == 0 && i%50 == 0 {
					if _, err := e.BeginSnapshot().WriteTo(io.Discard); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	return func() { close(done); wg.Wait() }
}

// TestApplyBatchLongLinkChain links anonymous ids one after another into
// chains (each link to an id not yet linked, as a device then a cookie
// would be), some longer than Resolve follows in one go, then applies a
// run of events on the chains' first ids: ApplyBatch must edit the
// profile Apply edits, whatever the chain's length.
func TestApplyBatchLongLinkChain(t *testing.T) {
	for _, links := range []int{1, 15, 16, 17, 48} { // profile.Store.Resolve follows 16 links
		t.Run(fmt.Sprint(links, " links"), func(t *testing.T) {
			var recs []Record
			for i := range 4 {
				id := fmt.Sprint("P", i)
				recs = append(recs, Record{Op: OpProduct, Product: Product{ID: id, Category: fmt.Sprint("c", i), Variants: []Variant{{SKU: id}}}})
			}
			for i := range links {
				recs = append(recs, Record{Op: OpIdentify, Identify: Identify{AnonymousID: fmt.Sprint("L", i), ToAnonymousID: fmt.Sprint("L", i+1)}})
			}
			for i := range 2 * minParallelRun {
				ev := Event{Type: EventView, Product: fmt.Sprint("P", i%4), TS: t0.Add(time.Duration(i) * time.Minute).UnixMilli()}
				if i%2 == 0 {
					ev.AnonymousID = "L0"
				} else {
					ev.Customer = fmt.Sprint("C", i%7)
				}
				recs = append(recs, Record{Op: OpEvent, Event: ev})
			}
			opts := withClock(Options{ApplyWorkers: 2, Shards: 4}, 0)
			serial, batched := New(opts), New(opts)
			want, got := make([]error, len(recs)), make([]error, len(recs))
			for i := range recs {
				r := recs[i]
				want[i] = serial.Apply(&r)
			}
			batched.ApplyBatch(slices.Clone(recs), got)
			for i := range want {
				if fmt.Sprint(want[i]) != fmt.Sprint(got[i]) {
					t.Fatalf("record %d: Apply says %v, ApplyBatch %v", i, want[i], got[i])
				}
			}
			if !bytes.Equal(snapshotBytes(t, serial), snapshotBytes(t, batched)) {
				t.Fatal("the profiles edited in a batch differ from Apply's")
			}
		})
	}
}
