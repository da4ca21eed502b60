package cluster

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
)

// TestClusterFigures measures ingest through the cluster (R=1 on one
// server, R=3 on three), how soon a write acknowledged on one node is
// applied on another, and picks per node. A measurement, not a check of
// speed: run it by hand (docs/cluster.md, bench/README.md):
//
//	OMNIPICK_CLUSTER_FIGURES=1 go test ./engine/cluster -run ClusterFigures -v -timeout 20m
func TestClusterFigures(t *testing.T) {
	if os.Getenv("OMNIPICK_CLUSTER_FIGURES") == "" {
		t.Skip("set OMNIPICK_CLUSTER_FIGURES=1 to measure")
	}
	global, events := smallWorld(t, 2000, 20000)
	t.Logf("world: %d global records, %d events", len(global), len(events))
	for _, tc := range []struct {
		servers, replicas, parts int
		partitioned              bool
	}{{1, 1, 64, false}, {3, 3, 64, false}, {3, 1, 64, true}, {3, 3, 64, true}} {
		t.Run(fmt.Sprintf("R=%d/partitions=%d/owners=%v", tc.replicas, tc.parts, tc.partitioned), func(t *testing.T) {
			c := &testCluster{parts: tc.parts}
			if tc.partitioned {
				c.partitioned(tc.servers)
			}
			c.start(t, tc.servers, tc.replicas)
			writeAll(t, c.nodes[0], global, 500)
			for _, batch := range []int{1, 100} {
				for _, writers := range []int{1, 16} {
					n := min(len(events), 2000*batch/max(1, batch/10))
					if batch == 1 {
						n = 4000
					}
					took := ingest(t, c.nodes, events[:n], batch, writers)
					t.Logf("R=%d P=%d batch %d, %d writers over %d node(s): %d events in %v: %.0f events/s, %.2f ms a write",
						tc.replicas, tc.parts, batch, writers, len(c.nodes), n, took.Round(time.Millisecond),
						float64(n)/took.Seconds(), took.Seconds()*1000/float64(n/batch)*float64(writers))
				}
			}
			if tc.partitioned {
				start := time.Now()
				c.quiet(t)
				st := c.nodes[0].Stats().Signals
				t.Logf("signals: quiet %v after the last write; n1 published %d signal messages (mean ack %v), applied %d records, %d copies skipped",
					time.Since(start).Round(time.Millisecond), st.Published, st.PublishLatency.Round(time.Microsecond), st.Applied, st.Duplicates)
			}
			c.syncAll(t)
			if len(c.nodes) > 1 {
				visibility(t, c.nodes[0], c.nodes[1], global)
			}
			// A node answers for the actors it owns (the others' picks
			// are forwarded): measure those.
			var mine []engine.Query
			for _, q := range actorsOf(events) {
				if c.nodes[0].Owns(first(q.Customer, q.AnonymousID), q.Customer == "") {
					mine = append(mine, q)
				}
			}
			picksRate(t, c.nodes[0].Engine(), mine)
		})
	}
}

// ingest writes events in batches from several writers, spread over the
// nodes, and returns the time until the last is acknowledged.
func ingest(t *testing.T, nodes []*Node, events []engine.Record, batch, writers int) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			n := nodes[w%len(nodes)]
			for i := w * batch; i < len(events); i += writers * batch {
				b := events[i:min(i+batch, len(events))]
				if err := n.Write(b, make([]error, len(b))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// visibility measures how long after a write is acknowledged on one node
// another node has applied it.
func visibility(t *testing.T, from, to *Node, global []engine.Record) {
	recs := viewsFor("vis", 300, global)
	var lags []time.Duration
	for i := range recs {
		if err := from.Write(recs[i:i+1], make([]error, 1)); err != nil {
			t.Fatal(err)
		}
		acked := time.Now()
		seq := from.Applied()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := to.WaitApplied(ctx, seq); err != nil {
			t.Fatal(err)
		}
		cancel()
		lags = append(lags, time.Since(acked))
	}
	slices.Sort(lags)
	t.Logf("a write acknowledged on %s is applied on %s after: median %v, p99 %v, max %v",
		from.Name(), to.Name(), lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1])
}

// picksRate measures picks per second on one node's engine, every core.
func picksRate(t *testing.T, e *engine.Engine, qs []engine.Query) {
	const per = 20000
	procs := runtime.GOMAXPROCS(0)
	start := time.Now()
	var wg sync.WaitGroup
	for p := range procs {
		wg.Go(func() {
			var dst []engine.Pick
			for i := range per {
				q := qs[(p*per+i)%len(qs)]
				q.Now, q.K = testNow.UnixMilli(), 12
				dst = e.PicksInto(dst[:0], &q)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	t.Logf("picks on one node: %.0f/s over %d cores (%d actors)", float64(per*procs)/took.Seconds(), procs, len(qs))
}

// TestClusterMemoryFigures measures the live heap of one node's engine at 1M
// customers: a single node's (every profile), and a partitioned node's of
// three with one standby (its partitions' profiles, about two thirds, and
// the global signals whole). The partitioned node is built as in a
// cluster: it applies every record, a second engine holding the other
// partitions derives their signal records, and both apply every derived
// record in record order; the second engine is dropped before measuring.
//
//	OMNIPICK_CLUSTER_FIGURES=1 go test ./engine/cluster -run ClusterMemoryFigures -v -timeout 30m
//
// (OMNIPICK_CLUSTER_MEMORY=single or =partitioned measures one of them,
// OMNIPICK_CLUSTER_MEMORY_CUSTOMERS=N another count of customers.)
func TestClusterMemoryFigures(t *testing.T) {
	if os.Getenv("OMNIPICK_CLUSTER_FIGURES") == "" {
		t.Skip("set OMNIPICK_CLUSTER_FIGURES=1 to measure")
	}
	cfg := world.Bench()
	cfg.Customers = 1_000_000
	if c, err := strconv.Atoi(os.Getenv("OMNIPICK_CLUSTER_MEMORY_CUSTOMERS")); err == nil {
		cfg.Customers = c
	}
	base := heapInUse()
	layout := newLayout([]string{"n1", "n2", "n3"}, 1, DefaultPartitions)
	mine := func(actor string) bool { return layout.holds("n1", Partition(actor, DefaultPartitions)) }
	for _, mode := range []string{"single node", "partitioned node (n1 of 3, one standby)"} {
		if os.Getenv("OMNIPICK_CLUSTER_MEMORY") != "" && !strings.HasPrefix(mode, os.Getenv("OMNIPICK_CLUSTER_MEMORY")) {
			continue
		}
		start := time.Now()
		o := testEngine()
		var other *engine.Engine
		if mode != "single node" {
			o.Holds = mine
			oo := testEngine()
			oo.Holds = func(a string) bool { return !mine(a) }
			other = engine.New(oo)
		}
		e := engine.New(o)
		var derived []engine.Derived
		records := 0
		err := world.Generate(cfg, func(r *engine.Record) error {
			records++
			e.Apply(r)
			if other == nil {
				return nil
			}
			other.Apply(r)
			derived = e.TakeDerived(derived[:0])
			derived = other.TakeDerived(derived)
			for i := range derived {
				e.Apply(&derived[i].Rec)
				other.Apply(&derived[i].Rec)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		built := time.Since(start)
		other, derived = nil, nil
		heap := heapInUse() - base
		st := e.Stats()
		t.Logf("%s, %d customers, %d products: %d records in %v; %d profiles, %.1f MiB of profile encodings; heap %.2f GiB (%.0f bytes per customer)",
			mode, cfg.Customers, cfg.Products, records, built.Round(time.Second), st.Profiles, float64(st.ProfileBytes)/(1<<20), float64(heap)/(1<<30), float64(heap)/float64(cfg.Customers))
		runtime.KeepAlive(e)
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
