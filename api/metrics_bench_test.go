package api

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// requestObserver is what the request path calls once per request.
type requestObserver interface {
	observe(ep endpoint, status int, d time.Duration)
}

type nopObserver struct{}

func (nopObserver) observe(endpoint, int, time.Duration) {}

// vmObserver uses VictoriaMetrics/metrics, series resolved up front.
type vmObserver struct {
	requests [numEndpoints][numStatus]*vm.Counter
	latency  [numEndpoints]*vm.Histogram
}

func newVMObserver() *vmObserver {
	set := vm.NewSet()
	o := &vmObserver{}
	for ep := range numEndpoints {
		for si := range numStatus {
			o.requests[ep][si] = set.NewCounter(fmt.Sprintf(`omnipick_http_requests_total{endpoint=%q,status=%q}`, endpointNames[ep], statusName(si)))
		}
		o.latency[ep] = set.NewHistogram(fmt.Sprintf(`omnipick_http_request_duration_seconds{endpoint=%q}`, endpointNames[ep]))
	}
	return o
}

func (o *vmObserver) observe(ep endpoint, status int, d time.Duration) {
	o.requests[ep][statusIndex(status)].Inc()
	o.latency[ep].Update(d.Seconds())
}

// promObserver uses prometheus/client_golang, series resolved up front.
type promObserver struct {
	requests [numEndpoints][numStatus]prometheus.Counter
	latency  [numEndpoints]prometheus.Observer
}

func newPromObserver() *promObserver {
	reg := prometheus.NewRegistry()
	req := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "omnipick_http_requests_total"}, []string{"endpoint", "status"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "omnipick_http_request_duration_seconds", Buckets: latencyBuckets[:]}, []string{"endpoint"})
	reg.MustRegister(req, lat)
	o := &promObserver{}
	for ep := range numEndpoints {
		for si := range numStatus {
			o.requests[ep][si] = req.WithLabelValues(endpointNames[ep], statusName(si))
		}
		o.latency[ep] = lat.WithLabelValues(endpointNames[ep])
	}
	return o
}

func (o *promObserver) observe(ep endpoint, status int, d time.Duration) {
	o.requests[ep][statusIndex(status)].Inc()
	o.latency[ep].Observe(d.Seconds())
}

func statusName(si int) string {
	if si < len(statusCodes) {
		return strconv.Itoa(statusCodes[si])
	}
	return "other"
}

var observers = []struct {
	name string
	new  func() requestObserver
}{
	{"none", func() requestObserver { return nopObserver{} }},
	{"handwritten", func() requestObserver { return new(stats) }},
	{"victoriametrics", func() requestObserver { return newVMObserver() }},
	{"prometheus", func() requestObserver { return newPromObserver() }},
}

// BenchmarkObserveRequest measures what counting one request costs: the
// clock reads, the counter by endpoint and status and the latency
// histogram, from every core at once.
func BenchmarkObserveRequest(b *testing.B) {
	for _, o := range observers {
		b.Run(o.name, func(b *testing.B) {
			obs := o.new()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					start := time.Now()
					i++
					obs.observe(epPicks, statusCodes[i&1], time.Since(start)+time.Duration(i&1023)*time.Microsecond)
				}
			})
		})
	}
}

// BenchmarkPicksHTTP measures picks requests on the demo world through the
// in-process handler, from every core at once, with each way of counting.
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
	for _, o := range observers {
		b.Run(o.name, func(b *testing.B) {
			obs := o.new()
			_, off := obs.(nopObserver)
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
					path := ctx.Path()
					ep := endpointOf(path)
					if off { // no clock reads either
						s.serve(ctx, ep, path)
					} else {
						start := time.Now()
						s.serve(ctx, ep, path)
						obs.observe(ep, ctx.Response.StatusCode(), time.Since(start))
					}
					if ctx.Response.StatusCode() != 200 {
						b.Fatalf("%s: %d %s", ctx.RequestURI(), ctx.Response.StatusCode(), ctx.Response.Body())
					}
				}
			})
		})
	}
}
