package api_test

import (
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// The acceptance cases for every channel, over HTTP.

func TestSarahJourneyOnACookie(t *testing.T) {
	w := newSarahWorld(t)
	at := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	// Before she signs in, Sarah is a cookie: she browses and fills a cart.
	w.post("/v1/events",
		fmt.Sprintf(`{"type":"view","anonymous_id":"cookie-s","product":"SARAH-LG2","channel":"web","ts":%q}`, at(-2*time.Hour)),
		fmt.Sprintf(`{"type":"cart_add","anonymous_id":"cookie-s","sku":"SARAH-LG1-8","channel":"web","ts":%q}`, at(-119*time.Minute)),
		fmt.Sprintf(`{"type":"view","anonymous_id":"cookie-s","product":"SARAH-HAT1","channel":"web","ts":%q}`, at(-118*time.Minute)),
	)
	// Ads retarget the cookie: the cart first, then what she viewed, never
	// sold out in her size.
	ps := w.picks("anonymous_id=cookie-s&channel=ads&k=6")
	if len(ps) < 2 || ps[0].Product != "SARAH-LG1" || ps[0].Reason != "cart" || ps[1].Product != "SARAH-HAT1" || ps[1].Reason != "viewed" {
		t.Fatalf("cookie ads picks: %+v", ps)
	}
	if slices.Contains(products(ps), "SARAH-LG2") {
		t.Fatalf("thermal leggings are sold out in 8 online: %v", products(ps))
	}
	w.checkFits(ps, "online")

	// The cookie belonged to a device id; the device signs in as sarah.
	w.post("/v1/identify", `{"anonymous_id":"cookie-s","to_anonymous_id":"device-s"}`)
	w.post("/v1/identify", `{"anonymous_id":"device-s","customer":"sarah"}`)
	if got := w.picks("customer=sarah&channel=email&k=6"); len(got) == 0 || got[0].Product != "SARAH-LG1" {
		t.Fatalf("sarah's email after the merge: %+v", got)
	}
	// She buys on the cookie (not signed in): it lands on sarah.
	w.post("/v1/events",
		fmt.Sprintf(`{"type":"purchase","anonymous_id":"cookie-s","sku":"SARAH-LG1-8","channel":"web","ts":%q}`, at(-time.Hour)),
		fmt.Sprintf(`{"type":"purchase","anonymous_id":"cookie-s","product":"SARAH-HAT1","channel":"web","ts":%q}`, at(-time.Hour)),
	)
	for _, q := range []string{"customer=sarah&channel=ads", "anonymous_id=cookie-s&channel=ads", "anonymous_id=device-s&channel=email", "customer=sarah&channel=web"} {
		got := w.picks(q + "&k=20")
		for _, banned := range []string{"SARAH-LG1", "SARAH-HAT1"} {
			if slices.Contains(products(got), banned) {
				t.Fatalf("%s: %s shown after she bought it: %v", q, banned, products(got))
			}
		}
	}
	status, body := w.do("GET", "/v1/customers/sarah", "", "")
	var prof struct {
		Purchases []struct{ Product string } `json:"purchases"`
		Linked    []string                   `json:"linked_ids"`
	}
	if err := json.Unmarshal(body, &prof); err != nil || status != 200 || len(prof.Purchases) != 2 ||
		!slices.Contains(prof.Linked, "cookie-s") || !slices.Contains(prof.Linked, "device-s") {
		t.Fatalf("sarah's profile: %d %s", status, body)
	}
	// A link back would make a cycle: refused, naming the field.
	status, body = w.do("POST", "/v1/identify", "application/json", `{"anonymous_id":"device-s","to_anonymous_id":"cookie-s"}`)
	if status != 400 || !strings.Contains(string(body), `"field":"to_anonymous_id"`) {
		t.Fatalf("cycle: %d %s", status, body)
	}
}

func TestEmailCampaignReopenAfterSoldOut(t *testing.T) {
	w := newSarahWorld(t)
	at := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	w.post("/v1/events",
		fmt.Sprintf(`{"type":"purchase","customer":"sarah","sku":"SARAH-SW1-8","channel":"social","ts":%q}`, at(-3*time.Hour)),
		fmt.Sprintf(`{"type":"cart_add","customer":"sarah","sku":"SARAH-LG1-8","channel":"web","ts":%q}`, at(-2*time.Hour)),
		fmt.Sprintf(`{"type":"view","customer":"sarah","product":"SARAH-CO1","channel":"web","ts":%q}`, at(-time.Hour)),
	)
	open := func() []string {
		t.Helper()
		return products(w.picks("customer=sarah&channel=email&campaign=winter-sale&k=5"))
	}
	first := open()
	if len(first) != 5 || first[0] != "SARAH-LG1" {
		t.Fatalf("first open: %v", first)
	}
	// She browses more; the email re-opened shows what it showed.
	w.post("/v1/events", fmt.Sprintf(`{"type":"cart_add","customer":"sarah","sku":"SARAH-TS1-8","channel":"web","ts":%q}`, at(-time.Minute)))
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
	if other := products(w.picks("customer=sarah&channel=email&campaign=new-in&k=5")); other[0] != "SARAH-LG1" && other[0] != "SARAH-TS1" {
		t.Fatalf("another campaign: %v", other)
	}

	// format=html: a fragment a template embeds, escaped, the same picks.
	status, body := w.do("GET", "/v1/picks?customer=sarah&channel=email&campaign=winter-sale&k=5&format=html", "", "")
	if status != 200 {
		t.Fatalf("html: %d %s", status, body)
	}
	var shown []string
	for _, m := range regexp.MustCompile(`data-product="([^"]*)"`).FindAllStringSubmatch(string(body), -1) {
		shown = append(shown, html.UnescapeString(m[1]))
	}
	if !slices.Equal(shown, third) {
		t.Fatalf("html fragment shows %v, json %v:\n%s", shown, third, body)
	}
}

func TestHTMLFragmentEscapes(t *testing.T) {
	c := client{t, startServer(t, api.Options{})}
	c.post("/v1/products", `{"id":"X<1>","title":"<script>alert(1)</script> & \"co\"","url":"javascript:alert(1)","image":"https://i.example/x.jpg?a=1&b=\"2\"","price":5,"currency":"EUR","variants":[{"sku":"X1"}]}`)
	c.post("/v1/inventory", `{"sku":"X1","location":"online","quantity":1}`)
	status, body := c.do("GET", "/v1/picks?format=html", "", "")
	s := string(body)
	if status != 200 || strings.Contains(s, "<script>") || strings.Contains(s, "javascript:") || !strings.Contains(s, "&lt;script&gt;") || !strings.Contains(s, `data-product="X&lt;1&gt;"`) {
		t.Fatalf("%d %s", status, s)
	}
}

func TestFrequencyCapSpansEmailAndAds(t *testing.T) {
	w := newSarahWorld(t)
	w.post("/v1/events", fmt.Sprintf(`{"type":"cart_add","customer":"sarah","sku":"SARAH-LG1-8","channel":"web","ts":%q}`, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)))
	// Two emails record what they showed; an ad platform reports one
	// impression of its own.
	for range 2 {
		if ps := w.picks("customer=sarah&channel=email&k=3&record=1"); ps[0].Product != "SARAH-LG1" {
			t.Fatalf("email: %v", products(ps))
		}
	}
	if ps := w.picks("customer=sarah&channel=ads&k=5"); ps[0].Product != "SARAH-LG1" {
		t.Fatalf("shown twice, not yet capped: %v", products(ps))
	}
	w.post("/v1/events", `{"type":"impression","customer":"sarah","product":"SARAH-LG1","channel":"ads"}`)
	ps := w.picks("customer=sarah&channel=ads&k=5")
	if i := rank(ps, "SARAH-LG1"); i < len(ps) && i != len(ps)-1 {
		t.Fatalf("shown three times across email and ads, still ranked %d: %v", i, products(ps))
	}
	status, body := w.do("GET", "/v1/customers/sarah", "", "")
	var prof struct {
		Impressions []struct{ Product string } `json:"impressions"`
	}
	if err := json.Unmarshal(body, &prof); err != nil || status != 200 || len(prof.Impressions) != 7 {
		t.Fatalf("impressions: %d %s", status, body)
	}
}

func TestBusinessRulesOverHTTP(t *testing.T) {
	w := newSarahWorld(t)
	w.post("/v1/events", `{"type":"view","customer":"anna","product":"SARAH-CO1","channel":"web"}`)
	base := w.picks("customer=anna&channel=web&k=8")

	boosted := w.picks("customer=anna&channel=web&k=8&boost=category:women/leggings,brand:MOVE")
	if p := boosted[0].Product; !strings.HasPrefix(p, "SARAH-LG") && !strings.HasPrefix(p, "SARAH-TS2") {
		t.Fatalf("boost: %v (base %v)", products(boosted), products(base))
	}
	buried := w.picks("customer=anna&channel=web&k=16&bury=tag:winter")
	seen := false
	for _, p := range buried {
		winter := isWinterWear(p.Product) || strings.HasPrefix(p.Product, "SARAH-HAT") || p.Product == "SARAH-SW1" || p.Product == "SARAH-SW2" || p.Product == "SARAH-LG2"
		if winter {
			seen = true
		} else if seen {
			t.Fatalf("bury: a non-winter item after a winter one: %v", products(buried))
		}
	}
	pinned := w.picks("customer=anna&channel=web&k=5&pin=SARAH-DR1:1,SARAH-GL2:3")
	if pinned[0].Product != "SARAH-DR1" || pinned[2].Product != "SARAH-GL2" || pinned[0].Reason != "pinned" || len(pinned) != 5 {
		t.Fatalf("pins: %+v", pinned)
	}
	w.post("/v1/products", `{"id":"LUX","title":"Cashmere coat","price":900,"currency":"EUR","category":"women/coats","variants":[{"sku":"LUX"}]}`)
	w.post("/v1/inventory", `{"sku":"LUX","location":"online","quantity":1}`)
	if ps := w.picks("customer=anna&channel=web&k=10&price_min=100"); len(ps) != 1 || ps[0].Product != "LUX" {
		t.Fatalf("price_min: %v", products(ps))
	}
	if ps := w.picks("customer=anna&channel=web&k=30&price_max=50"); slices.Contains(products(ps), "LUX") || len(ps) == 0 {
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
	w.post("/v1/events", `{"type":"cart_add","customer":"sarah","sku":"SARAH-LG1-8","channel":"web"}`, `{"type":"cart_add","customer":"anna","sku":"SARAH-LG1-8","channel":"web"}`)
	has := func(who string) bool {
		return slices.Contains(products(w.picks("customer="+who+"&channel=ads&k=20")), "SARAH-LG1")
	}
	in := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	w.post("/v1/exclusions", fmt.Sprintf(`{"customer":"sarah","product":"SARAH-LG1","until":%q}`, in(time.Hour)))
	if has("sarah") || !has("anna") {
		t.Fatalf("per-customer exclusion: sarah %v anna %v", has("sarah"), has("anna"))
	}
	w.post("/v1/exclusions", fmt.Sprintf(`{"product":"SARAH-LG1","until":%d}`, time.Now().Add(time.Hour).UnixMilli()))
	if has("anna") {
		t.Fatal("exclusion for everyone ignored")
	}
	w.post("/v1/exclusions", fmt.Sprintf(`{"product":"SARAH-LG1","until":%q}`, in(-time.Minute)))
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
	c := client{t, startServer(t, api.Options{Engine: e})}
	for _, p := range []struct{ id, cat string }{{"CREAM", "beauty/face"}, {"SERUM", "beauty/face"}, {"BEANS", "grocery/coffee/beans"}, {"MUG", "home/kitchen"}} {
		c.post("/v1/products", fmt.Sprintf(`{"id":%q,"title":%q,"price":10,"category":%q,"variants":[{"sku":%q}]}`, p.id, p.id, p.cat, p.id))
		c.post("/v1/inventory", fmt.Sprintf(`{"sku":%q,"location":"online","quantity":5}`, p.id))
	}
	ago := func(d time.Duration) string { return time.Now().Add(-d).UTC().Format(time.RFC3339) }
	day := 24 * time.Hour
	c.post("/v1/events",
		fmt.Sprintf(`{"type":"purchase","customer":"ann","product":"CREAM","ts":%q}`, ago(31*day)), // window passed
		fmt.Sprintf(`{"type":"purchase","customer":"ann","product":"SERUM","ts":%q}`, ago(3*day)),  // within its window
		fmt.Sprintf(`{"type":"purchase","customer":"ann","product":"BEANS","ts":%q}`, ago(8*day)),  // coffee's 7 days passed
		fmt.Sprintf(`{"type":"purchase","customer":"ann","product":"MUG","ts":%q}`, ago(300*day)),  // no window: never
	)
	got := products(c.picks("customer=ann&channel=web&k=10"))
	slices.Sort(got)
	if !slices.Equal(got, []string{"BEANS", "CREAM"}) {
		t.Fatalf("picks %v, want the items whose window passed: BEANS, CREAM", got)
	}
	// A return re-enables at once.
	c.post("/v1/events", `{"type":"return","customer":"ann","product":"SERUM"}`, `{"type":"return","customer":"ann","product":"MUG"}`)
	got = products(c.picks("customer=ann&channel=web&k=10"))
	slices.Sort(got)
	if !slices.Equal(got, []string{"BEANS", "CREAM", "MUG", "SERUM"}) {
		t.Fatalf("after returns: %v", got)
	}
}
