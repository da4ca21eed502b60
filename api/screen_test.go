package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// screenWorld is a small store: what is on its shelves, in which sizes, and
// what sells. Mia bought the cable sweater in M.
type screenWorld struct {
	e       *engine.Engine
	inStore map[string][]string // product -> sizes in stock at store-1 ("" for one-size)
}

// screenCatalog: id, title, category, brand, sized. Every product is in
// stock online; storeSizes says what store-1 has.
var screenCatalog = []struct {
	id, title, cat, brand string
	tags                  []string
	sized                 bool
	storeSizes            []string // nil: not in the store
}{
	{"SW1", "Merino sweater", "women/knitwear/sweaters", "Nordic", []string{"winter", "wool"}, true, []string{"S", "M", "L"}},
	{"SW2", "Cable sweater", "women/knitwear/sweaters", "Nordic", []string{"winter", "wool"}, true, []string{"S", "M", "L"}},
	{"SW3", "Fisherman sweater", "women/knitwear/sweaters", "Nordic", []string{"winter", "wool"}, true, []string{"S"}}, // sold out in M
	{"SW4", "Alpaca sweater", "women/knitwear/sweaters", "Nordic", []string{"winter", "wool"}, true, nil},              // online only
	{"HAT1", "Bobble hat", "women/accessories/hats", "Alpen", []string{"winter"}, false, []string{""}},
	{"HAT2", "Beanie", "women/accessories/hats", "Alpen", []string{"winter"}, false, []string{""}},
	{"GL1", "Knit gloves", "women/accessories/gloves", "Alpen", []string{"winter"}, false, []string{""}},
	{"LG1", "Studio leggings", "women/leggings", "Move", []string{"sport"}, true, []string{"S", "M", "L"}},
	{"LG2", "Thermal leggings", "women/leggings", "Move", []string{"sport"}, true, nil},
	{"TS1", "Linen tee", "women/tops", "Sun", []string{"summer"}, true, []string{"S", "M", "L"}},
}

// newScreenWorld fills an engine directly (no HTTP: the tests are about
// reading). imageBase, when set, prefixes product image URLs.
func newScreenWorld(t *testing.T, imageBase string) *screenWorld {
	t.Helper()
	w := &screenWorld{e: engine.New(engine.Options{}), inStore: map[string][]string{}}
	apply := func(r engine.Record) {
		t.Helper()
		if err := w.e.Apply(&r); err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
	}
	apply(engine.Record{Op: engine.OpLocation, Location: engine.Location{ID: "store-1", Name: "Berlin Mitte"}})
	apply(engine.Record{Op: engine.OpLocation, Location: engine.Location{ID: "store-2", Name: "Hamburg"}})
	for _, p := range screenCatalog {
		prod := engine.Product{ID: p.id, Title: p.title, URL: "https://shop.example/p/" + p.id, Price: 49.5, Currency: "EUR",
			Category: p.cat, Brand: p.brand, Tags: p.tags}
		if imageBase != "" {
			prod.Image = imageBase + "/" + p.id + ".svg"
		}
		sizes := []string{""}
		if p.sized {
			prod.SizeGroup = "women-alpha"
			sizes = []string{"S", "M", "L"}
		}
		for _, s := range sizes {
			prod.Variants = append(prod.Variants, engine.Variant{SKU: sku(p.id, s), Size: s})
		}
		apply(engine.Record{Op: engine.OpProduct, Product: prod})
		for _, s := range sizes {
			apply(engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: sku(p.id, s), Location: "online", Quantity: 5}})
		}
		for _, s := range p.storeSizes {
			apply(engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: sku(p.id, s), Location: "store-1", Quantity: 2}})
		}
		if p.storeSizes != nil {
			w.inStore[p.id] = p.storeSizes
		}
	}
	// What sells: hats, leggings and tees, most to least; a few sweaters,
	// one of them online only.
	ts := time.Now().Add(-48 * time.Hour)
	buy := func(customer, s string) {
		ts = ts.Add(time.Minute)
		apply(engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventPurchase, Customer: customer, SKU: s, TS: ts.UnixMilli()}})
	}
	for i := range 6 {
		c := fmt.Sprint("shopper", i)
		buy(c, "HAT1")
		if i < 5 {
			buy(c, "LG1-L")
		}
		if i < 4 {
			buy(c, "TS1-S")
		}
		if i < 3 {
			buy(c, "GL1")
		}
	}
	buy("shopper4", "SW3-S")
	buy("shopper5", "SW4-M")
	buy("mia", "SW2-M")
	return w
}

func sku(product, size string) string {
	if size == "" {
		return product
	}
	return product + "-" + size
}

// screenJSON is GET /screen/{store}/picks.json and a "picks" event.
type screenJSON struct {
	Store    string     `json:"store"`
	Seq      uint64     `json:"seq"`
	Context  string     `json:"context"`
	Customer string     `json:"customer"`
	Channel  string     `json:"channel"`
	Picks    []pickJSON `json:"picks"`
}

// checkInStore fails unless every pick is in stock at store-1, offering
// only sizes the store has (and, when size is set, only that size).
func (w *screenWorld) checkInStore(t *testing.T, ps []pickJSON, size string) {
	t.Helper()
	if len(ps) == 0 {
		t.Fatal("no picks")
	}
	for _, p := range ps {
		have, ok := w.inStore[p.Product]
		if !ok {
			t.Fatalf("%s picked but not in stock at store-1 (picks %v)", p.Product, products(ps))
		}
		if have[0] == "" {
			continue // one size
		}
		for _, s := range p.Sizes {
			if !slices.Contains(have, s) || (size != "" && s != size) {
				t.Fatalf("%s offered in %v; the store has %v, the customer wears %q", p.Product, p.Sizes, have, size)
			}
		}
	}
}

// TestScreenPicksEndToEnd asks GET /v1/picks what a store screen would
// show, and then the screen's own picks.json after scan events.
func TestScreenPicksEndToEnd(t *testing.T) {
	w := newScreenWorld(t, "")
	c := client{t, startServer(t, api.Options{Engine: w.e})}

	// Without a customer: the store's bestsellers that go with the scan,
	// the other sweaters first, and never the scanned one itself.
	anon := c.picks("channel=screen&location=store-1&context=SW1&k=4")
	w.checkInStore(t, anon, "")
	if got := products(anon[:2]); !sameSet(got, []string{"SW2", "SW3"}) {
		t.Fatalf("scan of SW1 without a customer: first picks %v, want the sweaters SW2 and SW3", products(anon))
	}
	if slices.Contains(products(anon), "SW1") {
		t.Fatalf("the scanned product is picked: %v", products(anon))
	}

	// With Mia: she wears M (SW3 is sold out in M here) and has SW2.
	mia := c.picks("channel=screen&location=store-1&context=SW1&customer=mia&k=10")
	w.checkInStore(t, mia, "M")
	for _, never := range []string{"SW1", "SW2", "SW3"} {
		if slices.Contains(products(mia), never) {
			t.Fatalf("Mia's screen picks %v hold %s", products(mia), never)
		}
	}

	// The screen itself: bestsellers before any scan, then the scan's.
	screen := func(want uint64) screenJSON {
		t.Helper()
		status, body := c.do("GET", "/screen/store-1/picks.json", "", "")
		var r screenJSON
		if err := json.Unmarshal(body, &r); status != 200 || err != nil {
			t.Fatalf("picks.json: %d %s", status, body)
		}
		if r.Store != "store-1" || r.Channel != "screen" || r.Seq < want || r.Customer != "" {
			t.Fatalf("picks.json: %s", body)
		}
		return r
	}
	best := screen(0)
	if best.Seq != 0 || best.Context != "" {
		t.Fatalf("before any scan: %+v", best)
	}
	w.checkInStore(t, best.Picks, "")
	if got := products(best.Picks[:2]); !slices.Equal(got, []string{"HAT1", "LG1"}) {
		t.Fatalf("bestsellers: %v, want HAT1 and LG1 first", products(best.Picks))
	}

	c.post("/v1/events", `{"type":"scan","product":"SW1","anonymous_id":"kiosk-walkin","location":"store-1","channel":"store"}`)
	walkIn := screen(1)
	if walkIn.Context != "SW1" || !sameSet(products(walkIn.Picks[:2]), []string{"SW2", "SW3"}) {
		t.Fatalf("after a walk-in's scan of SW1: %+v", walkIn)
	}
	w.checkInStore(t, walkIn.Picks, "")

	c.post("/v1/events", `{"type":"scan","product":"SW1","customer":"mia","location":"store-1","channel":"store"}`)
	miaScreen := screen(walkIn.Seq + 1)
	w.checkInStore(t, miaScreen.Picks, "M")
	for _, never := range []string{"SW1", "SW2", "SW3"} {
		if slices.Contains(products(miaScreen.Picks), never) {
			t.Fatalf("Mia's screen shows %s: %v", never, products(miaScreen.Picks))
		}
	}
	// Another store's scans leave this screen alone.
	c.post("/v1/events", `{"type":"scan","product":"HAT1","customer":"mia","location":"store-2","channel":"store"}`)
	if again := screen(0); again.Seq != miaScreen.Seq {
		t.Fatalf("a scan at store-2 moved store-1's screen: %d -> %d", miaScreen.Seq, again.Seq)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestScreenRequests(t *testing.T) {
	w := newScreenWorld(t, "")
	logs := &syncWriter{w: new(bytes.Buffer)}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	base := startServer(t, api.Options{Engine: w.e, Log: log, WriteKeys: []string{writeKey1}, ReadKeys: []string{readKey1}})
	key := "X-API-Key: " + readKey1

	for _, tt := range []struct {
		name, method, path string
		headers            []string
		status             int
		field, ctype       string
	}{
		{"page with read key in query", "GET", "/screen/store-1?key=" + readKey1, nil, 200, "", "text/html; charset=utf-8"},
		{"page with write key in query", "GET", "/screen/store-1?key=" + writeKey1, nil, 200, "", "text/html; charset=utf-8"},
		{"page with key header", "GET", "/screen/store-1/", []string{key}, 200, "", "text/html; charset=utf-8"},
		{"picks.json with key in query", "GET", "/screen/store-1/picks.json?k=3&key=" + readKey1, nil, 200, "", "application/json"},
		{"events HEAD", "HEAD", "/screen/store-1/events?key=" + readKey1, nil, 200, "", "text/event-stream"},
		{"no key", "GET", "/screen/store-1", nil, 401, "", "application/json"},
		{"wrong key", "GET", "/screen/store-1?key=guess", nil, 401, "", "application/json"},
		{"query key is for screens only", "GET", "/v1/picks?key=" + readKey1, nil, 401, "", "application/json"},
		{"unknown store", "GET", "/screen/store-404", []string{key}, 404, "store", "application/json"},
		{"unknown store events", "GET", "/screen/store-404/events?key=" + readKey1, nil, 404, "store", "application/json"},
		{"unknown sub-path", "GET", "/screen/store-1/nope", []string{key}, 404, "", "application/json"},
		{"store too long", "GET", "/screen/" + strings.Repeat("s", 300), []string{key}, 400, "store", "application/json"},
		{"bad k", "GET", "/screen/store-1?k=0", []string{key}, 400, "k", "application/json"},
		{"k too big", "GET", "/screen/store-1/picks.json?k=101", []string{key}, 400, "k", "application/json"},
		{"POST", "POST", "/screen/store-1", []string{key}, 405, "", "application/json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, h, body := request(t, base, tt.method, tt.path, nil, tt.headers...)
			if status != tt.status || h.Get("Content-Type") != tt.ctype {
				t.Fatalf("%s %s: %d %s %s", tt.method, tt.path, status, h.Get("Content-Type"), body)
			}
			if status >= 400 && tt.method != "HEAD" {
				if _, field := errorBody(t, body); field != tt.field {
					t.Fatalf("field %q, want %q: %s", field, tt.field, body)
				}
			}
			if status == 200 && (h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer") {
				t.Fatalf("a screen response may be cached or leak its URL: %v", h)
			}
		})
	}
	status, _, body := request(t, base, "GET", "/metrics", nil)
	if status != 200 || !bytes.Contains(body, []byte(`endpoint="screen"`)) {
		t.Fatalf("metrics do not count the screen endpoint:\n%s", body)
	}
	time.Sleep(50 * time.Millisecond)
	if out := logs.String(); strings.Contains(out, readKey1[:12]) || strings.Contains(out, writeKey1[:12]) {
		t.Fatalf("the log holds a key:\n%s", out)
	}
}

// TestScreenPageEscapes: catalog data is text, never markup or script.
func TestScreenPageEscapes(t *testing.T) {
	e := engine.New(engine.Options{})
	for _, r := range []engine.Record{
		{Op: engine.OpProduct, Product: engine.Product{ID: `X"><b id=x>`, Title: `</script><script>alert(1)</script>`,
			Image: `javascript:alert(2)`, Price: 5, Currency: "<i>EUR</i>", Variants: []engine.Variant{{SKU: "X1", Size: `<img src=y onerror=alert(3)>`}}}},
		{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: "X1", Location: `st<o>re`, Quantity: 1}},
	} {
		if err := e.Apply(&r); err != nil {
			t.Fatal(err)
		}
	}
	base := startServer(t, api.Options{Engine: e})
	status, h, body := request(t, base, "GET", "/screen/st%3Co%3Ere", nil)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	page := string(body)
	for _, bad := range []string{"<script>alert", "<b id=x>", "javascript:", "<img src=y", "<i>EUR", "st<o>re"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q unescaped", bad)
		}
	}
	if !strings.Contains(page, `data-product="X&#34;&gt;&lt;b id=x&gt;"`) || !strings.Contains(page, "&lt;/script&gt;&lt;script&gt;alert(1)") {
		t.Errorf("the pick is missing or escaped differently:\n%s", page)
	}
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'nonce-") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy: %q", csp)
	}
}

// readEvent reads one server-sent event of type "picks", skipping
// comments and the retry field.
func readEvent(t *testing.T, r *bufio.Reader) screenJSON {
	t.Helper()
	var data []byte
	event := ""
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reading the event stream: %v", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if event == "picks" && data != nil {
				var s screenJSON
				if err := json.Unmarshal(data, &s); err != nil {
					t.Fatalf("event data %s: %v", data, err)
				}
				return s
			}
			event, data = "", nil
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data, line[len("data: "):]...)
		}
	}
}

// TestScreenEventStream: a scan reaches an open stream within a second,
// and Stop ends open streams instead of waiting for them.
func TestScreenEventStream(t *testing.T) {
	w := newScreenWorld(t, "")
	srv, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: w.e})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.Stop(context.Background())
		}
	}()
	base := "http://" + srv.Addr()
	resp, err := http.Get(base + "/screen/store-1/events?k=4")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	r := bufio.NewReader(resp.Body)
	first := readEvent(t, r)
	if first.Seq != 0 || first.Context != "" || len(first.Picks) != 4 {
		t.Fatalf("first event: %+v", first)
	}

	c := client{t, base}
	start := time.Now()
	c.post("/v1/events", `{"type":"scan","product":"SW1","customer":"mia","location":"store-1"}`)
	next := readEvent(t, r)
	if took := time.Since(start); took > time.Second {
		t.Errorf("the scan reached the stream after %v", took)
	}
	if next.Seq == 0 || next.Context != "SW1" {
		t.Fatalf("after the scan: %+v", next)
	}
	w.checkInStore(t, next.Picks, "M")

	// The first pick sells out on the store's shelf: the screen drops it
	// within a second, with no new scan.
	gone := next.Picks[0].Product
	for _, size := range w.inStore[gone] {
		c.post("/v1/inventory", fmt.Sprintf(`{"sku":%q,"location":"store-1","quantity":0}`, sku(gone, size)))
	}
	start = time.Now()
	for {
		ev := readEvent(t, r)
		if time.Since(start) > time.Second {
			t.Fatalf("the sold-out %s still shown after %v: %+v", gone, time.Since(start), ev)
		}
		shown := false
		for _, p := range ev.Picks {
			shown = shown || p.Product == gone
		}
		if !shown {
			if ev.Seq != next.Seq || ev.Context != "SW1" {
				t.Fatalf("a stock change moved the scan: %+v", ev)
			}
			break
		}
	}

	// Stop with the stream open: it must end the stream, not wait for it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start = time.Now()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop with an open event stream: %v after %v", err, time.Since(start))
	}
	stopped = true
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Stop took %v with an event stream open", d)
	}
}
