package index

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestDictCollisionsBothWork(t *testing.T) {
	d := NewDict()
	a, _ := d.Intern("alpha")
	// Simulate "beta" hashing like "alpha": point beta's hash slot at alpha.
	delete(d.byHash, xxhash.Sum64String("beta"))
	d.byHash[xxhash.Sum64String("beta")] = a
	b, isNew := d.Intern("beta")
	if !isNew || b == a {
		t.Fatalf("beta got id %d (new=%v), alpha %d: a collision must give a new id", b, isNew, a)
	}
	for _, tc := range []struct {
		s    string
		want uint32
	}{{"alpha", a}, {"beta", b}} {
		if got, ok := d.Lookup(tc.s); !ok || got != tc.want {
			t.Errorf("Lookup(%q) = %d, %v; want %d", tc.s, got, ok, tc.want)
		}
		if got, ok := d.LookupBytes([]byte(tc.s)); !ok || got != tc.want {
			t.Errorf("LookupBytes(%q) = %d, %v; want %d", tc.s, got, ok, tc.want)
		}
		if got, _ := d.Intern(tc.s); got != tc.want {
			t.Errorf("Intern(%q) again = %d; want %d", tc.s, got, tc.want)
		}
	}
	if _, ok := d.Lookup("gamma"); ok {
		t.Error("unknown id found")
	}
}

func TestDictDense(t *testing.T) {
	d := NewDict()
	for i := range 1000 {
		id, isNew := d.Intern(fmt.Sprint("id-", i))
		if !isNew || id != uint32(i) {
			t.Fatalf("Intern #%d = %d, %v", i, id, isNew)
		}
	}
	if d.Name(500) != "id-500" || d.Len() != 1000 {
		t.Fatal("names out of order")
	}
}

func sweater(id string, sizes ...string) *Item {
	it := &Item{ID: id, Title: id, Category: "Women/Knitwear/Sweaters", Brand: "Nordic", Tags: []string{"winter", "Wool"}, SizeGroup: "women-numeric", Active: true}
	for _, s := range sizes {
		it.Variants = append(it.Variants, Variant{SKU: id + "-" + s, Size: s})
	}
	return it
}

func facetProducts(t *testing.T, x *Index, name string) []uint32 {
	t.Helper()
	f, ok := x.Facet(name)
	if !ok {
		return nil
	}
	return x.Posting(f).ToArray()
}

func TestUpsertPostings(t *testing.T) {
	x := New()
	if err := x.Upsert(sweater("P1", "8", "10")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"c:women", "c:women/knitwear", "c:women/knitwear/sweaters", "b:nordic", "t:winter", "t:wool"} {
		if got := facetProducts(t, x, f); !slices.Equal(got, []uint32{0}) {
			t.Errorf("facet %s = %v, want [0]", f, got)
		}
	}
	// Re-upsert as a coat of another brand: old postings go away.
	coat := sweater("P1", "8")
	coat.Category, coat.Brand, coat.Tags = "women/coats", "Alpen", nil
	if err := x.Upsert(coat); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string][]uint32{
		"c:women": {0}, "c:women/coats": {0}, "c:women/knitwear": {}, "b:nordic": {}, "b:alpen": {0}, "t:winter": {},
	} {
		if got := facetProducts(t, x, f); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("after re-upsert facet %s = %v, want %v", f, got, want)
		}
	}
}

func TestStockBits(t *testing.T) {
	x := New()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(x.Upsert(sweater("P1", "8", "10")))
	must(x.Upsert(&Item{ID: "H1", Category: "women/accessories/hats", Active: true, Variants: []Variant{{SKU: "H1"}}}))
	k8, _ := x.SizeKey("women-numeric", "8")
	k10, _ := x.SizeKey("women-numeric", "10")
	store := x.Location("store-1")

	type step struct {
		sku, loc string
		qty      int64
		want     map[string]bool // "P1@online/8" style expectations
	}
	check := func(t *testing.T, want map[string]bool) {
		t.Helper()
		for k, w := range want {
			var p, l, s uint32
			var size string
			var loc string
			fmt.Sscanf(k, "%d@%s", &p, &loc)
			for i, c := range loc {
				if c == '/' {
					loc, size = loc[:i], loc[i+1:]
					break
				}
			}
			l, _ = x.LookupLocation(loc)
			switch size {
			case "8":
				s = k8
			case "10":
				s = k10
			case "one":
				s = OneSize
			default:
				s = AnySize
			}
			if got := x.InStock(p, l, s); got != w {
				t.Errorf("InStock(%s) = %v, want %v", k, got, w)
			}
		}
	}
	steps := []step{
		{"P1-8", "online", 3, map[string]bool{"0@online/8": true, "0@online/10": false, "0@online/any": true, "0@store-1/8": false}},
		{"P1-8", "online", 5, map[string]bool{"0@online/8": true}},
		{"P1-10", "store-1", 1, map[string]bool{"0@store-1/10": true, "0@store-1/any": true, "0@online/10": false}},
		{"P1-8", "online", 0, map[string]bool{"0@online/8": false, "0@online/any": false, "0@store-1/10": true}},
		{"H1", "online", 2, map[string]bool{"1@online/one": true, "1@online/any": true, "1@online/8": false}},
		{"H1", "online", 0, map[string]bool{"1@online/one": false, "1@online/any": false}},
	}
	_ = store
	for i, s := range steps {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			must(x.SetStock(s.sku, s.loc, s.qty))
			check(t, s.want)
		})
	}
	if err := x.SetStock("P1-8", "online", -1); !errors.Is(err, ErrNegativeQuantity) {
		t.Errorf("negative quantity: %v", err)
	}
	if err := x.SetStock("nope", "online", 1); !errors.Is(err, ErrUnknownSKU) {
		t.Errorf("unknown sku: %v", err)
	}
}

func TestUpsertKeepsStockConsistent(t *testing.T) {
	x := New()
	_ = x.Upsert(sweater("P1", "8", "10"))
	_ = x.SetStock("P1-8", "online", 4)
	k8, _ := x.SizeKey("women-numeric", "8")
	// Drop size 8 from the product: its stock must no longer show.
	_ = x.Upsert(sweater("P1", "10"))
	if x.InStock(0, 0, k8) || x.InStock(0, 0, AnySize) {
		t.Fatal("dropped variant still in stock")
	}
	// Put it back: the quantity, still recorded, shows again.
	_ = x.Upsert(sweater("P1", "8", "10"))
	if !x.InStock(0, 0, k8) {
		t.Fatal("restored variant lost its stock")
	}
	// Retire it: stock stays, but it is not active.
	retired := sweater("P1", "8", "10")
	retired.Active = false
	_ = x.Upsert(retired)
	if x.Active().Contains(0) {
		t.Fatal("retired product active")
	}
}

func TestUpsertRejects(t *testing.T) {
	x := New()
	_ = x.Upsert(sweater("P1", "8"))
	for _, tc := range []struct {
		name string
		it   *Item
		want error
	}{
		{"no variants", &Item{ID: "P2"}, ErrNoVariants},
		{"sku of another product", &Item{ID: "P2", Variants: []Variant{{SKU: "P1-8", Size: "8"}}}, ErrSKUOwned},
		{"duplicate sku", &Item{ID: "P3", Variants: []Variant{{SKU: "A"}, {SKU: "A"}}}, ErrDuplicateSKU},
		{"too many", &Item{ID: "P4", Variants: make([]Variant, MaxVariants+1)}, ErrTooManyVariants},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := x.Products()
			if err := x.Upsert(tc.it); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if x.Products() != before {
				t.Fatal("rejected upsert changed the index")
			}
		})
	}
}

func TestFitMask(t *testing.T) {
	x := New()
	_ = x.Upsert(sweater("P1", "8", "10"))
	_ = x.SetStock("P1-8", "online", 1)
	k8, _ := x.SizeKey("women-numeric", "8")
	k10, _ := x.SizeKey("women-numeric", "10")
	for _, tc := range []struct {
		size uint32
		want uint64
	}{{k8, 1}, {k10, 0}, {AnySize, 1}} {
		if m := x.FitMask(x.ItemAt(0), []uint32{0}, tc.size); m != tc.want {
			t.Errorf("FitMask(size %d) = %b, want %b", tc.size, m, tc.want)
		}
	}
}

func TestNormalizeCategory(t *testing.T) {
	for in, want := range map[string]string{
		"Women/ Knitwear/": "women/knitwear", "/a//b/": "a/b", "": "", "x": "x",
	} {
		if got := NormalizeCategory(in); got != want {
			t.Errorf("NormalizeCategory(%q) = %q, want %q", in, got, want)
		}
	}
}
