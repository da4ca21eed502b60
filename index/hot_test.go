package index

import (
	"fmt"
	"slices"
	"testing"
	"unsafe"
)

// TestHotMirrorsItem: the packed record follows every upsert (price,
// activity, size group, leaf, facets inline or spilled) and is one cache
// line.
func TestHotMirrorsItem(t *testing.T) {
	if n := unsafe.Sizeof(Hot{}); n != 64 {
		t.Fatalf("Hot is %d bytes, want one 64-byte cache line", n)
	}
	x := New()
	manyTags := make([]string, 12)
	for i := range manyTags {
		manyTags[i] = fmt.Sprint("t", i)
	}
	tests := []struct {
		name string
		it   Item
	}{
		{"sized", Item{ID: "A", Price: 59, Category: "w/knit/sweaters", Brand: "Nordic", Tags: []string{"wool"}, SizeGroup: "g",
			Variants: []Variant{{SKU: "A-8", Size: "8"}}, Active: true}},
		{"retired", Item{ID: "A", Price: 49, Category: "w/knit", Variants: []Variant{{SKU: "A-8", Size: "8"}}}},
		{"spilled facets", Item{ID: "B", Price: 5, Category: "a/b", Tags: manyTags, Variants: []Variant{{SKU: "B"}}, Active: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := tt.it
			if err := x.Upsert(&it); err != nil {
				t.Fatal(err)
			}
			h := x.Hot(it.Dense)
			if !h.Known || h.Active != it.Active || h.Price != it.Price || h.Group != it.Group || h.Leaf != it.Leaf {
				t.Fatalf("hot %+v for item %+v", h, it)
			}
			if len(it.Facets) > HotFacets {
				if h.NFacets != HotSpill {
					t.Fatalf("%d facets, NFacets %d, want HotSpill", len(it.Facets), h.NFacets)
				}
			} else if !slices.Equal(h.Facets[:h.NFacets], it.Facets) {
				t.Fatalf("facets %v, want %v", h.Facets[:h.NFacets], it.Facets)
			}
		})
	}
	if h := x.Hot(1 << 20); h.Known {
		t.Fatal("an unknown product is known")
	}
}
