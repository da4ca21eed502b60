package engine_test

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/internal/cputime"
)

// The ingest benchmarks replay the events of a generated bench world
// (sessions, carts, baskets, Zipf popularity: what relations see in
// production), not one repeated event. An external test package, because
// bench/world imports engine.
//
// The world defaults to 20k products and 50k customers (about 1.5M events,
// held in memory); OMNIPICK_INGEST_PRODUCTS and OMNIPICK_INGEST_CUSTOMERS
// change it.

type ingestWorld struct {
	e      *engine.Engine
	events []engine.Event
	span   int64        // ms from the first event to one past the last
	next   atomic.Int64 // the replay's next event, across benchmark runs
}

// ingestWorlds builds the world once per test binary: generating and
// warming it takes longer than a benchmark run.
var ingestWorlds = sync.OnceValue(func() *ingestWorld {
	return loadIngestWorld()
})

// loadIngestWorld applies a world's catalog, stock and all its events once,
// so the timed replay runs against full relation lists and profiles.
func loadIngestWorld() *ingestWorld {
	products, customers := 20_000, 50_000
	if n, _ := strconv.Atoi(os.Getenv("OMNIPICK_INGEST_PRODUCTS")); n > 0 {
		products = n
	}
	if n, _ := strconv.Atoi(os.Getenv("OMNIPICK_INGEST_CUSTOMERS")); n > 0 {
		customers = n
	}
	cfg := world.Bench()
	cfg.Products, cfg.Customers, cfg.Stores = products, customers, 19
	w := &ingestWorld{e: engine.New(engine.Options{})}
	// Ids repeat across events: keep one copy of each string.
	intern := map[string]string{}
	in := func(s string) string {
		if s == "" {
			return s
		}
		if v, ok := intern[s]; ok {
			return v
		}
		s = string([]byte(s))
		intern[s] = s
		return s
	}
	err := world.Generate(cfg, func(r *engine.Record) error {
		if r.Op != engine.OpEvent {
			return w.e.Apply(r)
		}
		ev := r.Event
		ev.Customer, ev.AnonymousID, ev.Product, ev.SKU = in(ev.Customer), in(ev.AnonymousID), in(ev.Product), in(ev.SKU)
		ev.Channel, ev.Location, ev.Order = in(ev.Channel), in(ev.Location), ""
		w.events = append(w.events, ev)
		return nil
	})
	if err != nil {
		panic(err)
	}
	w.span = w.events[len(w.events)-1].TS - w.events[0].TS + 1
	var r engine.Record
	for i := range w.events {
		if err := w.apply(&r, i); err != nil {
			panic(err)
		}
	}
	w.next.Store(int64(len(w.events)))
	return w
}

// apply applies event i of the endless replay.
func (w *ingestWorld) apply(r *engine.Record, i int) error {
	w.record(r, i)
	return w.e.Apply(r)
}

// record sets r to event i of the endless replay: round k of the world's
// events is shifted k spans later, so time only moves forward.
func (w *ingestWorld) record(r *engine.Record, i int) {
	n := len(w.events)
	r.Op = engine.OpEvent
	r.Event = w.events[i%n]
	r.Event.TS += int64(i/n) * w.span
}

// BenchmarkApplyWorld measures Apply on one goroutine replaying a bench
// world's events; events/s is the figure issue 4 asks about.
func BenchmarkApplyWorld(b *testing.B) {
	w := ingestWorlds()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var r engine.Record
	for b.Loop() {
		if err := w.apply(&r, int(w.next.Add(1)-1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkApplyBatchWorld measures ApplyBatch replaying the bench world's
// events in batches of 1024 (and smaller: the shortest run worth its
// goroutines, minParallelRun, comes from these), with GOMAXPROCS workers
// (-cpu 1,2 compares one with two). Besides wall time per event it reports
// the process's CPU time per event (cpu-ns/op, every thread and the
// collector included): on a shared machine wall time counts waiting for a
// core.
func BenchmarkApplyBatchWorld(b *testing.B) {
	for _, size := range []int{1024, 256, 64, 32} {
		b.Run(fmt.Sprint("batch=", size), func(b *testing.B) { benchApplyBatch(b, size) })
	}
}

func benchApplyBatch(b *testing.B, size int) {
	w := ingestWorlds()
	recs := make([]engine.Record, size)
	errs := make([]error, len(recs))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	cpu0, ok := cputime.Process()
	for n := 0; n < b.N; {
		k := min(len(recs), b.N-n)
		first := int(w.next.Add(int64(k)) - int64(k))
		for j := range k {
			w.record(&recs[j], first+j)
		}
		w.e.ApplyBatch(recs[:k], errs[:k])
		for _, err := range errs[:k] {
			if err != nil {
				b.Fatal(err)
			}
		}
		n += k
	}
	if cpu1, ok1 := cputime.Process(); ok && ok1 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkApplyParallel measures Apply from GOMAXPROCS goroutines taking
// the replay's events in turn (-cpu 1,2 compares).
func BenchmarkApplyParallel(b *testing.B) {
	w := ingestWorlds()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var r engine.Record
		for pb.Next() {
			if err := w.apply(&r, int(w.next.Add(1)-1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
