package client

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/valyala/fastjson"
)

// pickAnswer is a picks answer as the server writes it, every field set.
func pickAnswer(n int) []byte {
	p := Picks{Customer: "sarah", Channel: "ads", TookUS: 31}
	for i := range n {
		id := fmt.Sprint("P", i)
		p.Picks = append(p.Picks, Pick{Product: id, Title: "Product \"" + id + "\" \u00e9", Price: 10.5 + float64(i), Currency: "EUR",
			URL: "https://shop.example/p/" + id, Image: "https://shop.example/i/" + id + ".jpg", Category: "women/c1", Brand: "Nordic",
			Sizes: []string{"8", "10"}, Reason: "popular", Score: 1.5 * float64(i)})
	}
	p.Picks[0].Sizes = []string{}
	b, _ := json.Marshal(p)
	return b
}

// TestDecodePicksIsEncodingJSON: the hand-written decoder reads what
// encoding/json reads, so that a field added to Pick and not to it fails
// here.
func TestDecodePicksIsEncodingJSON(t *testing.T) {
	for _, b := range [][]byte{pickAnswer(10), []byte(`{"anonymous_id":"c","channel":"web","took_us":1,"picks":[],"extra":{"a":[1]}}`)} {
		var want, got Picks
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if err := decodePicks(new(fastjson.Parser), b, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodePicks:\n%+v\nencoding/json:\n%+v", got, want)
		}
	}
	// Every field of Pick is read: a Pick with all of them set survives.
	if n := reflect.TypeFor[Pick]().NumField(); n != 11 {
		t.Fatalf("Pick has %d fields; decodePicks reads 11: teach it the new ones", n)
	}
	var p Picks
	if err := decodePicks(new(fastjson.Parser), []byte(`{"picks":{}}`), &p); err == nil {
		t.Fatal("picks that are not an array were accepted")
	}
}

// BenchmarkDecodePicks compares the hand-written decoder with
// encoding/json on an answer of 10 picks.
//
// go test ./api/client -run XXX -bench DecodePicks -count 5
func BenchmarkDecodePicks(b *testing.B) {
	data := pickAnswer(10)
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var p Picks
			if err := json.Unmarshal(data, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fastjson", func(b *testing.B) {
		var parser fastjson.Parser
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var p Picks
			if err := decodePicks(&parser, data, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
