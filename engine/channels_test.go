package engine

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// rank returns the position of product id in picks, or -1.
func rank(picks []Pick, id string) int {
	return slices.IndexFunc(picks, func(p Pick) bool { return p.Item.ID == id })
}

func (w *world) impression(actor, product string, ch string) {
	w.t.Helper()
	w.now = w.now.Add(time.Minute)
	ev := Event{Type: EventImpression, Customer: actor, Product: product, Channel: ch, TS: w.now.UnixMilli()}
	w.apply(Record{Op: OpEvent, Event: ev})
}

func TestFrequencyCapAcrossChannels(t *testing.T) {
	tests := []struct {
		name   string
		shown  []string // channels of the impressions of LG1
		after  time.Duration
		capped bool
	}{
		{"never shown", nil, 0, false},
		{"shown twice", []string{"email", "ads"}, 0, false},
		{"email and ads together reach the cap", []string{"email", "ads", "email"}, 0, true},
		{"the window passed", []string{"email", "ads", "email"}, 49 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := apparel(t)
			w.event(EventCartAdd, "sarah", "LG1-8")
			w.event(EventCartAdd, "sarah", "LG2-8")
			for _, ch := range tt.shown {
				w.impression("sarah", "LG1", ch)
			}
			w.now = w.now.Add(tt.after)
			got := w.picks(Query{Customer: "sarah", Channel: ChannelAds, K: 10})
			r := rank(got, "LG1")
			if tt.capped {
				// A capped item ranks below every uncapped one.
				if r >= 0 && r != len(got)-1 {
					t.Fatalf("capped LG1 at rank %d of %v", r, ids(got))
				}
				if rank(got, "LG2") != 0 {
					t.Fatalf("the other cart item should lead: %v", ids(got))
				}
				return
			}
			if r != 0 && r != 1 {
				t.Fatalf("LG1 (cart) at rank %d, want among the first two: %v", r, ids(got))
			}
		})
	}
}

func TestFrequencyCapPerChannel(t *testing.T) {
	opts := Options{}
	opts.FrequencyCaps[ChannelEmail] = FrequencyCap{Max: 5, Window: 7 * 24 * time.Hour}
	w := apparelInto(newWorld(t, opts))
	w.event(EventCartAdd, "sarah", "LG1-8")
	for range 3 {
		w.impression("sarah", "LG1", "ads")
	}
	if got := w.picks(Query{Customer: "sarah", Channel: ChannelAds, K: 10}); rank(got, "LG1") >= 0 && rank(got, "LG1") != len(got)-1 {
		t.Fatalf("ads (cap 3): LG1 not last: %v", ids(got))
	}
	if r := rank(w.picks(Query{Customer: "sarah", Channel: ChannelEmail, K: 10}), "LG1"); r != 0 {
		t.Fatalf("email (cap 5): LG1 at rank %d, want 0", r)
	}
}

func TestCappedItemsStillFillK(t *testing.T) {
	w := apparel(t)
	// Everything but one product shown three times: the picks still fill k,
	// the unshown product first.
	for _, prefix := range []string{"SW", "LG", "CO", "HT", "GL", "SC", "TS"} {
		for i := range 4 {
			id := prefix + string(rune('0'+i))
			if id == "GL3" {
				continue
			}
			for range 3 {
				w.impression("bob", id, "web")
			}
		}
	}
	got := w.picks(Query{Customer: "bob", Channel: ChannelWeb, K: 5})
	if len(got) != 5 || got[0].Item.ID != "GL3" {
		t.Fatalf("got %v, want 5 picks led by GL3", ids(got))
	}
}

func TestRepurchaseWindows(t *testing.T) {
	opts := Options{RepurchaseWindows: []RepurchaseWindow{
		{Prefix: "women/accessories/", Window: 30 * 24 * time.Hour},
		{Prefix: "women/accessories/hats", Window: 7 * 24 * time.Hour},
	}}
	tests := []struct {
		name    string
		bought  string
		after   time.Duration
		ret     bool
		wantAny bool
	}{
		{"hat within its 7 days", "HT0", 6 * 24 * time.Hour, false, false},
		{"hat after 7 days (longest prefix wins)", "HT0", 8 * 24 * time.Hour, false, true},
		{"gloves within 30 days", "GL0", 8 * 24 * time.Hour, false, false},
		{"gloves after 30 days", "GL0", 31 * 24 * time.Hour, false, true},
		{"sweater: no window, never", "SW0-8", 365 * 24 * time.Hour, false, false},
		{"sweater returned: at once", "SW0-8", 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := apparelInto(newWorld(t, opts))
			w.event(EventPurchase, "C1", tt.bought)
			if tt.ret {
				w.event(EventReturn, "C1", tt.bought)
			}
			w.now = w.now.Add(tt.after)
			product := tt.bought[:3]
			got := w.picks(Query{Customer: "C1", Channel: ChannelWeb, K: 100})
			if has := rank(got, product) >= 0; has != tt.wantAny {
				t.Fatalf("%s picked: %v, want %v", product, has, tt.wantAny)
			}
		})
	}
}

func TestExclusions(t *testing.T) {
	w := apparel(t)
	w.event(EventCartAdd, "sarah", "LG1-8")
	w.event(EventCartAdd, "anna", "LG1-8")
	day := 24 * time.Hour
	until := func(d time.Duration) int64 { return w.now.Add(d).UnixMilli() }
	has := func(actor string) bool {
		return rank(w.picks(Query{Customer: actor, Channel: ChannelAds, K: 100}), "LG1") >= 0
	}
	w.apply(Record{Op: OpExclusion, Exclusion: Exclusion{Customer: "sarah", Product: "LG1", Until: until(day)}})
	if has("sarah") || !has("anna") {
		t.Fatalf("per-customer exclusion: sarah %v anna %v", has("sarah"), has("anna"))
	}
	w.now = w.now.Add(day + time.Second)
	if !has("sarah") {
		t.Fatal("exclusion did not end")
	}
	w.apply(Record{Op: OpExclusion, Exclusion: Exclusion{Product: "LG1", Until: until(time.Hour)}})
	if has("sarah") || has("anna") {
		t.Fatal("global exclusion ignored")
	}
	w.apply(Record{Op: OpExclusion, Exclusion: Exclusion{Product: "LG1", Until: until(-time.Hour)}})
	if !has("anna") {
		t.Fatal("an exclusion until the past did not lift it")
	}
	for _, bad := range []struct {
		x     Exclusion
		field string
	}{
		{Exclusion{Customer: "a", Until: 1}, "product"},
		{Exclusion{Customer: "a", AnonymousID: "b", Product: "LG1"}, "customer"},
		{Exclusion{Product: "nope"}, "product"},
		{Exclusion{Customer: "a", Product: "nope"}, "product"},
	} {
		var fe *FieldError
		if err := w.e.Apply(&Record{Op: OpExclusion, Exclusion: bad.x}); !errors.As(err, &fe) || fe.Field != bad.field {
			t.Errorf("%+v: got %v, want a %s field error", bad.x, err, bad.field)
		}
	}
}

func TestBusinessRules(t *testing.T) {
	w := apparel(t)
	w.apply(Record{Op: OpProduct, Product: Product{ID: "LUX", Title: "LUX", Category: "women/coats", Brand: "Alpen", Price: 900, Variants: []Variant{{SKU: "LUX"}}}})
	w.stock("LUX", "online", 3)
	w.event(EventView, "C1", "SW1")
	w.event(EventView, "C1", "CO1")
	base := w.picks(Query{Customer: "C1", Channel: ChannelWeb, K: 12})

	t.Run("boost brings a facet's items up", func(t *testing.T) {
		got := w.picks(Query{Customer: "C1", Channel: ChannelWeb, K: 12, Boost: []Facet{{Kind: FacetCategory, Name: "women/leggings"}}})
		for _, id := range []string{"LG0", "LG1"} {
			if rank(got, id) < 0 || rank(got, id) >= rank(base, id) {
				t.Fatalf("boosted %s did not move up: %v (base %v)", id, ids(got), ids(base))
			}
		}
		if rank(got, "LG0") > 1 {
			t.Fatalf("boosted LG0 not in the first two: %v", ids(got))
		}
	})
	t.Run("bury sends a brand below the rest", func(t *testing.T) {
		got := w.picks(Query{Customer: "C1", Channel: ChannelWeb, K: 40, Bury: []Facet{{Kind: FacetBrand, Name: "Nordic"}}})
		seen := false
		for _, p := range got {
			if p.Item.Brand == "Nordic" {
				seen = true
			} else if seen {
				t.Fatalf("a non-buried item after a buried one: %v", ids(got))
			}
		}
	})
	t.Run("pins place products", func(t *testing.T) {
		got := w.picks(Query{Customer: "C1", Channel: ChannelWeb, K: 5, Pins: []Pin{{Product: "GL2", Pos: 1}, {Product: "SC3", Pos: 3}, {Product: "nope", Pos: 2}}})
		if len(got) != 5 || got[0].Item.ID != "GL2" || got[2].Item.ID != "SC3" || got[0].Reason != ReasonPinned {
			t.Fatalf("got %v", ids(got))
		}
	})
	t.Run("a pinned product sold out is left out", func(t *testing.T) {
		w.stock("GL3", "online", 0)
		got := w.picks(Query{Customer: "C1", Channel: ChannelWeb, K: 5, Pins: []Pin{{Product: "GL3", Pos: 1}}})
		if rank(got, "GL3") >= 0 {
			t.Fatalf("sold-out pin shown: %v", ids(got))
		}
	})
	t.Run("price range", func(t *testing.T) {
		got := w.picks(Query{Customer: "C1", Channel: ChannelWeb, K: 100, PriceMin: 100})
		if len(got) != 1 || got[0].Item.ID != "LUX" {
			t.Fatalf("price_min 100: %v", ids(got))
		}
		got = w.picks(Query{Customer: "C1", Channel: ChannelWeb, K: 100, PriceMax: 500})
		if rank(got, "LUX") >= 0 || len(got) == 0 {
			t.Fatalf("price_max 500: %v", ids(got))
		}
	})
}

func TestCampaignPicksStable(t *testing.T) {
	w := apparel(t)
	for _, c := range []string{"ann", "bea"} { // the leggings go with a scarf
		w.event(EventPurchase, c, "LG1-8")
		w.event(EventPurchase, c, "SC1")
	}
	w.event(EventCartAdd, "sarah", "LG1-8")
	w.event(EventView, "sarah", "CO1")
	w.event(EventView, "sarah", "SW2")
	q := Query{Customer: "sarah", Channel: ChannelEmail, K: 4}
	open := func() []Pick {
		t.Helper()
		got, rec := w.e.CampaignPicksInto(nil, &q, "winter")
		if rec != nil {
			w.apply(*rec)
		}
		return got
	}
	first := open()
	if len(first) != 4 {
		t.Fatalf("first open: %v", ids(first))
	}
	// Opened again with nothing new: the same picks, each with the reason
	// and score it was chosen with (a related item stays "related").
	if again := open(); !slices.EqualFunc(again, first, func(a, b Pick) bool {
		return a.Item == b.Item && a.Reason == b.Reason && a.Score == b.Score
	}) {
		t.Fatalf("re-open changed picks or reasons:\n%+v\n%+v", first, again)
	}
	if !slices.ContainsFunc(first, func(p Pick) bool { return p.Reason == ReasonRelated }) {
		t.Fatalf("no related pick to check a reason against: %+v", first)
	}
	// New signals change fresh picks, not the campaign's.
	w.event(EventView, "sarah", "TS0-8")
	w.event(EventCartAdd, "sarah", "CO3-8")
	if again := open(); !slices.Equal(ids(again), ids(first)) {
		t.Fatalf("re-open changed: %v then %v", ids(first), ids(again))
	}
	// Slot 2's item sells out in her size: only that slot changes.
	gone := first[1].Item
	for _, v := range gone.Variants {
		w.stock(v.SKU, "online", 0)
	}
	third := open()
	for i := range third {
		if i == 1 {
			if third[i].Item == gone || slices.Contains(ids(first), third[i].Item.ID) {
				t.Fatalf("slot 2 not replaced by a new item: %v -> %v", ids(first), ids(third))
			}
			continue
		}
		if third[i].Item.ID != first[i].Item.ID {
			t.Fatalf("slot %d changed: %v -> %v", i+1, ids(first), ids(third))
		}
	}
	if again := open(); !slices.Equal(ids(again), ids(third)) {
		t.Fatalf("the replacement is not kept: %v then %v", ids(third), ids(again))
	}
	// Bought since: replaced too.
	w.event(EventPurchase, "sarah", third[0].Item.Variants[0].SKU)
	fourth := open()
	if fourth[0].Item.ID == third[0].Item.ID || fourth[2].Item.ID != third[2].Item.ID {
		t.Fatalf("after a purchase: %v -> %v", ids(third), ids(fourth))
	}
	// Another campaign, or the TTL passed: chosen afresh.
	if other, rec := w.e.CampaignPicksInto(nil, &q, "spring"); rec == nil || len(other) != 4 {
		t.Fatalf("a new campaign gave no record: %v", ids(other))
	}
	w.now = w.now.Add(8 * 24 * time.Hour)
	if _, rec := w.e.CampaignPicksInto(nil, &q, "winter"); rec == nil || rec.Campaign.TS != w.now.UnixMilli() {
		t.Fatalf("an expired campaign was not chosen afresh: %+v", rec)
	}
}

func TestIdentityChains(t *testing.T) {
	w := apparel(t)
	w.event(EventCartAdd, "cookie-1", "LG1-8")
	w.event(EventView, "cookie-2", "CO1")
	link := func(id Identify) error { return w.e.Apply(&Record{Op: OpIdentify, Identify: id}) }
	if err := link(Identify{AnonymousID: "cookie-1", ToAnonymousID: "cookie-2"}); err != nil {
		t.Fatal(err)
	}
	if err := link(Identify{AnonymousID: "cookie-2", ToAnonymousID: "cookie-1"}); err == nil {
		t.Fatal("a cycle was accepted")
	}
	if err := link(Identify{AnonymousID: "cookie-2", Customer: "sarah"}); err != nil {
		t.Fatal(err)
	}
	// Later events on the first cookie land on sarah.
	w.event(EventCartAdd, "cookie-1", "GL2")
	v, _ := w.e.Profile("sarah", false)
	cart := []string{}
	for _, c := range v.Cart {
		cart = append(cart, c.Product)
	}
	slices.Sort(cart)
	if !slices.Equal(cart, []string{"GL2", "LG1"}) || len(v.Views) != 1 || !slices.Contains(v.Links, "cookie-1") || !slices.Contains(v.Links, "cookie-2") {
		t.Fatalf("sarah after the chain: cart %v views %v links %v", cart, v.Views, v.Links)
	}
	got := w.picks(Query{AnonymousID: "cookie-1", Channel: ChannelAds, K: 3})
	if len(got) == 0 || got[0].Reason != ReasonCart {
		t.Fatalf("picks for the cookie do not follow the chain: %v", ids(got))
	}
	var fe *FieldError
	if err := link(Identify{AnonymousID: "x", Customer: "c", ToAnonymousID: "y"}); !errors.As(err, &fe) || fe.Field != "to_anonymous_id" {
		t.Fatalf("both targets: %v", err)
	}
}

func TestCategoryFilterIsNormalized(t *testing.T) {
	w := apparel(t)
	tests := []struct{ category, want string }{
		{"women/accessories/hats", "women/accessories/hats"},
		{"Women/Accessories/Hats", "women/accessories/hats"},
		{"/women/accessories/hats/", "women/accessories/hats"},
		{" women // accessories/hats ", "women/accessories/hats"},
	}
	for _, tt := range tests {
		if got := normalCategory(tt.category); got != tt.want {
			t.Errorf("normalCategory(%q) = %q, want %q", tt.category, got, tt.want)
		}
		got := w.picks(Query{Channel: ChannelWeb, K: 10, Category: tt.category})
		if len(got) != 4 {
			t.Fatalf("category %q: %v, want the four hats", tt.category, ids(got))
		}
		for _, p := range got {
			if p.Item.Category != "women/accessories/hats" {
				t.Fatalf("category %q: picked %s in %s", tt.category, p.Item.ID, p.Item.Category)
			}
		}
	}
}
