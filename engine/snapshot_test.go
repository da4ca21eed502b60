package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// replayWorld applies a deterministic mix of records to e: the apparel
// catalog's events from several customers, anonymous ids and a merge.
func replayWorld(w *world, from, to int) {
	kinds := []EventType{EventView, EventCartAdd, EventPurchase, EventView, EventReturn, EventScan, EventCartRemove}
	items := []string{"SW0-8", "LG1-8", "CO2-10", "HT0", "GL1", "SC2", "TS3-6", "SW2-6", "HT3"}
	for i := from; i < to; i++ {
		c := fmt.Sprint("C", i%9)
		if i%11 == 0 {
			c = fmt.Sprint("cookie-", i%4)
		}
		w.event(kinds[i%len(kinds)], c, items[(i*7)%len(items)])
		if i%50 == 25 {
			w.apply(Record{Op: OpIdentify, Identify: Identify{AnonymousID: fmt.Sprint("cookie-", i%4), Customer: fmt.Sprint("C", i%9)}})
		}
		if i%40 == 10 {
			w.stock("LG1-8", "online", int64(i%3))
		}
		// The state issue 5 added: impressions, exclusions, campaigns,
		// links between anonymous ids.
		at := w.now.UnixMilli()
		switch i % 37 {
		case 3:
			w.event(EventImpression, c, items[(i*5)%len(items)])
		case 7:
			w.apply(Record{Op: OpExclusion, Exclusion: Exclusion{Customer: c, Product: "GL1", Until: at + int64(i)*60_000}})
		case 13:
			w.apply(Record{Op: OpExclusion, Exclusion: Exclusion{Product: "SC2", Until: at + int64(i)*1000}})
		case 17:
			w.apply(Record{Op: OpCampaign, Campaign: Campaign{Customer: fmt.Sprint("C", i%9), Name: fmt.Sprint("camp-", i%3), Products: []string{"HT0", "SW0"}, TS: at}})
		case 29:
			w.apply(Record{Op: OpIdentify, Identify: Identify{AnonymousID: fmt.Sprint("cookie-", i%4), ToAnonymousID: fmt.Sprint("device-", i%2)}})
		}
	}
}

func snapshotBytes(t *testing.T, e *Engine) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := e.BeginSnapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sameAnswers fails unless a and b give the same picks and profiles.
func sameAnswers(t *testing.T, a, b *Engine, now time.Time) {
	t.Helper()
	answersWithin(t, a, b, now, 0)
}

// answersWithin is sameAnswers with scores allowed to differ by tol (float
// rounding), and two picks to swap places where their scores are as close.
func answersWithin(t *testing.T, a, b *Engine, now time.Time, tol float64) {
	t.Helper()
	if sa, sb := a.Stats(), b.Stats(); sa != sb {
		t.Fatalf("stats differ: %+v vs %+v", sa, sb)
	}
	if ba, bb := a.Blend(), b.Blend(); !slices.Equal(ba.Weights, bb.Weights) || ba.Steps != bb.Steps {
		t.Fatalf("blends differ: %+v vs %+v", ba, bb)
	}
	if na, nb := a.nb.appendSnapshot(nil), b.nb.appendSnapshot(nil); !bytes.Equal(na, nb) {
		t.Fatalf("neighbour baskets differ: %d vs %d bytes", len(na), len(nb))
	}
	for _, c := range []string{"C0", "C1", "C4", "C8", "cookie-1", "nobody"} {
		for ch := range numChannels {
			for _, loc := range [][]string{nil, {"store-1"}} {
				q := Query{Customer: c, Channel: ch, K: 12, Locations: loc, Now: now.UnixMilli()}
				if c == "cookie-1" {
					q.Customer, q.AnonymousID = "", c
				}
				pa, pb := a.PicksInto(nil, &q), b.PicksInto(nil, &q)
				if len(pa) != len(pb) {
					t.Fatalf("%+v: %v vs %v", q, ids(pa), ids(pb))
				}
				for i := range pa {
					x, y := pa[i], pb[i]
					if math.Abs(x.Score-y.Score) > tol || (x.Item.ID == y.Item.ID && (x.Reason != y.Reason || x.SizeMask != y.SizeMask)) ||
						(x.Item.ID != y.Item.ID && tol == 0) {
						t.Fatalf("%+v: pick %d: %+v (%s) vs %+v (%s)", q, i, x, x.Item.ID, y, y.Item.ID)
					}
				}
			}
		}
		va, oka := a.Profile(c, false)
		vb, okb := b.Profile(c, false)
		if oka != okb || !reflect.DeepEqual(va, vb) {
			t.Fatalf("profile %s differs:\n%+v\n%+v", c, va, vb)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	w := apparel(t)
	w.stock("SW1-8", "store-1", 3)
	w.stock("HT1", "store-1", 1)
	replayWorld(w, 0, 300)
	snap := snapshotBytes(t, w.e)
	loaded, err := LoadSnapshot(w.e.Options(), snap)
	if err != nil {
		t.Fatal(err)
	}
	sameAnswers(t, w.e, loaded, w.now)
	// The encoding is a function of the state: a reload writes the same bytes.
	if again := snapshotBytes(t, loaded); !bytes.Equal(again, snap) {
		t.Fatalf("re-snapshot differs: %d vs %d bytes", len(again), len(snap))
	}
	// Both go on the same way.
	w2 := &world{t: t, e: loaded, now: w.now}
	replayWorld(w, 300, 400)
	replayWorld(w2, 300, 400)
	sameAnswers(t, w.e, loaded, w.now)
}

func TestSnapshotIntoOtherShardCount(t *testing.T) {
	w := apparel(t)
	replayWorld(w, 0, 200)
	opts := w.e.Options()
	opts.Shards = 7
	snap := snapshotBytes(t, w.e)
	loaded, err := LoadSnapshot(opts, snap)
	if err != nil {
		t.Fatal(err)
	}
	sameAnswers(t, w.e, loaded, w.now)
	// The sections of 64 shards land in 7 in the order they were written,
	// whatever the goroutines: the same state, the same bytes.
	want := snapshotBytes(t, loaded)
	for range 5 {
		again, err := LoadSnapshot(opts, snap)
		if err != nil {
			t.Fatal(err)
		}
		if b := snapshotBytes(t, again); !bytes.Equal(b, want) {
			t.Fatalf("loaded again into 7 shards, the snapshot differs: %d vs %d bytes", len(b), len(want))
		}
	}
}

// TestSnapshotLoadsInParallel: a snapshot's parts (index, relations,
// profile sections) load on as many goroutines as GOMAXPROCS allows, and
// the state is the same however many there are: the same answers, the
// same bytes written again.
func TestSnapshotLoadsInParallel(t *testing.T) {
	w := apparel(t)
	w.stock("SW1-8", "store-1", 3)
	replayWorld(w, 0, 400)
	snap := snapshotBytes(t, w.e)
	for _, procs := range []int{1, 2, 8} {
		t.Run(fmt.Sprint(procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			for range 3 {
				loaded, err := LoadSnapshot(w.e.Options(), snap)
				if err != nil {
					t.Fatal(err)
				}
				sameAnswers(t, w.e, loaded, w.now)
				if b := snapshotBytes(t, loaded); !bytes.Equal(b, snap) {
					t.Fatalf("written again: %d bytes, want %d", len(b), len(snap))
				}
			}
		})
	}
}

// TestSnapshotIntoSmallerMaxRelated: a snapshot loads into an engine that
// keeps fewer relations per product: each list keeps its strongest, and
// everything after the relations (popularity, profiles) still loads.
func TestSnapshotIntoSmallerMaxRelated(t *testing.T) {
	w := apparel(t)
	replayWorld(w, 0, 300)
	opts := w.e.Options()
	opts.MaxRelated = 2
	loaded, err := LoadSnapshot(opts, snapshotBytes(t, w.e))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := w.e.Stats(), loaded.Stats(); a != b {
		t.Fatalf("stats differ: %+v vs %+v", a, b)
	}
	for p := range uint32(w.e.idx.Products()) {
		want := w.e.rel.appendTo(nil, p, 2)
		if got := loaded.rel.appendTo(nil, p, 100); !slices.Equal(got, want) {
			t.Fatalf("product %d: relations %v, want the strongest two %v", p, got, want)
		}
	}
	for _, c := range []string{"C1", "C2", "cookie-1"} {
		a, okA := w.e.Profile(c, strings.HasPrefix(c, "cookie"))
		b, okB := loaded.Profile(c, strings.HasPrefix(c, "cookie"))
		if okA != okB || !reflect.DeepEqual(a, b) {
			t.Fatalf("profile %s differs after loading", c)
		}
	}
}

// TestSnapshotIsAPointInTime takes a snapshot, keeps writing before the
// capture is written out, and checks the snapshot holds the state at its
// start, not a mix.
func TestSnapshotIsAPointInTime(t *testing.T) {
	a := apparel(t)
	replayWorld(a, 0, 150)
	c := a.e.BeginSnapshot()
	replayWorld(a, 150, 300) // writes reach most shards before WriteTo
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadSnapshot(a.e.Options(), buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	b := apparel(t)
	replayWorld(b, 0, 150)
	b.now = a.now // profile views decay to each engine's clock: the same one
	sameAnswers(t, b.e, loaded, b.now)
}

func TestSnapshotRejectsDamage(t *testing.T) {
	w := apparel(t)
	replayWorld(w, 0, 100)
	snap := snapshotBytes(t, w.e)
	// Every cut, since version 7's parts carry their lengths: a cut
	// inside any of them must fail, not load a shorter part.
	for n := range len(snap) {
		if _, err := LoadSnapshot(w.e.Options(), snap[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: loaded", n, len(snap))
		}
	}
	// A damaged byte anywhere (a part's length included) loads or fails,
	// and never panics, on however many goroutines.
	for i := range snap {
		bad := slices.Clone(snap)
		bad[i] ^= 0x55
		if e, err := LoadSnapshot(w.e.Options(), bad); err == nil {
			e.PicksInto(nil, &Query{Customer: "C1", K: 5, Now: w.now.UnixMilli()})
		}
	}
	if _, err := LoadSnapshot(w.e.Options(), append(snap, 0)); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("trailing byte: %v", err)
	}
}

func FuzzLoadSnapshot(f *testing.F) {
	w := newWorld(&testing.T{}, Options{})
	w.e.Apply(&Record{Op: OpProduct, Product: Product{ID: "A", Category: "x/y", Tags: []string{"t"}, Variants: []Variant{{SKU: "A"}}}})
	w.e.Apply(&Record{Op: OpInventory, Inventory: Inventory{SKU: "A", Location: "online", Quantity: 3}})
	w.e.Apply(&Record{Op: OpEvent, Event: Event{Type: EventPurchase, Customer: "c", Product: "A", TS: 1e12}})
	var buf bytes.Buffer
	w.e.BeginSnapshot().WriteTo(&buf)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := LoadSnapshot(Options{}, b)
		if err != nil {
			return
		}
		// Whatever loads must answer without panicking.
		e.PicksInto(nil, &Query{Customer: "c", K: 5, Now: 1e12})
	})
}

// TestSnapshotKeepsAttributesAndStoreNames: product attributes and the
// names stores were registered with survive a snapshot (index snapshot
// version 2; version 1 files, with neither, still load: see the fixtures
// in testdata/snapshots).
func TestSnapshotKeepsAttributesAndStoreNames(t *testing.T) {
	e := New(Options{})
	for _, r := range []Record{
		{Op: OpLocation, Location: Location{ID: "store-1", Name: "Omnipick Berlin"}},
		{Op: OpProduct, Product: Product{ID: "A", Variants: []Variant{{SKU: "A"}}, Attributes: []Attribute{{Key: "gender", Value: "female"}, {Key: "color", Value: "navy"}}}},
		{Op: OpProduct, Product: Product{ID: "B", Variants: []Variant{{SKU: "B"}}}},
	} {
		if err := e.Apply(&r); err != nil {
			t.Fatal(err)
		}
	}
	loaded, err := LoadSnapshot(e.Options(), snapshotBytes(t, e))
	if err != nil {
		t.Fatal(err)
	}
	it, _ := loaded.Product("A")
	if !reflect.DeepEqual(it.Attributes, []Attribute{{Key: "color", Value: "navy"}, {Key: "gender", Value: "female"}}) {
		t.Errorf("attributes after a snapshot: %v", it.Attributes)
	}
	if b, _ := loaded.Product("B"); b.Attributes != nil {
		t.Errorf("B gained attributes: %v", b.Attributes)
	}
	if name, _ := loaded.LocationName("store-1"); name != "Omnipick Berlin" {
		t.Errorf("the store's name after a snapshot: %q", name)
	}
}

// TestSnapshotLoadsAsItArrives: LoadSnapshotArriving starts on a snapshot
// whose bytes are still coming in (another goroutine "decompressing"
// them a chunk at a time) and gives the state LoadSnapshot gives; when
// the bytes stop coming, at any point, it returns the reader's error
// rather than wait forever or load what is there.
func TestSnapshotLoadsAsItArrives(t *testing.T) {
	w := apparel(t)
	replayWorld(w, 0, 300)
	snap := snapshotBytes(t, w.e)
	errCut := errors.New("the input ended")
	// feed copies snap into a buffer chunk bytes at a time, up to cut,
	// and returns the buffer and its arrived function.
	feed := func(chunk, cut int) ([]byte, func(int) error) {
		buf := make([]byte, len(snap))
		var mu sync.Mutex
		cond := sync.NewCond(&mu)
		in, done := 0, false
		go func() {
			for off := 0; off < cut; off += chunk {
				end := min(off+chunk, cut)
				mu.Lock()
				copy(buf[off:end], snap[off:end])
				in = end
				cond.Broadcast()
				mu.Unlock()
				runtime.Gosched()
			}
			mu.Lock()
			done = true
			cond.Broadcast()
			mu.Unlock()
		}()
		return buf, func(n int) error {
			mu.Lock()
			defer mu.Unlock()
			for in < n && !done {
				cond.Wait()
			}
			if in < n {
				return errCut
			}
			return nil
		}
	}
	for _, chunk := range []int{1, 7, 64, 1000, len(snap)} {
		buf, arrived := feed(chunk, len(snap))
		loaded, err := LoadSnapshotArriving(w.e.Options(), buf, arrived)
		if err != nil {
			t.Fatalf("chunks of %d: %v", chunk, err)
		}
		sameAnswers(t, w.e, loaded, w.now)
		if b := snapshotBytes(t, loaded); !bytes.Equal(b, snap) {
			t.Fatalf("chunks of %d: written again, %d bytes, want %d", chunk, len(b), len(snap))
		}
	}
	for cut := 0; cut < len(snap); cut += 1 + cut/8 {
		buf, arrived := feed(97, cut)
		if _, err := LoadSnapshotArriving(w.e.Options(), buf, arrived); !errors.Is(err, errCut) {
			t.Fatalf("cut at %d of %d bytes: %v, want the reader's error", cut, len(snap), err)
		}
	}
	// Older versions wait for the whole snapshot, then load as ever.
	old, err := os.ReadFile(engineV6Fixture)
	if err != nil {
		t.Fatal(err)
	}
	snap = old
	buf, arrived := feed(13, len(old))
	if _, err := LoadSnapshotArriving(w.e.Options(), buf, arrived); err != nil {
		t.Fatalf("version 6 as it arrives: %v", err)
	}
}
