package api_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine/store"
	"github.com/omnipick/omnipick/engine/wal"
	"github.com/valyala/fasthttp"
)

// BenchmarkIngestHTTP posts event batches over loopback HTTP to a server on
// the durable store, from 8 concurrent clients, and reports events/s.
// fsync=always: every batch is fsynced before its 2xx (group commit shares
// fsyncs between clients).
//
//	go test ./api -run XXX -bench IngestHTTP -benchtime 5s
func BenchmarkIngestHTTP(b *testing.B) {
	for _, mode := range []struct {
		name string
		sync wal.SyncMode
	}{{"fsync=always", wal.SyncAlways}, {"fsync=interval", wal.SyncInterval}} {
		for _, batch := range []int{1, 1000} {
			b.Run(fmt.Sprintf("%s/batch=%d", mode.name, batch), func(b *testing.B) {
				benchIngest(b, mode.sync, batch, 8)
			})
		}
	}
}

func benchIngest(b *testing.B, mode wal.SyncMode, batch, clients int) {
	st, _, err := store.Open(store.Options{Dir: b.TempDir(), Sync: mode, NoBackground: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	srv, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: st.Engine(), Writer: st})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Stop(b.Context())
	hc := &fasthttp.HostClient{Addr: srv.Addr(), MaxConns: clients}
	post := func(path, body string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + srv.Addr() + path)
		req.Header.SetMethod("POST")
		req.Header.SetContentType("application/x-ndjson")
		req.SetBodyString(body)
		if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("POST %s: %v %d %s", path, err, resp.StatusCode(), resp.Body())
		}
	}
	var cat strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&cat, `{"id":"P%d","category":"c/%d","variants":[{"sku":"P%d"}]}`+"\n", i, i%20, i)
	}
	post("/v1/products", cat.String())

	// Bodies prepared up front: the benchmark measures the server.
	bodies := make([]string, 64)
	for i := range bodies {
		var sb strings.Builder
		for j := range batch {
			fmt.Fprintf(&sb, `{"type":"view","customer":"C%d","product":"P%d","channel":"web","ts":"2026-11-0%dT10:00:00Z"}`+"\n",
				(i*batch+j)%50000, (i*7+j*13)%1000, 1+j%9)
		}
		bodies[i] = sb.String()
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := (b.N + clients - 1) / clients
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				post("/v1/events", bodies[next.Add(1)%int64(len(bodies))])
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	events := float64(per*clients) * float64(batch)
	b.ReportMetric(events/el.Seconds(), "events/s")
	b.ReportMetric(float64(st.Stats().WAL.Fsyncs)/float64(per*clients), "fsyncs/request")

}
