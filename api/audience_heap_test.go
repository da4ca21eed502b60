package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// bigAudience returns an engine with n customers, each with a cart line
// 2 h old: every one is a cart abandoner. The catalog is small so that
// ranking stays cheap and the test measures the stream.
func bigAudience(tb testing.TB, n int) *engine.Engine {
	tb.Helper()
	now := audienceNow
	e := engine.New(engine.Options{Now: func() time.Time { return now }})
	apply := func(r engine.Record) {
		if err := e.Apply(&r); err != nil {
			tb.Fatal(err)
		}
	}
	const products = 40
	for i := range products {
		id := fmt.Sprintf("P%02d", i)
		apply(engine.Record{Op: engine.OpProduct, Product: engine.Product{ID: id, Title: "Product " + id,
			URL: "https://shop.example/p/" + id, Image: "https://shop.example/i/" + id + ".jpg", Price: 19.95, Currency: "EUR",
			Category: fmt.Sprintf("women/c%d", i%4), Variants: []engine.Variant{{SKU: id}}}})
		apply(engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: id, Location: "online", Quantity: 5}})
	}
	ts := now.Add(-2 * time.Hour).UnixMilli()
	for i := range n {
		apply(engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventCartAdd,
			Customer: fmt.Sprintf("C%07d", i), Product: fmt.Sprintf("P%02d", i%products), TS: ts}})
	}
	return e
}

// heapInUse returns the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestAudienceHeapIsFlat streams an audience of 50,000 members (8,000
// under -race or -short) and samples the heap while it does: the server
// holds one batch at a time, so the heap must not grow with the rows sent,
// which are many times larger.
func TestAudienceHeapIsFlat(t *testing.T) {
	n, accepts, every := 50_000, []string{"", "zstd"}, 2<<20
	if raceDetector || testing.Short() {
		n, accepts, every = 8_000, []string{""}, 512<<10
	}
	base := startServer(t, api.Options{Engine: bigAudience(t, n)})
	for _, accept := range accepts {
		t.Run("Accept-Encoding="+accept, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+"/v1/audiences/cart_abandoners?k=10", nil)
			if accept != "" {
				req.Header.Set("Accept-Encoding", accept)
			}
			c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			var body io.Reader = resp.Body
			if accept == "zstd" {
				body = zstdReader(t, resp.Body)
			}
			// Sample the heap as the rows arrive, and count them.
			buf := make([]byte, 32<<10)
			var read, nextSample, rows int
			var samples []uint64
			for {
				k, err := body.Read(buf)
				for _, b := range buf[:k] {
					if b == '\n' {
						rows++
					}
				}
				read += k
				if read >= nextSample {
					samples = append(samples, heapInUse())
					nextSample += every
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			took := time.Since(start)
			if rows != n {
				t.Fatalf("%d rows, want %d", rows, n)
			}
			first, peak := samples[0], samples[0]
			for _, s := range samples {
				peak = max(peak, s)
			}
			t.Logf("%d members, %.1f MiB of rows in %v (%.0f members/s); heap in use %.1f MiB at the start, peak %.1f MiB over %d samples",
				n, float64(read)/(1<<20), took.Round(time.Millisecond), float64(n)/took.Seconds(), float64(first)/(1<<20), float64(peak)/(1<<20), len(samples))
			// The rows are tens of MiB; growth of a few MiB is pools and
			// the compressor's window warming up, not rows held.
			if growth := int64(peak) - int64(first); growth > 6<<20 || growth > int64(read)/4 {
				t.Fatalf("heap grew by %.1f MiB while streaming %.1f MiB", float64(growth)/(1<<20), float64(read)/(1<<20))
			}
		})
	}
}

func zstdReader(t *testing.T, r io.Reader) io.Reader {
	t.Helper()
	zr, err := zstd.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(zr.Close)
	return zr
}

// BenchmarkAudienceStream streams a 20,000-member audience over loopback
// HTTP per iteration (B/op and allocs/op are per whole stream) and reports
// members/s and bytes on the wire per member. Every member's picks are
// alike here, so the compressed sizes flatter real audiences.
//
//	go test ./api -run XXX -bench AudienceStream -benchtime 3x
func BenchmarkAudienceStream(b *testing.B) {
	const n = 20_000
	srv, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: bigAudience(b, n)})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Stop(b.Context())
	base := "http://" + srv.Addr()
	for _, accept := range []string{"identity", "gzip", "zstd"} {
		b.Run(accept, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			b.ReportAllocs()
			var bytes int64
			for b.Loop() {
				req, _ := http.NewRequest("GET", base+"/v1/audiences/cart_abandoners?k=10", nil)
				req.Header.Set("Accept-Encoding", accept)
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				m, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("%d %v", resp.StatusCode, err)
				}
				bytes += m
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "members/s")
			b.ReportMetric(float64(bytes)/float64(b.N*n), "wire-B/member")
		})
	}
}

// TestAudienceStreamsAreBounded opens as many streams as the server runs
// at once, reading none, and checks that one more is refused with 503,
// that closed streams free their places, and that Stop ends a stalled
// stream as truncated rather than complete.
func TestAudienceStreamsAreBounded(t *testing.T) {
	const n = 8_000 // rows of many MiB: more than loopback buffers hold
	srv, base := startServerWith(t, api.Options{Engine: bigAudience(t, n)})
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func() *http.Response {
		t.Helper()
		resp, err := c.Get(base + "/v1/audiences/cart_abandoners")
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	limit := max(2, runtime.GOMAXPROCS(0))
	var open []*http.Response
	for range limit {
		resp := get()
		if resp.StatusCode != 200 {
			t.Fatalf("stream %d: %d", len(open)+1, resp.StatusCode)
		}
		open = append(open, resp)
	}
	over := get()
	body, _ := io.ReadAll(over.Body)
	over.Body.Close()
	if over.StatusCode != 503 || over.Header.Get("Retry-After") == "" || over.Header.Get("Content-Encoding") != "" {
		t.Fatalf("stream %d: %d %v %s; want 503 with Retry-After", limit+1, over.StatusCode, over.Header, body)
	}

	// Closing a stream's connection frees its place once the server
	// notices the broken pipe.
	open[0].Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := get()
		if resp.StatusCode == 200 {
			open[0] = resp
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("a closed stream's place was not freed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Stop ends the stalled streams: their bodies end in an error, not EOF.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(ctx) }()
	for i, resp := range open {
		_, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("stream %d ended cleanly while the server stopped: a truncated audience would pass for whole", i)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
