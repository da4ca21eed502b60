package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// request sends one request with the given headers ("Name: value") and
// returns the status, the response headers and the body.
func request(t *testing.T, base, method, path string, body []byte, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ": ")
		if !ok {
			t.Fatalf("bad header %q", h)
		}
		req.Header.Set(name, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// errorBody decodes an API error and fails the test unless the body is
// one, with a message.
func errorBody(t *testing.T, body []byte) (msg, field string) {
	t.Helper()
	var e struct {
		Error *string `json:"error"`
		Field string  `json:"field"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil || *e.Error == "" {
		t.Fatalf("not a JSON error body: %s", body)
	}
	return *e.Error, e.Field
}

const (
	writeKey1 = "w1-5f0c8d2e9b7a41c3a6d4e8f0b2c4d6e8"
	writeKey2 = "w2-0a1b2c3d4e5f60718293a4b5c6d7e8f9" // the next key, during a rotation
	readKey1  = "r1-9e8d7c6b5a4f30211203f4e5d6c7b8a9"
)

func TestAccessControl(t *testing.T) {
	base := startServer(t, api.Options{WriteKeys: []string{writeKey1, writeKey2}, ReadKeys: []string{readKey1}})
	event := []byte(`{"type":"view","customer":"c1","product":"P1"}`)
	product := []byte(`{"id":"P1","title":"Hat","variants":[{"sku":"P1"}]}`)
	bearer := func(k string) string { return "Authorization: Bearer " + k }
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		header             string
		status             int
	}{
		{"picks without key", "GET", "/v1/picks", nil, "", 401},
		{"picks with unknown key", "GET", "/v1/picks", nil, bearer("nope"), 401},
		{"picks with a key's prefix", "GET", "/v1/picks", nil, bearer(readKey1[:10]), 401},
		{"picks with a key and more", "GET", "/v1/picks", nil, bearer(readKey1 + "x"), 401},
		{"picks with a basic scheme", "GET", "/v1/picks", nil, "Authorization: Basic " + readKey1, 401},
		{"picks with an empty bearer", "GET", "/v1/picks", nil, "Authorization: Bearer ", 401},
		{"picks with read key", "GET", "/v1/picks", nil, bearer(readKey1), 200},
		{"picks with read key, lower-case scheme", "GET", "/v1/picks", nil, "Authorization: bearer " + readKey1, 200},
		{"picks with read key as X-API-Key", "GET", "/v1/picks", nil, "X-API-Key: " + readKey1, 200},
		{"picks with write key", "GET", "/v1/picks", nil, bearer(writeKey1), 200},
		{"products with read key", "POST", "/v1/products", product, bearer(readKey1), 403},
		{"products with read key as X-API-Key", "POST", "/v1/products", product, "X-API-Key: " + readKey1, 403},
		{"products without key", "POST", "/v1/products", product, "", 401},
		{"products with write key", "POST", "/v1/products", product, bearer(writeKey1), 200},
		{"events with the rotated-in write key", "POST", "/v1/events", event, "X-API-Key: " + writeKey2, 200},
		{"customer without key", "GET", "/v1/customers/c1", nil, "", 401},
		{"customer with read key", "GET", "/v1/customers/c1", nil, bearer(readKey1), 200},
		{"customer with write key", "GET", "/v1/customers/c1", nil, bearer(writeKey2), 200},
		{"wrong method with read key", "GET", "/v1/events", nil, bearer(readKey1), 405},
		{"unknown path without key", "GET", "/v1/nothing", nil, "", 401},
		{"unknown path with read key", "GET", "/v1/nothing", nil, bearer(readKey1), 404},
		{"healthz without key", "GET", "/healthz", nil, "", 200},
		{"metrics without key", "GET", "/metrics", nil, "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var headers []string
			if tc.header != "" {
				headers = append(headers, tc.header)
			}
			status, h, body := request(t, base, tc.method, tc.path, tc.body, headers...)
			if status != tc.status {
				t.Fatalf("%d %s; want %d", status, body, tc.status)
			}
			if status >= 400 {
				msg, _ := errorBody(t, body)
				for _, k := range []string{writeKey1, writeKey2, readKey1} {
					if strings.Contains(msg, k) {
						t.Fatalf("error quotes a key: %s", body)
					}
				}
			}
			if got := h.Get("WWW-Authenticate"); (status == 401) != strings.HasPrefix(got, "Bearer") {
				t.Fatalf("status %d with WWW-Authenticate %q", status, got)
			}
		})
	}
	// The denied write changed nothing; the allowed ones did.
	status, _, body := request(t, base, "GET", "/metrics", nil)
	for _, want := range []string{
		`omnipick_http_requests_total{endpoint="picks",status="401"} 6`,
		`omnipick_http_requests_total{endpoint="products",status="403"} 2`,
		`omnipick_records_total{kind="product",outcome="applied"} 1`,
	} {
		if status != 200 || !bytes.Contains(body, []byte(want)) {
			t.Fatalf("metrics lack %s:\n%s", want, body)
		}
	}
}

func TestOpenServerAllowsEverythingOnLoopback(t *testing.T) {
	base := startServer(t, api.Options{})
	status, _, body := request(t, base, "POST", "/v1/products", []byte(`{"id":"P1","variants":[{"sku":"P1"}]}`))
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	// A key sent to an open server is ignored, not refused.
	if status, _, body := request(t, base, "GET", "/v1/picks", nil, "Authorization: Bearer whatever"); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
}

func TestNewRefusesOpenServerOffLoopback(t *testing.T) {
	e := engine.New(engine.Options{})
	f := func(addr string, keys bool, wantErr bool) {
		t.Helper()
		opts := api.Options{Addr: addr, Engine: e}
		if keys {
			opts.WriteKeys, opts.ReadKeys = []string{writeKey1}, []string{readKey1}
		}
		_, err := api.New(opts)
		if (err != nil) != wantErr {
			t.Fatalf("New(%q, keys %v): error %v, want error %v", addr, keys, err, wantErr)
		}
		if err != nil && (!strings.Contains(err.Error(), "without API keys") || !strings.Contains(err.Error(), "OMNIPICK_WRITE_KEY") || !strings.Contains(err.Error(), "loopback")) {
			t.Fatalf("New(%q): error does not say why and how to fix it: %v", addr, err)
		}
	}
	for _, addr := range []string{"0.0.0.0:7070", ":7070", "[::]:7070", "10.1.2.3:7070", "192.168.0.1:0", "[2001:db8::1]:7070", "shop.example:7070", "localhost.evil.example:7070", "", "127.0.0.1"} {
		f(addr, false, true)
		if addr != "" && addr != "127.0.0.1" {
			f(addr, true, false)
		}
	}
	for _, addr := range []string{"127.0.0.1:7070", "127.0.0.1:0", "127.1.2.3:0", "[::1]:0", "localhost:7070", "LOCALHOST:0"} {
		f(addr, false, false)
	}
	// Read keys alone still close the server: nobody may write.
	if _, err := api.New(api.Options{Addr: "0.0.0.0:7070", Engine: e, ReadKeys: []string{readKey1}}); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsMalformedKeys(t *testing.T) {
	e := engine.New(engine.Options{})
	for _, key := range []string{"", "has space", "trailing-newline\n", "tab\tkey", "naïve-key", "nul\x00"} {
		_, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: e, WriteKeys: []string{writeKey1}, ReadKeys: []string{key}})
		if err == nil {
			t.Fatalf("key %q accepted", key)
		}
		if key != "" && strings.Contains(err.Error(), key) {
			t.Fatalf("the error quotes the key: %v", err)
		}
	}
}

// TestKeysNeverLogged sends keys every way a request can fail, with the
// log at its most verbose, and finds them in no log line and no error
// answer.
func TestKeysNeverLogged(t *testing.T) {
	logs := &syncWriter{w: new(bytes.Buffer)}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, base := startServerWith(t, api.Options{Log: log, WriteKeys: []string{writeKey1}, ReadKeys: []string{readKey1}, MaxBodyBytes: 1 << 10,
		Writer: failingWriter{}})
	guess := "guess-" + readKey1
	for _, h := range []string{"Authorization: Bearer " + readKey1, "X-API-Key: " + writeKey1, "Authorization: Bearer " + guess} {
		request(t, base, "GET", "/v1/picks?k=1000", nil, h)
		request(t, base, "POST", "/v1/events", []byte(`{"type":"view","customer":"c","product":"p"}`), h)
		request(t, base, "POST", "/v1/events", []byte(`not json`), h)
	}
	// Requests fasthttp itself cannot read: the error answer and the log
	// must not quote the request's bytes.
	for _, raw := range []string{
		"GET /v1/picks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + readKey1 + "\r\nContent-Length: 100000\r\n\r\n",
		"GET /v1/picks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + readKey1 + "\r\nX-Junk: " + strings.Repeat("j", 10000) + "\r\n\r\n",
		"GET /v1/picks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + readKey1 + "\r\nContent-Length: -5\r\n\r\n",
		"BROKEN\r\nAuthorization: Bearer " + readKey1 + "\r\n\r\n",
	} {
		status, _, body := rawRequest(t, srv.Addr(), raw)
		if status < 400 || bytes.Contains(body, []byte(readKey1)) {
			t.Fatalf("%d %s", status, body)
		}
	}
	time.Sleep(50 * time.Millisecond) // let fasthttp log connection errors
	out := logs.String()
	for _, k := range []string{readKey1, writeKey1, guess, readKey1[:12]} {
		if strings.Contains(out, k) {
			t.Fatalf("the log holds a key:\n%s", out)
		}
	}
	if !strings.Contains(out, "write_keys=1") || !strings.Contains(out, "write failed") {
		t.Fatalf("unexpected log:\n%s", out)
	}
}

// rawRequest writes raw to a new connection and reads one response.
func rawRequest(t *testing.T, addr, raw string) (int, http.Header, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	defer resp.Body.Close()
	if resp.Close { // ReadResponse takes "Connection: close" out of the header
		resp.Header.Set("Connection", "close")
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}
