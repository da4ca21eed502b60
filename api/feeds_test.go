package api_test

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// googleFeed is a Merchant Center RSS feed as encoding/xml reads it.
type googleFeed struct {
	XMLName xml.Name `xml:"rss"`
	Channel struct {
		Title       string       `xml:"title"`
		Link        string       `xml:"link"`
		Description string       `xml:"description"`
		Items       []googleItem `xml:"item"`
	} `xml:"channel"`
}

const gNS = "http://base.google.com/ns/1.0"

type googleItem struct {
	ID           string  `xml:"http://base.google.com/ns/1.0 id"`
	ItemGroupID  string  `xml:"http://base.google.com/ns/1.0 item_group_id"`
	Title        string  `xml:"http://base.google.com/ns/1.0 title"`
	Description  string  `xml:"http://base.google.com/ns/1.0 description"`
	Link         string  `xml:"http://base.google.com/ns/1.0 link"`
	ImageLink    string  `xml:"http://base.google.com/ns/1.0 image_link"`
	Price        string  `xml:"http://base.google.com/ns/1.0 price"`
	Availability string  `xml:"http://base.google.com/ns/1.0 availability"`
	Condition    string  `xml:"http://base.google.com/ns/1.0 condition"`
	Brand        string  `xml:"http://base.google.com/ns/1.0 brand"`
	Size         *string `xml:"http://base.google.com/ns/1.0 size"`
	ProductType  string  `xml:"http://base.google.com/ns/1.0 product_type"`
	// Attributes.
	Color                 string `xml:"http://base.google.com/ns/1.0 color"`
	Gender                string `xml:"http://base.google.com/ns/1.0 gender"`
	AgeGroup              string `xml:"http://base.google.com/ns/1.0 age_group"`
	Material              string `xml:"http://base.google.com/ns/1.0 material"`
	GoogleProductCategory string `xml:"http://base.google.com/ns/1.0 google_product_category"`
}

var priceRE = regexp.MustCompile(`^[0-9]+\.[0-9]{2} [A-Z]{3}$`)

// feedClient fetches feeds over HTTP.
type feedClient struct {
	client
	key string // sent as a bearer key when set
}

// get fetches a path with an explicit Accept-Encoding (so that Go's
// transport does not decompress on its own) and returns the response and
// its raw body.
func (c feedClient) get(path, acceptEncoding string) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest("GET", c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", acceptEncoding)
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	return resp, b
}

// google fetches and parses a Google feed, checks what every item needs
// and returns the items by SKU.
func (c feedClient) google(query string) map[string]googleItem {
	c.t.Helper()
	resp, body := c.get("/v1/feeds/products?format=google"+query, "identity")
	if resp.StatusCode != 200 {
		c.t.Fatalf("google feed%s: %d %s", query, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/rss+xml; charset=utf-8" {
		c.t.Errorf("Content-Type %q", ct)
	}
	return parseGoogle(c.t, body)
}

func parseGoogle(t *testing.T, body []byte) map[string]googleItem {
	t.Helper()
	if !bytes.Contains(body, []byte(`xmlns:g="`+gNS+`"`)) {
		t.Fatalf("no g: namespace in %.200s", body)
	}
	var f googleFeed
	if err := xml.Unmarshal(body, &f); err != nil {
		t.Fatalf("feed does not parse: %v\n%.2000s", err, body)
	}
	if f.Channel.Title == "" || f.Channel.Link == "" || f.Channel.Description == "" {
		t.Errorf("channel title/link/description missing: %+v", f.Channel)
	}
	items := make(map[string]googleItem, len(f.Channel.Items))
	for _, it := range f.Channel.Items {
		for name, v := range map[string]string{"id": it.ID, "item_group_id": it.ItemGroupID, "title": it.Title,
			"description": it.Description, "link": it.Link, "image_link": it.ImageLink, "brand": it.Brand} {
			if strings.TrimSpace(v) == "" {
				t.Errorf("item %q: empty g:%s", it.ID, name)
			}
		}
		if !priceRE.MatchString(it.Price) {
			t.Errorf("item %q: g:price %q", it.ID, it.Price)
		}
		if it.Availability != "in_stock" && it.Availability != "out_of_stock" {
			t.Errorf("item %q: g:availability %q", it.ID, it.Availability)
		}
		if it.Condition != "new" {
			t.Errorf("item %q: g:condition %q", it.ID, it.Condition)
		}
		if _, dup := items[it.ID]; dup {
			t.Errorf("item %q listed twice", it.ID)
		}
		items[it.ID] = it
	}
	return items
}

// meta fetches and parses a Meta feed, checks what every row needs and
// returns the rows by SKU, as column name -> value.
func (c feedClient) meta(query string) map[string]map[string]string {
	c.t.Helper()
	resp, body := c.get("/v1/feeds/products?format=meta"+query, "identity")
	if resp.StatusCode != 200 {
		c.t.Fatalf("meta feed%s: %d %s", query, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		c.t.Errorf("Content-Type %q", ct)
	}
	return parseMeta(c.t, body)
}

func parseMeta(t *testing.T, body []byte) map[string]map[string]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("feed does not parse: %v\n%.2000s", err, body)
	}
	const header = "id,item_group_id,title,description,availability,condition,price,link,image_link,brand,size,color,gender,age_group,material,pattern,google_product_category"
	if len(recs) == 0 || strings.Join(recs[0], ",") != header {
		t.Fatalf("header %q, want %q", recs[:min(1, len(recs))], header)
	}
	cols := recs[0]
	rows := make(map[string]map[string]string, len(recs)-1)
	for _, rec := range recs[1:] {
		row := make(map[string]string, len(cols))
		for i, c := range cols {
			row[c] = rec[i]
		}
		for _, c := range []string{"id", "item_group_id", "title", "description", "link", "image_link", "brand"} {
			if strings.TrimSpace(row[c]) == "" {
				t.Errorf("row %q: empty %s", row["id"], c)
			}
		}
		if !priceRE.MatchString(row["price"]) {
			t.Errorf("row %q: price %q", row["id"], row["price"])
		}
		if a := row["availability"]; a != "in stock" && a != "out of stock" {
			t.Errorf("row %q: availability %q", row["id"], a)
		}
		if row["condition"] != "new" {
			t.Errorf("row %q: condition %q", row["id"], row["condition"])
		}
		if _, dup := rows[row["id"]]; dup {
			t.Errorf("row %q listed twice", row["id"])
		}
		rows[row["id"]] = row
	}
	return rows
}

// hostileTitle has every character XML and CSV must escape, non-ASCII,
// and a control character XML cannot carry.
const hostileTitle = "Tom & Jerry's <b>\"Best\"</b>, Café ☃ 100%\nline\x01"

// feedWorld is a small catalog with stock online and in one store, on an
// open server over opts.Engine (a new one when nil).
func feedWorld(t *testing.T, opts api.Options) feedClient {
	c := feedClient{client: client{t, startServer(t, opts)}}
	c.post("/v1/locations", `{"id":"store-1","name":"Berlin"}`)
	hostile := strings.ReplaceAll(strings.ReplaceAll(hostileTitle, "\"", `\"`), "\n", `\n`)
	hostile = strings.ReplaceAll(hostile, "\x01", `\u0001`)
	c.post("/v1/products",
		`{"id":"SW1","title":"Merino sweater","url":"https://shop.example/p/SW1","image":"https://shop.example/i/SW1.jpg","price":59,"currency":"EUR","category":"women/knitwear/sweaters","brand":"Nordic","size_group":"women-numeric","variants":[{"sku":"SW1-6","size":"6"},{"sku":"SW1-8","size":"8"}]}`,
		`{"id":"HAT1","title":"Bobble hat","url":"https://shop.example/p/HAT1","image":"https://shop.example/i/HAT1.jpg","price":19.5,"currency":"EUR","category":"women/accessories/hats","brand":"Alpen","variants":[{"sku":"HAT1"}]}`,
		`{"id":"ODD1","title":"`+hostile+`","url":"https://shop.example/p/ODD1?a=1&b=2","image":"https://shop.example/i/ODD1.jpg","price":1234.567,"currency":"EUR","category":"toys","brand":"B&B <Toys>","variants":[{"sku":"ODD1-S,M","size":"S,M"},{"sku":"ODD1-\"L\"","size":"\"L\""}]}`,
		`{"id":"OLD1","title":"Retired","url":"https://shop.example/p/OLD1","image":"https://shop.example/i/OLD1.jpg","price":5,"currency":"EUR","brand":"Alpen","active":false,"variants":[{"sku":"OLD1"}]}`,
	)
	c.post("/v1/inventory",
		`{"sku":"SW1-6","location":"online","quantity":3}`,
		`{"sku":"SW1-8","location":"online","quantity":2}`,
		`{"sku":"SW1-8","location":"store-1","quantity":1}`,
		`{"sku":"HAT1","location":"store-1","quantity":4}`,
		`{"sku":"ODD1-S,M","location":"online","quantity":1}`,
		`{"sku":"OLD1","location":"online","quantity":9}`,
	)
	return c
}

func TestFeedLiveAvailability(t *testing.T) {
	c := feedWorld(t, api.Options{})
	tests := []struct {
		query   string
		inStock map[string]bool // by SKU; every active SKU is listed
	}{
		{"", map[string]bool{"SW1-6": true, "SW1-8": true, "HAT1": false, "ODD1-S,M": true, `ODD1-"L"`: false}},
		{"&location=online", map[string]bool{"SW1-6": true, "SW1-8": true, "HAT1": false, "ODD1-S,M": true, `ODD1-"L"`: false}},
		{"&location=store-1", map[string]bool{"SW1-6": false, "SW1-8": true, "HAT1": true, "ODD1-S,M": false, `ODD1-"L"`: false}},
		{"&location=online,store-1", map[string]bool{"SW1-6": true, "SW1-8": true, "HAT1": true, "ODD1-S,M": true, `ODD1-"L"`: false}},
	}
	check := func(t *testing.T, query string, want map[string]bool) {
		t.Helper()
		g, m := c.google(query), c.meta(query)
		if len(g) != len(want) || len(m) != len(want) {
			t.Errorf("%s: %d google items, %d meta rows, want %d (retired OLD1 left out)", query, len(g), len(m), len(want))
		}
		for sku, in := range want {
			gw, mw := "out_of_stock", "out of stock"
			if in {
				gw, mw = "in_stock", "in stock"
			}
			if got := g[sku].Availability; got != gw {
				t.Errorf("%s: google %s availability %q, want %q", query, sku, got, gw)
			}
			if got := m[sku]["availability"]; got != mw {
				t.Errorf("%s: meta %s availability %q, want %q", query, sku, got, mw)
			}
		}
	}
	for _, tt := range tests {
		name := strings.TrimPrefix(tt.query, "&")
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) { check(t, tt.query, tt.inStock) })
	}

	// Selling out online shows at once; the store keeps its stock.
	c.post("/v1/inventory", `{"sku":"SW1-8","location":"online","quantity":0}`)
	check(t, "", map[string]bool{"SW1-6": true, "SW1-8": false, "HAT1": false, "ODD1-S,M": true, `ODD1-"L"`: false})
	check(t, "&location=store-1", tests[2].inStock)
	// Retiring a product takes its rows out.
	c.post("/v1/products", `{"id":"HAT1","title":"Bobble hat","brand":"Alpen","url":"u","image":"i","price":1,"currency":"EUR","active":false,"variants":[{"sku":"HAT1"}]}`)
	if _, ok := c.google("")["HAT1"]; ok {
		t.Error("retired HAT1 still in the google feed")
	}
}

func TestFeedFields(t *testing.T) {
	c := feedWorld(t, api.Options{})
	g, m := c.google(""), c.meta("")
	// XML cannot carry \x01: it becomes U+FFFD. CSV carries it as is.
	xmlTitle := strings.ReplaceAll(hostileTitle, "\x01", "\uFFFD")
	tests := []struct {
		sku, group, title, desc, link, price, brand, size string
	}{
		{"SW1-8", "SW1", "Merino sweater", "Merino sweater by Nordic, in women > knitwear > sweaters", "https://shop.example/p/SW1", "59.00 EUR", "Nordic", "8"},
		{"HAT1", "HAT1", "Bobble hat", "Bobble hat by Alpen, in women > accessories > hats", "https://shop.example/p/HAT1", "19.50 EUR", "Alpen", ""},
		{"ODD1-S,M", "ODD1", hostileTitle, hostileTitle + " by B&B <Toys>, in toys", "https://shop.example/p/ODD1?a=1&b=2", "1234.57 EUR", "B&B <Toys>", "S,M"},
		{`ODD1-"L"`, "ODD1", hostileTitle, hostileTitle + " by B&B <Toys>, in toys", "https://shop.example/p/ODD1?a=1&b=2", "1234.57 EUR", "B&B <Toys>", `"L"`},
	}
	for _, tt := range tests {
		gi := g[tt.sku]
		wantTitle, wantDesc := tt.title, tt.desc
		if tt.group == "ODD1" {
			wantTitle, wantDesc = xmlTitle, strings.ReplaceAll(tt.desc, "\x01", "\uFFFD")
		}
		size := ""
		if gi.Size != nil {
			size = *gi.Size
		}
		if gi.ItemGroupID != tt.group || gi.Title != wantTitle || gi.Description != wantDesc || gi.Link != tt.link ||
			gi.Price != tt.price || gi.Brand != tt.brand || size != tt.size {
			t.Errorf("google %s = %+v (size %q)\nwant %+v", tt.sku, gi, size, tt)
		}
		if tt.size != "" && gi.Size == nil {
			t.Errorf("google %s: no g:size for a sized variant", tt.sku)
		}
		r := m[tt.sku]
		if r["item_group_id"] != tt.group || r["title"] != tt.title || r["description"] != tt.desc || r["link"] != tt.link ||
			r["price"] != tt.price || r["brand"] != tt.brand || r["size"] != tt.size {
			t.Errorf("meta %s = %v\nwant %+v", tt.sku, r, tt)
		}
	}
	if pt := g["SW1-6"].ProductType; pt != "women > knitwear > sweaters" {
		t.Errorf("product_type %q", pt)
	}
}

func TestFeedEncodings(t *testing.T) {
	c := feedWorld(t, api.Options{})
	gunzip := func(b []byte) ([]byte, error) {
		r, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}
	unzstd := func(b []byte) ([]byte, error) {
		d, err := zstd.NewReader(nil)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return d.DecodeAll(b, nil)
	}
	identity := func(b []byte) ([]byte, error) { return b, nil }
	tests := []struct {
		accept, coding string
		decode         func([]byte) ([]byte, error)
	}{
		{"identity", "", identity},
		{"gzip", "gzip", gunzip},
		{"gzip, deflate, br", "gzip", gunzip},
		{"zstd", "zstd", unzstd},
		{"gzip;q=0.5, zstd;q=0.4", "gzip", gunzip},
		{"gzip, zstd", "zstd", unzstd},
		{"zstd;q=0, gzip;q=0", "", identity},
		{"br", "", identity},
		{"*", "gzip", gunzip},
	}
	for _, format := range []string{"google", "meta"} {
		path := "/v1/feeds/products?format=" + format + "&location=online,store-1"
		_, plain := c.get(path, "identity")
		if len(plain) < 200 {
			t.Fatalf("%s: plain feed %q", format, plain)
		}
		for _, tt := range tests {
			resp, raw := c.get(path, tt.accept)
			if got := resp.Header.Get("Content-Encoding"); got != tt.coding {
				t.Errorf("%s, Accept-Encoding %q: Content-Encoding %q, want %q", format, tt.accept, got, tt.coding)
				continue
			}
			if v := resp.Header.Get("Vary"); v != "Accept-Encoding" {
				t.Errorf("%s, Accept-Encoding %q: Vary %q", format, tt.accept, v)
			}
			body, err := tt.decode(raw)
			if err != nil {
				t.Errorf("%s, Accept-Encoding %q: %v", format, tt.accept, err)
				continue
			}
			if !bytes.Equal(body, plain) {
				t.Errorf("%s, Accept-Encoding %q: decoded body differs from the plain one:\n%.300s\n%.300s", format, tt.accept, body, plain)
			}
		}
	}
}

func TestFeedBadRequests(t *testing.T) {
	e := engine.New(engine.Options{})
	feedWorld(t, api.Options{Engine: e})
	c := feedClient{client: client{t, startServer(t, api.Options{Engine: e, WriteKeys: []string{"write-key-1"}, ReadKeys: []string{"read-key-1"}})}}
	tests := []struct {
		method, query, key string
		status             int
		field              string
	}{
		{"GET", "format=google", "read-key-1", 200, ""},
		{"GET", "format=meta&location=store-1,online", "read-key-1", 200, ""},
		{"HEAD", "format=google", "read-key-1", 200, ""},
		{"GET", "format=google", "", 401, ""},
		{"GET", "format=google", "nope", 401, ""},
		{"POST", "format=google", "write-key-1", 405, ""},
		{"GET", "", "read-key-1", 400, "format"},
		{"GET", "format=tiktok", "read-key-1", 400, "format"},
		{"GET", "format=GOOGLE", "read-key-1", 400, "format"},
		{"GET", "format=google&location=store-9", "read-key-1", 400, "location"},
		{"GET", "format=meta&location=online,store-9", "read-key-1", 400, "location"},
		{"GET", "format=meta&location=" + strings.Repeat("x", 300), "read-key-1", 400, "location"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, c.base+"/v1/feeds/products?"+tt.query, nil)
		if tt.key != "" {
			req.Header.Set("X-API-Key", tt.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s ?%s key %q: %d %s, want %d", tt.method, tt.query, tt.key, resp.StatusCode, body, tt.status)
			continue
		}
		if tt.status == 200 {
			continue
		}
		if !strings.Contains(string(body), `"error":`) || (tt.field != "" && !strings.Contains(string(body), `"field":"`+tt.field+`"`)) {
			t.Errorf("%s ?%s: body %s, want an error on field %q", tt.method, tt.query, body, tt.field)
		}
		if tt.field == "location" && strings.Contains(tt.query, "store-9") && (!strings.Contains(string(body), `store-9`) || !strings.Contains(string(body), "known locations are online")) {
			t.Errorf("the error does not name the unknown location and the known ones: %s", body)
		}
	}
}

// TestFeedStreamsLargeCatalog checks that a feed is streamed, not built in
// memory: with the client stalled half-way, the heap holds a small part of
// the feed, a stock write goes through (no lock is held across chunks),
// and feeds beyond the bound are refused.
func TestFeedStreamsLargeCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 20k-product catalog")
	}
	e := engine.New(engine.Options{})
	const products = 20000
	for i := range products {
		id := fmt.Sprintf("P%05d", i)
		p := engine.Product{
			ID: id, Title: "Merino wool sweater with a long title " + id, URL: "https://shop.example/products/" + id,
			Image: "https://cdn.shop.example/images/" + id + ".jpg", Price: 59, Currency: "EUR",
			Category: "women/knitwear/sweaters", Brand: "Nordic", SizeGroup: "women-numeric",
			Variants: []engine.Variant{{SKU: id + "-6", Size: "6"}, {SKU: id + "-8", Size: "8"}, {SKU: id + "-10", Size: "10"}},
		}
		if err := e.Apply(&engine.Record{Op: engine.OpProduct, Product: p}); err != nil {
			t.Fatal(err)
		}
		if err := e.Apply(&engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: id + "-8", Location: "online", Quantity: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	c := feedClient{client: client{t, startServer(t, api.Options{Engine: e})}}
	open := func() *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", c.base+"/v1/feeds/products?format=google", nil)
		req.Header.Set("Accept-Encoding", "identity")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	var before, during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp := open()
	defer resp.Body.Close()
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the server fill whatever it would buffer
	runtime.GC()
	runtime.ReadMemStats(&during)

	// A write while the feed is stalled: the feed holds no lock.
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.post("/v1/inventory", `{"sku":"P19999-6","location":"online","quantity":5}`)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a stock write waited for a stalled feed")
	}

	// maxFeeds (4) at once: three more stalled feeds, then one too many.
	var more []*http.Response
	for range 3 {
		r := open()
		more = append(more, r)
		if r.StatusCode != 200 {
			t.Fatalf("feed %d: %d", len(more)+1, r.StatusCode)
		}
	}
	if r := open(); r.StatusCode != 503 || r.Header.Get("Retry-After") == "" {
		t.Errorf("a 5th feed at once: %d, want 503 with Retry-After", r.StatusCode)
		r.Body.Close()
	} else {
		r.Body.Close()
	}
	for _, r := range more {
		r.Body.Close() // the server's streams see the connections go and stop
	}

	rest, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(len(head)) + rest
	growth := int64(during.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("feed %d MiB; live heap grew %d KiB mid-stream", total>>20, growth>>10)
	if total < 16<<20 {
		t.Fatalf("feed of %d bytes is too small to tell streaming from buffering", total)
	}
	if growth > 4<<20 {
		t.Errorf("live heap grew %d KiB mid-stream for a %d MiB feed: the feed is buffered", growth>>10, total>>20)
	}
	// The stopped streams freed their slots.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := open()
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("feeds still refused after the clients left: %d", r.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
