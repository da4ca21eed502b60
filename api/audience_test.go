package api_test

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// audienceNow is the engine's clock in the audience tests.
var audienceNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// rawGet fetches path with the given Accept-Encoding and no transparent
// decompression, and returns the response with its body read.
func rawGet(t *testing.T, base, path, acceptEncoding string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp, b
}

type audienceRow struct {
	Customer    string `json:"customer"`
	AnonymousID string `json:"anonymous_id"`
	Picks       []struct {
		Product  string   `json:"product"`
		Title    string   `json:"title"`
		URL      string   `json:"url"`
		Image    string   `json:"image"`
		Price    float64  `json:"price"`
		Currency string   `json:"currency"`
		Sizes    []string `json:"sizes"`
		Reason   string   `json:"reason"`
	} `json:"picks"`
}

func (r audienceRow) key() string {
	if r.AnonymousID != "" {
		return "anon:" + r.AnonymousID
	}
	return r.Customer
}

func (r audienceRow) products() []string {
	var out []string
	for _, p := range r.Picks {
		out = append(out, p.Product)
	}
	return out
}

func parseNDJSON(t *testing.T, body []byte) map[string]audienceRow {
	t.Helper()
	rows := map[string]audienceRow{}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	for dec.More() {
		var r audienceRow
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("ndjson: %v in %s", err, body)
		}
		if (r.Customer == "") == (r.AnonymousID == "") {
			t.Fatalf("row with customer %q and anonymous_id %q", r.Customer, r.AnonymousID)
		}
		if _, dup := rows[r.key()]; dup {
			t.Fatalf("%s listed twice", r.key())
		}
		rows[r.key()] = r
	}
	if n := bytes.Count(body, []byte("\n")); n != len(rows) {
		t.Fatalf("%d lines for %d rows", n, len(rows))
	}
	return rows
}

// parseCSV returns the rows by member, each the ';'-split products.
func parseCSV(t *testing.T, body []byte) map[string][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v in %s", err, body)
	}
	if len(recs) == 0 || !slices.Equal(recs[0], []string{"customer", "anonymous_id", "products"}) {
		t.Fatalf("csv header %v", recs)
	}
	rows := map[string][]string{}
	for _, r := range recs[1:] {
		key := r[0]
		if r[1] != "" {
			key = "anon:" + r[1]
		}
		var ps []string
		if r[2] != "" {
			ps = strings.Split(r[2], ";")
		}
		rows[key] = ps
	}
	return rows
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// newAudienceWorld serves a small catalog and a few shoppers whose carts
// and views have known ages on a fixed clock.
func newAudienceWorld(t *testing.T, opts api.Options) (client, string) {
	opts.Engine = engine.New(engine.Options{Now: func() time.Time { return audienceNow }})
	base := startServer(t, opts)
	c := client{t, base}
	type prod struct {
		id, cat string
		sized   bool
	}
	for _, p := range []prod{
		{"SW1", "women/knitwear/sweaters", true}, {"SW2", "women/knitwear/sweaters", true},
		{"LG1", "women/leggings", true}, {"LG2", "women/leggings", true}, {"LG3", "women/leggings", true},
		{"CO1", "women/coats", true}, {"HAT1", "women/accessories/hats", false}, {"HAT2", "women/accessories/hats", false},
	} {
		variants, skus := fmt.Sprintf(`[{"sku":%q}]`, p.id), []string{p.id}
		group := ""
		if p.sized {
			variants = fmt.Sprintf(`[{"sku":"%s-6","size":"6"},{"sku":"%s-8","size":"8"},{"sku":"%s-10","size":"10"}]`, p.id, p.id, p.id)
			skus = []string{p.id + "-6", p.id + "-8", p.id + "-10"}
			group = "women-numeric"
		}
		c.post("/v1/products", fmt.Sprintf(`{"id":%q,"title":"Title %s","url":"https://shop.example/p/%s","image":"https://shop.example/i/%s.jpg","price":49.5,"currency":"EUR","category":%q,"size_group":%q,"variants":%s}`,
			p.id, p.id, p.id, p.id, p.cat, group, variants))
		for _, sku := range skus {
			c.post("/v1/inventory", fmt.Sprintf(`{"sku":%q,"location":"online","quantity":5}`, sku))
		}
	}
	c.post("/v1/inventory", `{"sku":"LG2-8","location":"online","quantity":0}`) // sold out in sarah's size
	c.post("/v1/locations", `{"id":"store-1"}`)
	c.post("/v1/inventory", `{"sku":"HAT2","location":"store-1","quantity":3}`)

	ev := func(typ, actor, item string, ago time.Duration) string {
		who := "customer"
		if strings.HasPrefix(actor, "cookie") {
			who = "anonymous_id"
		}
		what := "product"
		if strings.Contains(item, "-") {
			what = "sku"
		}
		return fmt.Sprintf(`{"type":%q,%q:%q,%q:%q,"channel":"web","ts":%q}`, typ, who, actor, what, item, audienceNow.Add(-ago).Format(time.RFC3339))
	}
	const h, day = time.Hour, 24 * time.Hour
	c.post("/v1/events",
		// sarah wears 8, bought a sweater, viewed knitwear and leggings and
		// left leggings in her cart 2 h ago: both audiences.
		ev("purchase", "sarah", "SW1-8", 5*h),
		ev("view", "sarah", "SW2", 3*h),
		ev("view", "sarah", "LG2", 2*h),
		ev("cart_add", "sarah", "LG1-8", 2*h),
		// anna's cart is 30 min old: too fresh.
		ev("cart_add", "anna", "HAT1", 30*time.Minute),
		// ben's cart and view are 8 and 10 days old: too old.
		ev("view", "ben", "SW1", 10*day),
		ev("cart_add", "ben", "CO1-10", 8*day),
		// carl bought what he carted.
		ev("cart_add", "carl", "LG1-6", 3*h),
		ev("purchase", "carl", "LG1-6", 2*h),
		// an anonymous visitor carted a hat and viewed a sweater.
		ev("cart_add", "cookie-9", "HAT1", 4*h),
		ev("view", "cookie-9", "SW2", h),
		// another one carted a sweater, then logged in as dora.
		ev("cart_add", "cookie-m", "SW2-8", 4*h),
	)
	c.post("/v1/identify", `{"anonymous_id":"cookie-m","customer":"dora"}`)
	return c, base
}

func TestAudiencesOverHTTP(t *testing.T) {
	c, base := newAudienceWorld(t, api.Options{})

	// Cart abandoners, NDJSON.
	resp, body := rawGet(t, base, "/v1/audiences/cart_abandoners", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || resp.Header.Get("Content-Encoding") != "" ||
		resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	rows := parseNDJSON(t, body)
	if got, want := keys(rows), []string{"anon:cookie-9", "dora", "sarah"}; !slices.Equal(got, want) {
		t.Fatalf("cart abandoners %v, want %v", got, want)
	}
	sarah := rows["sarah"]
	if len(sarah.Picks) == 0 || sarah.Picks[0].Product != "LG1" || sarah.Picks[0].Reason != "cart" ||
		!slices.Equal(sarah.Picks[0].Sizes, []string{"8"}) || sarah.Picks[0].URL != "https://shop.example/p/LG1" ||
		sarah.Picks[0].Image != "https://shop.example/i/LG1.jpg" || sarah.Picks[0].Title != "Title LG1" ||
		sarah.Picks[0].Price != 49.5 || sarah.Picks[0].Currency != "EUR" {
		t.Fatalf("sarah's first pick %+v, want her cart's leggings in 8", sarah.Picks)
	}
	for _, p := range sarah.Picks {
		if p.Product == "LG2" || p.Product == "SW1" {
			t.Fatalf("sarah picked %s (sold out in 8, or bought): %v", p.Product, sarah.products())
		}
		if p.Product != "HAT1" && p.Product != "HAT2" && !slices.Equal(p.Sizes, []string{"8"}) {
			t.Fatalf("sarah's %s offered in %v, she wears 8", p.Product, p.Sizes)
		}
	}
	if r := rows["dora"]; len(r.Picks) == 0 || r.Picks[0].Product != "SW2" || r.Picks[0].Reason != "cart" {
		t.Fatalf("dora (merged from cookie-m) %+v, want her cart's sweater", r.Picks)
	}
	if r := rows["anon:cookie-9"]; len(r.Picks) == 0 || r.Picks[0].Product != "HAT1" {
		t.Fatalf("cookie-9 %+v, want the hat", r.Picks)
	}
	// Every row's picks are what /v1/picks answers for ads.
	for _, r := range rows {
		who := "customer=" + r.Customer
		if r.AnonymousID != "" {
			who = "anonymous_id=" + r.AnonymousID
		}
		if got, want := r.products(), products(c.picks(who+"&channel=ads")); !slices.Equal(got, want) {
			t.Fatalf("%s: audience picks %v, /v1/picks %v", r.key(), got, want)
		}
	}

	// The same as CSV, one row per member.
	resp, body = rawGet(t, base, "/v1/audiences/cart_abandoners?format=csv", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	csvRows := parseCSV(t, body)
	if !slices.Equal(keys(csvRows), keys(rows)) {
		t.Fatalf("csv members %v, ndjson %v", keys(csvRows), keys(rows))
	}
	for k, ps := range csvRows {
		if !slices.Equal(ps, rows[k].products()) {
			t.Fatalf("%s: csv products %v, ndjson %v", k, ps, rows[k].products())
		}
	}

	// Age bounds move the window: with min_age 15m anna joins, with
	// max_age 9 days ben does, in hours too.
	for _, tc := range []struct {
		params string
		want   []string
	}{
		{"min_age=15m", []string{"anna", "anon:cookie-9", "dora", "sarah"}},
		{"max_age=216", []string{"anon:cookie-9", "ben", "dora", "sarah"}},
		{"min_age=2.5&max_age=9d", nil}, // 9d is not a Go duration: 400 below
		{"min_age=2.5", []string{"anon:cookie-9", "dora"}},
		{"min_age=3h&max_age=5h", []string{"anon:cookie-9", "dora"}},
	} {
		resp, body := rawGet(t, base, "/v1/audiences/cart_abandoners?"+tc.params, "")
		if tc.want == nil {
			if resp.StatusCode != 400 {
				t.Fatalf("%s: %d %s", tc.params, resp.StatusCode, body)
			}
			continue
		}
		if got := keys(parseNDJSON(t, body)); resp.StatusCode != 200 || !slices.Equal(got, tc.want) {
			t.Fatalf("%s: %d %v, want %v", tc.params, resp.StatusCode, got, tc.want)
		}
	}

	// Viewers of knitwear within 7 days (default) and 14.
	for _, tc := range []struct {
		params string
		want   []string
	}{
		{"category=women/knitwear", []string{"anon:cookie-9", "sarah"}},
		{"category=women/knitwear&days=14", []string{"anon:cookie-9", "ben", "sarah"}},
		{"category=women/leggings&days=1", []string{"sarah"}},
		{"category=women/coats", nil},
		{"category=men", nil},
		{"days=30", []string{"anon:cookie-9", "ben", "sarah"}},
	} {
		for _, format := range []string{"ndjson", "csv"} {
			resp, body := rawGet(t, base, "/v1/audiences/viewers?format="+format+"&"+tc.params, "")
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", tc.params, resp.StatusCode, body)
			}
			var got []string
			if format == "csv" {
				got = keys(parseCSV(t, body))
			} else {
				got = keys(parseNDJSON(t, body))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("viewers %s (%s): %v, want %v", tc.params, format, got, tc.want)
			}
		}
	}

	// k and location reach the picks: in store-1 only the hat is in stock.
	_, body = rawGet(t, base, "/v1/audiences/viewers?category=women&k=1&location=store-1", "")
	for k, r := range parseNDJSON(t, body) {
		if !slices.Equal(r.products(), []string{"HAT2"}) {
			t.Fatalf("%s: picks %v in store-1 with k=1, want [HAT2]", k, r.products())
		}
	}
}

func TestAudienceCompression(t *testing.T) {
	_, base := newAudienceWorld(t, api.Options{})
	for _, path := range []string{"/v1/audiences/cart_abandoners", "/v1/audiences/viewers?category=women&format=csv"} {
		_, plain := rawGet(t, base, path, "")
		if len(plain) == 0 {
			t.Fatalf("%s: empty", path)
		}
		for _, tc := range []struct {
			accept, want string
		}{
			{"gzip", "gzip"},
			{"zstd", "zstd"},
			{"gzip, deflate, br, zstd", "zstd"},
			{"gzip;q=1, zstd;q=0.5", "gzip"},
			{"zstd;q=0, gzip", "gzip"},
			{"*", "gzip"}, // "*" stands for gzip only: see negotiateCoding,
			{"br", ""},
			{"identity", ""},
			{"gzip;q=0", ""},
		} {
			resp, body := rawGet(t, base, path, tc.accept)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != tc.want || resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Fatalf("%s, Accept-Encoding %q: %d, Content-Encoding %q, Vary %q; want %q",
					path, tc.accept, resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"), tc.want)
			}
			var decoded []byte
			var err error
			switch tc.want {
			case "gzip":
				var zr *gzip.Reader
				if zr, err = gzip.NewReader(bytes.NewReader(body)); err == nil {
					decoded, err = io.ReadAll(zr)
				}
			case "zstd":
				var zr *zstd.Decoder
				if zr, err = zstd.NewReader(bytes.NewReader(body)); err == nil {
					decoded, err = io.ReadAll(zr)
					zr.Close()
				}
			default:
				decoded = body
			}
			if err != nil || !bytes.Equal(decoded, plain) {
				t.Fatalf("%s, %s: decoded %d bytes (err %v), plain %d", path, tc.accept, len(decoded), err, len(plain))
			}
		}
	}
}

func TestAudienceBadInput(t *testing.T) {
	_, base := newAudienceWorld(t, api.Options{})
	for _, tc := range []struct {
		method, path string
		status       int
		field        string
	}{
		{"GET", "/v1/audiences/lapsed", 404, "name"},
		{"GET", "/v1/audiences/Viewers", 404, "name"},
		{"GET", "/v1/audiences/viewers/x", 404, "name"},
		{"GET", "/v1/audiences/", 404, ""},
		{"GET", "/v1/audiences/viewers?days=0", 400, "days"},
		{"GET", "/v1/audiences/viewers?days=366", 400, "days"},
		{"GET", "/v1/audiences/viewers?days=7.5", 400, "days"},
		{"GET", "/v1/audiences/viewers?days=x", 400, "days"},
		{"GET", "/v1/audiences/viewers?category=" + strings.Repeat("c", 300), 400, "category"},
		{"GET", "/v1/audiences/viewers?format=xml", 400, "format"},
		{"GET", "/v1/audiences/viewers?k=0", 400, "k"},
		{"GET", "/v1/audiences/viewers?k=101", 400, "k"},
		{"GET", "/v1/audiences/viewers?location=" + strings.Repeat("s,", 101), 400, "location"},
		{"GET", "/v1/audiences/cart_abandoners?min_age=-1h", 400, "min_age"},
		{"GET", "/v1/audiences/cart_abandoners?min_age=soon", 400, "min_age"},
		{"GET", "/v1/audiences/cart_abandoners?min_age=NaN", 400, "min_age"},
		{"GET", "/v1/audiences/cart_abandoners?max_age=0", 400, "max_age"},
		{"GET", "/v1/audiences/cart_abandoners?max_age=9000h", 400, "max_age"},
		{"GET", "/v1/audiences/cart_abandoners?min_age=3h&max_age=2h", 400, "min_age"},
		{"POST", "/v1/audiences/viewers", 405, ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, body := client{t, base}.do(tc.method, tc.path, "", "")
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

func TestAudienceNeedsReadKey(t *testing.T) {
	const writeKey, readKey = "audience-test-write-key-0123456789abcdef", "audience-test-read-key-0123456789abcdef"
	_, base := startServerWith(t, api.Options{WriteKeys: []string{writeKey}, ReadKeys: []string{readKey}})
	for _, tc := range []struct {
		key    string
		status int
	}{
		{"", 401},
		{"wrong-key-0123456789", 401},
		{readKey, 200},
		{writeKey, 200},
	} {
		var hdr []string
		if tc.key != "" {
			hdr = []string{"Authorization", "Bearer " + tc.key}
		}
		if resp, body := rawGet(t, base, "/v1/audiences/viewers", "", hdr...); resp.StatusCode != tc.status {
			t.Fatalf("key %q: %d %s, want %d", tc.key, resp.StatusCode, body, tc.status)
		}
		// An unknown audience needs a key too, to learn that it is unknown.
		if resp, body := rawGet(t, base, "/v1/audiences/nope", "", hdr...); tc.status == 401 && resp.StatusCode != 401 {
			t.Fatalf("unknown audience, key %q: %d %s", tc.key, resp.StatusCode, body)
		}
	}
}
