package world

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
)

var (
	update = flag.Bool("update", false, "rewrite internal/demo from the generator")
	// A full-size run: go test ./bench/world -run xxx -bench GenerateScaled -world.customers=1000000
	scaledCustomers = flag.Int("world.customers", 0, "BenchmarkGenerateScaled: run Bench() with this many customers (0: skip)")
)

// demoDir holds the committed demo world.
var demoDir = filepath.Join("..", "..", "internal", "demo")

// small is a quick world for tests that need variety rather than size.
func small() Config {
	c := Demo()
	c.Seed = 7
	c.Products = 300
	c.Customers = 120
	return c
}

// digest hashes a world's API JSON, one line per record.
func digest(t testing.TB, cfg Config) (sum [32]byte, records int) {
	t.Helper()
	h := sha256.New()
	var line []byte
	err := Generate(cfg, func(r *engine.Record) error {
		line = append(AppendRecordJSON(line[:0], r), '\n')
		h.Write(line)
		records++
		return nil
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, records
}

func TestGenerateDeterministic(t *testing.T) {
	noStores := small()
	noStores.Stores = 0
	noCustomers := small()
	noCustomers.Customers = 0
	allAnonymous := small()
	allAnonymous.AnonymousShare = 1
	manyStores := small()
	manyStores.Stores = 45 // more than one store per city
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"demo", Demo()},
		{"small", small()},
		{"no stores", noStores},
		{"no customers", noCustomers},
		{"all anonymous", allAnonymous},
		{"many stores", manyStores},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, n := digest(t, tc.cfg)
			b, m := digest(t, tc.cfg)
			if a != b || n != m {
				t.Fatalf("two runs differ: %x (%d records) vs %x (%d records)", a, n, b, m)
			}
			other := tc.cfg
			other.Seed++
			if c, _ := digest(t, other); c == a {
				t.Fatalf("seed %d and %d give the same world", tc.cfg.Seed, other.Seed)
			}
		})
	}
}

// collected is a generated world, kept for checking.
type collected struct {
	cfg       Config
	ops       []engine.Op
	locs      []engine.Location
	products  []engine.Product
	inventory []engine.Inventory
	events    []engine.Event
}

func collect(t testing.TB, cfg Config) *collected {
	t.Helper()
	w := &collected{cfg: cfg}
	err := Generate(cfg, func(r *engine.Record) error {
		if len(w.ops) == 0 || w.ops[len(w.ops)-1] != r.Op {
			w.ops = append(w.ops, r.Op)
		}
		switch r.Op {
		case engine.OpLocation:
			w.locs = append(w.locs, r.Location)
		case engine.OpProduct:
			w.products = append(w.products, r.Product)
		case engine.OpInventory:
			w.inventory = append(w.inventory, r.Inventory)
		case engine.OpEvent:
			w.events = append(w.events, r.Event)
		default:
			return fmt.Errorf("unexpected op %v", r.Op)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return w
}

// stats are the counts the invariant check measures along the way.
type stats struct {
	leafCategories int
	skus           int
	soldOut        int // stock rows at quantity 0
	types          map[engine.EventType]int
	channels       map[string]int
	customers      int // customers with at least one event
	anonymous      int // events by anonymous visitors
	orders         int
	winterOrders   int // orders with items from two or more winter categories
	winterPairs    int // customers who bought two winter categories in different orders
	sportOrders    int // orders with leggings and a sports top or bra
}

// check verifies every invariant of a generated world and returns its stats.
func check(t *testing.T, w *collected) stats {
	t.Helper()
	cfg := w.cfg
	st := stats{types: map[engine.EventType]int{}, channels: map[string]int{}}
	errs := 0
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		if errs++; errs == 20 {
			t.Fatal("too many errors")
		}
	}

	if want := []engine.Op{engine.OpLocation, engine.OpProduct, engine.OpInventory, engine.OpEvent}; !slices.Equal(w.ops, want) && !slices.Equal(w.ops, want[:3]) {
		errorf("record kinds come in order %v, want %v", w.ops, want)
	}

	// Locations.
	locs := map[string]bool{}
	if len(w.locs) != cfg.Stores+1 || w.locs[0].ID != "online" {
		errorf("%d locations starting with %q, want online + %d stores", len(w.locs), w.locs[0].ID, cfg.Stores)
	}
	for _, l := range w.locs {
		if locs[l.ID] {
			errorf("duplicate location %q", l.ID)
		}
		locs[l.ID] = true
		if l.ID != "online" && (!strings.HasPrefix(l.ID, "store-") || !l.HasCoord || l.Name == "") {
			errorf("store %+v lacks a store- id, a name or coordinates", l)
		}
	}

	// Products.
	type skuInfo struct {
		product, size, group, category string
	}
	products := map[string]*engine.Product{}
	skus := map[string]skuInfo{}
	leaves := map[string]bool{}
	known := map[string]*category{}
	for i := range categories {
		known[categories[i].path] = &categories[i]
	}
	if len(w.products) != cfg.Products {
		errorf("%d products, want %d", len(w.products), cfg.Products)
	}
	for i := range w.products {
		p := &w.products[i]
		if products[p.ID] != nil {
			errorf("duplicate product %q", p.ID)
		}
		products[p.ID] = p
		leaves[p.Category] = true
		if strings.HasPrefix(strings.ToUpper(p.ID), "SARAH") {
			errorf("product %q clashes with the end-to-end tests' ids", p.ID)
		}
		if p.Title == "" || p.Brand == "" || p.Currency != "EUR" || !(p.Price > 0) || len(p.Tags) == 0 ||
			p.URL != "https://shop.example/p/"+p.ID || p.Image != "/img/"+p.ID+".svg" {
			errorf("product %+v is incomplete", *p)
		}
		c := known[p.Category]
		if c == nil {
			errorf("product %q in unknown category %q", p.ID, p.Category)
			continue
		}
		if c.missions&mWinter != 0 && !slices.Contains(p.Tags, "winter") {
			errorf("winter product %q lacks the winter tag: %v", p.ID, p.Tags)
		}
		var sizes []string
		for _, g := range sizeGroups {
			if g.name == p.SizeGroup {
				sizes = g.sizes
			}
		}
		if p.SizeGroup != "" && p.SizeGroup != sizeGroups[c.group].name {
			errorf("product %q in %s has size group %q", p.ID, p.Category, p.SizeGroup)
		}
		if len(p.Variants) != len(sizes) {
			errorf("product %q has %d variants, its size group %q has %d sizes", p.ID, len(p.Variants), p.SizeGroup, len(sizes))
		}
		for j, v := range p.Variants {
			if j < len(sizes) && v.Size != sizes[j] {
				errorf("product %q variant %d has size %q, want %q", p.ID, j, v.Size, sizes[j])
			}
			if !strings.HasPrefix(v.SKU, p.ID+"-") {
				errorf("SKU %q does not belong to %q", v.SKU, p.ID)
			}
			if _, dup := skus[v.SKU]; dup {
				errorf("duplicate SKU %q", v.SKU)
			}
			skus[v.SKU] = skuInfo{p.ID, v.Size, p.SizeGroup, p.Category}
		}
	}
	st.leafCategories = len(leaves)
	st.skus = len(skus)

	// Inventory.
	stock := map[[2]string]int64{}
	for _, in := range w.inventory {
		if _, ok := skus[in.SKU]; !ok {
			errorf("stock for unknown SKU %q", in.SKU)
		}
		if !locs[in.Location] {
			errorf("stock at unknown location %q", in.Location)
		}
		if in.Quantity < 0 {
			errorf("negative stock %+v", in)
		}
		if _, dup := stock[[2]string{in.SKU, in.Location}]; dup {
			errorf("stock for %s at %s given twice", in.SKU, in.Location)
		}
		stock[[2]string{in.SKU, in.Location}] = in.Quantity
		if in.Quantity == 0 {
			st.soldOut++
		}
	}
	for sku := range skus {
		if _, ok := stock[[2]string{sku, "online"}]; !ok {
			errorf("SKU %q has no online stock row", sku)
		}
	}

	// Events.
	start, end := cfg.Start.UnixMilli(), cfg.Start.AddDate(0, 0, cfg.Days).UnixMilli()
	channels := map[string]bool{}
	for _, c := range channelNames {
		channels[c] = true
	}
	type sale struct {
		actor, sku, order string
	}
	sold := map[sale]bool{}
	wears := map[[2]string]string{} // actor, size group -> size
	orderCats := map[string]map[string]bool{}
	winterBy := map[string]map[string]string{} // customer -> winter category -> order
	customers := map[string]bool{}
	last := int64(0)
	for i, e := range w.events {
		st.types[e.Type]++
		st.channels[e.Channel]++
		if e.TS < last {
			errorf("event %d at %d goes back in time from %d", i, e.TS, last)
		}
		last = e.TS
		if e.TS < start || e.TS >= end {
			errorf("event %d at %v is outside the world's days", i, time.UnixMilli(e.TS).UTC())
		}
		actor := e.Customer
		switch {
		case (e.Customer == "") == (e.AnonymousID == ""):
			errorf("event %+v needs exactly one of customer and anonymous_id", e)
		case e.AnonymousID != "":
			actor = "anon:" + e.AnonymousID
			st.anonymous++
			if !strings.HasPrefix(e.AnonymousID, "cookie-") {
				errorf("anonymous id %q", e.AnonymousID)
			}
		default:
			customers[e.Customer] = true
			if e.Customer == "sarah" {
				errorf("customer id %q clashes with the end-to-end tests", e.Customer)
			}
		}
		if products[e.Product] == nil {
			errorf("event %+v names unknown product", e)
			continue
		}
		if !channels[e.Channel] {
			errorf("event %+v has unknown channel", e)
		}
		if (e.Channel == "store") != (e.Location != "") || (e.Location != "" && !locs[e.Location]) {
			errorf("event %+v: a location belongs to store events, and must exist", e)
		}
		needsSKU := e.Type == engine.EventCartAdd || e.Type == engine.EventCartRemove ||
			e.Type == engine.EventPurchase || e.Type == engine.EventReturn
		if needsSKU != (e.SKU != "") {
			errorf("event %+v: sku given %v, want %v", e, e.SKU != "", needsSKU)
		}
		if e.SKU != "" {
			info, ok := skus[e.SKU]
			if !ok || info.product != e.Product {
				errorf("event %+v: SKU is not a variant of the product", e)
				continue
			}
			if info.group != "" {
				k := [2]string{actor, info.group}
				if was, ok := wears[k]; ok && was != info.size && !strings.HasPrefix(actor, "anon:") {
					errorf("%s wears %s %s and %s", actor, info.group, was, info.size)
				}
				wears[k] = info.size
			}
		}
		switch e.Type {
		case engine.EventPurchase, engine.EventReturn:
			if e.Order == "" || !(e.Price > 0) {
				errorf("event %+v lacks an order or a price", e)
			}
		default:
			if e.Order != "" || e.Price != 0 {
				errorf("event %+v carries an order or price", e)
			}
		}
		if e.Type == engine.EventScan && e.Channel != "store" {
			errorf("scan %+v outside a store", e)
		}
		switch e.Type {
		case engine.EventPurchase:
			loc := "online"
			if e.Location != "" {
				loc = e.Location
			}
			if stock[[2]string{e.SKU, loc}] == 0 {
				errorf("purchase %+v of something %s does not stock", e, loc)
			}
			sold[sale{actor, e.SKU, e.Order}] = true
			if orderCats[e.Order] == nil {
				st.orders++
				orderCats[e.Order] = map[string]bool{}
			}
			cat := skus[e.SKU].category
			orderCats[e.Order][cat] = true
			if e.Customer != "" && slices.Contains(products[e.Product].Tags, "winter") {
				if winterBy[e.Customer] == nil {
					winterBy[e.Customer] = map[string]string{}
				}
				winterBy[e.Customer][cat] = e.Order
			}
		case engine.EventReturn:
			if !sold[sale{actor, e.SKU, e.Order}] {
				errorf("return %+v of something not bought in that order", e)
			}
		}
	}
	st.customers = len(customers)
	for _, cats := range orderCats {
		winter, leggings, sportTop := 0, false, false
		for c := range cats {
			if known[c].missions&mWinter != 0 {
				winter++
			}
			leggings = leggings || strings.HasSuffix(c, "/leggings")
			sportTop = sportTop || strings.Contains(c, "sportswear/tops") || strings.Contains(c, "sports-bras")
		}
		if winter >= 2 {
			st.winterOrders++
		}
		if leggings && sportTop {
			st.sportOrders++
		}
	}
	for _, byCat := range winterBy {
		orders := map[string]bool{}
		for _, o := range byCat {
			orders[o] = true
		}
		if len(byCat) >= 2 && len(orders) >= 2 {
			st.winterPairs++
		}
	}
	return st
}

func TestGenerateInvariants(t *testing.T) {
	noStores := small()
	noStores.Stores = 0
	manyStores := small()
	manyStores.Stores = 45
	for _, tc := range []struct {
		name    string
		cfg     Config
		minimum stats // the fields that are set must be reached
	}{
		{"demo", Demo(), stats{leafCategories: 40, skus: 2000, soldOut: 100, customers: 280, anonymous: 100,
			orders: 500, winterOrders: 50, winterPairs: 30, sportOrders: 10}},
		{"small", small(), stats{leafCategories: 40, soldOut: 10, customers: 100, orders: 100, winterOrders: 10}},
		{"no stores", noStores, stats{orders: 100}},
		{"many stores", manyStores, stats{orders: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := collect(t, tc.cfg)
			st := check(t, w)
			got := fmt.Sprintf("%+v", st)
			t.Logf("%d products, %d SKUs, %d stock rows, %d events: %s", len(w.products), st.skus, len(w.inventory), len(w.events), got)
			m := tc.minimum
			for _, c := range []struct {
				name      string
				got, want int
			}{
				{"leaf categories", st.leafCategories, m.leafCategories},
				{"SKUs", st.skus, m.skus},
				{"sold-out stock rows", st.soldOut, m.soldOut},
				{"customers with events", st.customers, m.customers},
				{"anonymous events", st.anonymous, m.anonymous},
				{"orders", st.orders, m.orders},
				{"orders with two winter categories", st.winterOrders, m.winterOrders},
				{"customers buying winter wear across orders", st.winterPairs, m.winterPairs},
				{"orders with leggings and a sports top", st.sportOrders, m.sportOrders},
			} {
				if c.got < c.want {
					t.Errorf("%s: %d, want at least %d", c.name, c.got, c.want)
				}
			}
			if tc.name != "demo" {
				return
			}
			if len(w.products) < 500 || st.leafCategories < 20 {
				t.Errorf("demo has %d products in %d leaf categories, want >= 500 in >= 20", len(w.products), st.leafCategories)
			}
			for typ := engine.EventView; typ <= engine.EventAdClick; typ++ {
				if st.types[typ] == 0 {
					t.Errorf("demo has no %v events", typ)
				}
			}
			for _, c := range channelNames {
				if st.channels[c] == 0 {
					t.Errorf("demo has no events on channel %s", c)
				}
			}
			if n := len(w.events); n < 3000 || n > 20000 {
				t.Errorf("demo has %d events, want a few thousand up to 20,000", n)
			}
			if end := Demo().Start.AddDate(0, 0, Demo().Days); !end.Before(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("demo ends %v, want it in the past of 2026-11-22", end)
			}
		})
	}
}

func TestGenerateEmitError(t *testing.T) {
	stop := errors.New("stop")
	for _, after := range []int{0, 3, 500, 5000, 10000} {
		n := 0
		err := Generate(small(), func(*engine.Record) error {
			if n == after {
				return stop
			}
			n++
			return nil
		})
		if err != stop || n != after {
			t.Errorf("stopping after %d records: got %v after %d", after, err, n)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(name string, change func(*Config)) {
		t.Helper()
		c := Demo()
		change(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
		if err := Generate(c, func(*engine.Record) error { return nil }); err == nil {
			t.Errorf("%s: Generate accepted %+v", name, c)
		}
	}
	f("no products", func(c *Config) { c.Products = 0 })
	f("negative customers", func(c *Config) { c.Customers = -1 })
	f("negative stores", func(c *Config) { c.Stores = -1 })
	f("no days", func(c *Config) { c.Days = 0 })
	f("no start", func(c *Config) { c.Start = time.Time{} })
	f("share above one", func(c *Config) { c.SoldOutShare = 1.5 })
	f("NaN share", func(c *Config) { c.ReturnShare = 0 / zero() })
	f("too many visits", func(c *Config) { c.Customers, c.SessionsPerCustomer = 1e9, 1000 })
	for _, c := range []Config{Demo(), Bench(), small()} {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", c, err)
		}
	}
}

func zero() float64 { return 0 }

// TestDemoFiles keeps internal/demo equal to the generator's output. Run
// with -update after changing the generator to rewrite the files.
func TestDemoFiles(t *testing.T) {
	if *update {
		if err := WriteNDJSON(demoDir, Demo(), false); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if err := WriteNDJSON(dir, Demo(), false); err != nil {
		t.Fatal(err)
	}
	for _, f := range Files() {
		want, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(demoDir, f.Name))
		if err != nil {
			t.Fatalf("%v (run go test ./bench/world -run TestDemoFiles -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generator's output: run go test ./bench/world -run TestDemoFiles -update", filepath.Join(demoDir, f.Name))
		}
	}
}

// medium is the world BenchmarkGenerate builds: 50,000 products, 100,000
// customers, 20 stores, about 3.5 million records.
func medium() Config {
	cfg := Bench()
	cfg.Seed = 42
	cfg.Products = 50_000
	cfg.Customers = 100_000
	cfg.Stores = 20
	cfg.StoreAssortment = 0.1
	return cfg
}

// BenchmarkGenerate generates the medium world, dropping the records
// ("discard") or encoding each as API JSON ("json").
func BenchmarkGenerate(b *testing.B) {
	b.Run("discard", func(b *testing.B) { benchmarkGenerate(b, medium(), nil) })
	var line []byte
	b.Run("json", func(b *testing.B) {
		benchmarkGenerate(b, medium(), func(r *engine.Record) { line = AppendRecordJSON(line[:0], r) })
	})
}

// BenchmarkGenerateScaled runs Bench() with -world.customers customers
// instead of 10,000,000: the whole catalog, stores and stock, and a
// fraction of the events.
func BenchmarkGenerateScaled(b *testing.B) {
	if *scaledCustomers == 0 {
		b.Skip("set -world.customers")
	}
	cfg := Bench()
	cfg.Customers = *scaledCustomers
	benchmarkGenerate(b, cfg, nil)
}

func benchmarkGenerate(b *testing.B, cfg Config, use func(*engine.Record)) {
	b.ReportAllocs()
	var events, records int
	for b.Loop() {
		events, records = 0, 0
		err := Generate(cfg, func(r *engine.Record) error {
			records++
			if r.Op == engine.OpEvent {
				events++
			}
			if use != nil {
				use(r)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(records), "records/op")
	b.ReportMetric(float64(events), "events/op")
	b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// TestTinyWorlds: a world of a few products (most categories empty) builds
// without a panic, and its events name only products it has.
func TestTinyWorlds(t *testing.T) {
	for _, tc := range []struct{ products, customers, stores int }{
		{1, 10, 0}, {1, 10, 3}, {2, 1, 1}, {5, 10, 2}, {20, 10, 5}, {50, 30, 2},
	} {
		t.Run(fmt.Sprintf("%dp-%dc-%ds", tc.products, tc.customers, tc.stores), func(t *testing.T) {
			cfg := Bench()
			cfg.Products, cfg.Customers, cfg.Stores, cfg.Days = tc.products, tc.customers, tc.stores, 3
			products := map[string]bool{}
			events := 0
			err := Generate(cfg, func(r *engine.Record) error {
				switch r.Op {
				case engine.OpProduct:
					products[r.Product.ID] = true
				case engine.OpEvent:
					events++
					if p := r.Event.Product; p != "" && !products[p] {
						return fmt.Errorf("event on unknown product %q", p)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if tc.customers >= 10 && events == 0 {
				t.Errorf("%d customers made no events", tc.customers)
			}
		})
	}
}
