package engine

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine/profile"
	"github.com/omnipick/omnipick/index"
)

// world is a small engine with a fixed clock and terse helpers.
type world struct {
	t   *testing.T
	e   *Engine
	now time.Time
}

var t0 = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

func newWorld(t *testing.T, opts Options) *world {
	w := &world{t: t, now: t0}
	opts.Now = func() time.Time { return w.now }
	w.e = New(opts)
	return w
}

func (w *world) apply(r Record) {
	w.t.Helper()
	if err := w.e.Apply(&r); err != nil {
		w.t.Fatalf("apply %v: %v", r.Op, err)
	}
}

// product adds a product; sizes empty means one-size. Every SKU gets qty 5
// online.
func (w *world) product(id, category, brand, group string, tags []string, sizes ...string) {
	w.t.Helper()
	p := Product{ID: id, Title: id, Category: category, Brand: brand, Tags: tags, SizeGroup: group, Price: 10}
	if len(sizes) == 0 {
		p.Variants = []Variant{{SKU: id}}
	}
	for _, s := range sizes {
		p.Variants = append(p.Variants, Variant{SKU: id + "-" + s, Size: s})
	}
	w.apply(Record{Op: OpProduct, Product: p})
	for _, v := range p.Variants {
		w.stock(v.SKU, "online", 5)
	}
}

func (w *world) stock(sku, loc string, q int64) {
	w.t.Helper()
	w.apply(Record{Op: OpInventory, Inventory: Inventory{SKU: sku, Location: loc, Quantity: q}})
}

// event applies an event of type typ by customer c on item (a SKU if it
// contains '-', else a product), one minute after the previous one.
func (w *world) event(typ EventType, c, item string) {
	w.t.Helper()
	w.now = w.now.Add(time.Minute)
	ev := Event{Type: typ, Customer: c, Channel: "web", TS: w.now.UnixMilli()}
	if strings.HasPrefix(c, "cookie") {
		ev.Customer, ev.AnonymousID = "", c
	}
	if strings.Contains(item, "-") {
		ev.SKU = item
	} else {
		ev.Product = item
	}
	w.apply(Record{Op: OpEvent, Event: ev})
}

func (w *world) picks(q Query) []Pick {
	return w.e.PicksInto(nil, &q)
}

func ids(picks []Pick) []string {
	out := make([]string, len(picks))
	for i, p := range picks {
		out[i] = p.Item.ID
	}
	return out
}

func pickOf(picks []Pick, id string) (Pick, bool) {
	for _, p := range picks {
		if p.Item.ID == id {
			return p, true
		}
	}
	return Pick{}, false
}

// apparel builds a small catalog: sweaters, leggings, coats in numeric
// sizes; hats, gloves and scarves one-size, all women's.
func apparel(t *testing.T) *world { return apparelInto(newWorld(t, Options{})) }

// apparelInto adds the apparel catalog to w.
func apparelInto(w *world) *world {
	sizes := []string{"6", "8", "10"}
	for i := range 4 {
		w.product(fmt.Sprint("SW", i), "women/knitwear/sweaters", "Nordic", "women-numeric", []string{"winter", "wool"}, sizes...)
		w.product(fmt.Sprint("LG", i), "women/leggings", "Move", "women-numeric", []string{"sport"}, sizes...)
		w.product(fmt.Sprint("CO", i), "women/coats", "Alpen", "women-numeric", []string{"winter"}, sizes...)
		w.product(fmt.Sprint("HT", i), "women/accessories/hats", "Alpen", "", []string{"winter"})
		w.product(fmt.Sprint("GL", i), "women/accessories/gloves", "Alpen", "", []string{"winter"})
		w.product(fmt.Sprint("SC", i), "women/accessories/scarves", "Nordic", "", []string{"winter"})
		w.product(fmt.Sprint("TS", i), "women/tops/t-shirts", "Sun", "women-numeric", []string{"summer"}, sizes...)
	}
	return w
}

func TestSizesByRecency(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events [][2]string // type name, sku
		want   string      // current size for women-numeric, "" = unknown
	}{
		{"bought 8", [][2]string{{"purchase", "SW0-8"}}, "8"},
		{"bought 8 returned 8 bought 10", [][2]string{{"purchase", "SW0-8"}, {"return", "SW0-8"}, {"purchase", "SW1-10"}}, "10"},
		{"bought 8 then carted 10", [][2]string{{"purchase", "SW0-8"}, {"cart_add", "SW1-10"}}, "8"},
		{"carted 6", [][2]string{{"cart_add", "LG0-6"}}, "6"},
		{"bought 8 returned 8", [][2]string{{"purchase", "SW0-8"}, {"return", "SW0-8"}}, ""},
		{"bought 8 then 10", [][2]string{{"purchase", "SW0-8"}, {"purchase", "SW1-10"}}, "10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := apparel(t)
			for _, ev := range tc.events {
				typ, _ := ParseEventType(ev[0])
				w.event(typ, "C1", ev[1])
			}
			v, _ := w.e.Profile("C1", false)
			got := ""
			for _, s := range v.Sizes {
				if s.Current && s.SizeGroup == "women-numeric" {
					got = s.Size
				}
			}
			if got != tc.want {
				t.Fatalf("current size %q, want %q (sizes %+v)", got, tc.want, v.Sizes)
			}
		})
	}
}

func TestCartLifecycle(t *testing.T) {
	w := apparel(t)
	cart := func() []string {
		v, _ := w.e.Profile("C1", false)
		var out []string
		for _, c := range v.Cart {
			out = append(out, c.Product+"/"+c.SKU)
		}
		return out
	}
	w.event(EventCartAdd, "C1", "LG0-8")
	w.event(EventCartAdd, "C1", "SW0-8")
	w.event(EventCartAdd, "C1", "HT0")
	if got := cart(); !slices.Equal(got, []string{"LG0/LG0-8", "SW0/SW0-8", "HT0/HT0"}) {
		t.Fatalf("cart %v", got)
	}
	w.event(EventCartRemove, "C1", "SW0-8")
	w.event(EventPurchase, "C1", "LG0-8")
	if got := cart(); !slices.Equal(got, []string{"HT0/HT0"}) {
		t.Fatalf("after remove and purchase: cart %v", got)
	}
	// Thirty-one days later the hat has expired from the cart.
	w.now = w.now.Add(31 * 24 * time.Hour)
	w.event(EventView, "C1", "SW1")
	if got := cart(); len(got) != 0 {
		t.Fatalf("expired cart %v", got)
	}
}

func TestAdsPicks(t *testing.T) {
	w := apparel(t)
	w.event(EventPurchase, "sarah", "SW0-8")
	w.event(EventView, "sarah", "CO1")
	w.event(EventCartAdd, "sarah", "LG1-8")
	w.event(EventCartAdd, "sarah", "LG2-8")
	w.stock("LG2-8", "online", 0) // sold out in her size
	got := w.picks(Query{Customer: "sarah", Channel: ChannelAds, K: 6})
	if len(got) != 6 {
		t.Fatalf("got %d picks, want 6: %v", len(got), ids(got))
	}
	if got[0].Item.ID != "LG1" || got[0].Reason != ReasonCart {
		t.Fatalf("first pick %s (%v), want LG1 (cart)", got[0].Item.ID, got[0].Reason)
	}
	if got[1].Item.ID != "CO1" || got[1].Reason != ReasonViewed {
		t.Fatalf("second pick %s (%v), want CO1 (viewed)", got[1].Item.ID, got[1].Reason)
	}
	for _, p := range got {
		if p.Item.ID == "LG2" || p.Item.ID == "SW0" {
			t.Fatalf("picked %s: sold out in her size or bought", p.Item.ID)
		}
		if p.SizeMask == 0 {
			t.Fatalf("pick %s has no fitting size in stock", p.Item.ID)
		}
		if p.Item.SizeGroup == "women-numeric" {
			for i, v := range p.Item.Variants {
				if p.SizeMask&(1<<i) != 0 && v.Size != "8" {
					t.Fatalf("pick %s offers size %s", p.Item.ID, v.Size)
				}
			}
		}
	}
}

func TestNeverRepeatAPurchaseUnlessReturned(t *testing.T) {
	w := apparel(t)
	w.event(EventPurchase, "C1", "HT0")
	has := func() bool {
		_, ok := pickOf(w.picks(Query{Customer: "C1", Channel: ChannelWeb, K: 100}), "HT0")
		return ok
	}
	if has() {
		t.Fatal("bought hat picked")
	}
	w.event(EventReturn, "C1", "HT0")
	if !has() {
		t.Fatal("returned hat not picked again")
	}
}

func TestFilters(t *testing.T) {
	w := apparel(t)
	w.stock("SW1-8", "store-1", 2)
	w.stock("HT1", "store-1", 1)
	w.apply(Record{Op: OpProduct, Product: Product{ID: "OLD", Category: "women/coats", Variants: []Variant{{SKU: "OLD"}}, Inactive: true}})
	w.stock("OLD", "online", 3)
	w.event(EventPurchase, "C1", "SW0-8")
	for _, tc := range []struct {
		name  string
		q     Query
		check func(p Pick) bool
		n     int // expected count; -1: any > 0
	}{
		{"store only", Query{Customer: "C1", Locations: []string{"store-1"}, K: 10}, func(p Pick) bool { return p.Item.ID == "SW1" || p.Item.ID == "HT1" }, 2},
		{"unknown location", Query{Customer: "C1", Locations: []string{"nowhere"}, K: 10}, nil, 0},
		{"category", Query{Customer: "C1", Category: "women/accessories", K: 100}, func(p Pick) bool { return strings.HasPrefix(p.Item.Category, "women/accessories/") }, 12},
		{"unknown category", Query{Customer: "C1", Category: "men", K: 10}, nil, 0},
		{"exclude", Query{Customer: "C1", Exclude: []string{"HT0", "GL0"}, K: 100}, func(p Pick) bool { return p.Item.ID != "HT0" && p.Item.ID != "GL0" }, -1},
		{"inactive never", Query{K: 100}, func(p Pick) bool { return p.Item.ID != "OLD" }, -1},
		{"unknown customer", Query{Customer: "nobody", K: 5}, func(p Pick) bool { return p.Reason == ReasonPopular }, 5},
		{"context excluded", Query{Customer: "C1", Context: "CO0", Channel: ChannelScreen, K: 100}, func(p Pick) bool { return p.Item.ID != "CO0" }, -1},
		{"size 8 fits", Query{Customer: "C1", K: 100}, func(p Pick) bool { return p.Item.ID != "SW0" }, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := w.picks(tc.q)
			if tc.n >= 0 && len(got) != tc.n {
				t.Fatalf("%d picks, want %d: %v", len(got), tc.n, ids(got))
			}
			if tc.n < 0 && len(got) == 0 {
				t.Fatal("no picks")
			}
			for _, p := range got {
				if tc.check != nil && !tc.check(p) {
					t.Errorf("pick %s (%v) breaks the filter", p.Item.ID, p.Reason)
				}
			}
		})
	}
}

func TestStrictFiltersStillFillK(t *testing.T) {
	w := newWorld(t, Options{TopGlobal: 4, TopPerFacet: 4})
	for i := range 200 {
		w.product(fmt.Sprintf("P%03d", i), fmt.Sprintf("cat/leaf%d", i%10), "B", "g", nil, "S", "M")
	}
	// Popularity sits on products out of stock in M; only the quiet ones fit.
	for i := range 20 {
		w.event(EventView, fmt.Sprint("V", i), fmt.Sprintf("P%03d", i))
		w.stock(fmt.Sprintf("P%03d-M", i), "online", 0)
	}
	w.event(EventPurchase, "C1", "P150-M")
	got := w.picks(Query{Customer: "C1", K: 30})
	if len(got) != 30 {
		t.Fatalf("%d picks, want 30", len(got))
	}
	for _, p := range got {
		var n int
		fmt.Sscanf(p.Item.ID, "P%d", &n)
		if n < 20 || p.Item.ID == "P150" {
			t.Fatalf("picked %s: sold out in M or bought", p.Item.ID)
		}
	}
}

func TestDiversity(t *testing.T) {
	w := newWorld(t, Options{})
	for i := range 10 {
		w.product(fmt.Sprint("A", i), "x/a", "", "", nil)
		w.product(fmt.Sprint("B", i), "x/b", "", "", nil)
		w.product(fmt.Sprint("C", i), "x/c", "", "", nil)
	}
	// Make every A more popular than every B.
	for i := range 10 {
		for range 3 {
			w.event(EventPurchase, fmt.Sprint("buyer", i), fmt.Sprint("A", i))
		}
		w.event(EventView, "viewer", fmt.Sprint("B", i))
		w.event(EventView, "viewer", fmt.Sprint("C", i))
	}
	got := w.picks(Query{K: 6})
	a := 0
	for _, p := range got {
		if p.Item.Category == "x/a" {
			a++
		}
	}
	if a != 2 {
		t.Fatalf("%d picks from x/a, want ceil(6/3) = 2: %v", a, ids(got))
	}
	// With only x/a in stock the cap gives way: k is still filled.
	for i := range 10 {
		w.stock(fmt.Sprint("B", i), "online", 0)
		w.stock(fmt.Sprint("C", i), "online", 0)
	}
	if got := w.picks(Query{K: 6}); len(got) != 6 {
		t.Fatalf("%d picks, want 6", len(got))
	}
}

func TestDeterministic(t *testing.T) {
	build := func() *world {
		w := apparel(t)
		for i := range 30 {
			w.event(EventView, fmt.Sprint("C", i%7), fmt.Sprint([]string{"SW", "CO", "HT", "GL"}[i%4], i%4))
			w.event(EventPurchase, fmt.Sprint("C", i%5), fmt.Sprint([]string{"SC", "HT", "GL"}[i%3], (i+1)%4))
		}
		return w
	}
	a, b := build(), build()
	for _, q := range []Query{{Customer: "C1", K: 10}, {Customer: "C3", Channel: ChannelAds, K: 7}, {K: 12}} {
		x, y := ids(a.picks(q)), ids(b.picks(q))
		if !slices.Equal(x, y) || !slices.Equal(x, ids(a.picks(q))) {
			t.Fatalf("same state, different answers: %v vs %v", x, y)
		}
	}
}

func TestApplyRejects(t *testing.T) {
	w := apparel(t)
	for _, tc := range []struct {
		name  string
		r     Record
		field string
		err   error
	}{
		{"product without id", Record{Op: OpProduct, Product: Product{Variants: []Variant{{SKU: "x"}}}}, "id", ErrMissingField},
		{"sku of another product", Record{Op: OpProduct, Product: Product{ID: "NEW", Variants: []Variant{{SKU: "SW0-8"}}}}, "variants", index.ErrSKUOwned},
		{"sku twice", Record{Op: OpProduct, Product: Product{ID: "NEW", Variants: []Variant{{SKU: "N-1"}, {SKU: "N-1"}}}}, "variants", index.ErrDuplicateSKU},
		{"unknown sku stock", Record{Op: OpInventory, Inventory: Inventory{SKU: "nope", Location: "online", Quantity: 1}}, "sku", index.ErrUnknownSKU},
		{"negative stock", Record{Op: OpInventory, Inventory: Inventory{SKU: "SW0-8", Location: "online", Quantity: -1}}, "quantity", index.ErrNegativeQuantity},
		{"stock without location", Record{Op: OpInventory, Inventory: Inventory{SKU: "SW0-8", Quantity: 1}}, "location", ErrMissingField},
		{"identify both targets", Record{Op: OpIdentify, Identify: Identify{AnonymousID: "x", Customer: "a", ToAnonymousID: "y"}}, "to_anonymous_id", ErrBothTargets},
		{"event no actor", Record{Op: OpEvent, Event: Event{Type: EventView, Product: "SW0"}}, "customer", ErrUnknownActor},
		{"event two actors", Record{Op: OpEvent, Event: Event{Type: EventView, Customer: "a", AnonymousID: "b", Product: "SW0"}}, "customer", ErrBothActors},
		{"event unknown product", Record{Op: OpEvent, Event: Event{Type: EventView, Customer: "a", Product: "nope"}}, "product", ErrUnknownProduct},
		{"event unknown sku", Record{Op: OpEvent, Event: Event{Type: EventView, Customer: "a", SKU: "nope"}}, "sku", ErrUnknownSKU},
		{"event sku mismatch", Record{Op: OpEvent, Event: Event{Type: EventView, Customer: "a", Product: "SW1", SKU: "SW0-8"}}, "sku", ErrSKUMismatch},
		{"event bad type", Record{Op: OpEvent, Event: Event{Type: 99, Customer: "a", Product: "SW0"}}, "type", ErrBadEventType},
		{"identify half", Record{Op: OpIdentify, Identify: Identify{Customer: "a"}}, "anonymous_id", ErrMissingField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.e.Stats()
			err := w.e.Apply(&tc.r)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err = %v, want a field error on %q", err, tc.field)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			// The reason is shown to the client as it is: no package prefix.
			if msg := fe.Err.Error(); strings.Contains(msg, "engine: ") || strings.Contains(msg, "index: ") {
				t.Fatalf("reason %q names a package", msg)
			}
			if after := w.e.Stats(); after != before {
				t.Fatalf("a rejected record changed state: %+v -> %+v", before, after)
			}
		})
	}
}

func TestIdentifyMerges(t *testing.T) {
	w := apparel(t)
	w.event(EventPurchase, "C1", "SW0-8")
	w.event(EventView, "cookie-1", "CO2")
	w.event(EventCartAdd, "cookie-1", "LG1-8")
	w.apply(Record{Op: OpIdentify, Identify: Identify{AnonymousID: "cookie-1", Customer: "C1"}})
	w.event(EventCartAdd, "cookie-1", "LG3-8") // lands on C1 now
	v, ok := w.e.Profile("C1", false)
	if !ok {
		t.Fatal("no profile")
	}
	var cart []string
	for _, c := range v.Cart {
		cart = append(cart, c.Product)
	}
	if !slices.Equal(cart, []string{"LG1", "LG3"}) || !slices.Contains(v.Links, "cookie-1") {
		t.Fatalf("merged cart %v, links %v", cart, v.Links)
	}
	if len(v.Views) != 1 || v.Views[0].Product != "CO2" || len(v.Purchases) != 1 {
		t.Fatalf("merged views %v purchases %v", v.Views, v.Purchases)
	}
	// The cookie now gets the customer's picks: her cart first.
	got := w.picks(Query{AnonymousID: "cookie-1", Channel: ChannelAds, K: 3})
	if len(got) == 0 || got[0].Reason != ReasonCart {
		t.Fatalf("cookie picks %v", ids(got))
	}
	if a, _ := w.e.Profile("cookie-1", true); a.MergedInto != "C1" {
		t.Fatalf("cookie merged into %q", a.MergedInto)
	}
}

func TestRelatedLearnedFromCoPurchases(t *testing.T) {
	w := apparel(t)
	for i := range 5 {
		c := fmt.Sprint("buyer", i)
		w.event(EventPurchase, c, "HT1")
		w.event(EventPurchase, c, "GL2")
		w.event(EventPurchase, c, "SC3")
	}
	w.event(EventPurchase, "sarah", "HT1")
	got := w.picks(Query{Customer: "sarah", Channel: ChannelEmail, K: 4})
	for _, want := range []string{"GL2", "SC3"} {
		p, ok := pickOf(got, want)
		if !ok || p.Reason != ReasonRelated {
			t.Fatalf("%s not picked as related: %v", want, ids(got))
		}
	}
	// Screen: the scanned hat's relations lead.
	got = w.picks(Query{Context: "HT1", Channel: ChannelScreen, K: 2})
	if !slices.Equal(ids(got), []string{"GL2", "SC3"}) && !slices.Equal(ids(got), []string{"SC3", "GL2"}) {
		t.Fatalf("screen picks for HT1 = %v", ids(got))
	}
	// A screen that knows her and has no scan: her history's relations.
	got = w.picks(Query{Customer: "sarah", Channel: ChannelScreen, K: 2})
	if !slices.Equal(ids(got), []string{"GL2", "SC3"}) && !slices.Equal(ids(got), []string{"SC3", "GL2"}) {
		t.Fatalf("screen picks for sarah, no scan = %v", ids(got))
	}
	for _, p := range got {
		if p.Reason != ReasonRelated {
			t.Fatalf("screen picks for sarah, no scan: %s is %s, want related", p.Item.ID, p.Reason)
		}
	}
	// With a scan, the scanned product's relations lead, not her history's.
	for i := range 5 {
		c := fmt.Sprint("runner", i)
		w.event(EventPurchase, c, "LG0-8")
		w.event(EventPurchase, c, "TS0-8")
	}
	got = w.picks(Query{Customer: "sarah", Context: "LG0", Channel: ChannelScreen, K: 1})
	if len(got) != 1 || got[0].Item.ID != "TS0" {
		t.Fatalf("screen picks for sarah scanning LG0 = %v, want TS0", ids(got))
	}
}

func TestAffinityDecays(t *testing.T) {
	w := apparel(t)
	w.event(EventPurchase, "C1", "SW0-8")
	weight := func() float64 {
		v, _ := w.e.Profile("C1", false)
		for _, a := range v.Affinities {
			if a.Facet == "category:women/knitwear" {
				return a.Weight
			}
		}
		return 0
	}
	before := weight()
	w.now = w.now.Add(w.e.Options().AffinityHalfLife)
	if after := weight(); after < before*0.49 || after > before*0.51 {
		t.Fatalf("after one half-life: %v -> %v", before, after)
	}
}

func TestDefaultOptions(t *testing.T) {
	a := DefaultOptions()
	a.EventWeights[EventView] = 42
	a.Priors[ChannelWeb][ReasonCart] = 42
	b := DefaultOptions()
	if b.EventWeights[EventView] == 42 || b.Priors[ChannelWeb][ReasonCart] == 42 {
		t.Fatal("DefaultOptions shares state between calls")
	}
	lit := New(Options{}).Options()
	lit.Now, b.Now = nil, nil
	if !reflect.DeepEqual(lit, b) {
		t.Fatalf("Options{} and DefaultOptions differ:\n%+v\n%+v", lit, b)
	}
}

// TestExplicitZeroWeights: with WeightsSet, a zero weight is zero; in a
// literal without it, zero takes the default.
func TestExplicitZeroWeights(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		affinity float64
		view     float32
	}{
		{"defaults", DefaultOptions(), 0.25, 0.25},
		{"literal zero takes the default", Options{AffinityWeight: 0}, 0.25, 0.25},
		{"literal value", Options{AffinityWeight: 2}, 2, 0.25},
		{"explicit zero", func() Options {
			o := DefaultOptions()
			o.AffinityWeight, o.EventWeights[EventView] = 0, 0
			return o
		}(), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := New(tc.opts).Options()
			if o.AffinityWeight != tc.affinity || o.EventWeights[EventView] != tc.view {
				t.Fatalf("AffinityWeight %v, view weight %v; want %v, %v", o.AffinityWeight, o.EventWeights[EventView], tc.affinity, tc.view)
			}
		})
	}
	// A view with weight zero leaves no affinity behind.
	o := DefaultOptions()
	o.EventWeights[EventView] = 0
	w := apparelInto(newWorld(t, o))
	w.event(EventView, "C1", "SW0")
	if v, _ := w.e.Profile("C1", false); len(v.Affinities) != 0 {
		t.Fatalf("zero view weight, affinity %v", v.Affinities)
	}
}

// TestCampaignBound: the profile encoding bounds a campaign's products by
// the same number that bounds picks.
func TestCampaignBound(t *testing.T) {
	if MaxK != profile.MaxCampaignItems {
		t.Fatalf("MaxK %d, profile.MaxCampaignItems %d", MaxK, profile.MaxCampaignItems)
	}
}
