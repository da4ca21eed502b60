package api

import (
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

// FuzzParsePickQuery parses arbitrary query strings as fasthttp does for
// GET /v1/picks, then asks a tiny engine for picks. Nothing may panic; a
// query that parses must satisfy the limits the engine relies on; one that
// does not must name the parameter at fault. The seed corpus is in
// testdata/fuzz/FuzzParsePickQuery/. Run it with
//
//	go test ./api -run XXX -fuzz FuzzParsePickQuery -fuzztime 30s
func FuzzParsePickQuery(f *testing.F) {
	e := tinyEngine(f)
	params := map[string]bool{"customer": true, "anonymous_id": true, "channel": true, "k": true, "location": true, "context": true, "category": true, "exclude": true,
		"boost": true, "bury": true, "pin": true, "price_min": true, "price_max": true, "campaign": true, "record": true, "format": true}
	var (
		args  fasthttp.Args
		pr    pickRequest
		picks []engine.Pick
		out   []byte
	)
	q := &pr.q
	f.Fuzz(func(t *testing.T, query string) {
		args.Reset()
		args.Parse(query)
		q.Reset()
		field, msg := parsePickRequest(&pr, &args)
		if field != "" {
			if msg == "" || !params[field] {
				t.Fatalf("error on %q: field %q, message %q", query, field, msg)
			}
			return
		}
		if msg != "" {
			t.Fatalf("message %q without a field", msg)
		}
		if q.K < 0 || q.K > engine.MaxK {
			t.Fatalf("k %d", q.K)
		}
		checkID := func(name, id string, empty bool) {
			t.Helper()
			if len(id) > maxIDBytes || !utf8.ValidString(id) || (!empty && id == "") {
				t.Fatalf("%s %q", name, id)
			}
		}
		checkID("customer", q.Customer, true)
		checkID("anonymous_id", q.AnonymousID, true)
		checkID("context", q.Context, true)
		checkID("category", q.Category, true)
		if q.Customer != "" && q.AnonymousID != "" {
			t.Fatal("both customer and anonymous_id")
		}
		if len(q.Locations) > maxListItems || len(q.Exclude) > maxListItems {
			t.Fatalf("%d locations, %d excludes", len(q.Locations), len(q.Exclude))
		}
		for _, l := range q.Locations {
			checkID("location", l, false)
		}
		for _, x := range q.Exclude {
			checkID("exclude", x, false)
		}

		for _, f := range append(q.Boost, q.Bury...) {
			if f.Kind.String() == "unknown" {
				t.Fatalf("facet %+v", f)
			}
			checkID("facet", f.Name, false)
		}
		for _, p := range q.Pins {
			if p.Pos < 1 || p.Pos > engine.MaxK {
				t.Fatalf("pin %+v", p)
			}
			checkID("pin", p.Product, false)
		}
		if q.PriceMin < 0 || q.PriceMax < 0 || (q.PriceMax > 0 && q.PriceMin > q.PriceMax) {
			t.Fatalf("price range %v..%v", q.PriceMin, q.PriceMax)
		}
		picks = e.PicksInto(picks[:0], q)
		k := q.K
		if k == 0 {
			k = 10
		}
		if len(picks) > k {
			t.Fatalf("%d picks for k %d", len(picks), k)
		}
		for _, p := range picks {
			for _, x := range q.Exclude {
				if p.Item.ID == x {
					t.Fatalf("excluded %s picked", x)
				}
			}
		}
		out = AppendPicksJSON(out[:0], q, picks, 0)
		if !utf8.Valid(out) {
			t.Fatalf("response is not UTF-8: %q", out)
		}
	})
}

// tinyEngine holds three products, stock online and in one store, and a
// customer with a purchase, a view and a cart.
func tinyEngine(tb testing.TB) *engine.Engine {
	e := engine.New(engine.Options{})
	var d Decoder
	apply := func(op engine.Op, lines ...string) {
		for _, l := range lines {
			recs, rejects, err := d.Decode(op, []byte(l), true, testNow, nil, nil)
			if err != nil || len(rejects) > 0 {
				tb.Fatalf("%s: %v %v", l, err, rejects)
			}
			for i := range recs {
				if err := e.Apply(&recs[i]); err != nil {
					tb.Fatalf("%s: %v", l, err)
				}
			}
		}
	}
	apply(engine.OpLocation, `{"id":"store-1","name":"Berlin","lat":52.5,"lon":13.4}`)
	for i := range 3 {
		apply(engine.OpProduct, fmt.Sprintf(`{"id":"P%d","title":"T%d","category":"a/b%d","brand":"B","tags":["x"],"size_group":"g","variants":[{"sku":"P%d-8","size":"8"},{"sku":"P%d-10","size":"10"}]}`, i, i, i, i, i))
		apply(engine.OpInventory, fmt.Sprintf(`{"sku":"P%d-8","location":"online","quantity":3}`, i), fmt.Sprintf(`{"sku":"P%d-10","location":"store-1","quantity":1}`, i))
	}
	apply(engine.OpEvent, `{"type":"purchase","customer":"c1","sku":"P0-8"}`, `{"type":"view","customer":"c1","product":"P1"}`,
		`{"type":"cart_add","customer":"c1","sku":"P2-8"}`, `{"type":"view","anonymous_id":"a1","product":"P0"}`)
	return e
}
