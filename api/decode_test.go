package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fastjson"
)

// testNow is the receipt time used by the tests: 2026-11-22T10:00:00Z.
const testNow = 1795341600000

func decodeForTest(t *testing.T, op engine.Op, body string, ndjson bool) ([]engine.Record, []Reject) {
	t.Helper()
	var d Decoder
	recs, rejects, err := d.Decode(op, []byte(body), ndjson, testNow, nil, nil)
	if err != nil {
		t.Fatalf("Decode(%s, %.80q): unexpected error: %v", op, body, err)
	}
	checkDecoded(t, op, recs, rejects)
	return recs, rejects
}

func TestDecodeValid(t *testing.T) {
	f := func(name string, op engine.Op, body string, want ...engine.Record) {
		t.Helper()
		for _, ndjson := range []bool{false, true} {
			recs, rejects := decodeForTest(t, op, body, ndjson)
			if len(rejects) > 0 {
				t.Errorf("%s (ndjson=%v): unexpected rejects %+v", name, ndjson, rejects)
			}
			if !reflect.DeepEqual(recs, want) {
				t.Errorf("%s (ndjson=%v):\n got %+v\nwant %+v", name, ndjson, recs, want)
			}
		}
	}
	sweater := engine.Record{Op: engine.OpProduct, Product: engine.Product{
		ID: "P100", Title: "Merino sweater", URL: "https://shop.example/p/P100",
		Image: "https://shop.example/i/P100.jpg", Price: 59, Currency: "EUR",
		Category: "women/knitwear/sweaters", Brand: "Nordic", Tags: []string{"winter", "wool"},
		SizeGroup: "women-numeric",
		Variants:  []engine.Variant{{SKU: "P100-6", Size: "6"}, {SKU: "P100-8", Size: "8"}},
	}}
	const sweaterJSON = `{"id": "P100", "title": "Merino sweater", "url": "https://shop.example/p/P100",
 "image": "https://shop.example/i/P100.jpg", "price": 59.0, "currency": "EUR",
 "category": "women/knitwear/sweaters", "brand": "Nordic", "tags": ["winter", "wool"],
 "size_group": "women-numeric",
 "variants": [{"sku": "P100-6", "size": "6"}, {"sku": "P100-8", "size": "8"}]}`
	f("product from the API doc, pretty-printed", engine.OpProduct, "["+sweaterJSON+"]", sweater)
	f("single pretty-printed object", engine.OpProduct, sweaterJSON, sweater)

	hat := engine.Record{Op: engine.OpProduct, Product: engine.Product{
		ID: "H1", Title: "Hat", Variants: []engine.Variant{{SKU: "H1"}},
	}}
	f("one-size product: no variants", engine.OpProduct, `{"id":"H1","title":"Hat"}`, hat)
	f("empty group is none", engine.OpProduct, `{"id":"H1","title":"Hat","group":""}`, hat)
	f("product group", engine.OpProduct, `{"id":"H1","title":"Hat","group":"hat-design-7"}`,
		engine.Record{Op: engine.OpProduct, Product: engine.Product{ID: "H1", Title: "Hat", Variants: []engine.Variant{{SKU: "H1"}}, Group: "hat-design-7"}})
	f("one-size product: null variants", engine.OpProduct, `{"id":"H1","title":"Hat","variants":null}`, hat)
	f("one variant without size", engine.OpProduct, `{"id":"H1","title":"Hat","variants":[{"sku":"H1"}]}`, hat)
	f("retired product", engine.OpProduct, `{"id":"H1","active":false}`,
		engine.Record{Op: engine.OpProduct, Product: engine.Product{ID: "H1", Variants: []engine.Variant{{SKU: "H1"}}, Inactive: true}})
	f("active true, unknown fields ignored", engine.OpProduct,
		`{"id":"H1","active":true,"future":{"nested":[1,2,{"x":null}]},"rating":4.5}`,
		engine.Record{Op: engine.OpProduct, Product: engine.Product{ID: "H1", Variants: []engine.Variant{{SKU: "H1"}}}})
	f("tags trimmed, empty dropped", engine.OpProduct, `{"id":"H1","tags":[" a ","","  ","b\t"]}`,
		engine.Record{Op: engine.OpProduct, Product: engine.Product{ID: "H1", Tags: []string{"a", "b"}, Variants: []engine.Variant{{SKU: "H1"}}}})
	f("duplicate keys: the last counts", engine.OpProduct, `{"id":"X","id":"H1"}`,
		engine.Record{Op: engine.OpProduct, Product: engine.Product{ID: "H1", Variants: []engine.Variant{{SKU: "H1"}}}})
	f("category kept as given", engine.OpProduct, `{"id":"H1","category":"Women / Knitwear"}`,
		engine.Record{Op: engine.OpProduct, Product: engine.Product{ID: "H1", Category: "Women / Knitwear", Variants: []engine.Variant{{SKU: "H1"}}}})
	f("escapes and unicode", engine.OpProduct, `{"\u0069d":"P\u00e9","title":"caf\u00e9 \"noir\" \ud83d\ude00 <b>"}`,
		engine.Record{Op: engine.OpProduct, Product: engine.Product{ID: "Pé", Title: "café \"noir\" 😀 <b>", Variants: []engine.Variant{{SKU: "Pé"}}}})

	f("inventory", engine.OpInventory, `{"sku": "P100-8", "location": "online", "quantity": 14}
{"sku": "P100-8", "location": "store-berlin-1", "quantity": 0}
{"sku": "P100-8", "location": "online", "quantity": 1e3}
{"sku": "P100-8", "location": "online", "quantity": 1073741824}`,
		engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: "P100-8", Location: "online", Quantity: 14}},
		engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: "P100-8", Location: "store-berlin-1", Quantity: 0}},
		engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: "P100-8", Location: "online", Quantity: 1000}},
		engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: "P100-8", Location: "online", Quantity: 1 << 30}})

	f("events from the API doc", engine.OpEvent, `{"type": "view", "customer": "C42", "product": "P100", "channel": "social", "ts": "2026-11-22T10:00:00Z"}
{"type": "cart_add", "anonymous_id": "cookie-9f2", "sku": "P200-8", "channel": "web"}
{"type": "purchase", "customer": "C42", "sku": "P200-8", "location": "store-berlin-1", "channel": "store", "order": "O77", "price": 39.0}`,
		engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, Customer: "C42", Product: "P100", Channel: "social", TS: testNow}},
		engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventCartAdd, AnonymousID: "cookie-9f2", SKU: "P200-8", Channel: "web", TS: testNow}},
		engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventPurchase, Customer: "C42", SKU: "P200-8", Location: "store-berlin-1", Channel: "store", Order: "O77", Price: 39, TS: testNow}})
	f("event with product and sku, null fields", engine.OpEvent,
		`{"type":"scan","customer":"C1","anonymous_id":null,"product":"P1","sku":"P1-8","ts":null,"price":null}`,
		engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventScan, Customer: "C1", Product: "P1", SKU: "P1-8", TS: testNow}})

	f("identify", engine.OpIdentify, `{"anonymous_id": "cookie-9f2", "customer": "C42"}`,
		engine.Record{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: "cookie-9f2", Customer: "C42"}})

	f("locations", engine.OpLocation, `{"id": "store-berlin-1", "name": "Berlin Mitte", "lat": 52.5, "lon": 13.4}
{"id": "online"}
{"id": "pole", "lat": -90, "lon": 180}`,
		engine.Record{Op: engine.OpLocation, Location: engine.Location{ID: "store-berlin-1", Name: "Berlin Mitte", Lat: 52.5, Lon: 13.4, HasCoord: true}},
		engine.Record{Op: engine.OpLocation, Location: engine.Location{ID: "online"}},
		engine.Record{Op: engine.OpLocation, Location: engine.Location{ID: "pole", Lat: -90, Lon: 180, HasCoord: true}})
}

func TestDecodeBodyShapes(t *testing.T) {
	ev := func(c string) engine.Record {
		return engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, Customer: c, Product: "P1", TS: testNow}}
	}
	line := func(c string) string { return `{"type":"view","customer":"` + c + `","product":"P1"}` }
	f := func(name, body string, ndjson bool, want ...engine.Record) {
		t.Helper()
		recs, rejects := decodeForTest(t, engine.OpEvent, body, ndjson)
		if len(rejects) > 0 {
			t.Errorf("%s: unexpected rejects %+v", name, rejects)
		}
		if !reflect.DeepEqual(recs, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, recs, want)
		}
	}
	f("array", "["+line("a")+","+line("b")+"]", false, ev("a"), ev("b"))
	f("array with whitespace everywhere", " \r\n[ \n"+line("a")+" ,\n\t"+line("b")+"\n] \n", false, ev("a"), ev("b"))
	f("array declared ndjson", "["+line("a")+",\n"+line("b")+"]", true, ev("a"), ev("b"))
	f("empty array", "[]", false)
	f("empty array, spaces", " [ ] ", true)
	f("ndjson", line("a")+"\n"+line("b")+"\n", true, ev("a"), ev("b"))
	f("ndjson without final newline", line("a")+"\n"+line("b"), true, ev("a"), ev("b"))
	f("ndjson crlf and blank lines", "\r\n"+line("a")+"\r\n\r\n  \t\r\n"+line("b")+"\r\n\r\n", true, ev("a"), ev("b"))
	f("ndjson declared json", line("a")+"\n"+line("b")+"\n", false, ev("a"), ev("b"))
	f("single object declared ndjson", line("a"), true, ev("a"))
	f("byte order mark", "\xef\xbb\xbf"+line("a"), false, ev("a"))
	f("empty ndjson body", "", true)
	f("blank ndjson body", "\n\r\n  \n", true)
}

func TestDecodeBodyErrors(t *testing.T) {
	f := func(body string, ndjson bool, wantErr string) {
		t.Helper()
		var d Decoder
		prev := []engine.Record{{Op: engine.OpIdentify}}
		prevRejects := []Reject{{Index: 7}}
		recs, rejects, err := d.Decode(engine.OpEvent, []byte(body), ndjson, testNow, prev, prevRejects)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Decode(%.40q, ndjson=%v): error %v, want one containing %q", body, ndjson, err, wantErr)
		}
		if len(recs) != 1 || len(rejects) != 1 {
			t.Errorf("Decode(%.40q): on error, got %d records and %d rejects, want the caller's 1 and 1", body, len(recs), len(rejects))
		}
	}
	ok := `{"type":"view","customer":"a","product":"P1"}`
	f("", false, "empty body")
	f(" \n ", false, "empty body")
	f(`"hello"`, false, "must be a json array or object")
	f(`42`, false, "must be a json array or object")
	f(`null`, false, "must be a json array or object")
	f(`[`, false, "missing element 0") // nothing where the first element should be
	f(`[`+ok, false, "missing ']'")
	f(`[`+ok, true, "missing ']'")
	f(`[`+ok+`,`, false, "missing element 1")
	f(`[`+ok+`,]`, false, "missing element 1")
	f(`[,`+ok+`]`, false, "missing element 0")
	f(`[`+ok+` `+ok+`]`, false, "missing ',' or ']' after element 0")
	f(`[`+ok+`]x`, false, "unexpected data after ']'")
	f(`[`+ok+`][]`, false, "unexpected data after ']'")
	f(`[{"type":"view}]`, false, "element 0 is not terminated")
	f(`[{"a":[1,2}]`, false, "missing ']'") // brackets are only counted, the element is checked when parsed
	f(`{"type":"view"`, false, "unexpected end of body")
	f(strings.Repeat("[", 100000), false, "not terminated")
	f(strings.Repeat("[", 100000), true, "not terminated")
	f(`[`+strings.Repeat("{", 100000), false, "not terminated")
}

// TestDecodeDeepNesting checks that nesting too deep for fastjson is a
// Reject (or an error for the body), never a stack overflow.
func TestDecodeDeepNesting(t *testing.T) {
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	deepObj := `{"type":"view","customer":"a","product":"P1","x":` + deep + `}`
	body := "[" + deep + "," + deepObj + "]"
	recs, rejects := decodeForTest(t, engine.OpEvent, body, false)
	if len(recs) != 0 || len(rejects) != 2 {
		t.Fatalf("got %d records, %+v; want 2 rejects", len(recs), rejects)
	}
	for _, r := range rejects {
		if r.Reason != "invalid json: nested deeper than 64 levels" {
			t.Errorf("reject %+v: want a reason about depth", r)
		}
	}
	_, rejects = decodeForTest(t, engine.OpEvent, deepObj+"\n"+deep+"\n", true)
	if len(rejects) != 2 {
		t.Fatalf("ndjson: got rejects %+v, want 2", rejects)
	}
}

func TestDecodeRejects(t *testing.T) {
	long := strings.Repeat("x", 257)
	longText := strings.Repeat("x", 4097)
	many := func(n int, item func(i int) string) string {
		s := make([]string, n)
		for i := range s {
			s[i] = item(i)
		}
		return strings.Join(s, ",")
	}
	type tc struct {
		op     engine.Op
		obj    string // one object (or what should be one) on one line
		field  string
		reason string // a substring of the reason
	}
	P, I, E, ID, L := engine.OpProduct, engine.OpInventory, engine.OpEvent, engine.OpIdentify, engine.OpLocation
	tests := []tc{
		// Whole object.
		{P, `[{"id":"P1"}]`, "", "must be a json object"},
		{P, `"P1"`, "", "must be a json object"},
		{P, `null`, "", "must be a json object"},
		{P, `{"id":"P1",}`, "", "invalid json"},
		{P, `{"id":"P1"} {"id":"P2"}`, "", "invalid json"},
		{P, `{"id":P1}`, "", "invalid json"},

		// Products.
		{P, `{}`, "id", "is required"},
		{P, `{"id":null}`, "id", "is required"},
		{P, `{"id":""}`, "id", "must not be empty"},
		{P, `{"id":12}`, "id", "must be a string"},
		{P, `{"id":{"v":"P1"}}`, "id", "must be a string"},
		{P, `{"id":["P1"]}`, "id", "must be a string"},
		{P, `{"id":"` + long + `"}`, "id", "at most 256 bytes"},
		{P, `{"id":"P\u00001"}`, "id", "control characters"},
		{P, `{"id":"P\n1"}`, "id", "control characters"},
		{P, `{"id":"P` + "\t" + `1"}`, "", "invalid json: control character in string at byte 8"},
		{P, `{"id":"P\u00851"}`, "id", "control characters"},
		{P, `{"id":"P\u007f1"}`, "id", "control characters"},
		{P, `{"id":"P` + "\xff" + `1"}`, "id", "valid utf-8"},
		{P, `{"id":"P1","title":"` + "\xc3\x28" + `"}`, "title", "valid utf-8"},
		{P, `{"id":"P1","title":"` + longText + `"}`, "title", "at most 4096 bytes"},
		{P, `{"id":"P1","title":7}`, "title", "must be a string"},
		{P, `{"id":"P1","url":"` + longText + `"}`, "url", "at most 4096 bytes"},
		{P, `{"id":"P1","image":true}`, "image", "must be a string"},
		{P, `{"id":"P1","price":"59"}`, "price", "must be a number"},
		{P, `{"id":"P1","price":-1}`, "price", "between 0 and 1000000000"},
		{P, `{"id":"P1","price":1e10}`, "price", "between 0 and 1000000000"},
		{P, `{"id":"P1","price":1e999}`, "price", "finite"},
		{P, `{"id":"P1","price":-1e999}`, "price", "finite"},
		// fastjson accepts these; checkJSON does not.
		{P, `{"id":"P1","price":NaN}`, "", "invalid json: unexpected \"N\" at byte 19"},
		{P, `{"id":"P1","price":nan}`, "", "invalid json: unexpected \"n\" at byte 19"},
		{P, `{"id":"P1","price":inf}`, "", "invalid json: unexpected \"i\" at byte 19"},
		{P, `{"id":"P1","price":-Inf}`, "", "invalid json: invalid number at byte 19"},
		{P, `{"id":"P1","price":+1}`, "", "invalid json: unexpected \"+\" at byte 19"},
		{P, `{"id":"P1","price":.5}`, "", "invalid json: unexpected \".\" at byte 19"},
		{P, `{"id":"P1","price":1.}`, "", "invalid json: invalid number at byte 19"},
		{P, `{"id":"P1","price":01}`, "", "invalid json: invalid number at byte 19"},
		{P, `{"id":"P1","price":1e}`, "", "invalid json: invalid number at byte 19"},
		{P, `{"id":"P1","price":1.2.3}`, "", "invalid json: invalid number at byte 19"},
		{P, `{"id":"P1","price":--1}`, "", "invalid json: invalid number at byte 19"},
		{P, `{"id":"P1","title":"a\xb"}`, "", "invalid json: invalid escape at byte 21"},
		{P, `{"id":"P1","title":"a\u12G4"}`, "", "invalid json: invalid escape at byte 21"},
		{P, `{"id":"P1","title":"a` + "\x01" + `"}`, "", "invalid json: control character in string at byte 21"},
		{P, `{"id":"P1","title":"abc}`, "", "invalid json: unexpected end of input"},
		{P, `{"id":"P1","active":tru}`, "", "invalid json: unexpected \"t\" at byte 20"},
		{P, `{"id":"P1","active":truex}`, "", "invalid json: unexpected \"x\" at byte 24"},
		{P, `{"id":"P1" "title":"x"}`, "", "invalid json: unexpected \"\\\"\" at byte 11"},
		{P, `{"id":"P1",}`, "", "invalid json: unexpected \"}\" at byte 11"},
		{P, `{"id":"P1"]`, "", "invalid json: unexpected \"]\" at byte 10"},
		{P, `{"id" "P1"}`, "", "invalid json: unexpected \"\\\"\" at byte 6"},
		{P, `{id:"P1"}`, "", "invalid json: unexpected \"i\" at byte 1"},
		{P, `{"id":"P1"} x`, "", "invalid json: unexpected \"x\" at byte 12"},
		{P, "{\"id\":\"P1\"}\x00", "", "invalid json: unexpected \"\\x00\" at byte 11"},
		{P, `{"id":"P1","currency":["EUR"]}`, "currency", "must be a string"},
		{P, `{"id":"P1","category":{}}`, "category", "must be a string"},
		{P, `{"id":"P1","brand":1}`, "brand", "must be a string"},
		{P, `{"id":"P1","tags":"winter"}`, "tags", "array of strings"},
		{P, `{"id":"P1","tags":["a",1]}`, "tags[1]", "must be a string"},
		{P, `{"id":"P1","tags":["a",null]}`, "tags[1]", "must be a string"},
		{P, `{"id":"P1","tags":["a","` + "\xff" + `"]}`, "tags[1]", "valid utf-8"},
		{P, `{"id":"P1","tags":[` + many(65, func(i int) string { return strconv.Quote(strconv.Itoa(i)) }) + `]}`, "tags", "at most 64"},
		{P, `{"id":"P1","size_group":"\u0001"}`, "size_group", "must not contain control characters"},
		{P, `{"id":"P1","size_group":"` + long + `"}`, "size_group", "at most 256 bytes"},
		{P, `{"id":"P1","group":7}`, "group", "must be a string"},
		{P, `{"id":"P1","group":"` + long + `"}`, "group", "at most 256 bytes"},
		{P, `{"id":"P1","variants":[]}`, "variants", "must not be empty"},
		{P, `{"id":"P1","variants":{"sku":"P1-8"}}`, "variants", "array of objects"},
		{P, `{"id":"P1","variants":["P1-8"]}`, "variants[0]", "must be an object"},
		{P, `{"id":"P1","variants":[{"sku":"P1-6"},{"size":"8"}]}`, "variants[1].sku", "is required"},
		{P, `{"id":"P1","variants":[{"sku":"P1-6"},{"sku":""}]}`, "variants[1].sku", "must not be empty"},
		{P, `{"id":"P1","variants":[{"sku":"P1-6"},{"sku":8}]}`, "variants[1].sku", "must be a string"},
		{P, `{"id":"P1","variants":[{"sku":"P1-6","size":6}]}`, "variants[0].size", "must be a string"},
		{P, `{"id":"P1","variants":[{"sku":"P1-6","size":""}]}`, "variants[0].size", "must not be empty"},
		{P, `{"id":"P1","variants":[{"sku":"P1-6","size":"` + long + `"}]}`, "variants[0].size", "at most 256 bytes"},
		{P, `{"id":"P1","variants":[{"sku":"P1-6"},{"sku":"P1-8"},{"sku":"P1-6"}]}`, "variants[2].sku", "duplicate sku"},
		{P, `{"id":"P1","variants":[` + many(65, func(i int) string { return `{"sku":"s` + strconv.Itoa(i) + `"}` }) + `]}`, "variants", "at most 64"},
		{P, `{"id":"P1","active":"false"}`, "active", "true or false"},
		{P, `{"id":"P1","active":0}`, "active", "true or false"},
		// The first field in check order is named, whatever the key order.
		{P, `{"price":-1,"title":1,"id":""}`, "id", "must not be empty"},

		// Inventory.
		{I, `{"location":"online","quantity":1}`, "sku", "is required"},
		{I, `{"sku":"","location":"online","quantity":1}`, "sku", "must not be empty"},
		{I, `{"sku":"S1","quantity":1}`, "location", "is required"},
		{I, `{"sku":"S1","location":"on\u0001line","quantity":1}`, "location", "control characters"},
		{I, `{"sku":"S1","location":"online"}`, "quantity", "is required"},
		{I, `{"sku":"S1","location":"online","quantity":null}`, "quantity", "is required"},
		{I, `{"sku":"S1","location":"online","quantity":"3"}`, "quantity", "must be a number"},
		{I, `{"sku":"S1","location":"online","quantity":-1}`, "quantity", "must not be negative"},
		{I, `{"sku":"S1","location":"online","quantity":1.5}`, "quantity", "must be an integer"},
		{I, `{"sku":"S1","location":"online","quantity":1073741825}`, "quantity", "at most 1073741824"},
		{I, `{"sku":"S1","location":"online","quantity":1e999}`, "quantity", "finite"},
		{I, `{"sku":"S1","location":"online","quantity":1e300}`, "quantity", "at most 1073741824"},

		// Events.
		{E, `{"customer":"C1","product":"P1"}`, "type", "is required"},
		{E, `{"type":"like","customer":"C1","product":"P1"}`, "type", "unknown event type"},
		{E, `{"type":"View","customer":"C1","product":"P1"}`, "type", "view, cart_add, cart_remove, purchase, return, scan, email_click, ad_click, impression"},
		{E, `{"type":1,"customer":"C1","product":"P1"}`, "type", "must be a string"},
		{E, `{"type":"view","product":"P1"}`, "customer", "customer or anonymous_id is required"},
		{E, `{"type":"view","customer":null,"anonymous_id":null,"product":"P1"}`, "customer", "customer or anonymous_id is required"},
		{E, `{"type":"view","customer":"C1","anonymous_id":"A1","product":"P1"}`, "anonymous_id", "not both"},
		{E, `{"type":"view","customer":"","product":"P1"}`, "customer", "must not be empty"},
		{E, `{"type":"view","customer":"` + long + `","product":"P1"}`, "customer", "at most 256 bytes"},
		{E, `{"type":"view","anonymous_id":"a\u001fb","product":"P1"}`, "anonymous_id", "control characters"},
		{E, `{"type":"view","anonymous_id":["a"],"product":"P1"}`, "anonymous_id", "must be a string"},
		{E, `{"type":"view","customer":"C1"}`, "product", "product or sku is required"},
		{E, `{"type":"view","customer":"C1","product":""}`, "product", "must not be empty"},
		{E, `{"type":"view","customer":"C1","sku":"` + "\xed\xa0\x80" + `"}`, "sku", "valid utf-8"},
		{E, `{"type":"view","customer":"C1","product":"P1","channel":5}`, "channel", "must be a string"},
		{E, `{"type":"view","customer":"C1","product":"P1","location":""}`, "location", "must not be empty"},
		{E, `{"type":"view","customer":"C1","product":"P1","order":"` + long + `"}`, "order", "at most 256 bytes"},
		{E, `{"type":"purchase","customer":"C1","product":"P1","price":-0.01}`, "price", "between 0 and 1000000000"},
		{E, `{"type":"purchase","customer":"C1","product":"P1","price":"39"}`, "price", "must be a number"},
		{E, `{"type":"view","customer":"C1","product":"P1","ts":"yesterday"}`, "ts", "rfc 3339"},
		{E, `{"type":"view","customer":"C1","product":"P1","ts":""}`, "ts", "rfc 3339"},
		{E, `{"type":"view","customer":"C1","product":"P1","ts":"2026-11-22 10:00:00Z"}`, "ts", "rfc 3339"},
		{E, `{"type":"view","customer":"C1","product":"P1","ts":"2026-11-22T10:00:00"}`, "ts", "rfc 3339"},
		{E, `{"type":"view","customer":"C1","product":"P1","ts":"2026-02-30T10:00:00Z"}`, "ts", "rfc 3339"},
		{E, `{"type":"view","customer":"C1","product":"P1","ts":true}`, "ts", "rfc 3339"},
		{E, `{"type":"view","customer":"C1","product":"P1","ts":"1999-12-31T23:59:59Z"}`, "ts", "between 2000-01-01 and 2100-01-01"},
		{E, `{"type":"view","customer":"C1","product":"P1","ts":"2100-01-01T00:00:00Z"}`, "ts", "between 2000-01-01 and 2100-01-01"},
		{E, `{"type":"view","customer":"C1","product":"P1","ts":1795428000}`, "ts", "between 2000-01-01 and 2100-01-01"}, // seconds, not ms
		{E, `{"type":"view","customer":"C1","product":"P1","ts":-1}`, "ts", "between 2000-01-01 and 2100-01-01"},
		{E, `{"type":"view","customer":"C1","product":"P1","ts":1e999}`, "ts", "finite"},
		{E, `{"type":"view","customer":"C1","product":"P1","ts":NaN}`, "", "invalid json"},

		// Identify.
		{ID, `{"customer":"C1"}`, "anonymous_id", "is required"},
		{ID, `{"anonymous_id":"A1"}`, "customer", "is required"},
		{ID, `{"anonymous_id":"A1","customer":""}`, "customer", "must not be empty"},
		{ID, `{"anonymous_id":1,"customer":"C1"}`, "anonymous_id", "must be a string"},

		// Locations.
		{L, `{"name":"Berlin"}`, "id", "is required"},
		{L, `{"id":"","name":"Berlin"}`, "id", "must not be empty"},
		{L, `{"id":"B1","name":["Berlin"]}`, "name", "must be a string"},
		{L, `{"id":"B1","name":"` + longText + `"}`, "name", "at most 4096 bytes"},
		{L, `{"id":"B1","lat":52.5}`, "lon", "go together"},
		{L, `{"id":"B1","lon":13.4}`, "lat", "go together"},
		{L, `{"id":"B1","lat":"52.5","lon":13.4}`, "lat", "must be a number"},
		{L, `{"id":"B1","lat":90.01,"lon":13.4}`, "lat", "between -90 and 90"},
		{L, `{"id":"B1","lat":-91,"lon":13.4}`, "lat", "between -90 and 90"},
		{L, `{"id":"B1","lat":52.5,"lon":180.5}`, "lon", "between -180 and 180"},
		{L, `{"id":"B1","lat":52.5,"lon":-1e999}`, "lon", "finite"},
	}
	valid := map[engine.Op]string{
		P:  `{"id":"P0"}`,
		I:  `{"sku":"S0","location":"online","quantity":1}`,
		E:  `{"type":"view","customer":"C0","product":"P0"}`,
		ID: `{"anonymous_id":"A0","customer":"C0"}`,
		L:  `{"id":"L0"}`,
	}
	for _, tt := range tests {
		// As the second element of an array, and as the second line of
		// NDJSON; objects that would break the array are tried in NDJSON
		// only.
		for _, ndjson := range []bool{false, true} {
			body := "[" + valid[tt.op] + ",\n" + tt.obj + "]"
			if ndjson {
				body = valid[tt.op] + "\n" + tt.obj + "\n"
			} else if _, _, err := new(Decoder).Decode(tt.op, []byte(body), false, testNow, nil, nil); err != nil && tt.field == "" {
				continue
			}
			recs, rejects := decodeForTest(t, tt.op, body, ndjson)
			if len(recs) != 1 || len(rejects) != 1 {
				t.Errorf("%s %.80q (ndjson=%v): got records %+v, rejects %+v; want one reject", tt.op, tt.obj, ndjson, recs, rejects)
				continue
			}
			r := rejects[0]
			if r.Index != 1 || r.Field != tt.field || !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("%s %.80q (ndjson=%v): got %+v, want field %q, reason containing %q", tt.op, tt.obj, ndjson, r, tt.field, tt.reason)
			}
			if r.Reason != strings.ToLower(r.Reason) && !strings.HasPrefix(r.Reason, "invalid json") {
				t.Errorf("%s %.80q: reason %q is not lowercase", tt.op, tt.obj, r.Reason)
			}
		}
	}
}

func TestDecodeInvalidJSONReasons(t *testing.T) {
	f := func(line, want string) {
		t.Helper()
		_, rejects := decodeForTest(t, engine.OpEvent, "{}\n"+line+"\n", true)
		if len(rejects) != 2 || rejects[1].Reason != want {
			t.Errorf("%.60q: got %+v, want reason %q", line, rejects, want)
		}
	}
	f(`{"a":[1,2,{"b":x}]}`, `invalid json: unexpected "x" at byte 15`)
	f(`{"a":1}}`, `invalid json: unexpected "}" at byte 7`)
	f(`{"a":1,}`, `invalid json: unexpected "}" at byte 7`)
	f(`{"a":[}`, `invalid json: unexpected "}" at byte 6`)
	f(`{"a":[1}`, `invalid json: unexpected "}" at byte 7`)
	f(`{"a":{]}`, `invalid json: unexpected "]" at byte 6`)
	f(`{"a":`, `invalid json: unexpected end of input`)
	f("{}\t x", `invalid json: unexpected "x" at byte 4`)
	f(`{"a":[] }x`, `invalid json: unexpected "x" at byte 9`)
	f("{\"a\":\"\xff\"x}", `invalid json: unexpected "x" at byte 8`)
	f(`{"a":`+strings.Repeat("[", 63)+strings.Repeat("]", 63)+`}`, "is required") // 64 levels: valid JSON, then no type
	f(`{"a":`+strings.Repeat("[", 64), `invalid json: nested deeper than 64 levels`)
	f(strings.Repeat(`{"a":`, 65), `invalid json: nested deeper than 64 levels`)
}

// TestJSONErrorReason covers the fallback for errors of fastjson itself,
// which checkJSON makes unreachable.
func TestJSONErrorReason(t *testing.T) {
	var p fastjson.Parser
	_, err := p.Parse(strings.Repeat("[", 1000))
	if got := jsonErrorReason(err); got != "invalid json: nested deeper than 300 levels" {
		t.Errorf("depth: got %q", got)
	}
	_, err = p.Parse(`{"a":[1,{"b":x}]}`)
	if got, want := jsonErrorReason(err), `invalid json: cannot parse number: unexpected char: "x"; unparsed tail: "x}]}"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestDecodeHostileCost checks that an invalid line costs a bounded number
// of allocations, whatever its nesting: fastjson's error path makes a
// fmt.Errorf per nesting level, which made 1 MiB of "[[[...x" lines take
// over ten seconds before checkJSON kept invalid JSON away from it.
func TestDecodeHostileCost(t *testing.T) {
	var d Decoder
	for _, line := range []string{
		strings.Repeat("[", 63) + "x",
		strings.Repeat("[", 300) + "x",
		strings.Repeat(`{"a":`, 300),
		`{"a":x}`,
		`{"type":"view","customer":"C1","product":"P1","price":NaN}`,
	} {
		const n = 100
		body := []byte("{}\n" + strings.Repeat(line+"\n", n))
		var rejects []Reject
		allocs := testing.AllocsPerRun(5, func() {
			var err error
			_, rejects, err = d.Decode(engine.OpEvent, body, true, testNow, nil, rejects[:0])
			if err != nil || len(rejects) != n+1 {
				t.Fatalf("%v, %d rejects", err, len(rejects))
			}
		})
		if allocs > 3*n {
			t.Errorf("%d lines of %.20q: %.0f allocations, want at most 3 a line", n, line, allocs)
		}
	}
}

func TestDecodeMixed(t *testing.T) {
	body := strings.Join([]string{
		`{"type":"view","customer":"C1","product":"P1"}`, // 0 ok
		``,                                // blank: not counted
		`{"type":"view","customer":"C1"}`, // 1 product
		`{"type":"view","customer":"C1","product":"P2"`, // 2 invalid json
		`   `, // blank
		`{"type":"nope","customer":"C1","product":"P1"}`,     // 3 type
		`{"type":"cart_add","anonymous_id":"A1","sku":"S1"}`, // 4 ok
		`[1,2]`, // 5 not an object
		"{\"type\":\"view\",\"customer\":\"C\xff\",\"sku\":1}", // 6 customer
		`{"type":"return","customer":"C2","sku":"S2"}`,         // 7 ok
	}, "\r\n")
	type want struct {
		index int
		field string
	}
	wantRejects := []want{{1, "product"}, {2, ""}, {3, "type"}, {5, ""}, {6, "customer"}}
	check := func(name string, recs []engine.Record, rejects []Reject) {
		t.Helper()
		if len(recs) != 3 || recs[0].Event.Product != "P1" || recs[1].Event.SKU != "S1" || recs[2].Event.SKU != "S2" {
			t.Errorf("%s: records %+v", name, recs)
		}
		if len(rejects) != len(wantRejects) {
			t.Fatalf("%s: rejects %+v", name, rejects)
		}
		for i, w := range wantRejects {
			if rejects[i].Index != w.index || rejects[i].Field != w.field {
				t.Errorf("%s: reject %d is %+v, want index %d field %q", name, i, rejects[i], w.index, w.field)
			}
		}
	}
	recs, rejects := decodeForTest(t, engine.OpEvent, body, true)
	check("ndjson", recs, rejects)

	// The same objects as an array (without the unparseable one, which
	// would break the array, and with a balanced but invalid one instead).
	arr := `[{"type":"view","customer":"C1","product":"P1"},
	{"type":"view","customer":"C1"},
	{"type":"view","customer":"C1","product":P2},
	{"type":"nope","customer":"C1","product":"P1"},
	{"type":"cart_add","anonymous_id":"A1","sku":"S1"},
	[1,2],
	{"type":"view","customer":"C` + "\xff" + `","sku":1},
	{"type":"return","customer":"C2","sku":"S2"}]`
	recs, rejects = decodeForTest(t, engine.OpEvent, arr, false)
	check("array", recs, rejects)
}

func TestDecodeTS(t *testing.T) {
	f := func(ts string, want int64) {
		t.Helper()
		body := `{"type":"view","customer":"C1","product":"P1","ts":` + ts + `}`
		recs, rejects := decodeForTest(t, engine.OpEvent, body, true)
		if len(rejects) != 0 || len(recs) != 1 {
			t.Fatalf("ts %s: rejects %+v", ts, rejects)
		}
		if got := recs[0].Event.TS; got != want {
			t.Errorf("ts %s: got %d, want %d", ts, got, want)
		}
	}
	f(`"2026-11-22T10:00:00Z"`, 1795341600000)
	f(`"2026-11-22T10:00:00.123Z"`, 1795341600123)
	f(`"2026-11-22T10:00:00.123456789Z"`, 1795341600123)
	f(`"2026-11-22T11:00:00+01:00"`, 1795341600000)
	f(`"2026-11-22T05:30:00-04:30"`, 1795341600000)
	f(`"2026-11-22T10:00:00.5+00:00"`, 1795341600500)
	f(`1795341600000`, 1795341600000)
	f(`1795341600123.9`, 1795341600123)
	f(`1.7953416e12`, 1795341600000)
	f(`"2000-01-01T00:00:00Z"`, 946684800000)
	f(`946684800000`, 946684800000)
	f(`"2099-12-31T23:59:59.999Z"`, 4102444799999)
	f(`null`, testNow)
}

func TestDecodeBigBatches(t *testing.T) {
	const n = 20000
	var ndjson, arr bytes.Buffer
	arr.WriteByte('[')
	for i := range n {
		line := fmt.Sprintf(`{"type":"view","customer":"C%d","product":"P%d","channel":"web","ts":%d}`, i, i%97, testNow-int64(i))
		if i%1000 == 999 {
			line = `{"type":"view","customer":"C"}` // no product
		}
		ndjson.WriteString(line + "\n")
		if i > 0 {
			arr.WriteByte(',')
		}
		arr.WriteString(line)
	}
	arr.WriteByte(']')
	var d Decoder
	var recs []engine.Record
	var rejects []Reject
	for _, tc := range []struct {
		body   []byte
		ndjson bool
	}{{ndjson.Bytes(), true}, {arr.Bytes(), false}, {ndjson.Bytes(), false}} {
		var err error
		recs, rejects, err = d.Decode(engine.OpEvent, tc.body, tc.ndjson, testNow, recs[:0], rejects[:0])
		if err != nil {
			t.Fatal(err)
		}
		checkDecoded(t, engine.OpEvent, recs, rejects)
		if len(recs) != n-n/1000 || len(rejects) != n/1000 {
			t.Fatalf("got %d records and %d rejects", len(recs), len(rejects))
		}
		for i, r := range rejects {
			if r.Index != i*1000+999 || r.Field != "product" {
				t.Fatalf("reject %d: %+v", i, r)
			}
		}
		if e := recs[12345].Event; e.Customer != "C12357" || e.TS != testNow-12357 {
			t.Fatalf("record 12345: %+v", e)
		}
	}
}

// TestDecodeOwnsStrings checks that records share no memory with the body
// or the Decoder: both are reused as soon as Decode returns.
func TestDecodeOwnsStrings(t *testing.T) {
	bodies := map[engine.Op]string{
		engine.OpProduct:   `{"id":"P100","title":"Merino","url":"u","image":"i","currency":"EUR","category":"c/d","brand":"b","tags":["t1"," t2 "],"size_group":"g","variants":[{"sku":"P100-6","size":"6"}]}`,
		engine.OpInventory: `{"sku":"P100-8","location":"store-berlin-1","quantity":14}`,
		engine.OpEvent:     `{"type":"purchase","customer":"C42","sku":"P200-8","product":"P200","location":"store-9","channel":"kiosk","order":"O77","price":39.0}`,
		engine.OpIdentify:  `{"anonymous_id":"cookie-9f2","customer":"C42"}`,
		engine.OpLocation:  `{"id":"store-berlin-1","name":"Berlin","lat":52.5,"lon":13.4}`,
	}
	var d Decoder
	for op, s := range bodies {
		for _, ndjson := range []bool{false, true} {
			body := []byte(s)
			recs, _, err := d.Decode(op, body, ndjson, testNow, nil, nil)
			if err != nil || len(recs) != 1 {
				t.Fatalf("%s: %v %+v", op, err, recs)
			}
			want := fmt.Sprintf("%+v", recs)
			for i := range body {
				body[i] = 'X'
			}
			// Reuse the parser on a body of the same shape.
			if _, _, err := d.Decode(op, []byte(strings.ReplaceAll(s, `"`, `"Z`)), ndjson, testNow, nil, nil); err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%+v", recs); got != want {
				t.Errorf("%s: records changed after body and decoder reuse:\n got %s\nwant %s", op, got, want)
			}
		}
	}
}

func TestDecodeUnknownOp(t *testing.T) {
	var d Decoder
	if _, _, err := d.Decode(engine.Op(99), []byte(`{}`), false, testNow, nil, nil); err == nil {
		t.Fatal("want an error for an unknown op")
	}
}

func TestUnknownEventTypeReason(t *testing.T) {
	for _, name := range []string{"view", "cart_add", "cart_remove", "purchase", "return", "scan", "email_click", "ad_click", "impression"} {
		if _, ok := engine.ParseEventType(name); !ok {
			t.Errorf("engine does not know %q", name)
		}
		if !strings.Contains(unknownEventTypeReason, " "+name) {
			t.Errorf("reason %q does not list %q", unknownEventTypeReason, name)
		}
	}
}

// TestDecodeEventsAllocs guards the ingest path's allocation budget: one
// allocation per kept string (customer, product or sku), none per line for
// parsing, channels or timestamps.
func TestDecodeEventsAllocs(t *testing.T) {
	body := benchEventsBody(1000)
	var d Decoder
	recs := make([]engine.Record, 0, 1000)
	var rejects []Reject
	allocs := testing.AllocsPerRun(20, func() {
		var err error
		recs, rejects, err = d.Decode(engine.OpEvent, body, true, testNow, recs[:0], rejects[:0])
		if err != nil || len(recs) != 1000 {
			t.Fatalf("Decode: %v, %d records, rejects %+v", err, len(recs), rejects)
		}
	})
	if allocs > 2*1000+10 {
		t.Errorf("Decode of 1000 events: %.0f allocations, want at most 2 per event", allocs)
	}
}

func TestAppendRejectsJSON(t *testing.T) {
	f := func(applied int, rejects []Reject, want string) {
		t.Helper()
		got := AppendRejectsJSON([]byte("prefix:"), applied, rejects)
		if string(got) != "prefix:"+want {
			t.Errorf("got  %s\nwant prefix:%s", got, want)
		}
		if !json.Valid(got[len("prefix:"):]) {
			t.Errorf("not valid JSON: %s", got)
		}
	}
	f(0, nil, `{"applied":0,"rejected":[]}`)
	f(3, []Reject{{Index: 1, Field: "variants[1].sku", Reason: "duplicate sku"}, {Index: 4, Reason: `invalid json: "x"`}},
		`{"applied":3,"rejected":[{"index":1,"field":"variants[1].sku","reason":"duplicate sku"},{"index":4,"field":"","reason":"invalid json: \"x\""}]}`)
}

// checkDecoded checks the invariants every decoded batch holds, whatever
// the input: it is shared by the tests and the fuzz targets.
func checkDecoded(t *testing.T, op engine.Op, recs []engine.Record, rejects []Reject) {
	t.Helper()
	n := len(recs) + len(rejects)
	for i, r := range rejects {
		if r.Index < 0 || r.Index >= n || i > 0 && r.Index <= rejects[i-1].Index {
			t.Fatalf("reject %d has index %d (of %d objects, previous %+v)", i, r.Index, n, rejects[max(i-1, 0)])
		}
		if r.Reason == "" || !utf8.ValidString(r.Reason) || !utf8.ValidString(r.Field) {
			t.Fatalf("reject %d: %+v", i, r)
		}
	}
	id := func(what, s string) {
		t.Helper()
		if checkID([]byte(s)) != "" {
			t.Fatalf("%s: bad id %q", what, s)
		}
	}
	optID := func(what, s string) {
		t.Helper()
		if s != "" {
			id(what, s)
		}
	}
	text := func(what, s string) {
		t.Helper()
		if len(s) > maxTextLen || !utf8.ValidString(s) {
			t.Fatalf("%s: bad text %q", what, s)
		}
	}
	num := func(what string, f, lo, hi float64) {
		t.Helper()
		if math.IsNaN(f) || math.IsInf(f, 0) || f < lo || f > hi {
			t.Fatalf("%s: bad number %v", what, f)
		}
	}
	for _, r := range recs {
		if r.Op != op {
			t.Fatalf("record op %s, want %s", r.Op, op)
		}
		switch op {
		case engine.OpProduct:
			p := r.Product
			id("product id", p.ID)
			for _, s := range []string{p.Title, p.URL, p.Image, p.Currency, p.Category, p.Brand} {
				text("product text", s)
			}
			num("price", p.Price, 0, maxPrice)
			optID("size_group", p.SizeGroup)
			if len(p.Tags) > maxTags {
				t.Fatalf("%d tags", len(p.Tags))
			}
			for _, tag := range p.Tags {
				text("tag", tag)
				if tag == "" || strings.TrimSpace(tag) != tag {
					t.Fatalf("tag %q not trimmed", tag)
				}
			}
			if len(p.Attributes) > maxAttributes {
				t.Fatalf("%d attributes", len(p.Attributes))
			}
			for i, a := range p.Attributes {
				text("attribute", a.Value)
				if !validAttributeKey([]byte(a.Key)) || a.Value == "" || strings.TrimSpace(a.Value) != a.Value || len(a.Value) > maxAttributeValue ||
					i > 0 && p.Attributes[i-1].Key >= a.Key {
					t.Fatalf("attributes %v: want valid keys, sorted and unique, trimmed non-empty values", p.Attributes)
				}
			}
			if len(p.Variants) == 0 || len(p.Variants) > maxVariants {
				t.Fatalf("%d variants", len(p.Variants))
			}
			seen := map[string]bool{}
			for _, v := range p.Variants {
				id("sku", v.SKU)
				optID("size", v.Size)
				if seen[v.SKU] {
					t.Fatalf("duplicate sku %q", v.SKU)
				}
				seen[v.SKU] = true
			}
		case engine.OpInventory:
			id("sku", r.Inventory.SKU)
			id("location", r.Inventory.Location)
			if q := r.Inventory.Quantity; q < 0 || q > maxQuantity {
				t.Fatalf("quantity %d", q)
			}
		case engine.OpEvent:
			e := r.Event
			if _, ok := engine.ParseEventType(e.Type.String()); !ok {
				t.Fatalf("event type %d", e.Type)
			}
			if (e.Customer == "") == (e.AnonymousID == "") {
				t.Fatalf("event actor: customer %q, anonymous_id %q", e.Customer, e.AnonymousID)
			}
			optID("customer", e.Customer)
			optID("anonymous_id", e.AnonymousID)
			if e.Product == "" && e.SKU == "" {
				t.Fatal("event without product or sku")
			}
			optID("product", e.Product)
			optID("sku", e.SKU)
			optID("channel", e.Channel)
			optID("location", e.Location)
			optID("order", e.Order)
			num("price", e.Price, 0, maxPrice)
			if e.TS < minTS || e.TS >= maxTS {
				t.Fatalf("ts %d", e.TS)
			}
		case engine.OpIdentify:
			l := r.Identify
			id("anonymous_id", l.AnonymousID)
			optID("customer", l.Customer)
			optID("to_anonymous_id", l.ToAnonymousID)
			if (l.Customer == "") == (l.ToAnonymousID == "") || l.ToAnonymousID == l.AnonymousID {
				t.Fatalf("identify: %+v", l)
			}
		case engine.OpExclusion:
			x := r.Exclusion
			optID("customer", x.Customer)
			optID("anonymous_id", x.AnonymousID)
			if x.Customer != "" && x.AnonymousID != "" {
				t.Fatalf("exclusion for two actors: %+v", x)
			}
			id("product", x.Product)
			if x.Until < minTS || x.Until >= maxTS {
				t.Fatalf("until %d", x.Until)
			}
		case engine.OpLocation:
			l := r.Location
			id("location id", l.ID)
			text("name", l.Name)
			num("lat", l.Lat, -90, 90)
			num("lon", l.Lon, -180, 180)
			if !l.HasCoord && (l.Lat != 0 || l.Lon != 0) {
				t.Fatalf("coordinates without HasCoord: %+v", l)
			}
		}
	}
}

// benchEventsBody returns n NDJSON events shaped like real traffic: a mix
// of types, customers and anonymous visitors, products and SKUs.
func benchEventsBody(n int) []byte {
	types := []string{"view", "view", "view", "impression", "cart_add", "purchase", "email_click"}
	channels := []string{"web", "app", "email", "ads", "store"}
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"type":%q,`, types[i%len(types)])
		if i%3 == 0 {
			fmt.Fprintf(&b, `"anonymous_id":"cookie-%08x",`, i*2654435761%(1<<32))
		} else {
			fmt.Fprintf(&b, `"customer":"C%d",`, 100000+i*7919%50000)
		}
		if i%2 == 0 {
			fmt.Fprintf(&b, `"product":"P%d",`, i*31%20000)
		} else {
			fmt.Fprintf(&b, `"sku":"P%d-%d",`, i*31%20000, 4+i%6*2)
		}
		fmt.Fprintf(&b, `"channel":%q,"ts":"2026-11-22T10:%02d:%02d.%03dZ"}`+"\n", channels[i%len(channels)], i/60%60, i%60, i%1000)
	}
	return b.Bytes()
}

func BenchmarkDecodeEvents(b *testing.B) {
	const n = 1000
	body := benchEventsBody(n)
	var d Decoder
	recs := make([]engine.Record, 0, n)
	var rejects []Reject
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		recs, rejects, err = d.Decode(engine.OpEvent, body, true, testNow, recs[:0], rejects[:0])
		if err != nil || len(recs) != n {
			b.Fatalf("Decode: %v, %d records, rejects %+v", err, len(recs), rejects)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

func TestDecodeEmptySizeGroupIsOneSize(t *testing.T) {
	var d Decoder
	recs, rejects, err := d.Decode(engine.OpProduct, []byte(`{"id":"H","size_group":"","variants":[{"sku":"H"}]}`), false, 0, nil, nil)
	if err != nil || len(rejects) != 0 || len(recs) != 1 || recs[0].Product.SizeGroup != "" {
		t.Fatalf("recs %+v rejects %+v err %v", recs, rejects, err)
	}
}

// BenchmarkCheckJSON measures checkJSON on event lines against the
// validators of encoding/json and fastjson, which it stands in for.
func BenchmarkCheckJSON(b *testing.B) {
	lines := bytes.Split(bytes.TrimSpace(benchEventsBody(100)), []byte{'\n'})
	n := 0
	for _, l := range lines {
		n += len(l)
	}
	for _, c := range []struct {
		name  string
		valid func([]byte) bool
	}{
		{"checkJSON", func(b []byte) bool { return checkJSON(b) == "" }},
		{"encoding-json", json.Valid},
		{"fastjson", func(b []byte) bool { return fastjson.ValidateBytes(b) == nil }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				for _, l := range lines {
					if !c.valid(l) {
						b.Fatalf("%s refuses %s", c.name, l)
					}
				}
			}
		})
	}
}

// TestRecordKinds checks the decoder's table: every op the API writes has
// a kind, whose field list fits Decoder.vals and names each field once.
func TestRecordKinds(t *testing.T) {
	for _, op := range []engine.Op{engine.OpProduct, engine.OpInventory, engine.OpEvent, engine.OpIdentify, engine.OpLocation, engine.OpExclusion} {
		k := kindOf(op)
		if k == nil {
			t.Fatalf("%s: no record kind", op)
		}
		if len(k.fields) > maxFields {
			t.Errorf("%s reads %d fields, more than maxFields (%d)", op, len(k.fields), maxFields)
		}
		seen := map[string]bool{}
		for _, f := range k.fields {
			if f == "" || seen[f] {
				t.Errorf("%s: field %q empty or listed twice", op, f)
			}
			seen[f] = true
		}
	}
	for _, op := range []engine.Op{0, engine.OpCampaign, 200} {
		if kindOf(op) != nil {
			t.Errorf("%s: the API does not write it, yet it has a kind", op)
		}
	}
}
