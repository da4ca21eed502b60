package api

import (
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

type endpoint uint8

const (
	epOther endpoint = iota
	epPicks
	epEvents
	epProducts
	epInventory
	epIdentify
	epLocations
	epCustomer
	epHealth
	epMetrics
	epExclusions
	epScreen
	epAudiences
	epFeeds
	numEndpoints
)

var endpointNames = [numEndpoints]string{"other", "picks", "events", "products", "inventory", "identify", "locations", "customer", "healthz", "metrics", "exclusions", "screen", "audiences", "feeds"}

// statusCodes are the statuses counted apart; others count as "other".
var statusCodes = [...]int{200, 400, 401, 403, 404, 405, 408, 413, 415, 429, 431, 500, 503}

const numStatus = len(statusCodes) + 1

// latencyBuckets are the histogram's upper bounds, in seconds.
var latencyBuckets = [...]float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1, 5}

// stats are the server's counters: plain atomics, so counting costs the
// request path a few nanoseconds and no locks.
type stats struct {
	requests [numEndpoints][numStatus]atomic.Uint64
	buckets  [numEndpoints][len(latencyBuckets) + 1]atomic.Uint64
	sumNanos [numEndpoints]atomic.Uint64
	applied  [8]atomic.Uint64 // by engine.Op
	rejected [8]atomic.Uint64
}

func statusIndex(code int) int {
	for i, c := range statusCodes {
		if c == code {
			return i
		}
	}
	return len(statusCodes)
}

func (st *stats) observe(ep endpoint, status int, d time.Duration) {
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

func (st *stats) countApplied(op engine.Op, recs []engine.Record, errs []error) {
	var ok, bad uint64
	for i := range recs {
		if errs[i] == nil {
			ok++
		} else {
			bad++
		}
	}
	st.applied[op&7].Add(ok)
	st.rejected[op&7].Add(bad)
}

// handleMetrics writes the Prometheus text exposition format.
func (s *Server) handleMetrics(ctx *fasthttp.RequestCtx) {
	b := make([]byte, 0, 16<<10)
	b = append(b, "# HELP omnipick_http_requests_total HTTP requests by endpoint and status.\n# TYPE omnipick_http_requests_total counter\n"...)
	for ep := range numEndpoints {
		for si := range numStatus {
			n := s.stats.requests[ep][si].Load()
			if n == 0 {
				continue
			}
			code := "other"
			if si < len(statusCodes) {
				code = strconv.Itoa(statusCodes[si])
			}
			b = fmt.Appendf(b, "omnipick_http_requests_total{endpoint=%q,status=%q} %d\n", endpointNames[ep], code, n)
		}
	}
	b = append(b, "# HELP omnipick_http_request_duration_seconds HTTP request latency by endpoint.\n# TYPE omnipick_http_request_duration_seconds histogram\n"...)
	for ep := range numEndpoints {
		var cum uint64
		for i := range len(latencyBuckets) + 1 {
			cum += s.stats.buckets[ep][i].Load()
		}
		if cum == 0 {
			continue
		}
		cum = 0
		for i, ub := range latencyBuckets {
			cum += s.stats.buckets[ep][i].Load()
			b = fmt.Appendf(b, "omnipick_http_request_duration_seconds_bucket{endpoint=%q,le=%q} %d\n", endpointNames[ep], strconv.FormatFloat(ub, 'g', -1, 64), cum)
		}
		cum += s.stats.buckets[ep][len(latencyBuckets)].Load()
		b = fmt.Appendf(b, "omnipick_http_request_duration_seconds_bucket{endpoint=%q,le=\"+Inf\"} %d\n", endpointNames[ep], cum)
		b = fmt.Appendf(b, "omnipick_http_request_duration_seconds_sum{endpoint=%q} %g\n", endpointNames[ep], float64(s.stats.sumNanos[ep].Load())/1e9)
		b = fmt.Appendf(b, "omnipick_http_request_duration_seconds_count{endpoint=%q} %d\n", endpointNames[ep], cum)
	}
	b = append(b, "# HELP omnipick_records_total Write records by kind and outcome.\n# TYPE omnipick_records_total counter\n"...)
	for op := engine.OpProduct; op <= engine.OpCampaign; op++ {
		b = fmt.Appendf(b, "omnipick_records_total{kind=%q,outcome=\"applied\"} %d\n", op.String(), s.stats.applied[op].Load())
		b = fmt.Appendf(b, "omnipick_records_total{kind=%q,outcome=\"rejected\"} %d\n", op.String(), s.stats.rejected[op].Load())
	}
	st := s.opts.Engine.Stats()
	b = append(b, "# HELP omnipick_events_total Events applied by type.\n# TYPE omnipick_events_total counter\n"...)
	for t := engine.EventView; t <= engine.EventImpression; t++ {
		b = fmt.Appendf(b, "omnipick_events_total{type=%q} %d\n", t.String(), st.EventCount(t))
	}
	gauge := func(name, help string, v float64) {
		b = fmt.Appendf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	gauge("omnipick_products", "Products in the catalog.", float64(st.Products))
	gauge("omnipick_skus", "SKUs in the catalog.", float64(st.SKUs))
	gauge("omnipick_locations", "Stock locations.", float64(st.Locations))
	gauge("omnipick_profiles", "Customer and anonymous profiles.", float64(st.Profiles))
	gauge("omnipick_profile_bytes", "Bytes of the profiles' encodings (their arenas hold up to about twice that).", float64(st.ProfileBytes))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gauge("omnipick_go_heap_bytes", "Go heap in use.", float64(ms.HeapInuse))
	gauge("omnipick_go_sys_bytes", "Memory obtained from the OS by the Go runtime.", float64(ms.Sys))
	ctx.SetContentType("text/plain; version=0.0.4")
	ctx.SetBody(b)
}
