package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
)

// now is the engines' clock in tests: a fixed instant after the world, so
// every node (and the single node compared with them) decays alike.
var testNow = time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)

// actorEvent is an event of type typ on product at at, by a customer, or
// by an anonymous id with anon.
func actorEvent(actor string, anon bool, typ engine.EventType, product string, at time.Time) engine.Record {
	r := engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: typ, Product: product, TS: at.UnixMilli()}}
	if anon {
		r.Event.AnonymousID = actor
	} else {
		r.Event.Customer = actor
	}
	return r
}

func testEngine() engine.Options {
	return engine.Options{Now: func() time.Time { return testNow }}
}

// testCluster is a real JetStream cluster of NATS servers, embedded and
// routed on loopback, with one omnipick node per server.
type testCluster struct {
	root     string
	servers  []*server.Server
	ports    []int // route ports, fixed: JetStream needs its routes configured
	nodes    []*Node
	replicas int
	parts    int            // partitions of the new stream; 0: the default
	mod      func(*Options) // changes every node's options, when set
}

func startCluster(t *testing.T, size, replicas int) *testCluster {
	t.Helper()
	c := &testCluster{}
	c.start(t, size, replicas)
	return c
}

func (c *testCluster) start(t *testing.T, size, replicas int) {
	t.Helper()
	c.root, c.replicas = t.TempDir(), replicas
	c.servers, c.nodes = make([]*server.Server, size), make([]*Node, size)
	t.Cleanup(c.stop)
	// A route port found free may be taken by another process before its
	// server listens (the machine is shared): the servers start again on
	// other ports.
	for attempt := 1; ; attempt++ {
		var err error
		c.root = t.TempDir() // a fresh JetStream folder for a fresh cluster
		if c.ports, err = FreePorts("127.0.0.1", size); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < size && err == nil; i++ {
			err = c.tryServer(i)
		}
		if err == nil {
			break
		}
		c.stop()
		if attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("starting the servers again: %v", err)
	}
	for i := range size {
		c.openNode(t, i)
	}
}

func (c *testCluster) startServer(t *testing.T, i int) {
	t.Helper()
	if err := c.tryServer(i); err != nil {
		t.Fatal(err)
	}
}

func (c *testCluster) tryServer(i int) error {
	so := ServerOptions{Name: fmt.Sprintf("n%d", i+1), StoreDir: filepath.Join(c.root, fmt.Sprintf("js%d", i+1)),
		ClusterPort: c.ports[i], Routes: RouteURLs("127.0.0.1", c.ports)}
	if len(c.servers) == 1 {
		so.ClusterPort, so.Routes = -1, nil // JetStream alone: a cluster of one has no quorum to spare
	}
	s, err := StartServer(so)
	if err != nil {
		return fmt.Errorf("server %d: %w", i+1, err)
	}
	c.servers[i] = s
	return nil
}

func (c *testCluster) openNode(t *testing.T, i int) {
	t.Helper()
	n, err := c.open(i, fmt.Sprintf("n%d", i+1), c.nodeDir(i))
	if err != nil {
		t.Fatalf("node %d: %v", i+1, err)
	}
	c.nodes[i] = n
}

// nodeDir is node i's data folder.
func (c *testCluster) nodeDir(i int) string { return filepath.Join(c.root, fmt.Sprintf("node%d", i+1)) }

// open opens a node named name with its data in dir, on server i.
func (c *testCluster) open(i int, name, dir string) (*Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	o := Options{URL: c.servers[i].ClientURL(), Name: name, Dir: dir, Engine: testEngine(),
		Replicas: c.replicas, Partitions: c.parts, NoBackground: true, WriteTimeout: 10 * time.Second}
	if c.mod != nil {
		c.mod(&o)
	}
	return Open(ctx, o)
}

// leader is the index of the server leading the stream's replicas.
func (c *testCluster) leader(t *testing.T) int {
	t.Helper()
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		info, err := n.stream.Info(ctx)
		cancel()
		if err != nil || info.Cluster == nil {
			t.Fatalf("stream info: %v", err)
		}
		for i, s := range c.servers {
			if s != nil && s.Name() == info.Cluster.Leader {
				return i
			}
		}
	}
	t.Fatal("no stream leader among the live servers")
	return -1
}

// kill ends node i and its server the way a lost machine does: no final
// snapshot, no goodbye to its peers.
func (c *testCluster) kill(i int) {
	n := c.nodes[i]
	n.halt()
	n.nc.Close()
	c.nodes[i] = nil
	c.servers[i].Shutdown()
	c.servers[i].WaitForShutdown()
	c.servers[i] = nil
}

func (c *testCluster) stop() {
	for i, n := range c.nodes {
		if n != nil {
			n.Close()
			c.nodes[i] = nil
		}
	}
	for i, s := range c.servers {
		if s != nil {
			s.Shutdown()
			s.WaitForShutdown()
			c.servers[i] = nil
		}
	}
}

// syncAll waits until every live node has applied the whole stream.
func (c *testCluster) syncAll(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, n := range c.nodes {
		if n != nil {
			if err := n.Sync(ctx); err != nil {
				t.Fatalf("%s: %v", n.Name(), err)
			}
		}
	}
}

// smallWorld returns the records of a generated world: the broadcast ones
// (locations, products, stock) and the events, each an independent copy.
func smallWorld(t *testing.T, products, customers int) (global, events []engine.Record) {
	t.Helper()
	cfg := world.Bench()
	cfg.Products, cfg.Customers, cfg.Stores, cfg.Days = products, customers, 3, 30
	var buf []byte
	err := world.Generate(cfg, func(r *engine.Record) error {
		buf = engine.AppendRecord(buf[:0], r)
		var cp engine.Record
		if err := engine.DecodeRecord(r.Op, slices.Clone(buf), &cp); err != nil {
			return err
		}
		if r.Op == engine.OpEvent {
			events = append(events, cp)
		} else {
			global = append(global, cp)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return global, events
}

// writeAll writes recs through w in batches and fails on any error.
func writeAll(t *testing.T, w interface {
	Write([]engine.Record, []error) error
}, recs []engine.Record, batch int) {
	t.Helper()
	for len(recs) > 0 {
		b := recs[:min(batch, len(recs))]
		recs = recs[len(b):]
		errs := make([]error, len(b))
		if err := w.Write(b, errs); err != nil {
			t.Fatal(err)
		}
	}
}

// picksOf is what picks answer, as comparable text: ids and exact scores.
func picksOf(e *engine.Engine, q engine.Query) string {
	q.Now = testNow.UnixMilli()
	q.K = 12
	var s string
	for _, p := range e.PicksInto(nil, &q) {
		s += fmt.Sprintf("%s:%x ", p.Item.ID, p.Score)
	}
	return s
}

// actorsOf lists the distinct actors of events, as picks queries.
func actorsOf(events []engine.Record) []engine.Query {
	seen := map[string]bool{}
	var qs []engine.Query
	for _, r := range events {
		q := engine.Query{Customer: r.Event.Customer, AnonymousID: r.Event.AnonymousID}
		k := q.Customer + "\x00" + q.AnonymousID
		if !seen[k] {
			seen[k] = true
			qs = append(qs, q)
		}
	}
	return qs
}

// comparePicks fails unless every engine answers every query as want does;
// it returns how many answers were non-empty.
func comparePicks(t *testing.T, want *engine.Engine, qs []engine.Query, got ...*engine.Engine) int {
	t.Helper()
	nonEmpty := 0
	for _, q := range qs {
		w := picksOf(want, q)
		if w != "" {
			nonEmpty++
		}
		for i, e := range got {
			if g := picksOf(e, q); g != w {
				t.Fatalf("engine %d answers %+v differently:\n got  %s\n want %s", i, q, g, w)
			}
		}
	}
	return nonEmpty
}

// streamEngine reads the whole stream with its own consumer and applies it
// in stream order to a fresh engine: the single node fed the same records.
func streamEngine(t *testing.T, url, stream string) *engine.Engine {
	t.Helper()
	e := engine.New(testEngine())
	readStream(t, url, stream, 0, func(_ uint64, _ string, data []byte) {
		if err := decodeMsg(data, func(_ int, r *engine.Record) { e.Apply(r) }); err != nil {
			t.Fatal(err)
		}
	})
	return e
}
