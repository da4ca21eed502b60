package engine

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// explainWorld: hats bought with gloves, a cart, a store with stock.
func explainWorld(t *testing.T) (*Engine, int64) {
	t.Helper()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC).UnixMilli()
	e := New(Options{Now: func() time.Time { return time.UnixMilli(now) }})
	apply := func(r Record) {
		t.Helper()
		if err := e.Apply(&r); err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
	}
	apply(Record{Op: OpLocation, Location: Location{ID: "store-1", Name: "Berlin Mitte"}})
	for _, p := range []struct{ id, cat string }{{"HAT", "women/accessories/hats"}, {"GL", "women/accessories/gloves"}, {"SC", "women/accessories/scarves"}, {"LG", "women/leggings"}} {
		apply(Record{Op: OpProduct, Product: Product{ID: p.id, Title: p.id, Price: 10, Category: p.cat, Variants: []Variant{{SKU: p.id + "-S", Size: "S"}, {SKU: p.id + "-M", Size: "M"}}, SizeGroup: "g"}})
		apply(Record{Op: OpInventory, Inventory: Inventory{SKU: p.id + "-S", Location: "online", Quantity: 3}})
		apply(Record{Op: OpInventory, Inventory: Inventory{SKU: p.id + "-M", Location: "online", Quantity: 2}})
	}
	apply(Record{Op: OpInventory, Inventory: Inventory{SKU: "GL-M", Location: "store-1", Quantity: 1}})
	ts := now - 3600_000
	for i := range 4 {
		c := fmt.Sprint("c", i)
		apply(Record{Op: OpEvent, Event: Event{Type: EventPurchase, Customer: c, SKU: "HAT-M", TS: ts}})
		apply(Record{Op: OpEvent, Event: Event{Type: EventPurchase, Customer: c, SKU: "GL-M", TS: ts}})
		if i < 2 {
			apply(Record{Op: OpEvent, Event: Event{Type: EventPurchase, Customer: c, SKU: "SC-M", TS: ts}})
		}
	}
	apply(Record{Op: OpEvent, Event: Event{Type: EventPurchase, Customer: "sarah", SKU: "HAT-M", TS: ts + 1000}})
	apply(Record{Op: OpEvent, Event: Event{Type: EventCartAdd, Customer: "sarah", SKU: "LG-M", TS: ts + 2000}})
	return e, now
}

// TestExplainPicksAddsUp: for every channel, each pick's parts sum to its
// score, and the reason is the pick's.
func TestExplainPicksAddsUp(t *testing.T) {
	e, _ := explainWorld(t)
	for ch := Channel(0); ch < numChannels; ch++ {
		for _, who := range []string{"sarah", "nobody"} {
			q := &Query{Customer: who, Channel: ch, K: 4, Boost: []Facet{{Kind: FacetCategory, Name: "women/accessories/gloves"}}}
			if ch == ChannelScreen {
				q.Locations = []string{"store-1", "online"}
			}
			picks := e.PicksInto(nil, q)
			if len(picks) == 0 {
				t.Fatalf("%v %s: no picks", ch, who)
			}
			parts := e.ExplainPicks(nil, q, picks)
			for i, p := range picks {
				pt := parts[i]
				sum := pt.Prior + pt.Affinity + pt.Related + pt.Popularity + pt.Boost
				if pt.Buried {
					sum -= buryPenalty
				}
				if pt.Capped {
					sum -= capPenalty
				}
				if math.Abs(sum-p.Score) > 1e-9 || math.Abs(pt.Score-p.Score) > 1e-9 || pt.Reason != p.Reason {
					t.Errorf("%v %s: pick %s score %v reason %v; parts %+v sum to %v", ch, who, p.Item.ID, p.Score, p.Reason, pt, sum)
				}
			}
			if who == "sarah" && ch == ChannelAds && (picks[0].Item.ID != "LG" || parts[0].Reason != ReasonCart) {
				t.Errorf("ads: first pick %s (%v), want LG for her cart", picks[0].Item.ID, parts[0].Reason)
			}
		}
	}
}

func TestProductViews(t *testing.T) {
	e, _ := explainWorld(t)
	rel, ok := e.Related("HAT", 5)
	if !ok || len(rel) < 2 || rel[0].Product != "GL" || !(rel[0].Strength > rel[1].Strength) {
		t.Errorf("Related(HAT) = %+v, %v; want GL strongest, then SC", rel, ok)
	}
	if _, ok := e.Related("NOPE", 5); ok {
		t.Error("Related of an unknown product: ok")
	}
	st, ok := e.Stock("GL")
	want := []StockLevel{
		{"online", "", "GL-S", "S", 3}, {"online", "", "GL-M", "M", 2},
		{"store-1", "Berlin Mitte", "GL-S", "S", 0}, {"store-1", "Berlin Mitte", "GL-M", "M", 1},
	}
	if !ok || fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("Stock(GL) = %+v\nwant %+v", st, want)
	}
	if st, _ := e.Stock("LG"); len(st) != 2 {
		t.Errorf("Stock(LG) lists %+v, want online only", st)
	}
	hat, ok1 := e.PopularityOf("HAT")
	sc, ok2 := e.PopularityOf("SC")
	if !ok1 || !ok2 || hat.Rank != 1 || hat.Relative != 1 || !(sc.Value > 0 && sc.Value < hat.Value) || sc.Rank <= hat.Rank || sc.CategoryRank != 1 {
		t.Errorf("popularity HAT %+v SC %+v", hat, sc)
	}
	if name, ok := e.LocationName("store-1"); !ok || name != "Berlin Mitte" {
		t.Errorf("LocationName(store-1) = %q, %v", name, ok)
	}
	if ids := e.AppendLocationIDs(nil); fmt.Sprint(ids) != "[online store-1]" {
		t.Errorf("AppendLocationIDs = %v", ids)
	}
}
