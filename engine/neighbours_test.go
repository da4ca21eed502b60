package engine

import (
	"bytes"
	"math"
	"testing"
	"time"
)

// neighbourOptions turns the neighbour signal on at the weight the
// validation split liked (docs/ranking.md).
func neighbourOptions() Options { return Options{NeighbourWeight: 4} }

// proposed runs the neighbour signal alone for customer at w.now and
// returns the relation strength it gave each product, in proposal order.
func proposed(w *world, customer string) (order []string, rel map[string]float64) {
	e := w.e
	pk := e.pickers.Get().(*picker)
	defer e.pickers.Put(pk)
	e.mu.RLock()
	defer e.mu.RUnlock()
	pk.reset(e.idx.Products(), e.idx.Facets())
	pk.opts, pk.now, pk.actor = &e.opts, secs(w.now.UnixMilli()), customer
	e.proposeNeighbours(pk)
	rel = map[string]float64{}
	for _, p := range pk.ids {
		id := e.idx.ItemAt(p).ID
		order = append(order, id)
		rel[id] = float64(pk.slots.get(p, pk.epoch).rel)
	}
	return order, rel
}

// TestNeighboursHandComputed checks the signal against scores worked out
// by hand. U bought A and B; V bought A and C; W bought A, B and D; X
// bought E (nothing in common). All at one time, so weights are counts:
//
//	U's basket: A 1/2, B 1/2 (normalised)
//	similarity: V 1/2 (A) / sqrt(2) = 0.35355; W (1/2+1/2) / sqrt(3) = 0.57735
//	scores:     A 0.35355/2 + 0.57735/3 = 0.36923; B and D 0.57735/3 = 0.19245;
//	            C 0.35355/2 = 0.17678
//	relation:   4 x score / 0.36923: A 4, B and D 2.08486, C 1.91514
//
// With NeighbourItems 3, C (the lowest) is not proposed; B goes before D
// (equal scores: the smaller product id). A second case puts U's purchase
// of B a half-life after A: U's weights become A 1/3, B 2/3.
func TestNeighboursHandComputed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		bDelay   time.Duration // after A, for U's B
		items    int
		order    []string
		strength map[string]float64
	}{
		{"same time", 0, 3, []string{"A", "B", "D"}, map[string]float64{"A": 4, "B": 2.08486, "D": 2.08486}},
		// U: A 1/3 (decayed once by the half-life at the time of asking), B 2/3.
		// similarity: V (1/3)/sqrt(2) = 0.23570; W 1/sqrt(3) = 0.57735
		// (V and W bought at the later time). Scores: A 0.23570/2 +
		// 0.57735/3 = 0.31030; B, D 0.19245; C 0.11785.
		{"B a half-life later", 30 * 24 * time.Hour, 4, []string{"A", "B", "D", "C"},
			map[string]float64{"A": 4, "B": 2.48083, "D": 2.48083, "C": 1.51917}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := neighbourOptions()
			opts.NeighbourItems = tc.items
			w := newWorld(t, opts)
			for _, p := range []string{"A", "B", "C", "D", "E"} {
				w.product(p, "home/things", "Acme", "", nil)
			}
			at := func(d time.Duration, c, p string) {
				w.apply(Record{Op: OpEvent, Event: Event{Type: EventPurchase, Customer: c, Product: p, TS: t0.Add(d).UnixMilli()}})
			}
			at(0, "U", "A")
			at(tc.bDelay, "U", "B")
			for _, p := range []string{"A", "C"} {
				at(tc.bDelay, "V", p)
			}
			for _, p := range []string{"A", "B", "D"} {
				at(tc.bDelay, "W", p)
			}
			at(tc.bDelay, "X", "E")
			w.now = t0.Add(tc.bDelay)
			order, rel := proposed(w, "U")
			if len(order) != len(tc.order) {
				t.Fatalf("proposed %v, want %v", order, tc.order)
			}
			for i, id := range tc.order {
				if order[i] != id || math.Abs(rel[id]-tc.strength[id]) > 1e-4 {
					t.Fatalf("proposed %v with %v, want %v with %v", order, rel, tc.order, tc.strength)
				}
			}
			if order, _ := proposed(w, "X"); len(order) != 0 {
				t.Fatalf("X shares nothing with anyone, yet got %v", order)
			}
		})
	}
}

// TestNeighboursOffByDefault: the default engine keeps no baskets.
func TestNeighboursOffByDefault(t *testing.T) {
	w := apparel(t)
	replayWorld(w, 0, 100)
	if len(w.e.nb.baskets) != 0 || len(w.e.nb.buyers) != 0 {
		t.Fatalf("%d baskets kept with the signal off", len(w.e.nb.baskets))
	}
}

// TestNeighboursForget: an erased customer's basket and name go, and
// what they bought no longer reaches others; Expire drops the baskets of
// customers who bought nothing since its cut-off.
func TestNeighboursForget(t *testing.T) {
	w := newWorld(t, neighbourOptions())
	for _, p := range []string{"A", "B", "C"} {
		w.product(p, "home/things", "Acme", "", nil)
	}
	w.event(EventPurchase, "U", "A")
	w.event(EventPurchase, "V", "A")
	w.event(EventPurchase, "V", "B")
	w.now = w.now.Add(48 * time.Hour)
	w.event(EventPurchase, "Y", "A")
	w.event(EventPurchase, "Y", "C")
	if order, _ := proposed(w, "U"); len(order) != 3 {
		t.Fatalf("before: %v", order)
	}
	w.apply(Record{Op: OpErase, Erase: Erase{Customer: "V"}})
	if _, ok := w.e.nb.ids["V"]; ok {
		t.Fatal("V's basket is still named")
	}
	if order, _ := proposed(w, "U"); len(order) != 2 || order[0] != "A" || order[1] != "C" {
		t.Fatalf("after erasing V: %v, want [A C]", order)
	}
	w.apply(Record{Op: OpExpire, Expire: Expire{Before: w.now.Add(-time.Hour).UnixMilli()}})
	if order, _ := proposed(w, "U"); len(order) != 0 {
		t.Fatalf("U's basket expired, yet got %v", order)
	}
	if order, _ := proposed(w, "Y"); len(order) != 0 {
		t.Fatalf("Y's only neighbour U expired, yet got %v", order)
	}
	if _, ok := w.e.nb.ids["Y"]; !ok {
		t.Fatal("Y bought within the window, yet its basket went")
	}
}

// TestNeighboursAreState: the same records give the same baskets and
// picks; a snapshot holds them, and the loaded engine learns on as the
// original does.
func TestNeighboursAreState(t *testing.T) {
	run := func() *world {
		w := apparelInto(newWorld(t, neighbourOptions()))
		replayWorld(w, 0, 300)
		return w
	}
	a, b := run(), run()
	if len(a.e.nb.baskets) < 5 {
		t.Fatalf("%d baskets", len(a.e.nb.baskets))
	}
	if !bytes.Equal(a.e.nb.appendSnapshot(nil), b.e.nb.appendSnapshot(nil)) {
		t.Fatal("replayed baskets differ")
	}
	sameAnswers(t, a.e, b.e, a.now)
	loaded, err := LoadSnapshot(a.e.Options(), snapshotBytes(t, a.e))
	if err != nil {
		t.Fatal(err)
	}
	sameAnswers(t, a.e, loaded, a.now)
	c := &world{t: t, e: loaded, now: a.now}
	loaded.opts.Now = func() time.Time { return c.now }
	replayWorld(a, 300, 400)
	replayWorld(c, 300, 400)
	sameAnswers(t, a.e, loaded, a.now)
	// Written again, a loaded snapshot is the same bytes.
	if x, y := snapshotBytes(t, a.e), snapshotBytes(t, loaded); !bytes.Equal(x, y) {
		t.Fatalf("snapshots differ: %d vs %d bytes", len(x), len(y))
	}
}

// TestNeighbourSnapshotRejectsBadInput: a corrupt neighbour section is an
// error, never a panic.
func TestNeighbourSnapshotRejectsBadInput(t *testing.T) {
	w := apparelInto(newWorld(t, neighbourOptions()))
	replayWorld(w, 0, 100)
	data := snapshotBytes(t, w.e)
	for cut := 1; cut < 200 && cut < len(data); cut += 7 {
		if _, err := LoadSnapshot(w.e.Options(), data[:len(data)-cut]); err == nil {
			t.Fatalf("cut by %d bytes: loaded", cut)
		}
	}
}

// BenchmarkPicksNeighbours is BenchmarkPicks' web queries with the
// neighbour signal on (the world learned with it on, so customers have
// baskets), each beside the same query on the same world with the signal
// switched off: the pair's ratio is the signal's cost.
func BenchmarkPicksNeighbours(b *testing.B) {
	e, _ := benchWorldWith(b, 20000, 5000, neighbourOptions())
	on := e.opts.NeighbourWeight
	for _, bq := range benchQueries {
		if bq.q.Channel != ChannelWeb {
			continue
		}
		for _, w := range []float64{on, 0} {
			name := bq.name + "/on"
			if w == 0 {
				name = bq.name + "/off"
			}
			b.Run(name, func(b *testing.B) {
				e.opts.NeighbourWeight = w
				defer func() { e.opts.NeighbourWeight = on }()
				q := bq.q
				var dst []Pick
				b.ReportAllocs()
				cpuLoop(b, func() { dst = e.PicksInto(dst[:0], &q) })
			})
		}
	}
}
