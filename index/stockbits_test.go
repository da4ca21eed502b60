package index

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/omnipick/omnipick/internal/binfmt"
)

// TestStockBitsMatchBitmaps drives random upserts (size groups that
// change, sizes beyond a group's 63 ordinals, SKUs moving between
// products) and stock changes, and checks after each that the fast routes
// (hot records' online masks, flat bit sets) answer InStock and FitMask as
// the roaring bitmaps and the quantity maps do, also after a snapshot
// round trip.
func TestStockBitsMatchBitmaps(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 3))
			x := New()
			locs := []string{"online", "s1", "s2"}
			groups := []string{"", "tops", "shoes", "huge"}
			var skus []string
			for op := range 400 {
				if op%100 == 99 { // restart from a snapshot now and then
					y, err := LoadSnapshot(binfmt.NewReader(x.AppendSnapshot(nil)))
					if err != nil {
						t.Fatal(err)
					}
					x = y
				}
				if rng.IntN(3) == 0 || len(skus) == 0 {
					id := fmt.Sprint("p", rng.IntN(30))
					g := groups[rng.IntN(len(groups))]
					it := &Item{ID: id, Category: "a/b", SizeGroup: g, Active: true}
					nv := 1 + rng.IntN(5)
					for v := range nv {
						size := ""
						switch g {
						case "":
						case "huge": // 80 sizes: some beyond the ordinals
							size = fmt.Sprint(rng.IntN(80))
						default:
							size = fmt.Sprint(rng.IntN(6))
						}
						if g != "" && rng.IntN(8) == 0 {
							size = "" // a one-size variant in a sized group
						}
						it.Variants = append(it.Variants, Variant{SKU: fmt.Sprintf("%s-%s-%d-%d", id, g, v, rng.IntN(2)), Size: size})
					}
					if err := x.Upsert(it); err == nil {
						for _, v := range it.Variants {
							skus = append(skus, v.SKU)
						}
					}
				} else {
					sku := skus[rng.IntN(len(skus))]
					if err := x.SetStock(sku, locs[rng.IntN(len(locs))], int64(rng.IntN(3))); err != nil {
						t.Fatal(err)
					}
				}
				checkStockRoutes(t, x)
			}
		})
	}
}

func checkStockRoutes(t *testing.T, x *Index) {
	t.Helper()
	// Sizes asked of every product: any, one-size, the first keys (of
	// several groups) and the last (beyond the ordinals once "huge" has
	// many), plus the product's own below. Every key of every product
	// made the test slow under the race detector and found nothing more.
	common := []uint32{AnySize}
	for k := range min(x.sizeKeys.Len(), 12) {
		common = append(common, uint32(k))
	}
	common = append(common, uint32(x.sizeKeys.Len()-1))
	for p := range uint32(x.Products() + 1) {
		sizes := common
		if it := x.ItemAt(p); it != nil {
			sizes = slices.Clone(common)
			for _, v := range it.Variants {
				sizes = append(sizes, v.SizeKey)
			}
		}
		for l := range uint32(x.Locations() + 1) {
			for _, s := range sizes {
				if got, want := x.InStock(p, l, s), x.inStockBitmaps(p, l, s); got != want {
					t.Fatalf("InStock(%d, %d, %d) = %v, bitmaps say %v", p, l, s, got, want)
				}
			}
		}
		it := x.ItemAt(p)
		if it == nil {
			continue
		}
		for _, s := range sizes {
			for _, locs := range [][]uint32{{0}, {1}, {0, 2}} {
				var want uint64
				for i, v := range it.Variants {
					if s != AnySize && v.SizeKey != s && v.SizeKey != OneSize {
						continue
					}
					for _, l := range locs {
						if int(l) < len(x.locStock) && x.locStock[l].qty[v.Dense] > 0 {
							want |= 1 << i
						}
					}
				}
				if got := x.FitMask(it, locs, s); got != want {
					t.Fatalf("FitMask(%s, %v, %d) = %b, quantities say %b", it.ID, locs, s, got, want)
				}
			}
		}
	}
}
