package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
)

// TestCluster runs a real three-server JetStream cluster (R=3) on loopback
// with one omnipick node per server, and checks the guarantees of
// docs/cluster.md on it. The subtests share the cluster and run in order.
func TestCluster(t *testing.T) {
	global, events := smallWorld(t, 300, 150)
	c := startCluster(t, 3, 3)
	qs := actorsOf(events)

	t.Run("writes through any node, picks equal everywhere and to a single node", func(t *testing.T) {
		writeAll(t, c.nodes[0], global, 200)
		// Three writers, one per node, each with its own actors (an
		// actor's events keep their order, as one client's would).
		var wg sync.WaitGroup
		errc := make(chan error, 3)
		for w := range 3 {
			wg.Go(func() {
				var mine []engine.Record
				for _, r := range events {
					if Partition(r.Event.Customer+r.Event.AnonymousID, 3) == w {
						mine = append(mine, r)
					}
				}
				for len(mine) > 0 {
					b := mine[:min(40, len(mine))]
					mine = mine[len(b):]
					if err := c.nodes[w].Write(b, make([]error, len(b))); err != nil {
						errc <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		c.syncAll(t)
		single := streamEngine(t, c.servers[0].ClientURL(), "OMNIPICK")
		nonEmpty := comparePicks(t, single, qs, c.nodes[0].Engine(), c.nodes[1].Engine(), c.nodes[2].Engine())
		if nonEmpty < len(qs)/2 {
			t.Fatalf("only %d of %d actors got picks: the comparison says little", nonEmpty, len(qs))
		}
		if st := c.nodes[1].Engine().Stats(); st.EventCount(engine.EventView) == 0 {
			t.Fatalf("node 2 applied no views: %+v", st)
		}
	})

	t.Run("a write is visible on every node as soon as it is acknowledged", func(t *testing.T) {
		for i, n := range c.nodes {
			cust := fmt.Sprintf("fresh-%d", i)
			rec := engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, Customer: cust,
				Product: global[len(global)-1].Product.ID, TS: testNow.UnixMilli() - 1000}}
			// The last global record may be stock: find a product.
			for _, g := range global {
				if g.Op == engine.OpProduct {
					rec.Event.Product = g.Product.ID
				}
			}
			errs := make([]error, 1)
			if err := n.Write([]engine.Record{rec}, errs); err != nil || errs[0] != nil {
				t.Fatalf("write: %v, verdict %v", err, errs[0])
			}
			for _, m := range c.nodes {
				if _, ok := m.Engine().Profile(cust, false); !ok {
					t.Fatalf("%s acknowledged a view of %s but %s has no profile for it", n.Name(), cust, m.Name())
				}
			}
		}
	})

	t.Run("identify across partitions", func(t *testing.T) {
		anon, cust := "cookie-x", "cust-x"
		for i := 0; Partition(anon, c.nodes[0].Partitions()) == Partition(cust, c.nodes[0].Partitions()); i++ {
			cust = fmt.Sprintf("cust-x%d", i)
		}
		var prod string
		for _, g := range global {
			if g.Op == engine.OpProduct && !g.Product.Inactive {
				prod = g.Product.ID
				break
			}
		}
		ts := testNow.UnixMilli() - 3600_000
		w := func(n *Node, r engine.Record) {
			errs := make([]error, 1)
			if err := n.Write([]engine.Record{r}, errs); err != nil || errs[0] != nil {
				t.Fatalf("write %+v: %v, verdict %v", r, err, errs[0])
			}
		}
		w(c.nodes[1], engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventPurchase, AnonymousID: anon, Product: prod, TS: ts}})
		w(c.nodes[2], engine.Record{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: anon, Customer: cust}})
		c.syncAll(t)
		for _, n := range c.nodes {
			v, ok := n.Engine().Profile(cust, false)
			if !ok || len(v.Purchases) != 1 || v.Purchases[0].Product != prod {
				t.Fatalf("%s: the customer does not hold the cookie's purchase: %+v", n.Name(), v)
			}
		}
		single := streamEngine(t, c.servers[2].ClientURL(), "OMNIPICK")
		comparePicks(t, single, []engine.Query{{Customer: cust}, {AnonymousID: anon}}, c.nodes[0].Engine(), c.nodes[1].Engine(), c.nodes[2].Engine())
	})

	t.Run("a write retried through another node with its event id is applied once", func(t *testing.T) {
		rec := viewsFor("retry", 1, global)[0]
		rec.EventID, rec.Received = "ev-retry-1", testNow.UnixMilli()
		verdicts := make([]error, 3)
		for i, n := range c.nodes {
			r := []engine.Record{rec}
			if err := n.Write(r, verdicts[i:i+1]); err != nil {
				t.Fatal(err)
			}
		}
		if verdicts[0] != nil || !errors.Is(verdicts[1], engine.ErrDuplicate) || !errors.Is(verdicts[2], engine.ErrDuplicate) {
			t.Fatalf("verdicts %v: want applied, then duplicate twice", verdicts)
		}
		for _, n := range c.nodes {
			if v, ok := n.Engine().Profile(rec.Event.Customer, false); !ok || len(v.Views) != 1 {
				t.Fatalf("%s: %+v, want one view", n.Name(), v)
			}
		}
	})

	t.Run("a restarted node catches up from its snapshot", func(t *testing.T) {
		seq, err := c.nodes[2].Snapshot()
		if err != nil || seq == 0 {
			t.Fatalf("snapshot at %d: %v", seq, err)
		}
		if err := c.nodes[2].Close(); err != nil {
			t.Fatal(err)
		}
		c.nodes[2] = nil
		more := viewsFor("later", 50, global)
		writeAll(t, c.nodes[0], more, 10)
		c.openNode(t, 2)
		if got := c.nodes[2].snapSeq.Load(); got < seq {
			t.Fatalf("reopened from snapshot seq %d, want >= %d", got, seq)
		}
		c.syncAll(t)
		comparePicks(t, c.nodes[0].Engine(), append(qs, actorsOf(more)...), c.nodes[2].Engine())
	})

	t.Run("a node lost mid-write-stream loses no acknowledged write", func(t *testing.T) {
		testNodeLost(t, c, global, qs)
	})
}

// viewsFor returns n view events, one per new customer prefix-<i>.
func viewsFor(prefix string, n int, global []engine.Record) []engine.Record {
	var prods []string
	for _, g := range global {
		if g.Op == engine.OpProduct && !g.Product.Inactive {
			prods = append(prods, g.Product.ID)
		}
	}
	recs := make([]engine.Record, n)
	for i := range recs {
		recs[i] = engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView,
			Customer: fmt.Sprintf("%s-%d", prefix, i), Product: prods[i%len(prods)], TS: testNow.UnixMilli() - int64(i)*1000}}
	}
	return recs
}

// testNodeLost writes through every node while the node whose NATS server
// leads the stream (the worst case: JetStream elects a new leader) is
// killed, then checks every acknowledged write on the others and on the
// lost node restarted.
func testNodeLost(t *testing.T, c *testCluster, global []engine.Record, qs []engine.Query) {
	victim := c.leader(t)
	var (
		mu      sync.Mutex
		acked   []string
		stop    atomic.Bool
		killed  atomic.Int64 // unix nanos of the kill
		resumed atomic.Int64 // unix nanos of the first write acknowledged after it
		wg      sync.WaitGroup
	)
	writer := func(w int, n *Node) {
		for i := 0; !stop.Load(); i++ {
			recs := viewsFor(fmt.Sprintf("load%d-%d", w, i), 5, global)
			began := time.Now().UnixNano()
			err := n.Write(recs, make([]error, len(recs)))
			if err != nil {
				if w == victim {
					return // its node is gone
				}
				t.Logf("writer %d: %v after %v", w, err, time.Since(time.Unix(0, began)).Round(time.Millisecond))
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if k := killed.Load(); k != 0 && began > k && w != victim {
				resumed.CompareAndSwap(0, time.Now().UnixNano())
			}
			mu.Lock()
			for _, r := range recs {
				acked = append(acked, r.Event.Customer)
			}
			mu.Unlock()
		}
	}
	for w := range 3 {
		n := c.nodes[w]
		wg.Go(func() { writer(w, n) })
	}
	waitFor(t, 30*time.Second, "writes before the kill", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 300 })
	killed.Store(time.Now().UnixNano())
	c.kill(victim)
	waitFor(t, 60*time.Second, "a write acknowledged after the kill", func() bool { return resumed.Load() != 0 })
	outage := time.Duration(resumed.Load() - killed.Load())
	time.Sleep(200 * time.Millisecond) // a little more load after the recovery
	stop.Store(true)
	wg.Wait()
	t.Logf("%d writes acknowledged; writes served again %v after the kill of the stream leader's node", len(acked), outage.Round(time.Millisecond))

	c.syncAll(t)
	check := func(n *Node) {
		for _, cust := range acked {
			if _, ok := n.Engine().Profile(cust, false); !ok {
				t.Fatalf("%s lost the acknowledged write for %s", n.Name(), cust)
			}
		}
	}
	for _, n := range c.nodes {
		if n != nil {
			check(n)
		}
	}
	c.startServer(t, victim)
	c.openNode(t, victim)
	c.syncAll(t)
	check(c.nodes[victim])
	comparePicks(t, c.nodes[victim].Engine(), qs, c.nodes[0].Engine(), c.nodes[1].Engine(), c.nodes[2].Engine())
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
