package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/omnipick/omnipick/engine/profile"
	"github.com/omnipick/omnipick/internal/binfmt"
)

// The partial engines' tests lay out a cluster as the cluster package
// does: actors hash into testPartitions partitions, and partition p is
// held by nodes p%3 (its owner, which publishes what it derives) and
// (p+1)%3 (its standby).
const (
	testPartitions = 64
	testNodes      = 3
)

func partitionOf(actor string) int { return int(xxhash.Sum64String(actor) % testPartitions) }

func ownerOf(actor string) int { return partitionOf(actor) % testNodes }

// holdsFor is node n's Options.Holds.
func holdsFor(n int) func(string) bool {
	return func(actor string) bool {
		p := partitionOf(actor)
		return p%testNodes == n || (p+1)%testNodes == n
	}
}

// testCluster is three partial engines fed the same records.
type testCluster struct {
	t     *testing.T
	nodes [testNodes]*Engine
}

func newTestCluster(t *testing.T, opts Options) *testCluster {
	c := &testCluster{t: t}
	for n := range c.nodes {
		o := opts
		o.Holds = holdsFor(n)
		c.nodes[n] = New(o)
	}
	return c
}

// take returns what the nodes derived since the last call, as a stream
// would carry it: each derived record of its actor's owner, in record
// order (the owner's order within a record). It fails the test if the
// standby derived something else than the owner, or a node derived for an
// actor it does not hold.
func (c *testCluster) take() []Derived {
	c.t.Helper()
	var per [testNodes][]Derived
	for n, e := range c.nodes {
		per[n] = e.TakeDerived(nil)
		for _, d := range per[n] {
			if !holdsFor(n)(d.Actor) {
				c.t.Fatalf("node %d derived a %v for %q, which it does not hold", n, d.Rec.Op, d.Actor)
			}
		}
	}
	var out []Derived
	for n := range c.nodes {
		var standby []Derived
		for _, d := range per[(n+1)%testNodes] {
			if ownerOf(d.Actor) == n {
				standby = append(standby, d)
			}
		}
		var own []Derived
		for _, d := range per[n] {
			if ownerOf(d.Actor) == n {
				own = append(own, d)
			}
		}
		if len(own) != len(standby) {
			c.t.Fatalf("node %d derived %d records for its partitions, their standby %d", n, len(own), len(standby))
		}
		for i := range own {
			a, b := AppendRecord(nil, &own[i].Rec), AppendRecord(nil, &standby[i].Rec)
			if own[i].Index != standby[i].Index || own[i].Actor != standby[i].Actor || own[i].Rec.Op != standby[i].Rec.Op || !bytes.Equal(a, b) {
				c.t.Fatalf("owner %d derived %+v, its standby %+v", n, own[i], standby[i])
			}
		}
		out = append(out, own...)
	}
	slices.SortStableFunc(out, func(a, b Derived) int { return a.Index - b.Index })
	return out
}

// relay applies derived records to every node, through their encoding as
// a stream would carry them.
func (c *testCluster) relay(ds []Derived) {
	c.t.Helper()
	for _, d := range ds {
		payload := AppendRecord(nil, &d.Rec)
		for n, e := range c.nodes {
			var r Record
			if err := DecodeRecord(d.Rec.Op, payload, &r); err != nil {
				c.t.Fatalf("derived %v does not decode: %v", d.Rec.Op, err)
			}
			if err := e.Apply(&r); err != nil {
				c.t.Fatalf("node %d: derived %v for %q: %v", n, d.Rec.Op, d.Actor, err)
			}
		}
	}
}

// actorOfRecord returns the actor a record is about, if any.
func actorOfRecord(r *Record) (string, bool) {
	switch r.Op {
	case OpErase:
		id, _ := actorOf(r.Erase.Customer, r.Erase.AnonymousID)
		return id, id != ""
	}
	return "", false
}

// globalParts returns what of an engine's snapshot every node of a cluster
// holds whole: all but the profile sections (index, top lists, global
// exclusions, relations, popularity, counters, event ids, blend,
// neighbours). Without ids, the event ids are left out: an engine loaded
// from a snapshot lists them in another order (of a single engine too).
func globalParts(t *testing.T, e *Engine, ids bool) []byte {
	t.Helper()
	r := binfmt.NewReader(snapshotBytes(t, e))
	r.MaxString = 1 << 30
	out := []byte{r.Byte()}
	out = binfmt.AppendUvarint(binfmt.AppendUvarint(out, r.Uvarint()), r.Uvarint())
	for range 4 { // index, head, relations, popularity
		out = binfmt.AppendString(out, string(r.Bytes()))
	}
	for range r.Count(1 << 20) { // the profile sections
		r.Bytes()
	}
	tail := r.Bytes()
	if !ids {
		tr := binfmt.NewReader(tail)
		tr.Uvarint() // latest
		for range tr.Count(1 << 30) {
			tr.Uvarint()
			tr.Uvarint()
		}
		if tr.Err() != nil {
			t.Fatalf("snapshot's event ids do not parse: %v", tr.Err())
		}
		tail = tr.Rest()
	}
	out = binfmt.AppendString(out, string(tail))
	if r.Err() != nil || r.Len() != 0 {
		t.Fatalf("snapshot does not parse: %v, %d bytes left", r.Err(), r.Len())
	}
	return out
}

// samePicks fails unless every actor's picks on each node that holds it
// (links followed) equal the single engine's, ids, reasons and exact
// scores, on several channels, and every node resolves every actor and
// lists the ids linked into it as the single engine does.
func samePicks(t *testing.T, single *Engine, c *testCluster, bw batchWorld, now int64) {
	t.Helper()
	var actors [][2]string
	for i := range bw.customers {
		actors = append(actors, [2]string{fmt.Sprint("C", i), ""})
	}
	for i := range bw.anons {
		actors = append(actors, [2]string{"", fmt.Sprint("a", i)})
	}
	compared := 0
	for _, a := range actors {
		id, anon := actorOf(a[0], a[1])
		target, _ := single.profiles.Resolve(id, anon)
		// The links are global: every node resolves every actor, and
		// lists the ids linked into it, as the single engine does.
		var want, got profile.Profile
		single.profiles.Read(id, anon, &want, true)
		for n, e := range c.nodes {
			if t2, _ := e.profiles.Resolve(id, anon); t2 != target {
				t.Fatalf("node %d resolves %q to %q, the single engine to %q", n, id, t2, target)
			}
			got = profile.Profile{}
			e.profiles.Read(id, anon, &got, true)
			if !slices.Equal(got.Links, want.Links) || got.MergedTo != want.MergedTo {
				t.Fatalf("node %d: %q links %v merged to %q, single engine %v %q", n, id, got.Links, got.MergedTo, want.Links, want.MergedTo)
			}
			if holdsFor(n)(id) && !bytes.Equal(got.AppendEncoding(nil), want.AppendEncoding(nil)) {
				t.Fatalf("node %d holds %q: its profile %+v, the single engine's %+v", n, id, got, want)
			}
		}
		for _, ch := range []Channel{ChannelWeb, ChannelAds, ChannelEmail} {
			q := Query{Customer: a[0], AnonymousID: a[1], Channel: ch, K: 12, Now: now}
			want := single.PicksInto(nil, &q)
			for n, e := range c.nodes {
				if !holdsFor(n)(target) {
					continue
				}
				got := e.PicksInto(nil, &q)
				compared++
				if len(got) != len(want) {
					t.Fatalf("%q on %v, node %d: %d picks, single %d", id, ch, n, len(got), len(want))
				}
				for i := range want {
					w, g := want[i], got[i]
					if w.Item.ID != g.Item.ID || w.Score != g.Score || w.Reason != g.Reason || w.SizeMask != g.SizeMask {
						t.Fatalf("%q on %v, node %d, pick %d: %s %v %v, single %s %v %v", id, ch, n, i, g.Item.ID, g.Score, g.Reason, w.Item.ID, w.Score, w.Reason)
					}
				}
			}
		}
	}
	if compared == 0 {
		t.Fatal("no picks compared")
	}
}

// partialWorlds are the worlds the equivalence tests feed: many
// customers and anonymous ids, identifies within and across partitions
// (anonymous ids linked on to others: chains), campaigns, exclusions,
// erasures, expiries, returns, duplicate and rejected records.
var partialWorlds = []struct {
	name string
	bw   batchWorld
	opts Options
}{
	{"defaults", batchWorld{seed: 21, products: 120, customers: 150, anons: 90, records: 6000, barriers: 0.06}, Options{}},
	{"neighbours", batchWorld{seed: 22, products: 120, customers: 150, anons: 90, records: 6000, barriers: 0.06}, Options{NeighbourWeight: 0.3}},
	{"rebases, few anchors", batchWorld{seed: 23, products: 80, customers: 100, anons: 60, records: 5000, barriers: 0.08, jumpDays: 100}, Options{EventAnchors: 5, MaxViews: 4, MaxRelated: 8, Shards: 8}},
}

// TestPartialEqualsSingle feeds a single engine and the three partial
// engines of a cluster the same records; after each, the records the
// owners derived are relayed to every partial engine. Every verdict, every
// actor's picks on the nodes that hold it, and the global state of every
// node must equal the single engine's.
func TestPartialEqualsSingle(t *testing.T) {
	for _, tc := range partialWorlds {
		t.Run(tc.name, func(t *testing.T) {
			bw := tc.bw
			if testing.Short() || raceDetector {
				bw.records /= 3
			}
			opts := withClock(tc.opts, 0)
			single, c := New(opts), newTestCluster(t, opts)
			recs := bw.generate()
			ops := map[Op]int{}
			var last int64
			for i := range recs {
				r := recs[i]
				want := single.Apply(&r)
				for n, e := range c.nodes {
					r := recs[i]
					got := e.Apply(&r)
					if actor, ok := actorOfRecord(&r); ok && !holdsFor(n)(actor) && errors.Is(want, ErrUnknownActor) {
						// Only holders know an actor unknown.
						if got != nil {
							t.Fatalf("record %d (%v) on node %d, which does not hold %q: %v", i, r.Op, n, actor, got)
						}
						continue
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("record %d (%v) on node %d: %v, single engine %v", i, r.Op, n, got, want)
					}
				}
				ds := c.take()
				for _, d := range ds {
					ops[d.Rec.Op]++
				}
				c.relay(ds)
				last = max(last, r.Event.TS)
			}
			if ops[OpSignal] == 0 || ops[OpMerge] == 0 {
				t.Fatalf("derived %v: the world tests too little", ops)
			}
			t.Logf("derived %v", ops)
			want := globalParts(t, single, true)
			for n, e := range c.nodes {
				if !bytes.Equal(globalParts(t, e, true), want) {
					t.Fatalf("node %d's global state differs from the single engine's", n)
				}
			}
			samePicks(t, single, c, bw, last)
		})
	}
}

// TestPartialLateRelay relays the derived records late, in batches of
// random sizes, as a stream would: the nodes' global state must still be
// identical to one another's, and a cold actor's picks alike on every
// node.
func TestPartialLateRelay(t *testing.T) {
	for _, tc := range partialWorlds {
		t.Run(tc.name, func(t *testing.T) {
			bw := tc.bw
			if testing.Short() || raceDetector {
				bw.records /= 3
			}
			c := newTestCluster(t, withClock(tc.opts, 0))
			recs := bw.generate()
			rng := rand.New(rand.NewPCG(bw.seed, 5))
			var pending []Derived
			relayed := 0
			for i := range recs {
				for _, e := range c.nodes {
					r := recs[i]
					e.Apply(&r)
				}
				pending = append(pending, c.take()...)
				if i == len(recs)/2 {
					// A node restarts from its snapshot: the links and
					// link-only entries are profiles, and load as such.
					e, err := LoadSnapshot(c.nodes[1].Options(), snapshotBytes(t, c.nodes[1]))
					if err != nil {
						t.Fatal(err)
					}
					c.nodes[1] = e
				}
				if rng.IntN(40) == 0 || i == len(recs)-1 {
					k := len(pending)
					if i < len(recs)-1 {
						k = rng.IntN(k + 1)
					}
					c.relay(pending[:k])
					relayed += k
					pending = slices.Delete(pending, 0, k)
				}
			}
			if relayed == 0 {
				t.Fatal("nothing relayed")
			}
			want := globalParts(t, c.nodes[0], false)
			for n, e := range c.nodes[1:] {
				if !bytes.Equal(globalParts(t, e, false), want) {
					t.Fatalf("node %d's global state differs from node 0's", n+1)
				}
			}
			// The holders of a partition hold the same profiles: they
			// merged every history at the same point of the stream.
			for i := range bw.customers + bw.anons {
				id, anon := fmt.Sprint("C", i), false
				if i >= bw.customers {
					id, anon = fmt.Sprint("a", i-bw.customers), true
				}
				var enc [][]byte
				for n, e := range c.nodes {
					if holdsFor(n)(id) {
						var pr profile.Profile
						e.profiles.Read(id, anon, &pr, true)
						enc = append(enc, pr.AppendEncoding(nil))
					}
				}
				if len(enc) != 2 || !bytes.Equal(enc[0], enc[1]) {
					t.Fatalf("the holders of %q hold different profiles", id)
				}
			}
			for _, ch := range []Channel{ChannelWeb, ChannelEmail} {
				q := Query{Customer: "never-seen", Channel: ch, K: 20}
				want := c.nodes[0].PicksInto(nil, &q)
				for n, e := range c.nodes[1:] {
					got := e.PicksInto(nil, &q)
					if len(got) != len(want) || len(want) == 0 {
						t.Fatalf("node %d: %d cold picks, node 0 %d", n+1, len(got), len(want))
					}
					for i := range want {
						if got[i].Item.ID != want[i].Item.ID || got[i].Score != want[i].Score {
							t.Fatalf("node %d, cold pick %d: %s %v, node 0 %s %v", n+1, i, got[i].Item.ID, got[i].Score, want[i].Item.ID, want[i].Score)
						}
					}
				}
			}
		})
	}
}

// TestPartialBlendRefused: a partial engine cannot run the learned blend.
func TestPartialBlendRefused(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		want error
	}{
		{"blend and holds", Options{Blend: true, Holds: holdsFor(0)}, ErrPartialBlend},
		{"holds alone", Options{Holds: holdsFor(0), NeighbourWeight: 1}, nil},
		{"blend alone", Options{Blend: true}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.opts.Check(); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Check: %v, want %v", err, tc.want)
			}
			e := New(tc.opts)
			err := e.Apply(&Record{Op: OpProduct, Product: Product{ID: "P", Variants: []Variant{{SKU: "P"}}}})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Apply: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDerivedCodec round-trips the derived records through their payload
// encoding, and refuses malformed payloads.
func TestDerivedCodec(t *testing.T) {
	pr := profile.Profile{Last: 100, Views: []profile.Stamp{{P: 1, T: 90}}, Links: []string{"x"}}
	recs := []Record{
		{Op: OpSignal, Signal: Signal{Type: EventPurchase, Product: 3, Facets: []uint32{0, 2}, T: 1_800_000_000, Weight: 5, RelWeight: 3,
			Anchors: []Anchor{{Product: 1, Weight: 1}, {Product: 2, Weight: 3}}, Buyer: "C1"}},
		{Op: OpSignal, Signal: Signal{Type: EventScan, Product: 0, T: 7, Weight: 2, RelWeight: 1, ScanAt: "s1",
			Scan: Scan{Product: "P0", AnonymousID: "a1", TS: 7000}}},
		{Op: OpSignal, Signal: Signal{T: 9}}, // clock only
		{Op: OpMerge, Merge: Merge{AnonymousID: "a1", Target: "C1", ProfileVersion: profile.Version, Profile: pr.AppendEncoding(nil)}},
		{Op: OpMerge, Merge: Merge{AnonymousID: "a1", Target: "a2", TargetAnon: true, ProfileVersion: profile.Version, Profile: (&profile.Profile{}).AppendEncoding(nil)}},
		{Op: OpExpire, Expire: Expire{Before: 5000, AnonymousID: "a3"}},
	}
	for _, r := range recs {
		b := AppendRecord(nil, &r)
		var got Record
		if err := DecodeRecord(r.Op, b, &got); err != nil {
			t.Fatalf("%v: %v", r.Op, err)
		}
		if !bytes.Equal(AppendRecord(nil, &got), b) || fmt.Sprint(got) != fmt.Sprint(r) {
			t.Fatalf("%v: round trip gives %+v, want %+v", r.Op, got, r)
		}
		for cut := range len(b) { // every truncation is refused, never a panic
			if err := DecodeRecord(r.Op, b[:cut], &got); !errors.Is(err, ErrBadRecord) {
				t.Fatalf("%v cut at %d of %d: %v", r.Op, cut, len(b), err)
			}
		}
		if err := DecodeRecord(r.Op, append(b, 0), &got); !errors.Is(err, ErrBadRecord) {
			t.Fatalf("%v with a trailing byte: %v", r.Op, err)
		}
	}
	if err := DecodeRecord(OpExpire, []byte{recordVersionV6, 2, 0}, new(Record)); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("version 6 expire without an anonymous id: %v", err)
	}
}

// TestDerivedOutOfRange: derived records naming what the engine does not
// have are refused with ErrBadSignal and change nothing.
func TestDerivedOutOfRange(t *testing.T) {
	e := New(withClock(Options{}, 0))
	for i := range 3 {
		id := fmt.Sprint("P", i)
		if err := e.Apply(&Record{Op: OpProduct, Product: Product{ID: id, Category: "c", Variants: []Variant{{SKU: id}}}}); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshotBytes(t, e)
	bigView := profile.Profile{Last: 5, Views: []profile.Stamp{{P: 99, T: 5}}}
	cases := []struct {
		name string
		rec  Record
	}{
		{"product", Record{Op: OpSignal, Signal: Signal{Type: EventView, Product: 3, T: 5, Weight: 1}}},
		{"event type", Record{Op: OpSignal, Signal: Signal{Type: numEventTypes, T: 5}}},
		{"facet", Record{Op: OpSignal, Signal: Signal{Type: EventView, Product: 1, Facets: []uint32{1000}, T: 5, Weight: 1}}},
		{"anchor", Record{Op: OpSignal, Signal: Signal{Type: EventView, Product: 1, T: 5, Weight: 1, RelWeight: 1, Anchors: []Anchor{{Product: 7, Weight: 1}}}}},
		{"too many anchors", Record{Op: OpSignal, Signal: Signal{Type: EventView, Product: 1, T: 5, Anchors: make([]Anchor, 65)}}},
		{"NaN weight", Record{Op: OpSignal, Signal: Signal{Type: EventView, Product: 1, T: 5, Weight: float32(nan())}}},
		{"clock with content", Record{Op: OpSignal, Signal: Signal{Product: 1, T: 5}}},
		{"merge profile", Record{Op: OpMerge, Merge: Merge{AnonymousID: "a", Target: "C", ProfileVersion: profile.Version, Profile: bigView.AppendEncoding(nil)}}},
		{"merge version", Record{Op: OpMerge, Merge: Merge{AnonymousID: "a", Target: "C", ProfileVersion: 9, Profile: (&profile.Profile{}).AppendEncoding(nil)}}},
		{"merge garbage", Record{Op: OpMerge, Merge: Merge{AnonymousID: "a", Target: "C", ProfileVersion: profile.Version, Profile: []byte{1, 2}}}},
		{"merge without target", Record{Op: OpMerge, Merge: Merge{AnonymousID: "a", ProfileVersion: profile.Version, Profile: (&profile.Profile{}).AppendEncoding(nil)}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.Apply(&tc.rec); !errors.Is(err, ErrBadSignal) {
				t.Fatalf("got %v, want ErrBadSignal", err)
			}
			if !bytes.Equal(snapshotBytes(t, e), before) {
				t.Fatal("a refused derived record changed the state")
			}
		})
	}
	// And a good one applies on an engine without Holds.
	if err := e.Apply(&Record{Op: OpSignal, Signal: Signal{Type: EventView, Product: 1, T: 5, Weight: 1}}); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.EventCount(EventView) != 1 || e.pop.value(1) == 0 {
		t.Fatal("a signal applied on an engine without Holds changed nothing")
	}
}

func nan() float64 { var z float64; return z / z }

// TestPartialApplyBatchIsApply: with Holds set, ApplyBatch gives each
// record Apply's verdict, the same derived records (content, order and
// index), and the same state.
func TestPartialApplyBatchIsApply(t *testing.T) {
	worlds := append(slices.Clone(partialWorlds), struct {
		name string
		bw   batchWorld
		opts Options
	}{"long runs of events", batchWorld{seed: 24, products: 150, customers: 300, anons: 120, records: 8000, barriers: 0.004}, Options{NeighbourWeight: 0.3}})
	for _, tc := range worlds {
		t.Run(tc.name, func(t *testing.T) {
			bw := tc.bw
			if testing.Short() || raceDetector {
				bw.records /= 3
			}
			opts := withClock(tc.opts, 0)
			opts.ApplyWorkers = 3
			opts.Holds = holdsFor(1)
			serial, batched := New(opts), New(opts)
			recs := bw.generate()
			rng := rand.New(rand.NewPCG(bw.seed, 13))
			var want, got []Derived
			derived := 0
			for i := 0; i < len(recs); {
				n := min(len(recs)-i, []int{1, 10, 70, 500, 1500}[rng.IntN(5)])
				wantErrs := make([]error, n)
				for k := range n {
					r := recs[i+k]
					wantErrs[k] = serial.Apply(&r)
					for _, d := range serial.TakeDerived(nil) {
						d.Index = k
						want = append(want, d)
					}
				}
				batch := slices.Clone(recs[i : i+n])
				gotErrs := make([]error, n)
				batched.ApplyBatch(batch, gotErrs)
				got = batched.TakeDerived(got)
				for k := range n {
					if fmt.Sprint(wantErrs[k]) != fmt.Sprint(gotErrs[k]) {
						t.Fatalf("record %d: Apply %v, ApplyBatch %v", i+k, wantErrs[k], gotErrs[k])
					}
				}
				if len(want) != len(got) {
					t.Fatalf("records %d-%d: Apply derived %d, ApplyBatch %d", i, i+n, len(want), len(got))
				}
				for k := range want {
					a, b := AppendRecord(nil, &want[k].Rec), AppendRecord(nil, &got[k].Rec)
					if want[k].Index != got[k].Index || want[k].Actor != got[k].Actor || !bytes.Equal(a, b) {
						t.Fatalf("records %d-%d, derived %d: Apply %+v, ApplyBatch %+v", i, i+n, k, want[k], got[k])
					}
				}
				derived += len(want)
				// Relay them to both, as a node would.
				for _, d := range want {
					r1, r2 := d.Rec, d.Rec
					if err := serial.Apply(&r1); err != nil {
						t.Fatal(err)
					}
					if err := batched.Apply(&r2); err != nil {
						t.Fatal(err)
					}
				}
				serial.TakeDerived(nil)
				batched.TakeDerived(nil)
				want, got = want[:0], got[:0]
				i += n
			}
			if derived == 0 {
				t.Fatal("nothing derived")
			}
			if !bytes.Equal(snapshotBytes(t, serial), snapshotBytes(t, batched)) {
				t.Fatal("ApplyBatch's state differs from Apply's")
			}
		})
	}
}

// TestPartialApplyBatchWithReaders runs picks, stats and snapshots while a
// partial engine applies batches (the race detector watches the parallel
// phases against readers): the state and the derived records still end as
// Apply's one by one.
func TestPartialApplyBatchWithReaders(t *testing.T) {
	bw := batchWorld{seed: 25, products: 200, customers: 300, anons: 100, records: 6000, barriers: 0.005}
	if raceDetector {
		bw.records /= 2
	}
	opts := withClock(Options{ApplyWorkers: 3}, 0)
	opts.Holds = holdsFor(2)
	serial, batched := New(opts), New(opts)
	recs := bw.generate()
	for i := range recs {
		serial.Apply(&recs[i])
	}
	want := serial.TakeDerived(nil)
	recs = bw.generate()
	errs := make([]error, len(recs))
	stopReaders := readWhileApplying(t, batched, bw.customers)
	var got []Derived
	for i := 0; i < len(recs); i += 700 {
		n := min(700, len(recs)-i)
		batched.ApplyBatch(recs[i:i+n], errs[i:i+n])
		for _, d := range batched.TakeDerived(nil) {
			d.Index += i
			got = append(got, d)
		}
	}
	stopReaders()
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("ApplyBatch derived %d records, Apply %d", len(got), len(want))
	}
	for k := range want {
		if !bytes.Equal(AppendRecord(nil, &want[k].Rec), AppendRecord(nil, &got[k].Rec)) || want[k].Actor != got[k].Actor {
			t.Fatalf("derived %d: Apply %+v, ApplyBatch %+v", k, want[k], got[k])
		}
	}
	if !bytes.Equal(snapshotBytes(t, serial), snapshotBytes(t, batched)) {
		t.Fatal("the state applied in batches among readers differs from Apply's one by one")
	}
}
