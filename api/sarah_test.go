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

type pickJSON struct {
	Product string   `json:"product"`
	Sizes   []string `json:"sizes"`
	Reason  string   `json:"reason"`
}

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

func products(ps []pickJSON) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Product
	}
	return out
}

// sarahWorld is a small winter catalog with stock online and in one store.
type sarahWorld struct {
	client
	stock map[string]int // "sku@location" -> quantity
	sized map[string]bool
}

func newSarahWorld(t *testing.T) *sarahWorld {
	w := &sarahWorld{client: client{t, startServer(t, api.Options{})}, stock: map[string]int{}, sized: map[string]bool{}}
	w.post("/v1/locations", `{"id":"store-berlin-1","name":"Berlin Mitte","lat":52.52,"lon":13.40}`)
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
	for _, p := range catalog {
		variants := fmt.Sprintf(`[{"sku":%q}]`, p.id)
		group := ""
		if p.sized {
			variants = fmt.Sprintf(`[{"sku":"%s-6","size":"6"},{"sku":"%s-8","size":"8"},{"sku":"%s-10","size":"10"}]`, p.id, p.id, p.id)
			group = "women-numeric"
			w.sized[p.id] = true
		}
		tags, _ := json.Marshal(p.tags)
		w.post("/v1/products", fmt.Sprintf(`{"id":%q,"title":%q,"url":"https://shop.example/p/%s","image":"https://shop.example/i/%s.jpg","price":49.5,"currency":"EUR","category":%q,"brand":%q,"tags":%s,"size_group":%q,"variants":%s}`,
			p.id, p.title, p.id, p.id, p.cat, p.brand, tags, group, variants))
		skus := []string{p.id}
		if p.sized {
			skus = []string{p.id + "-6", p.id + "-8", p.id + "-10"}
		}
		for _, sku := range skus {
			w.setStock(sku, "online", 5)
		}
	}
	// Sold out online in size 8: the thermal leggings and the wool coat.
	w.setStock("SARAH-LG2-8", "online", 0)
	w.setStock("SARAH-CO2-8", "online", 0)
	// The Berlin store carries a few things, the wool coat only in 10.
	for sku, q := range map[string]int{"SARAH-GL1": 2, "SARAH-GL2": 1, "SARAH-SC2": 3, "SARAH-CO1-8": 1, "SARAH-CO2-10": 2, "SARAH-HAT2": 4, "SARAH-TS1-8": 2, "SARAH-LG3-10": 1} {
		w.setStock(sku, "store-berlin-1", q)
	}
	// Other shoppers teach the engine what goes together: winter wear with
	// winter wear, leggings with sports tops.
	ts := time.Now().Add(-72 * time.Hour)
	ev := func(typ, customer, item string) string {
		ts = ts.Add(time.Minute)
		key := "product"
		if strings.Count(item, "-") == 2 {
			key = "sku"
		}
		return fmt.Sprintf(`{"type":%q,"customer":%q,%q:%q,"channel":"web","ts":%q}`, typ, customer, key, item, ts.Format(time.RFC3339))
	}
	var lines []string
	for i := range 6 {
		c := fmt.Sprint("shopper", i)
		lines = append(lines, ev("purchase", c, "SARAH-HAT1"), ev("purchase", c, "SARAH-GL1"), ev("purchase", c, "SARAH-SC1"), ev("purchase", c, "SARAH-CO1-10"))
		if i%2 == 0 {
			lines = append(lines, ev("purchase", c, "SARAH-GL2"), ev("purchase", c, "SARAH-SC2"), ev("view", c, "SARAH-CO2"))
		}
		lines = append(lines, ev("purchase", fmt.Sprint("runner", i), "SARAH-LG1-10"), ev("purchase", fmt.Sprint("runner", i), "SARAH-TS2-10"))
		lines = append(lines, ev("purchase", fmt.Sprint("sun", i), "SARAH-TS1-6"), ev("purchase", fmt.Sprint("sun", i), "SARAH-DR1-6"))
	}
	w.post("/v1/events", lines...)
	return w
}

func (w *sarahWorld) setStock(sku, loc string, q int) {
	w.t.Helper()
	w.post("/v1/inventory", fmt.Sprintf(`{"sku":%q,"location":%q,"quantity":%d}`, sku, loc, q))
	w.stock[sku+"@"+loc] = q
}

// checkFits fails unless every pick is in stock at loc in size 8 (or is
// one-size) and offers no other size.
func (w *sarahWorld) checkFits(ps []pickJSON, loc string) {
	w.t.Helper()
	for _, p := range ps {
		if !w.sized[p.Product] {
			if w.stock[p.Product+"@"+loc] <= 0 {
				w.t.Fatalf("%s picked but not in stock at %s", p.Product, loc)
			}
			continue
		}
		if !slices.Equal(p.Sizes, []string{"8"}) || w.stock[p.Product+"-8@"+loc] <= 0 {
			w.t.Fatalf("%s picked with sizes %v; in stock in 8 at %s: %d", p.Product, p.Sizes, loc, w.stock[p.Product+"-8@"+loc])
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
	at := func(d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339) }

	// Sarah buys a sweater in size 8 on a social shop.
	w.post("/v1/events", fmt.Sprintf(`{"type":"purchase","customer":"sarah","sku":"SARAH-SW1-8","channel":"social","order":"O1","price":59,"ts":%q}`, at(-3*time.Hour)))
	// Later she browses, puts size-8 leggings in the cart and leaves.
	w.post("/v1/events",
		fmt.Sprintf(`{"type":"view","customer":"sarah","product":"SARAH-LG2","channel":"web","ts":%q}`, at(-2*time.Hour)),
		fmt.Sprintf(`{"type":"view","customer":"sarah","product":"SARAH-LG1","channel":"web","ts":%q}`, at(-119*time.Minute)),
		fmt.Sprintf(`{"type":"cart_add","customer":"sarah","sku":"SARAH-LG1-8","channel":"web","ts":%q}`, at(-118*time.Minute)),
		fmt.Sprintf(`{"type":"view","customer":"sarah","product":"SARAH-CO2","channel":"web","ts":%q}`, at(-117*time.Minute)),
		fmt.Sprintf(`{"type":"view","customer":"sarah","product":"SARAH-HAT1","channel":"web","ts":%q}`, at(-116*time.Minute)),
	)

	// Ads and the abandoned-cart email show the leggings first, and what she
	// browsed, but nothing sold out in size 8.
	var before []pickJSON
	for _, ch := range []string{"ads", "email"} {
		ps := w.picks("customer=sarah&channel=" + ch + "&k=8")
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
	w.post("/v1/events",
		fmt.Sprintf(`{"type":"purchase","customer":"sarah","sku":"SARAH-LG1-8","channel":"app","order":"O2","ts":%q}`, at(-time.Hour)),
		fmt.Sprintf(`{"type":"purchase","customer":"sarah","product":"SARAH-HAT1","channel":"app","order":"O2","ts":%q}`, at(-time.Hour)),
	)
	// From then on no channel shows the leggings, the hat or the sweater.
	for _, q := range []string{"channel=ads", "channel=email", "channel=web", "channel=app", "channel=screen&location=store-berlin-1", "channel=web&category=women/leggings"} {
		ps := w.picks("customer=sarah&k=20&" + q)
		for _, banned := range []string{"SARAH-LG1", "SARAH-HAT1", "SARAH-SW1"} {
			if slices.Contains(products(ps), banned) {
				t.Fatalf("%s: picked %s after she bought it: %v", q, banned, products(ps))
			}
		}
	}
	// Related winter wear rises: gloves, scarves and coats lead the ads.
	after := w.picks("customer=sarah&channel=ads&k=8")
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
	store := w.picks("customer=sarah&channel=screen&location=store-berlin-1&k=10")
	if len(store) == 0 {
		t.Fatal("store screen shows nothing")
	}
	w.checkFits(store, "store-berlin-1")
	if slices.Contains(products(store), "SARAH-CO2") {
		t.Fatal("store screen shows the wool coat, which the store has only in 10")
	}
	// A scanned hat: related items in stock there.
	scan := w.picks("customer=sarah&channel=screen&location=store-berlin-1&context=SARAH-HAT2&k=5")
	w.checkFits(scan, "store-berlin-1")
	if len(scan) == 0 || !isWinterWear(scan[0].Product) || scan[0].Reason != "related" {
		t.Fatalf("scan of a hat: %+v, want related winter wear first", scan)
	}
	anon := w.picks("channel=screen&location=store-berlin-1&context=SARAH-HAT1&k=5")
	if len(anon) == 0 || anon[0].Reason != "related" || !isWinterWear(anon[0].Product) {
		t.Fatalf("scan without a customer: %+v", anon)
	}
	w.stock["SARAH-HAT1@store-berlin-1"] = 0
	for _, p := range anon {
		if w.stock[p.Product+"@store-berlin-1"] <= 0 && w.stock[p.Product+"-8@store-berlin-1"] <= 0 && w.stock[p.Product+"-6@store-berlin-1"] <= 0 && w.stock[p.Product+"-10@store-berlin-1"] <= 0 {
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
