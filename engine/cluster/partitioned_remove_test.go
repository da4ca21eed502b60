package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
)

// TestPartitionedRemovals: erasures and expiries whose derived records
// race with others in the stream, on one partitioned cluster.
func TestPartitionedRemovals(t *testing.T) {
	global, _ := smallWorld(t, 100, 10)
	c := startPartitioned(t, 1, global)
	var product, store string
	for _, r := range global {
		if r.Op == engine.OpProduct && product == "" {
			product = r.Product.ID
		}
		if r.Op == engine.OpLocation && store == "" && r.Location.ID != "online" {
			store = r.Location.ID
		}
	}
	n := c.nodes[0]

	t.Run("customer erased with its scan", func(t *testing.T) {
		// The scan's signal record reaches the stream after the erasure:
		// it must not bring the customer back into the store's last scan.
		writeAll(t, c.nodes[1], []engine.Record{
			{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventScan, Customer: "gone", Product: product, Location: store, TS: testNow.Add(-time.Hour).UnixMilli()}},
			{Op: engine.OpErase, Erase: engine.Erase{Customer: "gone"}},
		}, 10)
		c.quiet(t)
		for _, nd := range c.nodes {
			if sc := nd.Engine().LastScan(store); sc.Customer == "gone" || sc.Product != product {
				t.Fatalf("%s: the last scan at %s is %+v: want %s, no customer", nd.Name(), store, sc, product)
			}
			if _, ok := nd.Engine().Profile("gone", false); ok {
				t.Fatalf("%s still has a profile of the erased customer", nd.Name())
			}
		}
	})

	t.Run("customer erased while its cookie's history travels", func(t *testing.T) {
		// The merge record of the identify reaches the stream after the
		// erasure: it must not bring the customer back.
		anon, cust := crossPair(t, n, "e")
		writeAll(t, c.nodes[1], []engine.Record{actorEvent(cust, false, engine.EventView, product, testNow.Add(-2*time.Minute)), actorEvent(anon, true, engine.EventView, product, testNow.Add(-time.Minute))}, 10)
		c.quiet(t)
		writeAll(t, c.nodes[1], []engine.Record{
			{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: anon, Customer: cust}},
			{Op: engine.OpErase, Erase: engine.Erase{Customer: cust}},
		}, 10)
		c.quiet(t)
		for _, nd := range c.nodes {
			if v, ok := nd.Engine().Profile(cust, false); ok {
				t.Errorf("%s: the erased customer is back: views %d, links %v", nd.Name(), len(v.Views), v.Links)
			}
		}
	})

	t.Run("linked cookie erased with its scan", func(t *testing.T) {
		// The cookie's scan signal goes to its customer's partition, the
		// erasure's forget must follow it there. Same owner for both
		// partitions, the cookie's first: the case that failed.
		var ck, cu string
		for i := 0; ck == ""; i++ {
			a, b := fmt.Sprintf("ck-%d", i), fmt.Sprintf("cu-%d", i)
			pa, pb := Partition(a, n.partitions), Partition(b, n.partitions)
			if pa < pb && n.layout.holders[pa][0] == n.layout.holders[pb][0] {
				ck, cu = a, b
			}
		}
		writeAll(t, c.nodes[1], []engine.Record{{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: ck, Customer: cu}}}, 10)
		c.quiet(t)
		writeAll(t, c.nodes[1], []engine.Record{
			{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventScan, AnonymousID: ck, Product: product, Location: store, TS: testNow.Add(-time.Hour).UnixMilli()}},
			{Op: engine.OpErase, Erase: engine.Erase{AnonymousID: ck}},
		}, 10)
		c.quiet(t)
		for _, nd := range c.nodes {
			if sc := nd.Engine().LastScan(store); sc.AnonymousID == ck || sc.Product != product {
				t.Errorf("%s: the last scan at %s is %+v: want %s, no actor", nd.Name(), store, sc, product)
			}
		}
	})

	t.Run("two linked anonymous profiles of one partition expire", func(t *testing.T) {
		// One expiry derives a record per dropped id that others were
		// linked into: each is applied, not taken for a copy of the first.
		var devs []string
		for i, p0 := 0, -1; len(devs) < 2; i++ {
			d := fmt.Sprintf("dev-%d", i)
			if p := Partition(d, n.partitions); p0 < 0 || p == p0 {
				p0 = p
				devs = append(devs, d)
			}
		}
		old := testNow.Add(-100 * 24 * time.Hour)
		var recs []engine.Record
		for i, d := range devs {
			recs = append(recs, actorEvent(d, true, engine.EventView, product, old),
				engine.Record{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: fmt.Sprintf("ckx-%d", i), ToAnonymousID: d}})
		}
		writeAll(t, c.nodes[0], recs, 100)
		c.quiet(t)
		writeAll(t, c.nodes[0], []engine.Record{{Op: engine.OpExpire, Expire: engine.Expire{Before: testNow.Add(-time.Hour).UnixMilli()}}}, 10)
		c.quiet(t)
		for _, nd := range c.nodes {
			for _, d := range devs {
				if v, ok := nd.Engine().Profile(d, true); ok {
					t.Errorf("%s: expired %s still has an entry, links %v", nd.Name(), d, v.Links)
				}
			}
		}
	})

	t.Run("an identify moving many links", func(t *testing.T) {
		// Thousands of cookies linked into a device, the device then
		// identified as a customer of another partition: the merge
		// record carries the history, not the links (every node has
		// them), and fits a message; publishing goes on.
		dev, cust := crossPair(t, n, "big")
		var recs []engine.Record
		for i := range 1500 {
			recs = append(recs, engine.Record{Op: engine.OpIdentify, Identify: engine.Identify{
				AnonymousID: fmt.Sprintf("ck-%d-%s", i, strings.Repeat("x", 200)), ToAnonymousID: dev}})
		}
		recs = append(recs, actorEvent(dev, true, engine.EventView, product, testNow.Add(-time.Minute)))
		writeAll(t, c.nodes[0], recs, 500)
		c.quiet(t)
		writeAll(t, c.nodes[0], []engine.Record{{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: dev, Customer: cust}},
			actorEvent(cust, false, engine.EventView, product, testNow)}, 10)
		c.quiet(t) // fails after 60 s when a record is stuck
		o := c.ownerEngine(t, n, cust, false)
		if v, _ := o.Engine().Profile(cust, false); len(v.Links) != 1501 || len(v.Views) != 1 {
			t.Fatalf("%s: the customer has %d links, %d views: want 1501, 1", o.Name(), len(v.Links), len(v.Views))
		}
	})
}
