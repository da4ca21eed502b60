package engine

import (
	"errors"
	"reflect"
	"testing"

	"github.com/omnipick/omnipick/internal/binfmt"
)

var codecCases = []Record{
	{Op: OpProduct, Product: Product{ID: "P1", Title: "Merino \"sweater\"", URL: "https://x/p", Image: "https://x/i.jpg", Price: 59.5,
		Currency: "EUR", Category: "women/knitwear", Brand: "Nordic", Tags: []string{"winter", "wool"}, SizeGroup: "women-numeric",
		Variants: []Variant{{SKU: "P1-8", Size: "8"}, {SKU: "P1-10", Size: "10"}}}},
	{Op: OpProduct, Product: Product{ID: "H", Variants: []Variant{{SKU: "H"}}, Inactive: true}},
	{Op: OpProduct, Product: Product{ID: "0108775015", Category: "ladieswear", Variants: []Variant{{SKU: "0108775015"}}, Group: "0108775"}},
	{Op: OpProduct, Product: Product{ID: "G", Variants: []Variant{{SKU: "G"}}, Group: "G0", Attributes: []Attribute{{Key: "color", Value: "red"}}}},
	{Op: OpProduct, Product: Product{ID: "A", Variants: []Variant{{SKU: "A"}}, Attributes: []Attribute{{Key: "age_group", Value: "adult"}, {Key: "color", Value: "navy / white"}, {Key: "gender", Value: "female"}}}},
	{Op: OpInventory, Inventory: Inventory{SKU: "P1-8", Location: "store-berlin-1", Quantity: 14}},
	{Op: OpEvent, Event: Event{Type: EventPurchase, Customer: "C42", SKU: "P1-8", Channel: "store", Location: "store-berlin-1", Order: "O77", Price: 39, TS: 1794415080123}},
	{Op: OpEvent, Event: Event{Type: EventView, AnonymousID: "cookie-ü", Product: "P1", TS: 1}},
	{Op: OpIdentify, Identify: Identify{AnonymousID: "cookie-9f2", Customer: "C42"}},
	{Op: OpLocation, Location: Location{ID: "store-berlin-1", Name: "Berlin", Lat: 52.5, Lon: 13.4, HasCoord: true}},
	{Op: OpIdentify, Identify: Identify{AnonymousID: "cookie-9f2", ToAnonymousID: "device-7"}},
	{Op: OpExclusion, Exclusion: Exclusion{Customer: "C42", Product: "P1", Until: 1794415080123}},
	{Op: OpExclusion, Exclusion: Exclusion{Product: "P1", Until: -5}},
	{Op: OpCampaign, Campaign: Campaign{AnonymousID: "cookie-9f2", Name: "winter-1", Products: []string{"P1", "P2"}, TS: 1794415080123}},
	{Op: OpCampaign, Campaign: Campaign{Customer: "C42", Name: "empty", TS: 1}},
	{Op: OpEvent, EventID: "ev-1", Received: 1794415080999, Event: Event{Type: EventView, Customer: "C42", Product: "P1", TS: 1794415080123}},
	{Op: OpIdentify, EventID: "id-1", Received: 5, Identify: Identify{AnonymousID: "cookie-9f2", Customer: "C42"}},
	{Op: OpIdentify, EventID: "id-2", Received: 5, Identify: Identify{AnonymousID: "cookie-9f2", ToAnonymousID: "device-7"}},
	{Op: OpExclusion, EventID: "x-1", Received: 7, Exclusion: Exclusion{Customer: "C42", Product: "P1", Until: 9}},
	{Op: OpErase, Erase: Erase{Customer: "C42"}},
	{Op: OpErase, Erase: Erase{AnonymousID: "cookie-9f2"}},
	{Op: OpForget, Erase: Erase{Customer: "C42"}},
	{Op: OpExpire, Expire: Expire{Before: 1794415080123}},
	{Op: OpProduct, EventID: "p-1", Received: 3, Product: Product{ID: "P9", Variants: []Variant{{SKU: "P9"}}}}, // logged though Apply refuses it
	{Op: OpProduct, EventID: "p-2", Received: 3, Product: Product{ID: "P9", Group: "G1", Variants: []Variant{{SKU: "P9"}}}},
}

func TestRecordCodecRoundTrip(t *testing.T) {
	for _, want := range codecCases {
		t.Run(want.Op.String(), func(t *testing.T) {
			b := AppendRecord(nil, &want)
			var got Record
			if err := DecodeRecord(want.Op, b, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
			// Every strict prefix is malformed, never a silently different record.
			for n := 0; n < len(b); n++ {
				if err := DecodeRecord(want.Op, b[:n], &got); !errors.Is(err, ErrBadRecord) {
					t.Fatalf("prefix %d/%d decoded: %v", n, len(b), err)
				}
			}
			if err := DecodeRecord(want.Op, append(b, 0), &got); !errors.Is(err, ErrBadRecord) {
				t.Fatal("trailing byte accepted")
			}
			// The reader's own sentinel stays visible through the wrapping.
			if err := DecodeRecord(want.Op, b[:len(b)-1], &got); !errors.Is(err, binfmt.ErrShort) && !errors.Is(err, binfmt.ErrTooLong) {
				t.Fatalf("last byte cut: %v, want a binfmt sentinel too", err)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range codecCases {
		f.Add(byte(r.Op), AppendRecord(nil, &r))
	}
	f.Fuzz(func(t *testing.T, op byte, b []byte) {
		var r Record
		if err := DecodeRecord(Op(op), b, &r); err != nil {
			return
		}
		// What decodes re-encodes to the same bytes.
		if again := AppendRecord(nil, &r); string(again) != string(b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

// TestProductV1Unchanged: a product without attributes is still written
// as version 1, byte for byte what older binaries wrote and read.
func TestProductV1Unchanged(t *testing.T) {
	b := AppendRecord(nil, &codecCases[0])
	if b[0] != recordVersion {
		t.Fatalf("a product without attributes is written as version %d", b[0])
	}
	for _, r := range codecCases {
		if r.Op == OpProduct && len(r.Product.Attributes) > 0 {
			if b := AppendRecord(nil, &r); b[0] != recordVersionV5 {
				t.Fatalf("a product with attributes is written as version %d", b[0])
			}
		}
	}
}

func TestNormalizeAttributes(t *testing.T) {
	got := NormalizeAttributes([]Attribute{{Key: "color", Value: "red"}, {Key: "gender", Value: "female"}, {Key: "color", Value: "navy"}, {Key: "age_group", Value: "adult"}})
	want := []Attribute{{Key: "age_group", Value: "adult"}, {Key: "color", Value: "navy"}, {Key: "gender", Value: "female"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
