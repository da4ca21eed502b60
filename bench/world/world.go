// Package world generates a synthetic, deterministic retail world for demos,
// end-to-end tests and benchmarks: stores, an apparel catalog with sizes,
// stock levels, and the customers' multi-channel histories.
//
// Everything is derived from Config.Seed: the same Config always yields the
// same records in the same order. Generate streams the world as
// engine.Records in apply order (locations, products, inventory, then events
// in non-decreasing timestamp order) without ever holding all customers or
// all events in memory: events are generated one hour of world time at a
// time, and only events scheduled for later hours (returns, follow-up
// visits) wait in a bounded ring of hourly buckets.
//
// Generate and WriteNDJSON build their own state on every call and may run
// concurrently. Memory grows with the catalog, the number of customers (an
// id each) and the busiest hour, not with the total number of events.
//
// The data is invented. Nothing in it describes real people or real shops.
package world

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/omnipick/omnipick/engine"
)

// Config describes a world. The zero value is not valid; start from Demo or
// Bench and change what you need. Share fields are probabilities in [0, 1];
// zero means "none", not "default".
type Config struct {
	Seed      int64
	Products  int       // catalog size, >= 1
	Customers int       // registered customers C0001..; visits scale with it
	Stores    int       // physical stores besides "online"
	Start     time.Time // first instant of the world
	Days      int       // every event falls in [Start, Start+Days)

	// SessionsPerCustomer is the mean number of visits per customer over the
	// whole period, anonymous ones included; follow-up visits come on top.
	SessionsPerCustomer float64
	// AnonymousShare is the share of visits made by anonymous visitors
	// (anonymous_id "cookie-...") rather than a customer.
	AnonymousShare float64
	// StoreAssortment is the mean share of the catalog each store carries;
	// popular products are carried more widely.
	StoreAssortment float64
	// SoldOutShare is the share of stock rows (SKU x location) at quantity 0.
	SoldOutShare float64
	// InactiveShare is the share of products retired ("active": false).
	InactiveShare float64
	// ReturnShare is the share of online purchases returned (store
	// purchases are returned a third as often).
	ReturnShare float64
	// FollowUpShare is the chance that a winter or sport visit ending in a
	// purchase is followed one to seven days later by a visit buying the
	// complementary categories (a hat, then gloves and a scarf).
	FollowUpShare float64
	// Attributes gives products the attributes product feeds carry
	// (color, gender, age_group, material, google_product_category). The
	// demo has them; the bench world leaves them out, which keeps its
	// memory figures comparable.
	Attributes bool
}

// Demo is the small world behind `make run` and the end-to-end tests: 600
// products, 300 customers, three stores in Berlin, Hamburg and Munich, and
// 60 days of history from 2026-09-01.
func Demo() Config {
	return Config{
		Seed:                20260901,
		Products:            600,
		Customers:           300,
		Stores:              3,
		Start:               time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC),
		Days:                60,
		SessionsPerCustomer: 6,
		AnonymousShare:      0.08,
		StoreAssortment:     0.5,
		SoldOutShare:        0.1,
		InactiveShare:       0.01,
		ReturnShare:         0.15,
		FollowUpShare:       0.4,
		Attributes:          true,
	}
}

// Bench is the benchmark world: 1,000,000 products, 10,000,000 customers,
// online plus 199 stores, 60 days.
func Bench() Config {
	return Config{
		Seed:                1,
		Products:            1_000_000,
		Customers:           10_000_000,
		Stores:              199,
		Start:               time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC),
		Days:                60,
		SessionsPerCustomer: 3,
		AnonymousShare:      0.08,
		StoreAssortment:     0.01,
		SoldOutShare:        0.1,
		InactiveShare:       0.01,
		ReturnShare:         0.15,
		FollowUpShare:       0.3,
	}
}

// Limits keep every id and counter inside the fixed-width fields the
// generator uses.
const (
	maxProducts  = 50_000_000
	maxCustomers = 1_000_000_000
	maxStores    = 10_000
	maxDays      = 3660
	// maxVisitsPerDay keeps the busiest hour's visit numbers (follow-ups
	// included) below 2^24.
	maxVisitsPerDay = 1 << 22
)

// Validate reports whether c describes a world Generate can build.
func (c Config) Validate() error {
	share := func(name string, v float64) error {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("world: %s %v is not in [0, 1]", name, v)
		}
		return nil
	}
	switch {
	case c.Products < 1 || c.Products > maxProducts:
		return fmt.Errorf("world: products %d is not in [1, %d]", c.Products, maxProducts)
	case c.Customers < 0 || c.Customers > maxCustomers:
		return fmt.Errorf("world: customers %d is not in [0, %d]", c.Customers, maxCustomers)
	case c.Stores < 0 || c.Stores > maxStores:
		return fmt.Errorf("world: stores %d is not in [0, %d]", c.Stores, maxStores)
	case c.Days < 1 || c.Days > maxDays:
		return fmt.Errorf("world: days %d is not in [1, %d]", c.Days, maxDays)
	case c.Start.IsZero():
		return errors.New("world: start time is not set")
	case !(c.SessionsPerCustomer >= 0 && c.SessionsPerCustomer <= 1000):
		return fmt.Errorf("world: sessions per customer %v is not in [0, 1000]", c.SessionsPerCustomer)
	case float64(c.Customers)*c.SessionsPerCustomer > float64(maxVisitsPerDay)*float64(c.Days):
		// Visit numbers within an hour must fit in 23 bits.
		return fmt.Errorf("world: %d customers with %v sessions each exceed %d visits a day",
			c.Customers, c.SessionsPerCustomer, maxVisitsPerDay)
	}
	for _, s := range []struct {
		name string
		v    float64
	}{
		{"anonymous share", c.AnonymousShare},
		{"store assortment", c.StoreAssortment},
		{"sold-out share", c.SoldOutShare},
		{"inactive share", c.InactiveShare},
		{"return share", c.ReturnShare},
		{"follow-up share", c.FollowUpShare},
	} {
		if err := share(s.name, s.v); err != nil {
			return err
		}
	}
	return nil
}

// Generate builds the world described by cfg and passes each record to
// emit, in apply order: locations, products, inventory, then events in
// non-decreasing Event.TS order. It stops at the first error emit returns
// and returns that error unchanged.
//
// emit is called from the goroutine that called Generate. The *Record is
// reused between calls, so emit must not keep it; the strings and slices
// reachable from it are never modified afterwards and may be kept. Ids are
// substrings of one arena per kind (customers, products, SKUs), so keeping
// any id keeps its arena alive: tens of megabytes for the bench world.
func Generate(cfg Config, emit func(*engine.Record) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	w := newWorld(cfg)
	var r engine.Record
	for i := range w.locs {
		r.Op = engine.OpLocation
		r.Location = w.locs[i]
		if err := emit(&r); err != nil {
			return err
		}
	}
	r.Location = engine.Location{}
	if err := w.cat.emitProducts(&r, emit); err != nil {
		return err
	}
	r.Product = engine.Product{}
	if err := w.emitInventory(&r, emit); err != nil {
		return err
	}
	r.Inventory = engine.Inventory{}
	return w.emitEvents(&r, emit)
}

// world holds what every phase shares: the catalog, the locations and the
// id arenas. It is built once per Generate call.
type world struct {
	cfg  Config
	seed uint64
	cat  *catalog
	locs []engine.Location

	custIDs string // fixed-width customer ids, back to back
	custW   int
}

func newWorld(cfg Config) *world {
	w := &world{cfg: cfg, seed: uint64(cfg.Seed)}
	w.locs = makeLocations(cfg.Stores)
	w.cat = newCatalog(cfg, w.seed)
	w.custW, w.custIDs = idArena('C', 4, cfg.Customers)
	return w
}

// customerID returns the id of customer c (0-based): "C0001" for 0.
func (w *world) customerID(c uint32) string {
	o := int(c) * w.custW
	return w.custIDs[o : o+w.custW]
}

// idArena builds prefix+zero-padded 1-based numbers for n ids, at least
// minDigits wide, as one string: each id is a substring, so handing ids out
// allocates nothing and they stay valid forever.
func idArena(prefix byte, minDigits, n int) (width int, arena string) {
	digits := max(minDigits, len(strconv.Itoa(n)))
	width = 1 + digits
	buf := make([]byte, 0, n*width)
	var num [20]byte
	for i := 1; i <= n; i++ {
		buf = append(buf, prefix)
		s := strconv.AppendInt(num[:0], int64(i), 10)
		for range digits - len(s) {
			buf = append(buf, '0')
		}
		buf = append(buf, s...)
	}
	return width, string(buf)
}

// Hashing: stateless per-entity randomness (a customer's sizes, a SKU's
// stock) comes from mixing the seed with the entity's numbers, so any part
// of the world can be derived on demand without storing it.

// mix is the splitmix64 finaliser applied to a combination of a and b.
func mix(a, b uint64) uint64 {
	z := a ^ (b+0x9e3779b97f4a7c15)*0xbf58476d1ce4e5b9
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) * 0x1p-53 }

// Domain tags keep the hash streams of different purposes apart.
const (
	tagCatalog uint64 = iota + 1
	tagProduct
	tagCarry
	tagStock
	tagCustomer
	tagSize
	tagSlice
	tagCookie
	tagColor
)

const (
	msPerHour = int64(time.Hour / time.Millisecond)
	msPerDay  = 24 * msPerHour
)

// pricePoint turns euros into a shop price in cents: 12.95, 49.95, 129.95.
func pricePoint(euros float64) uint32 {
	step := 1.0
	if euros >= 100 {
		step = 5
	}
	return uint32(math.Max(1, math.Ceil(euros/step)*step)*100 - 5)
}
