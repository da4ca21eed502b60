package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine/store"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsExposition runs a server on a real store and log in a temp
// folder, sends a few requests, and reads /metrics back with Prometheus's
// own text parser: every family docs/operations.md lists must be there,
// with values the traffic explains.
func TestMetricsExposition(t *testing.T) {
	m := api.NewMetrics()
	st, _, err := store.Open(store.Options{Dir: t.TempDir(), NoBackground: true, OnWALSync: m.ObserveWALSync})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: st.Engine(), Writer: st, Metrics: m, StoreStats: st.Stats})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(t.Context())
	base := "http://" + srv.Addr()
	do := func(method, path, body string, want int) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s; want %d", method, path, resp.StatusCode, b, want)
		}
	}
	do("POST", "/v1/products", `{"id":"P1","title":"One","price":10,"category":"a/b","variants":[{"sku":"P1-S","size":"S"}]}
{"id":"P2","title":"Two","price":12,"category":"a/b","variants":[{"sku":"P2-S"}]}`, 200)
	do("POST", "/v1/inventory", `{"sku":"P1-S","location":"online","quantity":3}
{"sku":"P2-S","location":"online","quantity":1}`, 200)
	do("POST", "/v1/events", `{"type":"view","customer":"c1","product":"P1"}
{"type":"purchase","customer":"c1","sku":"P2-S"}`, 200)
	do("POST", "/v1/events", `{"type":"teleport","customer":"c1","product":"P1"}`, 400)
	do("GET", "/v1/picks?customer=c1&k=5", "", 200)
	do("GET", "/v1/picks?customer=c1&k=5000", "", 400)
	do("GET", "/no/such/path/123", "", 404)
	if _, err := st.Snapshot(); err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type %q", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}

	// value returns the sample of family name whose labels include the
	// given name=value pairs: a counter's or gauge's value, a histogram's
	// count.
	value := func(name string, labels ...string) float64 {
		t.Helper()
		mf := fams[name]
		if mf == nil {
			t.Fatalf("no metric family %s", name)
		}
	next:
		for _, m := range mf.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				if label(m, labels[i]) != labels[i+1] {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			case dto.MetricType_SUMMARY:
				return float64(m.GetSummary().GetSampleCount())
			case dto.MetricType_UNTYPED:
				return m.GetUntyped().GetValue()
			}
		}
		t.Fatalf("%s has no series with %v", name, labels)
		return 0
	}
	f := func(name string, check func(float64) bool, labels ...string) {
		t.Helper()
		if v := value(name, labels...); !check(v) {
			t.Errorf("%s%v = %v", name, labels, v)
		}
	}
	is := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	positive := func(v float64) bool { return v > 0 }
	nonNegative := func(v float64) bool { return v >= 0 }

	f("omnipick_http_requests_total", is(1), "endpoint", "picks", "status", "200")
	f("omnipick_http_requests_total", is(1), "endpoint", "picks", "status", "400")
	f("omnipick_http_requests_total", is(1), "endpoint", "events", "status", "200")
	f("omnipick_http_requests_total", is(1), "endpoint", "other", "status", "404") // the raw path is no label
	f("omnipick_http_request_duration_seconds", is(1), "endpoint", "picks", "class", "2xx")
	f("omnipick_http_request_duration_seconds", is(1), "endpoint", "picks", "class", "4xx")
	f("omnipick_http_request_duration_seconds", is(1), "endpoint", "events", "class", "2xx")
	f("omnipick_http_request_duration_seconds", is(1), "endpoint", "events", "class", "4xx")
	f("omnipick_records_total", is(2), "kind", "event", "outcome", "applied")
	f("omnipick_records_total", is(0), "kind", "event", "outcome", "rejected") // "teleport" fails decoding, before the engine
	f("omnipick_records_total", is(2), "kind", "product", "outcome", "applied")
	f("omnipick_events_total", is(1), "type", "view")
	f("omnipick_events_total", is(1), "type", "purchase")
	f("omnipick_products", is(2))
	f("omnipick_skus", is(2))
	f("omnipick_locations", positive)
	f("omnipick_profiles", is(1))
	f("omnipick_http_requests_in_flight", nonNegative)
	f("omnipick_wal_fsync_duration_seconds", func(v float64) bool { return v >= 3 }) // one per write at least
	f("omnipick_wal_fsync_bytes_total", positive)
	f("omnipick_wal_bytes", positive)
	f("omnipick_wal_segments", positive)
	f("omnipick_wal_buffered_bytes", nonNegative)
	f("omnipick_wal_records_total", is(3)) // one per write request: its records are one batch record
	f("omnipick_wal_full_total", is(0))
	f("omnipick_wal_failures_total", is(0))
	f("omnipick_wal_heals_total", is(0))
	f("omnipick_writable", is(1))
	f("omnipick_snapshot_age_seconds", func(v float64) bool { return v >= 0 && v < 60 })
	f("omnipick_snapshot_bytes", positive)
	f("omnipick_snapshot_raw_bytes", positive)
	f("omnipick_snapshot_duration_seconds", positive)
	f("omnipick_snapshot_pause_seconds", nonNegative)
	f("go_memstats_heap_inuse_bytes", positive)
	f("go_gc_duration_seconds", nonNegative)
	f("process_resident_memory_bytes", positive)

	// Histogram buckets are Prometheus "le" buckets, cumulative up to +Inf.
	for _, m := range fams["omnipick_http_request_duration_seconds"].Metric {
		h := m.GetHistogram()
		var last uint64
		for _, b := range h.Bucket {
			if b.GetCumulativeCount() < last {
				t.Fatalf("buckets not cumulative: %v", h)
			}
			last = b.GetCumulativeCount()
		}
		if last > h.GetSampleCount() || h.GetSampleSum() <= 0 || h.GetSampleSum() > float64(time.Minute) {
			t.Fatalf("histogram %v", h)
		}
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestMetricsServeOneServer checks that one Metrics cannot serve two
// servers, whose scrape-time figures would collide.
func TestMetricsServeOneServer(t *testing.T) {
	m := api.NewMetrics()
	st, _, err := store.Open(store.Options{Dir: t.TempDir(), NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: st.Engine(), Metrics: m}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: st.Engine(), Metrics: m}); err == nil {
		t.Fatal("a second server on the same Metrics was accepted")
	}
}
