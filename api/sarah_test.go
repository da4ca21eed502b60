package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
	apiclient "github.com/omnipick/omnipick/api/client"
	"github.com/omnipick/omnipick/engine"
)

// startServer runs a real server on a free loopback port for the test.
func startServer(t *testing.T, opts api.Options) string {
	t.Helper()
	_, base := startServerWith(t, opts)
	return base
}

// startServerWith is startServer that also returns the server.
func startServerWith(t *testing.T, opts api.Options) (*api.Server, string) {
	t.Helper()
	if opts.Engine == nil {
		opts.Engine = engine.New(engine.Options{})
	}
	opts.Addr = "127.0.0.1:0"
	srv, err := api.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	checkContract(t, srv) // every request and answer is held to api/openapi.yaml
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return srv, "http://" + srv.Addr()
}

type client struct {
	t    *testing.T
	base string
}

// post sends NDJSON lines and fails the test unless every line is applied.
func (c client) post(path string, lines ...string) {
	c.t.Helper()
	status, body := c.do("POST", path, "application/x-ndjson", strings.Join(lines, "\n"))
	var r struct {
		Applied  int               `json:"applied"`
		Rejected []json.RawMessage `json:"rejected"`
	}
	if err := json.Unmarshal(body, &r); err != nil || status != 200 || r.Applied != len(lines) {
		c.t.Fatalf("POST %s: %d %s", path, status, body)
	}
}

func (c client) do(method, path, ctype, body string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// pickJSON is a pick as the API answers it.
type pickJSON = apiclient.Pick

func (c client) picks(params string) []pickJSON {
	c.t.Helper()
	status, body := c.do("GET", "/v1/picks?"+params, "", "")
	if status != 200 {
		c.t.Fatalf("GET picks?%s: %d %s", params, status, body)
	}
	var r struct {
		Picks []pickJSON `json:"picks"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		c.t.Fatalf("picks body %s: %v", body, err)
	}
	return r.Picks
}

// typed is the Go client for integrators (api/client) on a test server:
// the end-to-end tests of the journeys and channels drive the server
// through it, so that it is held to the same contract. Raw requests (do,
// post) remain for what it cannot send: bad input.
type typed struct {
	client
	api *apiclient.Client
}

func newTyped(t *testing.T, base string) typed {
	t.Helper()
	c, err := apiclient.New(apiclient.Options{BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	return typed{client{t, base}, c}
}

// applied fails the test unless a write applied all n objects.
func (c typed) applied(what string, n int, res apiclient.WriteResult, err error) {
	c.t.Helper()
	if err != nil || res.Applied != n || len(res.Rejected) != 0 {
		c.t.Fatalf("%s: %+v %v", what, res, err)
	}
}

func (c typed) putProducts(ps ...apiclient.Product) {
	c.t.Helper()
	res, err := c.api.Products(c.t.Context(), ps)
	c.applied("products", len(ps), res, err)
}

func (c typed) putStock(inv ...apiclient.Inventory) {
	c.t.Helper()
	res, err := c.api.Inventory(c.t.Context(), inv)
	c.applied("inventory", len(inv), res, err)
}

func (c typed) putEvents(evs ...apiclient.Event) {
	c.t.Helper()
	res, err := c.api.Events(c.t.Context(), evs)
	c.applied("events", len(evs), res, err)
}

func (c typed) putLinks(ids ...apiclient.Identify) {
	c.t.Helper()
	res, err := c.api.Identify(c.t.Context(), ids)
	c.applied("identify", len(ids), res, err)
}

func (c typed) putExclusions(xs ...apiclient.Exclusion) {
	c.t.Helper()
	res, err := c.api.Exclusions(c.t.Context(), xs)
	c.applied("exclusions", len(xs), res, err)
}

// pick asks for picks and fails the test on an error.
func (c typed) pick(q apiclient.PicksQuery) []pickJSON {
	c.t.Helper()
	p, err := c.api.Picks(c.t.Context(), q)
	if err != nil {
		c.t.Fatalf("picks %+v: %v", q, err)
	}
	return p.Picks
}

func (c typed) profile(id string) *apiclient.Profile {
	c.t.Helper()
	p, err := c.api.Customer(c.t.Context(), id)
	if err != nil {
		c.t.Fatalf("profile of %s: %v", id, err)
	}
	return p
}

func products(ps []pickJSON) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Product
	}
	return out
}

// sarahWorld is a small winter catalog with stock online and in one store.
type sarahWorld struct {
	typed
	stockAt map[string]int // "sku@location" -> quantity
	sized   map[string]bool
}

func newSarahWorld(t *testing.T) *sarahWorld {
	base := startServer(t, api.Options{})
	w := &sarahWorld{typed: newTyped(t, base), stockAt: map[string]int{}, sized: map[string]bool{}}
	lat, lon := 52.52, 13.40
	res, err := w.api.Locations(t.Context(), []apiclient.Location{{ID: "store-berlin-1", Name: "Berlin Mitte", Lat: &lat, Lon: &lon}})
	w.applied("locations", 1, res, err)
	type prod struct {
		id, title, cat, brand string
		tags                  []string
		sized                 bool
	}
	catalog := []prod{
		{"SARAH-SW1", "Merino sweater", "women/knitwear/sweaters", "Nordic", []string{"winter", "wool"}, true},
		{"SARAH-SW2", "Cable sweater", "women/knitwear/sweaters", "Nordic", []string{"winter", "wool"}, true},
		{"SARAH-LG1", "Studio leggings", "women/leggings", "Move", []string{"sport"}, true},
		{"SARAH-LG2", "Thermal leggings", "women/leggings", "Move", []string{"sport", "winter"}, true},
		{"SARAH-LG3", "Yoga leggings", "women/leggings", "Move", []string{"sport"}, true},
		{"SARAH-HAT1", "Bobble hat", "women/accessories/hats", "Alpen", []string{"winter", "wool"}, false},
		{"SARAH-HAT2", "Beanie", "women/accessories/hats", "Alpen", []string{"winter"}, false},
		{"SARAH-GL1", "Leather gloves", "women/accessories/gloves", "Alpen", []string{"winter"}, false},
		{"SARAH-GL2", "Knit gloves", "women/accessories/gloves", "Nordic", []string{"winter", "wool"}, false},
		{"SARAH-SC1", "Wool scarf", "women/accessories/scarves", "Nordic", []string{"winter", "wool"}, false},
		{"SARAH-SC2", "Check scarf", "women/accessories/scarves", "Alpen", []string{"winter"}, false},
		{"SARAH-CO1", "Down coat", "women/coats", "Alpen", []string{"winter"}, true},
		{"SARAH-CO2", "Wool coat", "women/coats", "Nordic", []string{"winter", "wool"}, true},
		{"SARAH-TS1", "Linen tee", "women/tops/t-shirts", "Sun", []string{"summer"}, true},
		{"SARAH-TS2", "Sports top", "women/tops/sport", "Move", []string{"sport"}, true},
		{"SARAH-DR1", "Summer dress", "women/dresses", "Sun", []string{"summer"}, true},
	}
	var ps []apiclient.Product
	var inv []apiclient.Inventory
	for _, p := range catalog {
		prod := apiclient.Product{ID: p.id, Title: p.title, URL: "https://shop.example/p/" + p.id, Image: "https://shop.example/i/" + p.id + ".jpg",
			Price: 49.5, Currency: "EUR", Category: p.cat, Brand: p.brand, Tags: p.tags, Variants: []apiclient.Variant{{SKU: p.id}}}
		if p.sized {
			prod.SizeGroup = "women-numeric"
			prod.Variants = []apiclient.Variant{{SKU: p.id + "-6", Size: "6"}, {SKU: p.id + "-8", Size: "8"}, {SKU: p.id + "-10", Size: "10"}}
			w.sized[p.id] = true
		}
		ps = append(ps, prod)
		for _, v := range prod.Variants {
			inv = append(inv, apiclient.Inventory{SKU: v.SKU, Location: "online", Quantity: 5})
		}
	}
	w.putProducts(ps...)
	// Sold out online in size 8: the thermal leggings and the wool coat.
	inv = append(inv, apiclient.Inventory{SKU: "SARAH-LG2-8", Location: "online"}, apiclient.Inventory{SKU: "SARAH-CO2-8", Location: "online"})
	// The Berlin store carries a few things, the wool coat only in 10.
	for sku, q := range map[string]int64{"SARAH-GL1": 2, "SARAH-GL2": 1, "SARAH-SC2": 3, "SARAH-CO1-8": 1, "SARAH-CO2-10": 2, "SARAH-HAT2": 4, "SARAH-TS1-8": 2, "SARAH-LG3-10": 1} {
		inv = append(inv, apiclient.Inventory{SKU: sku, Location: "store-berlin-1", Quantity: q})
	}
	w.putStock(inv...)
	for _, i := range inv {
		w.stockAt[i.SKU+"@"+i.Location] = int(i.Quantity)
	}
	// Other shoppers teach the engine what goes together: winter wear with
	// winter wear, leggings with sports tops.
	ts := time.Now().Add(-72 * time.Hour)
	ev := func(typ, customer, item string) apiclient.Event {
		ts = ts.Add(time.Minute)
		e := apiclient.Event{Type: typ, Customer: customer, Channel: "web", TS: ts}
		if strings.Count(item, "-") == 2 {
			e.SKU = item
		} else {
			e.Product = item
		}
		return e
	}
	var evs []apiclient.Event
	for i := range 6 {
		c := fmt.Sprint("shopper", i)
		evs = append(evs, ev("purchase", c, "SARAH-HAT1"), ev("purchase", c, "SARAH-GL1"), ev("purchase", c, "SARAH-SC1"), ev("purchase", c, "SARAH-CO1-10"))
		if i%2 == 0 {
			evs = append(evs, ev("purchase", c, "SARAH-GL2"), ev("purchase", c, "SARAH-SC2"), ev("view", c, "SARAH-CO2"))
		}
		evs = append(evs, ev("purchase", fmt.Sprint("runner", i), "SARAH-LG1-10"), ev("purchase", fmt.Sprint("runner", i), "SARAH-TS2-10"))
		evs = append(evs, ev("purchase", fmt.Sprint("sun", i), "SARAH-TS1-6"), ev("purchase", fmt.Sprint("sun", i), "SARAH-DR1-6"))
	}
	w.putEvents(evs...)
	return w
}

func (w *sarahWorld) setStock(sku, loc string, q int) {
	w.t.Helper()
	w.putStock(apiclient.Inventory{SKU: sku, Location: loc, Quantity: int64(q)})
	w.stockAt[sku+"@"+loc] = q
}

// checkFits fails unless every pick is in stock at loc in size 8 (or is
// one-size) and offers no other size.
func (w *sarahWorld) checkFits(ps []pickJSON, loc string) {
	w.t.Helper()
	for _, p := range ps {
		if !w.sized[p.Product] {
			if w.stockAt[p.Product+"@"+loc] <= 0 {
				w.t.Fatalf("%s picked but not in stock at %s", p.Product, loc)
			}
			continue
		}
		if !slices.Equal(p.Sizes, []string{"8"}) || w.stockAt[p.Product+"-8@"+loc] <= 0 {
			w.t.Fatalf("%s picked with sizes %v; in stock in 8 at %s: %d", p.Product, p.Sizes, loc, w.stockAt[p.Product+"-8@"+loc])
		}
	}
}

func rank(ps []pickJSON, product string) int {
	for i, p := range ps {
		if p.Product == product {
			return i
		}
	}
	return len(ps) + 100
}

func isWinterWear(id string) bool {
	for _, p := range []string{"SARAH-GL", "SARAH-SC", "SARAH-CO"} {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

func TestSarahJourney(t *testing.T) {
	w := newSarahWorld(t)
	now := time.Now()
	at := func(d time.Duration) time.Time { return now.Add(d) }

	// Sarah buys a sweater in size 8 on a social shop.
	w.putEvents(ev{Type: apiclient.Purchase, Customer: "sarah", SKU: "SARAH-SW1-8", Channel: "social", Order: "O1", Price: 59, TS: at(-3 * time.Hour)})
	// Later she browses, puts size-8 leggings in the cart and leaves.
	w.putEvents(
		ev{Type: apiclient.View, Customer: "sarah", Product: "SARAH-LG2", Channel: "web", TS: at(-2 * time.Hour)},
		ev{Type: apiclient.View, Customer: "sarah", Product: "SARAH-LG1", Channel: "web", TS: at(-119 * time.Minute)},
		ev{Type: apiclient.CartAdd, Customer: "sarah", SKU: "SARAH-LG1-8", Channel: "web", TS: at(-118 * time.Minute)},
		ev{Type: apiclient.View, Customer: "sarah", Product: "SARAH-CO2", Channel: "web", TS: at(-117 * time.Minute)},
		ev{Type: apiclient.View, Customer: "sarah", Product: "SARAH-HAT1", Channel: "web", TS: at(-116 * time.Minute)},
	)

	// Ads and the abandoned-cart email show the leggings first, and what she
	// browsed, but nothing sold out in size 8.
	var before []pickJSON
	for _, ch := range []string{"ads", "email"} {
		ps := w.pick(q{Customer: "sarah", Channel: ch, K: 8})
		if len(ps) == 0 || ps[0].Product != "SARAH-LG1" || ps[0].Reason != "cart" {
			t.Fatalf("%s: first pick %v, want SARAH-LG1 (cart)", ch, ps)
		}
		if ps[1].Product != "SARAH-HAT1" || ps[1].Reason != "viewed" {
			t.Fatalf("%s: second pick %+v, want the hat she viewed last", ch, ps[1])
		}
		for _, banned := range []string{"SARAH-LG2", "SARAH-CO2", "SARAH-SW1"} {
			if slices.Contains(products(ps), banned) {
				t.Fatalf("%s: picked %s (sold out in 8 online, or bought): %v", ch, banned, products(ps))
			}
		}
		w.checkFits(ps, "online")
		before = ps
	}

	// She buys the leggings and a hat.
	w.putEvents(
		ev{Type: apiclient.Purchase, Customer: "sarah", SKU: "SARAH-LG1-8", Channel: "app", Order: "O2", TS: at(-time.Hour)},
		ev{Type: apiclient.Purchase, Customer: "sarah", Product: "SARAH-HAT1", Channel: "app", Order: "O2", TS: at(-time.Hour)},
	)
	// From then on no channel shows the leggings, the hat or the sweater.
	for _, query := range []q{{Channel: "ads"}, {Channel: "email"}, {Channel: "web"}, {Channel: "app"},
		{Channel: "screen", Locations: []string{"store-berlin-1"}}, {Channel: "web", Category: "women/leggings"}} {
		query.Customer, query.K = "sarah", 20
		ps := w.pick(query)
		for _, banned := range []string{"SARAH-LG1", "SARAH-HAT1", "SARAH-SW1"} {
			if slices.Contains(products(ps), banned) {
				t.Fatalf("%+v: picked %s after she bought it: %v", query, banned, products(ps))
			}
		}
	}
	// Related winter wear rises: gloves, scarves and coats lead the ads.
	after := w.pick(q{Customer: "sarah", Channel: "ads", K: 8})
	w.checkFits(after, "online")
	top := 0
	for _, p := range after[:4] {
		if isWinterWear(p.Product) {
			top++
		}
	}
	if top < 3 {
		t.Fatalf("after buying the hat, top 4 ads picks hold %d pieces of winter wear: %v", top, products(after))
	}
	for _, id := range []string{"SARAH-GL1", "SARAH-SC1"} {
		if rank(after, id) >= rank(before, id) && rank(before, id) != 0 {
			t.Fatalf("%s did not rise: rank %d before, %d after (%v -> %v)", id, rank(before, id), rank(after, id), products(before), products(after))
		}
	}

	// She walks into the Berlin store: its screen shows what is on its
	// shelves in her size.
	berlin := []string{"store-berlin-1"}
	store := w.pick(q{Customer: "sarah", Channel: "screen", Locations: berlin, K: 10})
	if len(store) == 0 {
		t.Fatal("store screen shows nothing")
	}
	w.checkFits(store, "store-berlin-1")
	if slices.Contains(products(store), "SARAH-CO2") {
		t.Fatal("store screen shows the wool coat, which the store has only in 10")
	}
	// A scanned hat: related items in stock there.
	scan := w.pick(q{Customer: "sarah", Channel: "screen", Locations: berlin, Context: "SARAH-HAT2", K: 5})
	w.checkFits(scan, "store-berlin-1")
	if len(scan) == 0 || !isWinterWear(scan[0].Product) || scan[0].Reason != "related" {
		t.Fatalf("scan of a hat: %+v, want related winter wear first", scan)
	}
	anon := w.pick(q{Channel: "screen", Locations: berlin, Context: "SARAH-HAT1", K: 5})
	if len(anon) == 0 || anon[0].Reason != "related" || !isWinterWear(anon[0].Product) {
		t.Fatalf("scan without a customer: %+v", anon)
	}
	w.stockAt["SARAH-HAT1@store-berlin-1"] = 0
	for _, p := range anon {
		if w.stockAt[p.Product+"@store-berlin-1"] <= 0 && w.stockAt[p.Product+"-8@store-berlin-1"] <= 0 && w.stockAt[p.Product+"-6@store-berlin-1"] <= 0 && w.stockAt[p.Product+"-10@store-berlin-1"] <= 0 {
			t.Fatalf("scan pick %s not in stock in the store", p.Product)
		}
	}
}

func TestBadInputNamesTheField(t *testing.T) {
	c := client{t, startServer(t, api.Options{})}
	for _, tc := range []struct {
		method, path, body string
		status             int
		field              string
	}{
		{"GET", "/v1/picks?k=500", "", 400, "k"},
		{"GET", "/v1/picks?channel=fax", "", 400, "channel"},
		{"GET", "/v1/picks?customer=a&anonymous_id=b", "", 400, "anonymous_id"},
		{"GET", "/v1/picks?customer=" + strings.Repeat("x", 300), "", 400, "customer"},
		{"GET", "/v1/picks?location=" + url.QueryEscape(strings.Repeat("s,", 200)), "", 400, "location"},
		{"POST", "/v1/events", `{"type":"teleport","customer":"a","product":"p"}`, 400, "type"},
		{"POST", "/v1/events", `{"type":"view","customer":"a","product":"nope"}`, 400, "product"},
		{"POST", "/v1/inventory", `{"sku":"x","location":"online","quantity":-1}`, 400, "quantity"},
		{"POST", "/v1/products", `[{"id":1}]`, 400, "id"},
		{"POST", "/v1/products", `{not json`, 400, "body"},
		{"GET", "/v1/customers/nobody", "", 404, "id"},
		{"GET", "/v1/nothing", "", 404, ""},
		{"PUT", "/v1/picks", "", 405, ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, body := c.do(tc.method, tc.path, "application/json", tc.body)
			var e struct {
				Error string `json:"error"`
				Field string `json:"field"`
			}
			if err := json.Unmarshal(body, &e); err != nil || status != tc.status || e.Field != tc.field || e.Error == "" {
				t.Fatalf("%d %s; want %d naming field %q", status, body, tc.status, tc.field)
			}
		})
	}
}

func TestPartialBatchAppliesValidLines(t *testing.T) {
	c := client{t, startServer(t, api.Options{})}
	c.post("/v1/products", `{"id":"A","variants":[{"sku":"A"}]}`)
	status, body := c.do("POST", "/v1/events", "application/x-ndjson", strings.Join([]string{
		`{"type":"view","customer":"c","product":"A"}`,
		`{"type":"view","customer":"c","product":"B"}`,
		`not json`,
		`{"type":"purchase","customer":"c","product":"A"}`,
	}, "\n"))
	var r struct {
		Applied  int `json:"applied"`
		Rejected []struct {
			Index int    `json:"index"`
			Field string `json:"field"`
		} `json:"rejected"`
	}
	if err := json.Unmarshal(body, &r); err != nil || status != 200 || r.Applied != 2 || len(r.Rejected) != 2 ||
		r.Rejected[0].Index != 1 || r.Rejected[0].Field != "product" || r.Rejected[1].Index != 2 {
		t.Fatalf("%d %s", status, body)
	}
	if !bytes.Contains(body, []byte(`"applied":2`)) {
		t.Fatal(string(body))
	}
}
