package engine

import "testing"

func TestLastScanPerLocation(t *testing.T) {
	w := apparel(t)
	if got := w.e.LastScan("store-1"); got.Seq != 0 {
		t.Fatalf("no scan yet: got %+v", got)
	}
	scan := func(loc, customer, product string) {
		w.apply(Record{Op: OpEvent, Event: Event{Type: EventScan, Customer: customer, Product: product, Location: loc, TS: w.now.UnixMilli()}})
	}
	scan("store-1", "C1", "SW0")
	first := w.e.LastScan("store-1")
	scan("store-2", "C2", "HT0")
	scan("store-1", "C3", "LG0")

	tests := []struct {
		loc, product, customer string
	}{
		{"store-1", "LG0", "C3"},
		{"store-2", "HT0", "C2"},
		{"store-3", "", ""},
	}
	for _, tt := range tests {
		got := w.e.LastScan(tt.loc)
		if got.Product != tt.product || got.Customer != tt.customer {
			t.Errorf("LastScan(%s) = %+v, want product %q customer %q", tt.loc, got, tt.product, tt.customer)
		}
	}
	if next := w.e.LastScan("store-1"); next.Seq <= first.Seq {
		t.Errorf("Seq did not grow: %d then %d", first.Seq, next.Seq)
	}
	// A view is not a scan.
	before := w.e.LastScan("store-2")
	w.apply(Record{Op: OpEvent, Event: Event{Type: EventView, Customer: "C2", Product: "SW0", Location: "store-2", TS: w.now.UnixMilli()}})
	if after := w.e.LastScan("store-2"); after != before {
		t.Errorf("a view changed the last scan: %+v -> %+v", before, after)
	}
}

func TestKnownLocation(t *testing.T) {
	w := apparel(t)
	w.apply(Record{Op: OpLocation, Location: Location{ID: "store-9"}})
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{"online", true},
		{"store-9", true},
		{"store-404", false},
		{"", false},
	} {
		if got := w.e.KnownLocation(tt.id); got != tt.want {
			t.Errorf("KnownLocation(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
