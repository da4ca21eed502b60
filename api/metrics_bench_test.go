package api

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

// The figures these benchmarks gave, and the ones that chose the library
// (VictoriaMetrics/metrics was measured too), are in bench/README.md,
// "Metrics cost".

// atomicStats is the baseline: the hand-written atomics the server used
// before it used a metrics library (counter array, linear bucket search).
type atomicStats struct {
	requests [numEndpoints][numStatus]atomic.Uint64
	buckets  [numEndpoints][16]atomic.Uint64
	sumNanos [numEndpoints]atomic.Uint64
}

func (st *atomicStats) observe(ep endpoint, status int, d time.Duration) {
	st.requests[ep][statusIndex(status)].Add(1)
	sec := d.Seconds()
	b := len(latencyBuckets)
	for i, ub := range latencyBuckets {
		if sec <= ub {
			b = i
			break
		}
	}
	st.buckets[ep][b].Add(1)
	st.sumNanos[ep].Add(uint64(d))
}

// BenchmarkObserveRequest measures what counting one request costs: the
// two clock reads, the counter by endpoint and status and the latency
// histogram, from every core at once. "none" is the loop alone.
func BenchmarkObserveRequest(b *testing.B) {
	for _, o := range []struct {
		name    string
		observe func(ep endpoint, status int, d time.Duration)
	}{
		{"none", nil},
		{"atomics", new(atomicStats).observe},
		{"prometheus", NewMetrics().observe},
	} {
		b.Run(o.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if o.observe == nil {
						continue
					}
					start := time.Now()
					// Spread over statuses and buckets as traffic would.
					o.observe(epPicks, statusCodes[i&1], time.Since(start)+time.Duration(i&1023)*time.Microsecond)
				}
			})
		})
	}
}

// BenchmarkPicksHTTP measures picks requests on the demo world through the
// in-process handler, from every core at once, with the request metrics
// (handle) and without them (serve: no clock reads, no counting). Their
// difference is what metrics cost a picks request.
func BenchmarkPicksHTTP(b *testing.B) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	e := engine.New(engine.Options{Now: func() time.Time { return now }})
	if err := world.Generate(world.Demo(), func(r *engine.Record) error { e.Apply(r); return nil }); err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Addr: "127.0.0.1:0", Engine: e})
	if err != nil {
		b.Fatal(err)
	}
	var uris []string
	for c := 1; c <= 300; c += 7 {
		uris = append(uris, fmt.Sprintf("/v1/picks?customer=C%04d&channel=web&k=10", c), fmt.Sprintf("/v1/picks?customer=C%04d&channel=screen&k=8&location=store-berlin-1", c))
	}
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", on), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctxs := make([]fasthttp.RequestCtx, len(uris))
				for i := range ctxs {
					ctxs[i].Request.Header.SetMethod("GET")
					ctxs[i].Request.SetRequestURI(uris[i])
				}
				i := 0
				for pb.Next() {
					ctx := &ctxs[i%len(ctxs)]
					i++
					ctx.Response.Reset()
					if on {
						s.handle(ctx)
					} else {
						path := ctx.Path()
						s.serve(ctx, endpointOf(path), path)
					}
					if ctx.Response.StatusCode() != 200 {
						b.Fatalf("%s: %d %s", ctx.RequestURI(), ctx.Response.StatusCode(), ctx.Response.Body())
					}
				}
			})
		})
	}
}
