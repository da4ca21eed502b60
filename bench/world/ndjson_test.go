package world

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/omnipick/omnipick/engine"
)

func TestAppendRecordJSON(t *testing.T) {
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixMilli()
	f := func(r engine.Record, want string) {
		t.Helper()
		got := string(AppendRecordJSON([]byte("prefix "), &r))
		if got != "prefix "+want {
			t.Errorf("AppendRecordJSON(%+v)\n got %s\nwant %s", r, strings.TrimPrefix(got, "prefix "), want)
		}
		if want != "" && !json.Valid([]byte(want)) {
			t.Errorf("not JSON: %s", want)
		}
	}
	f(engine.Record{Op: engine.OpProduct, Product: engine.Product{
		ID: "P100", Title: "Merino sweater", URL: "https://shop.example/p/P100",
		Image: "https://shop.example/i/P100.jpg", Price: 59, Currency: "EUR",
		Category: "women/knitwear/sweaters", Brand: "Nordic", Tags: []string{"winter", "wool"},
		SizeGroup: "women-numeric",
		Variants:  []engine.Variant{{SKU: "P100-6", Size: "6"}, {SKU: "P100-8", Size: "8"}},
	}}, `{"id":"P100","title":"Merino sweater","url":"https://shop.example/p/P100",`+
		`"image":"https://shop.example/i/P100.jpg","price":59,"currency":"EUR",`+
		`"category":"women/knitwear/sweaters","brand":"Nordic","tags":["winter","wool"],`+
		`"size_group":"women-numeric","variants":[{"sku":"P100-6","size":"6"},{"sku":"P100-8","size":"8"}]}`)
	f(engine.Record{Op: engine.OpProduct, Product: engine.Product{
		ID: "P7", Title: `Hat "Bobble"`, Price: 12.95, Variants: []engine.Variant{{SKU: "P7-OS"}}, Inactive: true,
	}}, `{"id":"P7","title":"Hat \"Bobble\"","price":12.95,"tags":[],"variants":[{"sku":"P7-OS"}],"active":false}`)
	f(engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: "P100-8", Location: "store-berlin-1"}},
		`{"sku":"P100-8","location":"store-berlin-1","quantity":0}`)
	f(engine.Record{Op: engine.OpEvent, Event: engine.Event{
		Type: engine.EventView, Customer: "C42", Product: "P100", Channel: "social", TS: ts,
	}}, `{"type":"view","customer":"C42","product":"P100","channel":"social","ts":"2026-11-22T10:00:00Z"}`)
	f(engine.Record{Op: engine.OpEvent, Event: engine.Event{
		Type: engine.EventCartAdd, AnonymousID: "cookie-9f2", SKU: "P200-8", Channel: "web",
	}}, `{"type":"cart_add","anonymous_id":"cookie-9f2","sku":"P200-8","channel":"web"}`)
	f(engine.Record{Op: engine.OpEvent, Event: engine.Event{
		Type: engine.EventPurchase, Customer: "C42", Product: "P200", SKU: "P200-8", Location: "store-berlin-1",
		Channel: "store", Order: "O77", Price: 39, TS: ts + 250,
	}}, `{"type":"purchase","customer":"C42","product":"P200","sku":"P200-8","channel":"store",`+
		`"location":"store-berlin-1","order":"O77","price":39,"ts":"2026-11-22T10:00:00.250Z"}`)
	f(engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventReturn, Customer: "C1", SKU: "P1-M", Price: 19.99, TS: ts + 7}},
		`{"type":"return","customer":"C1","sku":"P1-M","price":19.99,"ts":"2026-11-22T10:00:00.007Z"}`)
	f(engine.Record{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: "cookie-9f2", Customer: "C42"}},
		`{"anonymous_id":"cookie-9f2","customer":"C42"}`)
	f(engine.Record{Op: engine.OpLocation, Location: engine.Location{ID: "store-berlin-1", Name: "Berlin", Lat: 52.52, Lon: 13.405, HasCoord: true}},
		`{"id":"store-berlin-1","name":"Berlin","lat":52.52,"lon":13.405}`)
	f(engine.Record{Op: engine.OpLocation, Location: engine.Location{ID: "online", Name: "Online shop"}},
		`{"id":"online","name":"Online shop"}`)
	f(engine.Record{Op: engine.OpLocation, Location: engine.Location{ID: "x", Lat: 0 / zero(), HasCoord: true}},
		`{"id":"x","lat":null,"lon":0}`)
	f(engine.Record{Op: 99}, ``)
}

// TestRecordJSONRoundTrip decodes every record of a world with
// encoding/json and compares it with the record it came from.
func TestRecordJSONRoundTrip(t *testing.T) {
	type variant struct {
		SKU  string `json:"sku"`
		Size string `json:"size"`
	}
	type object struct {
		// product, location
		ID, Title, URL, Image, Currency, Category, Brand, Name string
		Price                                                  *float64
		Tags                                                   []string
		SizeGroup                                              string `json:"size_group"`
		Variants                                               []variant
		Active                                                 *bool
		Lat, Lon                                               *float64
		// inventory
		SKU, Location string
		Quantity      *int64
		// event
		Type, Customer, Product, Channel, Order, TS string
		AnonymousID                                 string `json:"anonymous_id"`
		// product
		Attributes map[string]string
	}
	var line []byte
	n := 0
	err := Generate(small(), func(r *engine.Record) error {
		line = AppendRecordJSON(line[:0], r)
		var o object
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		ok := true
		switch r.Op {
		case engine.OpLocation:
			l := r.Location
			ok = o.ID == l.ID && o.Name == l.Name && (o.Lat != nil) == l.HasCoord && (!l.HasCoord || *o.Lat == l.Lat && *o.Lon == l.Lon)
		case engine.OpProduct:
			p := r.Product
			ok = o.ID == p.ID && o.Title == p.Title && o.URL == p.URL && o.Image == p.Image &&
				*o.Price == p.Price && o.Currency == p.Currency && o.Category == p.Category &&
				o.Brand == p.Brand && strings.Join(o.Tags, ",") == strings.Join(p.Tags, ",") &&
				o.SizeGroup == p.SizeGroup && len(o.Variants) == len(p.Variants) &&
				(o.Active != nil) == p.Inactive && (o.Active == nil || !*o.Active)
			for i := range o.Variants {
				ok = ok && o.Variants[i] == variant(p.Variants[i])
			}
			ok = ok && len(o.Attributes) == len(p.Attributes)
			for _, a := range p.Attributes {
				ok = ok && o.Attributes[a.Key] == a.Value
			}
		case engine.OpInventory:
			in := r.Inventory
			ok = o.SKU == in.SKU && o.Location == in.Location && *o.Quantity == in.Quantity
		case engine.OpEvent:
			e := r.Event
			ts, err := time.Parse(time.RFC3339Nano, o.TS)
			ok = err == nil && ts.UnixMilli() == e.TS && o.Type == e.Type.String() &&
				o.Customer == e.Customer && o.AnonymousID == e.AnonymousID && o.Product == e.Product &&
				o.SKU == e.SKU && o.Channel == e.Channel && o.Location == e.Location && o.Order == e.Order &&
				(o.Price == nil) == (e.Price == 0) && (o.Price == nil || *o.Price == e.Price)
		}
		if !ok {
			t.Fatalf("%s does not decode to %+v", line, *r)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no records")
	}
}

// TestWriteNDJSONZstd checks that the compressed files hold exactly the
// plain ones.
func TestWriteNDJSONZstd(t *testing.T) {
	plain, packed := t.TempDir(), t.TempDir()
	if err := WriteNDJSON(plain, small(), false); err != nil {
		t.Fatal(err)
	}
	if err := WriteNDJSON(packed, small(), true); err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, f := range Files() {
		want, err := os.ReadFile(filepath.Join(plain, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 {
			t.Errorf("%s is empty", f.Name)
		}
		zf, err := os.Open(filepath.Join(packed, f.Name+".zst"))
		if err != nil {
			t.Fatal(err)
		}
		if err := dec.Reset(zf); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(dec)
		zf.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s.zst does not decompress to %s", f.Name, f.Name)
		}
	}
}

func TestWriteNDJSONErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteNDJSON(filepath.Join(file, "sub"), small(), false); err == nil {
		t.Error("WriteNDJSON under a regular file succeeded")
	}
	bad := small()
	bad.Days = 0
	if err := WriteNDJSON(dir, bad, false); err == nil {
		t.Error("WriteNDJSON with an invalid config succeeded")
	}
}

func TestAppendTimestamp(t *testing.T) {
	want := func(ms int64) string {
		tm := time.UnixMilli(ms).UTC()
		if ms%1000 == 0 {
			return tm.Format(time.RFC3339)
		}
		return tm.Format("2006-01-02T15:04:05.000Z07:00")
	}
	f := func(ms int64) {
		t.Helper()
		if got, want := string(appendTimestamp(nil, ms)), want(ms); got != want {
			t.Errorf("appendTimestamp(%d) = %s, want %s", ms, got, want)
		}
	}
	for _, s := range []string{
		"2026-11-22T10:00:00Z", "2026-11-22T10:00:00.250Z", "2026-09-01T00:00:00.001Z",
		"1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "2000-02-29T12:34:56.789Z",
		"2100-03-01T00:00:00Z", "1900-02-28T23:59:59Z", "0001-01-01T00:00:00Z",
		"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "1600-02-29T01:02:03.004Z",
	} {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		f(tm.UnixMilli())
		f(tm.UnixMilli() - 1)
		f(tm.UnixMilli() + 1)
	}
	f(-62167219200000 - 1)  // before year 0: falls back to package time
	f(253402300800000 + 42) // year 10000
	for ms := int64(-3e12); ms < 4e12; ms += 7_777_777_777 {
		f(ms)
	}
}
