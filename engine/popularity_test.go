package engine

import (
	"bytes"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

// popularityRun applies n events a few hours apart to the apparel catalog
// with a one-hour half-life, so that popularity's reference moves several
// times (every 64 half-lives), and returns the world and, per product,
// the straightforward decayed sum of its event weights now.
func popularityRun(t *testing.T, n int) (*world, map[string]float64) {
	w := apparelInto(newWorld(t, Options{PopularityHalfLife: time.Hour}))
	items := []string{"SW0-8", "HT0", "GL1", "CO2-10", "SC2"}
	kinds := []EventType{EventView, EventCartAdd, EventPurchase, EventScan, EventReturn}
	type ev struct {
		w float64
		t int64
	}
	hist := map[string][]ev{}
	sum := func(p string, now int64) float64 {
		v := 0.0
		for _, e := range hist[p] {
			v += e.w * math.Exp2(-float64(now-e.t)/3600)
		}
		return v
	}
	for i := range n {
		w.now = w.now.Add(time.Duration(1+i%5) * time.Hour)
		item, kind := items[(i*3)%len(items)], kinds[i%len(kinds)]
		p := item[:3]
		if len(item) < 4 {
			p = item
		}
		now := w.now.Unix() + 60 // w.event moves a minute on
		if x := float64(w.e.opts.EventWeights[kind]); x != 0 {
			if sum(p, now)+x > minPopValue {
				hist[p] = append(hist[p], ev{x, now})
			} else {
				delete(hist, p)
			}
		}
		w.event(kind, fmt.Sprint("C", i%7), item)
	}
	want := map[string]float64{}
	for p := range hist {
		want[p] = sum(p, w.now.Unix())
	}
	return w, want
}

// TestPopularityRebase checks popularity across many moves of its
// reference: the values match the straightforward decayed sums, the same
// records give the same bytes, and a snapshot keeps the reference.
func TestPopularityRebase(t *testing.T) {
	w, want := popularityRun(t, 400)
	if ref := w.e.pop.refHL(); ref < float64(w.now.Unix())/3600-maxPopOffset-1 {
		t.Fatalf("reference %v half-lives, events reach %v: it did not move", ref, float64(w.now.Unix())/3600)
	}
	for _, p := range []string{"SW0", "HT0", "GL1", "CO2", "SC2", "LG0"} {
		got, _ := w.e.PopularityOf(p)
		if d := math.Abs(got.Value - want[p]); d > 1e-12*max(1, want[p]) {
			t.Errorf("%s: popularity %v, straightforward %v", p, got.Value, want[p])
		}
	}
	again, _ := popularityRun(t, 400)
	snap := snapshotBytes(t, w.e)
	if !bytes.Equal(snap, snapshotBytes(t, again.e)) {
		t.Fatal("the same records gave different snapshots")
	}
	loaded, err := LoadSnapshot(w.e.Options(), snap)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.pop.refHL() != w.e.pop.refHL() {
		t.Fatalf("reference after a snapshot %v, was %v", loaded.pop.refHL(), w.e.pop.refHL())
	}
	sameAnswers(t, w.e, loaded, w.now)
}

// TestPopularityRebaseConcurrent applies events from two goroutines while
// the reference moves: no update is lost (run it with -race).
func TestPopularityRebaseConcurrent(t *testing.T) {
	w := apparelInto(newWorld(t, Options{PopularityHalfLife: time.Hour}))
	start := w.now
	const steps = 1200 // 10 minutes apart: 200 half-lives, 3 moves of the reference
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := range steps {
				// Both goroutines' events at the same times: each product's
				// count is the same in any order, but for rounding.
				ts := start.Add(time.Duration(i) * 10 * time.Minute).UnixMilli()
				ev := Event{Type: EventView, Customer: fmt.Sprint("C", g), Product: "HT0", TS: ts}
				if err := w.e.Apply(&Record{Op: OpEvent, Event: ev}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	last := start.Add((steps - 1) * 10 * time.Minute)
	// Each step adds 2 x 0.25, a sixth of a half-life after the one
	// before: 0.5 * (1 + 2^-1/6 + 2^-2/6 + ...).
	want := 0.5 * (1 - math.Exp2(-steps/6.0)) / (1 - math.Exp2(-1/6.0))
	w.now = last
	got, _ := w.e.PopularityOf("HT0")
	if math.Abs(got.Value-want) > 1e-12*want {
		t.Fatalf("popularity %v, want %v", got.Value, want)
	}
	if ref := w.e.pop.refHL(); ref < float64(last.Unix())/3600-maxPopOffset-1 {
		t.Fatalf("reference %v, last event at %v half-lives", ref, float64(last.Unix())/3600)
	}
}
