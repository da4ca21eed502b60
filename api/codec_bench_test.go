package api

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/index"
)

// BenchmarkDecodeProducts decodes a batch of catalog products, the widest
// records the API takes (twelve fields, variants, tags).
func BenchmarkDecodeProducts(b *testing.B) {
	const n = 500
	var body bytes.Buffer
	for i := range n {
		fmt.Fprintf(&body, `{"id":"P%d","title":"Merino sweater %d","url":"https://shop.example/p/P%d","image":"https://shop.example/i/P%d.jpg",`+
			`"price":%d.95,"currency":"EUR","category":"women/knitwear/sweaters","brand":"Nordic & Co","tags":["winter","wool"],`+
			`"size_group":"women-numeric","variants":[{"sku":"P%d-6","size":"6"},{"sku":"P%d-8","size":"8"},{"sku":"P%d-10","size":"10"}]}`+"\n",
			i, i, i, i, 20+i%80, i, i, i)
	}
	var d Decoder
	recs := make([]engine.Record, 0, n)
	var rejects []Reject
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		recs, rejects, err = d.Decode(engine.OpProduct, body.Bytes(), true, testNow, recs[:0], rejects[:0])
		if err != nil || len(recs) != n {
			b.Fatalf("Decode: %v, %d records, rejects %+v", err, len(recs), rejects)
		}
	}
}

// BenchmarkEncodePicks encodes a picks response of 10 items, as the picks
// handler does.
func BenchmarkEncodePicks(b *testing.B) {
	picks := make([]engine.Pick, 10)
	for i := range picks {
		picks[i] = engine.Pick{Reason: engine.ReasonAffinity, Score: 1.5 - float64(i)/10, SizeMask: 0b101, Item: &index.Item{
			Dense: uint32(i), ID: fmt.Sprintf("P%d", 1000+i), Title: fmt.Sprintf(`Merino "Classic" sweater %d – Größe`, i),
			URL: fmt.Sprintf("https://shop.example/p/P%d?ref=omnipick&x=<1>", 1000+i), Image: fmt.Sprintf("https://shop.example/i/P%d.jpg", 1000+i),
			Price: 59.95, Currency: "EUR", Category: "women/knitwear/sweaters", Brand: "Nordic",
			Variants: []index.Variant{{SKU: "a", Size: "S"}, {SKU: "b", Size: "M"}, {SKU: "c", Size: "L"}},
		}}
	}
	q := &engine.Query{Customer: "C42", Channel: engine.ChannelWeb}
	// The server encodes each item's fields once (itemjson.go); the
	// exported AppendPicksJSON every time.
	for _, items := range []*itemJSON{nil, {max: maxItemJSONBytes}} {
		b.Run(map[bool]string{true: "each time", false: "fragments"}[items == nil], func(b *testing.B) {
			out := make([]byte, 0, 8<<10)
			b.ReportAllocs()
			for b.Loop() {
				out = appendPicksJSON(out[:0], q, picks, 42*time.Microsecond, items)
			}
			b.SetBytes(int64(len(out)))
		})
	}
}
