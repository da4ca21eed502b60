package api_test

import (
	"fmt"
	"html"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
	apiclient "github.com/omnipick/omnipick/api/client"
	"github.com/omnipick/omnipick/engine"
)

// The acceptance cases for every channel, over HTTP, through the
// Go client (api/client); raw requests only for bad input.

type (
	q  = apiclient.PicksQuery
	ev = apiclient.Event
)

func TestSarahJourneyOnACookie(t *testing.T) {
	w := newSarahWorld(t)
	at := func(d time.Duration) time.Time { return time.Now().Add(d) }
	// Before she signs in, Sarah is a cookie: she browses and fills a cart.
	w.putEvents(
		ev{Type: apiclient.View, AnonymousID: "cookie-s", Product: "SARAH-LG2", Channel: "web", TS: at(-2 * time.Hour)},
		ev{Type: apiclient.CartAdd, AnonymousID: "cookie-s", SKU: "SARAH-LG1-8", Channel: "web", TS: at(-119 * time.Minute)},
		ev{Type: apiclient.View, AnonymousID: "cookie-s", Product: "SARAH-HAT1", Channel: "web", TS: at(-118 * time.Minute)},
	)
	// Ads retarget the cookie: the cart first, then what she viewed, never
	// sold out in her size.
	ps := w.pick(q{AnonymousID: "cookie-s", Channel: "ads", K: 6})
	if len(ps) < 2 || ps[0].Product != "SARAH-LG1" || ps[0].Reason != "cart" || ps[1].Product != "SARAH-HAT1" || ps[1].Reason != "viewed" {
		t.Fatalf("cookie ads picks: %+v", ps)
	}
	if slices.Contains(products(ps), "SARAH-LG2") {
		t.Fatalf("thermal leggings are sold out in 8 online: %v", products(ps))
	}
	w.checkFits(ps, "online")

	// The cookie belonged to a device id; the device signs in as sarah.
	w.putLinks(apiclient.Identify{AnonymousID: "cookie-s", ToAnonymousID: "device-s"})
	w.putLinks(apiclient.Identify{AnonymousID: "device-s", Customer: "sarah"})
	if got := w.pick(q{Customer: "sarah", Channel: "email", K: 6}); len(got) == 0 || got[0].Product != "SARAH-LG1" {
		t.Fatalf("sarah's email after the merge: %+v", got)
	}
	// She buys on the cookie (not signed in): it lands on sarah.
	w.putEvents(
		ev{Type: apiclient.Purchase, AnonymousID: "cookie-s", SKU: "SARAH-LG1-8", Channel: "web", TS: at(-time.Hour)},
		ev{Type: apiclient.Purchase, AnonymousID: "cookie-s", Product: "SARAH-HAT1", Channel: "web", TS: at(-time.Hour)},
	)
	for _, query := range []q{{Customer: "sarah", Channel: "ads"}, {AnonymousID: "cookie-s", Channel: "ads"}, {AnonymousID: "device-s", Channel: "email"}, {Customer: "sarah", Channel: "web"}} {
		query.K = 20
		got := w.pick(query)
		for _, banned := range []string{"SARAH-LG1", "SARAH-HAT1"} {
			if slices.Contains(products(got), banned) {
				t.Fatalf("%+v: %s shown after she bought it: %v", query, banned, products(got))
			}
		}
	}
	prof := w.profile("sarah")
	if len(prof.Purchases) != 2 || !slices.Contains(prof.LinkedIDs, "cookie-s") || !slices.Contains(prof.LinkedIDs, "device-s") {
		t.Fatalf("sarah's profile: %+v", prof)
	}
	// A link back would make a cycle: refused, naming the field.
	res, err := w.api.Identify(t.Context(), []apiclient.Identify{{AnonymousID: "device-s", ToAnonymousID: "cookie-s"}})
	if err != nil || res.Applied != 0 || len(res.Rejected) != 1 || res.Rejected[0].Field != "to_anonymous_id" {
		t.Fatalf("cycle: %+v %v", res, err)
	}
}

func TestEmailCampaignReopenAfterSoldOut(t *testing.T) {
	w := newSarahWorld(t)
	at := func(d time.Duration) time.Time { return time.Now().Add(d) }
	w.putEvents(
		ev{Type: apiclient.Purchase, Customer: "sarah", SKU: "SARAH-SW1-8", Channel: "social", TS: at(-3 * time.Hour)},
		ev{Type: apiclient.CartAdd, Customer: "sarah", SKU: "SARAH-LG1-8", Channel: "web", TS: at(-2 * time.Hour)},
		ev{Type: apiclient.View, Customer: "sarah", Product: "SARAH-CO1", Channel: "web", TS: at(-time.Hour)},
	)
	email := q{Customer: "sarah", Channel: "email", Campaign: "winter-sale", K: 5}
	open := func() []string {
		t.Helper()
		return products(w.pick(email))
	}
	first := open()
	if len(first) != 5 || first[0] != "SARAH-LG1" {
		t.Fatalf("first open: %v", first)
	}
	// She browses more; the email re-opened shows what it showed.
	w.putEvents(ev{Type: apiclient.CartAdd, Customer: "sarah", SKU: "SARAH-TS1-8", Channel: "web", TS: at(-time.Minute)})
	if again := open(); !slices.Equal(again, first) {
		t.Fatalf("re-open changed: %v -> %v", first, again)
	}
	// The third slot's item sells out in size 8 (or at all): only that
	// slot is replaced.
	gone := first[2]
	sku := gone
	if w.sized[gone] {
		sku = gone + "-8"
	}
	w.setStock(sku, "online", 0)
	third := open()
	for i := range first {
		switch {
		case i == 2 && (third[i] == gone || slices.Contains(first, third[i])):
			t.Fatalf("sold-out slot not replaced: %v -> %v", first, third)
		case i != 2 && third[i] != first[i]:
			t.Fatalf("slot %d changed: %v -> %v", i+1, first, third)
		}
	}
	if again := open(); !slices.Equal(again, third) {
		t.Fatalf("the replacement did not stick: %v -> %v", third, again)
	}
	// Another campaign chooses afresh (with the new cart line first).
	if other := products(w.pick(q{Customer: "sarah", Channel: "email", Campaign: "new-in", K: 5})); other[0] != "SARAH-LG1" && other[0] != "SARAH-TS1" {
		t.Fatalf("another campaign: %v", other)
	}

	// format=html: a fragment a template embeds, escaped, the same picks.
	body, err := w.api.PicksHTML(t.Context(), email)
	if err != nil {
		t.Fatalf("html: %v", err)
	}
	var shown []string
	for _, m := range regexp.MustCompile(`data-product="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		shown = append(shown, html.UnescapeString(m[1]))
	}
	if !slices.Equal(shown, third) {
		t.Fatalf("html fragment shows %v, json %v:\n%s", shown, third, body)
	}
}

func TestHTMLFragmentEscapes(t *testing.T) {
	c := newTyped(t, startServer(t, api.Options{}))
	c.putProducts(apiclient.Product{ID: "X<1>", Title: `<script>alert(1)</script> & "co"`, URL: "javascript:alert(1)", Image: `https://i.example/x.jpg?a=1&b="2"`,
		Price: 5, Currency: "EUR", Variants: []apiclient.Variant{{SKU: "X1"}}})
	c.putStock(apiclient.Inventory{SKU: "X1", Location: "online", Quantity: 1})
	s, err := c.api.PicksHTML(t.Context(), q{})
	if err != nil || strings.Contains(s, "<script>") || strings.Contains(s, "javascript:") || !strings.Contains(s, "&lt;script&gt;") || !strings.Contains(s, `data-product="X&lt;1&gt;"`) {
		t.Fatalf("%v %s", err, s)
	}
}

func TestFrequencyCapSpansEmailAndAds(t *testing.T) {
	w := newSarahWorld(t)
	w.putEvents(ev{Type: apiclient.CartAdd, Customer: "sarah", SKU: "SARAH-LG1-8", Channel: "web", TS: time.Now().Add(-time.Hour)})
	// Two emails record what they showed; an ad platform reports one
	// impression of its own.
	for range 2 {
		if ps := w.pick(q{Customer: "sarah", Channel: "email", K: 3, Record: true}); ps[0].Product != "SARAH-LG1" {
			t.Fatalf("email: %v", products(ps))
		}
	}
	ads := q{Customer: "sarah", Channel: "ads", K: 5}
	if ps := w.pick(ads); ps[0].Product != "SARAH-LG1" {
		t.Fatalf("shown twice, not yet capped: %v", products(ps))
	}
	w.putEvents(ev{Type: apiclient.Impression, Customer: "sarah", Product: "SARAH-LG1", Channel: "ads"})
	ps := w.pick(ads)
	if i := rank(ps, "SARAH-LG1"); i < len(ps) && i != len(ps)-1 {
		t.Fatalf("shown three times across email and ads, still ranked %d: %v", i, products(ps))
	}
	if prof := w.profile("sarah"); len(prof.Impressions) != 7 {
		t.Fatalf("impressions: %+v", prof.Impressions)
	}
}

func TestBusinessRulesOverHTTP(t *testing.T) {
	w := newSarahWorld(t)
	w.putEvents(ev{Type: apiclient.View, Customer: "anna", Product: "SARAH-CO1", Channel: "web"})
	anna := func(k int) q { return q{Customer: "anna", Channel: "web", K: k} }
	base := w.pick(anna(8))

	query := anna(8)
	query.Boost = []string{"category:women/leggings", "brand:MOVE"}
	boosted := w.pick(query)
	if p := boosted[0].Product; !strings.HasPrefix(p, "SARAH-LG") && !strings.HasPrefix(p, "SARAH-TS2") {
		t.Fatalf("boost: %v (base %v)", products(boosted), products(base))
	}
	query = anna(16)
	query.Bury = []string{"tag:winter"}
	buried := w.pick(query)
	seen := false
	for _, p := range buried {
		winter := isWinterWear(p.Product) || strings.HasPrefix(p.Product, "SARAH-HAT") || p.Product == "SARAH-SW1" || p.Product == "SARAH-SW2" || p.Product == "SARAH-LG2"
		if winter {
			seen = true
		} else if seen {
			t.Fatalf("bury: a non-winter item after a winter one: %v", products(buried))
		}
	}
	query = anna(5)
	query.Pins = []apiclient.Pin{{Product: "SARAH-DR1", Position: 1}, {Product: "SARAH-GL2", Position: 3}}
	pinned := w.pick(query)
	if pinned[0].Product != "SARAH-DR1" || pinned[2].Product != "SARAH-GL2" || pinned[0].Reason != "pinned" || len(pinned) != 5 {
		t.Fatalf("pins: %+v", pinned)
	}
	w.putProducts(apiclient.Product{ID: "LUX", Title: "Cashmere coat", Price: 900, Currency: "EUR", Category: "women/coats"})
	w.putStock(apiclient.Inventory{SKU: "LUX", Location: "online", Quantity: 1})
	query = anna(10)
	query.PriceMin = 100
	if ps := w.pick(query); len(ps) != 1 || ps[0].Product != "LUX" {
		t.Fatalf("price_min: %v", products(ps))
	}
	query = anna(30)
	query.PriceMax = 50
	if ps := w.pick(query); slices.Contains(products(ps), "LUX") || len(ps) == 0 {
		t.Fatalf("price_max: %v", products(ps))
	}

	for _, tc := range []struct{ query, field string }{
		{"boost=colour:red", "boost"},
		{"boost=brand:", "boost"},
		{"bury=" + url.QueryEscape(strings.Repeat("tag:a,", 101)), "bury"},
		{"pin=SARAH-DR1", "pin"},
		{"pin=SARAH-DR1:0", "pin"},
		{"pin=SARAH-DR1:101", "pin"},
		{"price_min=-1", "price_min"},
		{"price_max=abc", "price_max"},
		{"price_min=10&price_max=5", "price_min"},
		{"campaign=x", "campaign"},
		{"customer=a&record=yes", "record"},
		{"record=1", "record"},
		{"format=xml", "format"},
	} {
		status, body := w.do("GET", "/v1/picks?"+tc.query, "", "")
		if status != 400 || !strings.Contains(string(body), `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.query, status, body, tc.field)
		}
	}
}

func TestExclusionsEndpoint(t *testing.T) {
	w := newSarahWorld(t)
	w.putEvents(ev{Type: apiclient.CartAdd, Customer: "sarah", SKU: "SARAH-LG1-8", Channel: "web"}, ev{Type: apiclient.CartAdd, Customer: "anna", SKU: "SARAH-LG1-8", Channel: "web"})
	has := func(who string) bool {
		return slices.Contains(products(w.pick(q{Customer: who, Channel: "ads", K: 20})), "SARAH-LG1")
	}
	in := func(d time.Duration) time.Time { return time.Now().Add(d) }
	w.putExclusions(apiclient.Exclusion{Customer: "sarah", Product: "SARAH-LG1", Until: in(time.Hour)})
	if has("sarah") || !has("anna") {
		t.Fatalf("per-customer exclusion: sarah %v anna %v", has("sarah"), has("anna"))
	}
	// Unix milliseconds, which the client does not send, over raw HTTP.
	w.post("/v1/exclusions", fmt.Sprintf(`{"product":"SARAH-LG1","until":%d}`, time.Now().Add(time.Hour).UnixMilli()))
	if has("anna") {
		t.Fatal("exclusion for everyone ignored")
	}
	w.putExclusions(apiclient.Exclusion{Product: "SARAH-LG1", Until: in(-time.Minute)})
	if !has("anna") || has("sarah") {
		t.Fatalf("lifting the global exclusion: anna %v sarah %v", has("anna"), has("sarah"))
	}
	for _, tc := range []struct{ body, field string }{
		{`{"customer":"sarah","until":"2030-01-01T00:00:00Z"}`, "product"},
		{`{"product":"SARAH-LG1"}`, "until"},
		{`{"product":"SARAH-LG1","until":"tomorrow"}`, "until"},
		{`{"product":"nope","until":"2030-01-01T00:00:00Z"}`, "product"},
		{`{"customer":"a","anonymous_id":"b","product":"SARAH-LG1","until":"2030-01-01T00:00:00Z"}`, "anonymous_id"},
	} {
		status, body := w.do("POST", "/v1/exclusions", "application/json", tc.body)
		if status != 400 || !strings.Contains(string(body), `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.body, status, body, tc.field)
		}
	}
}

func TestRepurchaseWindowsOverHTTP(t *testing.T) {
	e := engine.New(engine.Options{RepurchaseWindows: []engine.RepurchaseWindow{
		{Prefix: "beauty/", Window: 30 * 24 * time.Hour},
		{Prefix: "grocery/coffee", Window: 7 * 24 * time.Hour},
	}})
	c := newTyped(t, startServer(t, api.Options{Engine: e}))
	for _, p := range []struct{ id, cat string }{{"CREAM", "beauty/face"}, {"SERUM", "beauty/face"}, {"BEANS", "grocery/coffee/beans"}, {"MUG", "home/kitchen"}} {
		c.putProducts(apiclient.Product{ID: p.id, Title: p.id, Price: 10, Category: p.cat})
		c.putStock(apiclient.Inventory{SKU: p.id, Location: "online", Quantity: 5})
	}
	ago := func(d time.Duration) time.Time { return time.Now().Add(-d) }
	day := 24 * time.Hour
	c.putEvents(
		ev{Type: apiclient.Purchase, Customer: "ann", Product: "CREAM", TS: ago(31 * day)}, // window passed
		ev{Type: apiclient.Purchase, Customer: "ann", Product: "SERUM", TS: ago(3 * day)},  // within its window
		ev{Type: apiclient.Purchase, Customer: "ann", Product: "BEANS", TS: ago(8 * day)},  // coffee's 7 days passed
		ev{Type: apiclient.Purchase, Customer: "ann", Product: "MUG", TS: ago(300 * day)},  // no window: never
	)
	ann := q{Customer: "ann", Channel: "web", K: 10}
	got := products(c.pick(ann))
	slices.Sort(got)
	if !slices.Equal(got, []string{"BEANS", "CREAM"}) {
		t.Fatalf("picks %v, want the items whose window passed: BEANS, CREAM", got)
	}
	// A return re-enables at once.
	c.putEvents(ev{Type: apiclient.Return, Customer: "ann", Product: "SERUM"}, ev{Type: apiclient.Return, Customer: "ann", Product: "MUG"})
	got = products(c.pick(ann))
	slices.Sort(got)
	if !slices.Equal(got, []string{"BEANS", "CREAM", "MUG", "SERUM"}) {
		t.Fatalf("after returns: %v", got)
	}
}
