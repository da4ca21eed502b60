package engine

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// benchWorld builds a synthetic catalog of n products (60% sized, 6 sizes)
// over 200 leaf categories, in product groups of 4 (colour-ways: the
// sibling signal's cost is measured), stock online and in 3 stores with
// some sizes sold out, a small store holding every 50th product (as a
// store of a large chain holds ~2% of its catalog), and c customers with
// about 20 events each.
func benchWorld(tb testing.TB, n, c int) (*Engine, time.Time) {
	return benchWorldWith(tb, n, c, Options{})
}

// benchWorldWith is benchWorld built by an engine with opts.
func benchWorldWith(tb testing.TB, n, c int, opts Options) (*Engine, time.Time) {
	tb.Helper()
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	opts.Now = func() time.Time { return now }
	e := New(opts)
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []string{"XS", "S", "M", "L", "XL", "XXL"}
	locs := []string{"online", "store-1", "store-2", "store-3"}
	apply := func(r *Record) {
		if err := e.Apply(r); err != nil {
			tb.Fatal(err)
		}
	}
	var r Record
	for i := range n {
		id := fmt.Sprintf("P%07d", i)
		r = Record{Op: OpProduct, Product: Product{ID: id, Title: "Product " + id, URL: "https://shop.example/p/" + id,
			Image: "https://shop.example/i/" + id + ".jpg", Price: 19.95, Currency: "EUR",
			Category: fmt.Sprintf("g%d/c%d/l%d", i%3, i%20, i%200), Brand: fmt.Sprint("brand", i%50),
			Tags: []string{fmt.Sprint("tag", i%30), fmt.Sprint("tag", i%7+30)}, Group: fmt.Sprint("design", i/4)}}
		if i%5 < 3 {
			r.Product.SizeGroup = fmt.Sprint("group", i%3)
			for _, s := range sizes {
				r.Product.Variants = append(r.Product.Variants, Variant{SKU: id + "-" + s, Size: s})
			}
		} else {
			r.Product.Variants = []Variant{{SKU: id}}
		}
		apply(&r)
		for _, v := range r.Product.Variants {
			for li, l := range locs {
				if li > 0 && rng.IntN(3) > 0 {
					continue
				}
				q := int64(rng.IntN(6))
				if q == 0 && li > 0 {
					continue
				}
				apply(&Record{Op: OpInventory, Inventory: Inventory{SKU: v.SKU, Location: l, Quantity: q}})
			}
			if i%50 == 7 { // no draw from rng: the rest of the world stays as it was
				apply(&Record{Op: OpInventory, Inventory: Inventory{SKU: v.SKU, Location: "store-small", Quantity: 2}})
			}
		}
	}
	types := []EventType{EventView, EventView, EventView, EventCartAdd, EventPurchase, EventScan, EventAdClick}
	t := now.Add(-30 * 24 * time.Hour)
	for range c * 20 {
		t = t.Add(time.Duration(rng.IntN(int(30*24*time.Hour)/(c*20)*2 + 1)))
		// Zipf-like popularity: most events on a few products.
		p := int(float64(n) * rng.Float64() * rng.Float64() * rng.Float64())
		id := fmt.Sprintf("P%07d", p)
		ev := Event{Type: types[rng.IntN(len(types))], Customer: fmt.Sprint("C", rng.IntN(c)), TS: t.UnixMilli()}
		if p%5 < 3 {
			ev.SKU = id + "-" + sizes[rng.IntN(len(sizes))]
		} else {
			ev.Product = id
		}
		apply(&Record{Op: OpEvent, Event: ev})
	}
	return e, now
}

var benchQueries = []struct {
	name string
	q    Query
}{
	{"web-customer", Query{Customer: "C17", Channel: ChannelWeb, K: 10}},
	{"ads-customer", Query{Customer: "C42", Channel: ChannelAds, K: 10}},
	{"email-store-locations", Query{Customer: "C7", Channel: ChannelEmail, K: 12, Locations: []string{"online", "store-2"}}},
	{"screen-context", Query{Customer: "C99", Channel: ChannelScreen, K: 8, Locations: []string{"store-1"}, Context: "P0000042"}},
	// A store that holds 2% of the catalog: most of what the walks offer is
	// rejected on stock.
	{"screen-sparse", Query{Customer: "C99", Channel: ChannelScreen, K: 8, Locations: []string{"store-small"}, Context: "P0000042"}},
	{"anonymous", Query{Channel: ChannelWeb, K: 10}},
	{"category", Query{Customer: "C3", Channel: ChannelWeb, K: 10, Category: "g1/c7"}},
	// Few sourced products qualify: the fallback walks the category.
	{"fallback", Query{Customer: "C5", Channel: ChannelWeb, K: 30, Locations: []string{"store-3"}, Category: "g1/c19", Exclude: []string{"P0000199"}}},
}

func BenchmarkPicks(b *testing.B) { benchPicks(b, 20000, 5000) }

// BenchmarkPicksLarge is BenchmarkPicks at OMNIPICK_BENCH_PRODUCTS
// products (and a tenth as many customers), where the per-candidate cache
// misses that a 20k-product catalog hides show: `OMNIPICK_BENCH_PRODUCTS=500000
// go test ./engine -run XXX -bench PicksLarge -benchmem` (the world takes
// a minute to build). Without the variable it does not run.
func BenchmarkPicksLarge(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("OMNIPICK_BENCH_PRODUCTS"))
	if n <= 0 {
		b.Skip("OMNIPICK_BENCH_PRODUCTS not set")
	}
	benchPicks(b, n, n/10)
}

func benchPicks(b *testing.B, products, customers int) {
	e, _ := benchWorld(b, products, customers)
	for _, bq := range benchQueries {
		b.Run(bq.name, func(b *testing.B) {
			q := bq.q
			var dst []Pick
			b.ReportAllocs()
			cpuLoop(b, func() { dst = e.PicksInto(dst[:0], &q) })
		})
	}
	// The same over 1000 customers in turn, on one thread: at a million
	// products their candidates' hot records do not stay in cache from one
	// call to the next, as a repeated query's few hundred do, so these
	// show the cache misses a server's calls pay.
	for _, kind := range []string{"web-customer", "ads-customer", "mix"} {
		b.Run("many-"+kind, func(b *testing.B) {
			var dst []Pick
			i := 0
			b.ReportAllocs()
			cpuLoop(b, func() {
				bq := benchQueries[i%len(benchQueries)]
				for kind != "mix" && bq.name != kind {
					i++
					bq = benchQueries[i%len(benchQueries)]
				}
				q := bq.q
				if q.Customer != "" {
					q.Customer = benchCustomers[(i/len(benchQueries))%len(benchCustomers)]
				}
				dst = e.PicksInto(dst[:0], &q)
				i++
			})
		})
	}
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var dst []Pick
			i := 0
			for pb.Next() {
				q := benchQueries[i%len(benchQueries)].q
				q.Customer = benchCustomers[i%len(benchCustomers)]
				dst = e.PicksInto(dst[:0], &q)
				i++
			}
		})
	})
}

func BenchmarkApplyEvent(b *testing.B) {
	e, now := benchWorld(b, 20000, 100)
	r := Record{Op: OpEvent, Event: Event{Type: EventView, Customer: "C1", Product: "P0000003"}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Event.Customer = benchCustomers[i%len(benchCustomers)]
		r.Event.TS = now.UnixMilli() + int64(i)
		i++
		if err := e.Apply(&r); err != nil {
			b.Fatal(err)
		}
	}
}

var benchCustomers = func() []string {
	out := make([]string, 1000)
	for i := range out {
		out[i] = fmt.Sprint("C", i)
	}
	return out
}()
