package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// walkCatalog walks the whole catalog in chunks of n and returns "id:mask"
// per active product.
func walkCatalog(t *testing.T, e *Engine, n int, locs []uint32) []string {
	t.Helper()
	var got []string
	var chunk []CatalogItem
	from, more := uint32(0), true
	for calls := 0; more; calls++ {
		if calls > 10000 {
			t.Fatal("walk does not end")
		}
		chunk, from, more = e.AppendCatalog(chunk[:0], from, n, locs)
		if len(chunk) > n {
			t.Fatalf("chunk of %d from a walk of %d", len(chunk), n)
		}
		for _, c := range chunk {
			got = append(got, fmt.Sprintf("%s:%b", c.Item.ID, c.InStock))
		}
	}
	return got
}

func TestAppendCatalog(t *testing.T) {
	w := apparel(t) // 28 products, every SKU with 5 online
	w.stock("SW0-8", "online", 0)
	w.stock("LG0-6", "store-1", 2)
	w.stock("HT0", "store-1", 1)
	w.stock("HT0", "online", 0)
	retired := Product{ID: "GL1", Title: "GL1", Category: "women/accessories/gloves", Inactive: true, Variants: []Variant{{SKU: "GL1"}}}
	w.apply(Record{Op: OpProduct, Product: retired})
	w.apply(Record{Op: OpLocation, Location: Location{ID: "store-2"}}) // registered, no stock

	resolve := func(ids ...string) []uint32 {
		t.Helper()
		locs, err := w.e.ResolveLocations(nil, ids)
		if err != nil {
			t.Fatal(err)
		}
		return locs
	}
	tests := []struct {
		name string
		locs []string
		want map[string]string // id -> mask; ids not listed: all variants in stock online
		none bool              // every product out of stock except the listed ones
	}{
		{"online", nil, map[string]string{"SW0": "101", "HT0": "0"}, false},
		{"store", []string{"store-1"}, map[string]string{"LG0": "1", "HT0": "1"}, true},
		{"online or store", []string{"online", "store-1"}, map[string]string{"SW0": "101", "HT0": "1"}, false},
		{"empty store", []string{"store-2"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			locs := resolve(tt.locs...)
			whole := walkCatalog(t, w.e, 1<<20, locs)
			if len(whole) != 27 {
				t.Fatalf("%d products, want 27 (28 less the retired one): %v", len(whole), whole)
			}
			for _, row := range whole {
				var id, mask string
				fmt.Sscanf(row, "%3s:%s", &id, &mask)
				want, ok := tt.want[id]
				switch {
				case ok:
				case tt.none:
					want = "0"
				case id[:2] == "HT" || id[:2] == "GL" || id[:2] == "SC":
					want = "1"
				default:
					want = "111"
				}
				if id == "GL1" {
					t.Errorf("retired GL1 listed")
				}
				if mask != want {
					t.Errorf("%s: mask %s, want %s", id, mask, want)
				}
			}
			for _, n := range []int{1, 3, 7, CatalogChunk} {
				if got := walkCatalog(t, w.e, n, locs); !slices.Equal(got, whole) {
					t.Errorf("chunks of %d: %v, want %v", n, got, whole)
				}
			}
		})
	}
}

func TestAppendCatalogBounds(t *testing.T) {
	w := apparel(t)
	total := uint32(w.e.idx.Products())
	tests := []struct {
		from     uint32
		n        int
		items    int
		next     uint32
		wantMore bool
	}{
		{0, 0, 0, 0, true},
		{0, 5, 5, 5, true},
		{total - 2, 5, 2, total, false},
		{total, 5, 0, total, false},
		{total + 10, 5, 0, total + 10, false},
		{0, -1, int(total), total, false},
	}
	for _, tt := range tests {
		got, next, more := w.e.AppendCatalog(nil, tt.from, tt.n, []uint32{0})
		if len(got) != tt.items || next != tt.next || more != tt.wantMore {
			t.Errorf("AppendCatalog(from %d, n %d) = %d items, next %d, more %v; want %d, %d, %v",
				tt.from, tt.n, len(got), next, more, tt.items, tt.next, tt.wantMore)
		}
	}
}

func TestResolveLocations(t *testing.T) {
	w := apparel(t)
	w.apply(Record{Op: OpLocation, Location: Location{ID: "store-1"}})
	tests := []struct {
		ids  []string
		want []uint32
		bad  string // the unknown id the error names
	}{
		{nil, []uint32{0}, ""},
		{[]string{"online"}, []uint32{0}, ""},
		{[]string{"store-1", "online"}, []uint32{1, 0}, ""},
		{[]string{"online", "store-9"}, nil, "store-9"},
	}
	for _, tt := range tests {
		got, err := w.e.ResolveLocations(nil, tt.ids)
		if tt.bad != "" {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "location" || !errors.Is(err, ErrUnknownLocation) {
				t.Errorf("ResolveLocations(%q): err %v, want a location FieldError", tt.ids, err)
			} else if want := fmt.Sprintf("%q", tt.bad); !strings.Contains(err.Error(), want) {
				t.Errorf("ResolveLocations(%q): %v does not name %s", tt.ids, err, want)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ResolveLocations(%q) = %v, %v; want %v", tt.ids, got, err, tt.want)
		}
	}
}

// TestAppendCatalogWithWriters walks the catalog while stock and products
// change: the race detector checks that rows read under one chunk's lock
// are safe to use after it.
func TestAppendCatalogWithWriters(t *testing.T) {
	w := apparel(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			r := Record{Op: OpInventory, Inventory: Inventory{SKU: "SW1-8", Location: "online", Quantity: int64(i % 2)}}
			if err := w.e.Apply(&r); err != nil {
				t.Error(err)
				return
			}
			p := Product{ID: fmt.Sprint("NEW", i), Title: "new", Variants: []Variant{{SKU: fmt.Sprint("NEW", i)}}}
			if err := w.e.Apply(&Record{Op: OpProduct, Product: p}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 20 {
		var chunk []CatalogItem
		for from, more := uint32(0), true; more; {
			chunk, from, more = w.e.AppendCatalog(chunk[:0], from, 8, []uint32{0})
			for _, c := range chunk {
				if c.Item.Title == "" || len(c.Item.Variants) == 0 {
					t.Fatalf("torn item %+v", c.Item)
				}
			}
		}
	}
	wg.Wait()
}
