package api_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// syncWriter makes a writer safe for the concurrent use of a logger.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// String returns what was written so far, when w is a Stringer.
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.(fmt.Stringer).String()
}

// failingWriter is a Writer whose disk is gone.
type failingWriter struct{}

func (failingWriter) Write(recs []engine.Record, errs []error) error {
	return errors.New("store: cannot write log: disk full")
}

// overloadedWriter is a Writer whose queue is full, as the store's is when
// the disk falls behind.
type overloadedWriter struct{}

func (overloadedWriter) Write(recs []engine.Record, errs []error) error {
	return fmt.Errorf("store: %d bytes queued: %w", 64<<20, engine.ErrOverloaded)
}

// blockingWriter holds every write until release is closed, so that tests
// can keep requests in flight.
type blockingWriter struct {
	entered chan struct{} // one send per write that started
	release chan struct{}
}

func (w blockingWriter) Write(recs []engine.Record, errs []error) error {
	w.entered <- struct{}{}
	<-w.release
	return nil
}

func TestWriterOverloadedIs503(t *testing.T) {
	f := func(w api.Writer, retryAfter string, wantMsg string) {
		t.Helper()
		base := startServer(t, api.Options{Writer: w})
		status, h, body := request(t, base, "POST", "/v1/events", []byte(`{"type":"view","customer":"c","product":"p"}`))
		msg, field := errorBody(t, body)
		if status != 503 || h.Get("Retry-After") != retryAfter || field != "" || !strings.Contains(msg, wantMsg) {
			t.Fatalf("%d Retry-After %q %s", status, h.Get("Retry-After"), body)
		}
	}
	f(overloadedWriter{}, "1", "overloaded")
	// A failing disk (full, say): the log heals by itself once it works
	// again, and the client retries the same batch a little later.
	f(failingWriter{}, "5", "cannot store the write")
}

func TestInFlightBound(t *testing.T) {
	w := blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	const maxInFlight = 3
	base := startServer(t, api.Options{Writer: w, MaxInFlight: maxInFlight})
	event := `{"type":"view","customer":"c","product":"p"}`

	// Fill every slot with a write that waits on the disk.
	var wg sync.WaitGroup
	statuses := make(chan int, maxInFlight)
	for range maxInFlight {
		wg.Go(func() {
			resp, err := http.Post(base+"/v1/events", "application/json", strings.NewReader(event))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	for range maxInFlight {
		<-w.entered
	}

	// One more request of any kind is turned away, with our JSON error.
	for _, path := range []string{"/v1/picks", "/v1/events", "/v1/customers/c", "/v1/nothing"} {
		status, h, body := request(t, base, "GET", path, nil)
		msg, _ := errorBody(t, body)
		if status != 503 || h.Get("Retry-After") != "1" || !strings.HasPrefix(msg, "overloaded") || h.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d Retry-After %q %s", path, status, h.Get("Retry-After"), body)
		}
	}
	// Health checks and metrics still answer: they are how an operator
	// sees the overload.
	if status, _, body := request(t, base, "GET", "/healthz", nil); status != 200 {
		t.Fatalf("healthz: %d %s", status, body)
	}
	status, _, metrics := request(t, base, "GET", "/metrics", nil)
	if status != 200 || !bytes.Contains(metrics, []byte(`omnipick_http_requests_total{endpoint="picks",status="503"} 1`)) {
		t.Fatalf("metrics: %d\n%s", status, metrics)
	}

	// Once the writes finish, the slots are free again.
	close(w.release)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Fatalf("held write answered %d", s)
		}
	}
	for range 2 * maxInFlight {
		if status, _, body := request(t, base, "GET", "/v1/picks", nil); status != 200 {
			t.Fatalf("after the overload: %d %s", status, body)
		}
	}
}

const hostileLimit = 4 << 20 // MaxBodyBytes of the hostile-input server

// hostileWorld is a server holding a little state, and a way to read that
// state back, so that tests can check a hostile request changed nothing.
type hostileWorld struct {
	t    *testing.T
	srv  *api.Server
	base string
}

func newHostileWorld(t *testing.T) *hostileWorld {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	srv, base := startServerWith(t, api.Options{Engine: engine.New(engine.Options{Now: clock}), Now: clock, MaxBodyBytes: hostileLimit})
	w := &hostileWorld{t: t, srv: srv, base: base}
	c := client{t, base}
	c.post("/v1/locations", `{"id":"store-1","name":"Berlin","lat":52.5,"lon":13.4}`)
	for i := range 6 {
		c.post("/v1/products", fmt.Sprintf(`{"id":"P%d","title":"Sweater %d","price":%d,"category":"women/knitwear","brand":"Nordic","size_group":"w","variants":[{"sku":"P%d-8","size":"8"},{"sku":"P%d-10","size":"10"}]}`, i, i, 20+i, i, i))
		c.post("/v1/inventory", fmt.Sprintf(`{"sku":"P%d-8","location":"online","quantity":5}`, i), fmt.Sprintf(`{"sku":"P%d-10","location":"store-1","quantity":2}`, i))
	}
	c.post("/v1/events",
		`{"type":"purchase","customer":"c1","sku":"P0-8","ts":"2026-11-21T10:00:00Z"}`,
		`{"type":"view","customer":"c1","product":"P2","ts":"2026-11-21T11:00:00Z"}`,
		`{"type":"cart_add","customer":"c1","sku":"P3-8","ts":"2026-11-21T12:00:00Z"}`,
		`{"type":"purchase","customer":"c2","sku":"P0-8","ts":"2026-11-20T10:00:00Z"}`,
		`{"type":"purchase","customer":"c2","sku":"P4-8","ts":"2026-11-20T10:00:00Z"}`,
		`{"type":"view","anonymous_id":"a1","product":"P5","ts":"2026-11-21T10:00:00Z"}`,
	)
	return w
}

var tookRE = regexp.MustCompile(`"took_us":\d+`)

// state reads back what the engine holds: picks, profiles and counts.
func (w *hostileWorld) state() string {
	w.t.Helper()
	var b strings.Builder
	for _, path := range []string{
		"/v1/picks?customer=c1&k=20", "/v1/picks?customer=c2&location=online,store-1&k=20", "/v1/picks?anonymous_id=a1",
		"/v1/picks?context=P0&location=store-1", "/v1/customers/c1", "/v1/customers/c2", "/v1/customers/a1?anonymous=1",
	} {
		status, _, body := request(w.t, w.base, "GET", path, nil)
		fmt.Fprintf(&b, "%s %d %s\n", path, status, tookRE.ReplaceAll(body, nil))
	}
	_, _, metrics := request(w.t, w.base, "GET", "/metrics", nil)
	for line := range strings.Lines(string(metrics)) {
		for _, g := range []string{"omnipick_products ", "omnipick_skus ", "omnipick_locations ", "omnipick_profiles ", "omnipick_profile_bytes ", "omnipick_events_total", `outcome="applied"`} {
			if strings.HasPrefix(line, g) || strings.Contains(line, g) {
				b.WriteString(line)
			}
		}
	}
	return b.String()
}

// hostile sends one request and checks its status and the field its error
// names, and that the state did not change.
func (w *hostileWorld) hostile(name string, send func() (int, http.Header, []byte), status int, field string) {
	w.t.Run(name, func(t *testing.T) {
		before := w.state()
		got, _, body := send()
		if got != status {
			t.Fatalf("%d %.300s; want %d", got, body, status)
		}
		_, gotField := errorBody(t, body)
		if gotField != field {
			t.Fatalf("field %q, want %q: %.300s", gotField, field, body)
		}
		if after := w.state(); after != before {
			t.Fatalf("state changed:\n%s\nbecame\n%s", before, after)
		}
	})
}

func (w *hostileWorld) post(path string, body []byte, headers ...string) func() (int, http.Header, []byte) {
	return func() (int, http.Header, []byte) {
		return request(w.t, w.base, "POST", path, body, append([]string{"Content-Type: application/x-ndjson"}, headers...)...)
	}
}

func (w *hostileWorld) get(path string) func() (int, http.Header, []byte) {
	return func() (int, http.Header, []byte) { return request(w.t, w.base, "GET", path, nil) }
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bomb compresses n zero bytes, streamed, so that the test never holds
// them: 1 GiB of zeros is about 1 MiB of gzip and 32 KiB of zstd.
func bomb(t *testing.T, n int64, zw io.WriteCloser, buf *bytes.Buffer) []byte {
	t.Helper()
	zeros := make([]byte, 1<<20)
	for n > 0 {
		m := min(n, int64(len(zeros)))
		if _, err := zw.Write(zeros[:m]); err != nil {
			t.Fatal(err)
		}
		n -= m
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBomb(t *testing.T, n int64) []byte {
	var buf bytes.Buffer
	return bomb(t, n, gzip.NewWriter(&buf), &buf)
}

func zstdBomb(t *testing.T, n int64) []byte {
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	return bomb(t, n, zw, &buf)
}

func TestHostileInput(t *testing.T) {
	w := newHostileWorld(t)
	line := func(s string) []byte { return []byte(s) }
	long := strings.Repeat("x", 257)

	// Bodies too large, by their size or once decompressed. The limit
	// holds in memory too: the bombs inflate to 1 GiB, the server may
	// allocate only a small multiple of the limit.
	w.hostile("body over the limit", w.post("/v1/events", make([]byte, hostileLimit+1)), 413, "body")
	w.hostile("NDJSON body over the limit", w.post("/v1/events", bytes.Repeat(line(`{"type":"view","customer":"c1","product":"P1"}`+"\n"), hostileLimit/40)), 413, "body")
	const GiB = 1 << 30
	for _, b := range []struct {
		encoding string
		body     []byte
	}{{"gzip", gzipBomb(t, GiB)}, {"zstd", zstdBomb(t, GiB)}} {
		if len(b.body) >= hostileLimit {
			t.Fatalf("%s bomb of %d bytes is over the body limit before decompression", b.encoding, len(b.body))
		}
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		w.hostile(b.encoding+" bomb", w.post("/v1/events", b.body, "Content-Encoding: "+b.encoding), 413, "body")
		runtime.ReadMemStats(&ms1)
		if d := ms1.TotalAlloc - ms0.TotalAlloc; d > 64<<20 {
			t.Fatalf("%s bomb of %d bytes: the server allocated %d MiB", b.encoding, len(b.body), d>>20)
		} else {
			t.Logf("%s bomb of %d KiB inflating to 1 GiB: %d MiB allocated (state checks included)", b.encoding, len(b.body)>>10, d>>20)
		}
	}

	// Broken or unknown encodings.
	valid := gzipped(t, line(`{"type":"view","customer":"c1","product":"P1"}`))
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 0xff
	w.hostile("not gzip at all", w.post("/v1/events", line(`{"type":"view"}`), "Content-Encoding: gzip"), 400, "body")
	w.hostile("corrupt gzip", w.post("/v1/events", flipped, "Content-Encoding: gzip"), 400, "body")
	w.hostile("truncated gzip", w.post("/v1/events", valid[:len(valid)-6], "Content-Encoding: gzip"), 400, "body")
	w.hostile("gzip with a bad checksum", w.post("/v1/events", append(bytes.Clone(valid[:len(valid)-8]), 1, 2, 3, 4, 0, 0, 0, 0), "Content-Encoding: gzip"), 400, "body")
	w.hostile("corrupt zstd", w.post("/v1/events", append([]byte{0x28, 0xb5, 0x2f, 0xfd}, bytes.Repeat([]byte{0xee}, 64)...), "Content-Encoding: zstd"), 400, "body")
	w.hostile("unsupported encoding", w.post("/v1/events", valid, "Content-Encoding: br"), 415, "Content-Encoding")
	w.hostile("stacked encodings", w.post("/v1/events", valid, "Content-Encoding: gzip, zstd"), 415, "Content-Encoding")

	// Bodies that are not JSON the API can use.
	w.hostile("empty JSON body", func() (int, http.Header, []byte) {
		return request(t, w.base, "POST", "/v1/events", nil, "Content-Type: application/json")
	}, 400, "body")
	w.hostile("unterminated array", w.post("/v1/events", line(`[{"type":"view","customer":"c1","product":"P1"}`)), 400, "body")
	w.hostile("scalar", w.post("/v1/events", line(`42`)), 400, "")
	w.hostile("binary", w.post("/v1/events", []byte{0, 1, 2, 0xff, 0xfe, '\n', 0}), 400, "")
	w.hostile("deep nesting", w.post("/v1/products", line(`{"id":"P9","variants":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`)), 400, "")
	w.hostile("very deep nesting", w.post("/v1/products", line(strings.Repeat(`{"a":`, 200000)+"1"+strings.Repeat("}", 200000))), 400, "")
	w.hostile("nested array in an array", w.post("/v1/products", line(`[`+strings.Repeat("[", 100000)+`]`)), 400, "body")
	w.hostile("NaN", w.post("/v1/products", line(`{"id":"P9","price":NaN,"variants":[{"sku":"P9"}]}`)), 400, "")
	w.hostile("Infinity", w.post("/v1/inventory", line(`{"sku":"P1-8","location":"online","quantity":Infinity}`)), 400, "")
	w.hostile("price 1e999", w.post("/v1/products", line(`{"id":"P9","price":1e999,"variants":[{"sku":"P9"}]}`)), 400, "price")
	w.hostile("negative price", w.post("/v1/products", line(`{"id":"P9","price":-1,"variants":[{"sku":"P9"}]}`)), 400, "price")
	w.hostile("quantity 1e999", w.post("/v1/inventory", line(`{"sku":"P1-8","location":"online","quantity":1e999}`)), 400, "quantity")
	w.hostile("negative quantity", w.post("/v1/inventory", line(`{"sku":"P1-8","location":"online","quantity":-3}`)), 400, "quantity")
	w.hostile("fractional quantity", w.post("/v1/inventory", line(`{"sku":"P1-8","location":"online","quantity":2.5}`)), 400, "quantity")
	w.hostile("unknown event type", w.post("/v1/events", line(`{"type":"teleport","customer":"c1","product":"P1"}`)), 400, "type")
	w.hostile("event price NaN as string", w.post("/v1/events", line(`{"type":"purchase","customer":"c1","sku":"P1-8","price":"NaN"}`)), 400, "price")
	w.hostile("ts far future", w.post("/v1/events", line(`{"type":"view","customer":"c1","product":"P1","ts":"9999-01-01T00:00:00Z"}`)), 400, "ts")

	// Ids: invalid UTF-8, too long.
	w.hostile("invalid UTF-8 customer", w.post("/v1/events", line("{\"type\":\"view\",\"customer\":\"c\xff\xfe\",\"product\":\"P1\"}")), 400, "customer")
	w.hostile("invalid UTF-8 product id", w.post("/v1/products", line("{\"id\":\"P\xc3\x28\",\"variants\":[{\"sku\":\"X\"}]}")), 400, "id")
	w.hostile("product id of 257 bytes", w.post("/v1/products", line(`{"id":"`+long+`","variants":[{"sku":"X"}]}`)), 400, "id")
	w.hostile("sku of 257 bytes", w.post("/v1/inventory", line(`{"sku":"`+long+`","location":"online","quantity":1}`)), 400, "sku")
	w.hostile("customer of 257 bytes", w.post("/v1/events", line(`{"type":"view","customer":"`+long+`","product":"P1"}`)), 400, "customer")
	w.hostile("location id of 257 bytes", w.post("/v1/locations", line(`{"id":"`+long+`","name":"x"}`)), 400, "id")
	w.hostile("identify anonymous_id of 257 bytes", w.post("/v1/identify", line(`{"anonymous_id":"`+long+`","customer":"c1"}`)), 400, "anonymous_id")
	w.hostile("variant sku of 257 bytes", w.post("/v1/products", line(`{"id":"P9","variants":[{"sku":"`+long+`"}]}`)), 400, "variants[0].sku")

	// Reads.
	w.hostile("picks: invalid UTF-8 customer", w.get("/v1/picks?customer=c%FF"), 400, "customer")
	w.hostile("picks: customer of 257 bytes", w.get("/v1/picks?customer="+long), 400, "customer")
	w.hostile("picks: context of 257 bytes", w.get("/v1/picks?context="+long), 400, "context")
	w.hostile("picks: invalid UTF-8 category", w.get("/v1/picks?category=%C3%28"), 400, "category")
	w.hostile("picks: k NaN", w.get("/v1/picks?k=NaN"), 400, "k")
	w.hostile("picks: k 1e999", w.get("/v1/picks?k=1e999"), 400, "k")
	w.hostile("picks: k negative", w.get("/v1/picks?k=-1"), 400, "k")
	w.hostile("picks: k overflowing", w.get("/v1/picks?k=99999999999999999999999"), 400, "k")
	w.hostile("picks: 101 excludes", w.get("/v1/picks?exclude="+url.QueryEscape(strings.Repeat("P1,", 101))), 400, "exclude")
	w.hostile("picks: invalid UTF-8 location", w.get("/v1/picks?location=online,%FF"), 400, "location")
	w.hostile("customer: invalid UTF-8 id", w.get("/v1/customers/c%FF"), 400, "id")
	w.hostile("customer: id of 257 bytes", w.get("/v1/customers/"+long), 400, "id")
}

// TestBodyOverLimitAnsweredBeforeRead checks the 413 a client gets when it
// declares a body over the limit: fasthttp refuses it from the headers,
// through our ErrorHandler, without waiting for the body, then closes
// the connection.
func TestBodyOverLimitAnsweredBeforeRead(t *testing.T) {
	srv, base := startServerWith(t, api.Options{MaxBodyBytes: 1 << 20})
	status, h, body := rawRequest(t, srv.Addr(), fmt.Sprintf("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 1<<20+1))
	_, field := errorBody(t, body)
	if status != 413 || field != "body" || h.Get("Connection") != "close" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v %s", status, h, body)
	}
	// A client that sends the whole body before reading the answer, with
	// Content-Length or chunked, still reads the 413, not a reset: the
	// connection lingers, draining, before it closes.
	big := make([]byte, 16<<20)
	for _, chunked := range []bool{false, true} {
		for range 5 {
			var r io.Reader = bytes.NewReader(big)
			if chunked {
				r = io.MultiReader(r) // hides the length: Transfer-Encoding: chunked
			}
			resp, err := http.Post(base+"/v1/events", "application/json", r)
			if err != nil {
				t.Fatalf("chunked %v: %v", chunked, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if _, field := errorBody(t, body); resp.StatusCode != 413 || field != "body" {
				t.Fatalf("chunked %v: %d %s", chunked, resp.StatusCode, body)
			}
		}
	}
	// The server still serves.
	if status, _, body := request(t, base, "POST", "/v1/locations", []byte(`{"id":"s1"}`)); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
}

func TestUnreadableRequestsAnswerJSON(t *testing.T) {
	srv, _ := startServerWith(t, api.Options{})
	for _, tc := range []struct {
		raw    string
		status int
	}{
		{"GET /v1/picks HTTP/1.1\r\nHost: x\r\nX-Junk: " + strings.Repeat("j", 10000) + "\r\n\r\n", 431},
		{"GET /v1/picks HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400},
		{"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
		{"BROKEN\r\n\r\n", 400},
	} {
		status, h, body := rawRequest(t, srv.Addr(), tc.raw)
		if status != tc.status || h.Get("Content-Type") != "application/json" {
			t.Fatalf("%.40q: %d %s", tc.raw, status, body)
		}
		errorBody(t, body)
	}
}
