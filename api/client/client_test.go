package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/api/client"
	"github.com/omnipick/omnipick/engine"
)

// The client against a real server, in-process on a free port. The api
// package's end-to-end tests (sarah_test.go, channels_test.go) also run
// through this client, with every request held to api/openapi.yaml.

const (
	writeKey = "client-test-write-key-0123456789abcdef"
	readKey  = "client-test-read-key-0123456789abcdef"
)

// startServer runs a server with the test keys; writer nil applies writes
// to the engine directly.
func startServer(tb testing.TB, e *engine.Engine, w api.Writer) string {
	tb.Helper()
	if e == nil {
		e = engine.New(engine.Options{})
	}
	srv, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: e, Writer: w, WriteKeys: []string{writeKey}, ReadKeys: []string{readKey}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
	})
	return "http://" + srv.Addr()
}

func newClient(tb testing.TB, opts client.Options) *client.Client {
	tb.Helper()
	c, err := client.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// catalog writes a small catalog: three sized products and a hat, in
// stock online.
func catalog(t *testing.T, c *client.Client) {
	t.Helper()
	ctx := t.Context()
	var ps []client.Product
	var inv []client.Inventory
	for _, id := range []string{"SW", "LG", "CO"} {
		ps = append(ps, client.Product{ID: id, Title: "Title " + id, Price: 49.5, Currency: "EUR", Category: "women/" + strings.ToLower(id),
			SizeGroup: "women-numeric", Variants: []client.Variant{{SKU: id + "-8", Size: "8"}, {SKU: id + "-10", Size: "10"}}})
		inv = append(inv, client.Inventory{SKU: id + "-8", Location: "online", Quantity: 5}, client.Inventory{SKU: id + "-10", Location: "online", Quantity: 5})
	}
	ps = append(ps, client.Product{ID: "HAT", Title: "Hat", Price: 19, Category: "women/hats"})
	inv = append(inv, client.Inventory{SKU: "HAT", Location: "online", Quantity: 3})
	if res, err := c.Products(ctx, ps); err != nil || res.Applied != len(ps) || len(res.Rejected) != 0 {
		t.Fatalf("products: %+v %v", res, err)
	}
	if res, err := c.Inventory(ctx, inv); err != nil || res.Applied != len(inv) {
		t.Fatalf("inventory: %+v %v", res, err)
	}
}

func TestWriteAndReadEveryCompression(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    client.Compression
	}{{"zstd", client.Zstd}, {"gzip", client.Gzip}, {"none", client.NoCompression}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, client.Options{BaseURL: startServer(t, nil, nil), WriteKey: writeKey, Compression: tc.c})
			catalog(t, c)
			ctx := t.Context()
			evs := []client.Event{
				{Type: client.View, Customer: "sarah", Product: "CO", Channel: "web", TS: time.Now().Add(-2 * time.Hour)},
				{Type: client.CartAdd, Customer: "sarah", SKU: "LG-8", Channel: "web"},
			}
			if res, err := c.Events(ctx, evs); err != nil || res.Applied != 2 {
				t.Fatalf("events: %+v %v", res, err)
			}
			if evs[0].EventID == "" || evs[0].EventID == evs[1].EventID {
				t.Fatalf("event ids not filled in: %q %q", evs[0].EventID, evs[1].EventID)
			}
			p, err := c.Picks(ctx, client.PicksQuery{Customer: "sarah", Channel: "ads", K: 3})
			if err != nil || len(p.Picks) == 0 || p.Picks[0].Product != "LG" || p.Picks[0].Reason != "cart" || !slices.Equal(p.Picks[0].Sizes, []string{"8"}) {
				t.Fatalf("picks: %+v %v", p, err)
			}
			prof, err := c.Customer(ctx, "sarah")
			if err != nil || len(prof.Cart) != 1 || prof.Cart[0].SKU != "LG-8" {
				t.Fatalf("profile: %+v %v", prof, err)
			}
			var e *client.Error
			if _, err := c.Customer(ctx, "nobody"); !errors.As(err, &e) || e.Status != 404 || e.Field != "id" {
				t.Fatalf("unknown customer: %v", err)
			}
		})
	}
}

// recorder is a transport that keeps every request body it sends (for
// what a retry resends) and can lose the answer of chosen attempts, as a
// connection reset after the server has applied a write would.
type recorder struct {
	mu     sync.Mutex
	bodies [][]byte
	lose   map[int]bool // attempt number (from 0) -> answer lost
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var b []byte
	if req.Body != nil {
		b, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	r.mu.Lock()
	n := len(r.bodies)
	r.bodies = append(r.bodies, decode(b, req.Header.Get("Content-Encoding")))
	lose := r.lose[n]
	r.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && lose {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, errors.New("connection reset by peer (after the server answered)")
	}
	return resp, err
}

func (r *recorder) sent() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies)
}

func decode(b []byte, encoding string) []byte {
	switch encoding {
	case "zstd":
		d, _ := zstd.NewReader(nil)
		defer d.Close()
		out, _ := d.DecodeAll(b, nil)
		return out
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil
		}
		out, _ := io.ReadAll(zr)
		return out
	}
	return b
}

// eventIDs returns the event_id of every line of an NDJSON body.
func eventIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var ids []string
	for line := range bytes.Lines(body) {
		var v struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		ids = append(ids, v.EventID)
	}
	return ids
}

// TestRetryResendsTheSameEventIDs: a write whose answer is lost is sent
// again with the same event ids, so that the server can apply it once.
func TestRetryResendsTheSameEventIDs(t *testing.T) {
	rec := &recorder{}
	base := startServer(t, nil, nil)
	c := newClient(t, client.Options{BaseURL: base, WriteKey: writeKey, HTTPClient: &http.Client{Transport: rec},
		Retry: client.Retry{Attempts: 3, Base: time.Millisecond, Max: 10 * time.Millisecond}})
	catalog(t, c)
	before := len(rec.sent())
	evs := []client.Event{
		{Type: client.Purchase, Customer: "ann", SKU: "SW-8", Order: "O1"},
		{Type: client.View, Customer: "ann", Product: "HAT", EventID: "mine-1"},
	}
	rec.mu.Lock()
	rec.lose = map[int]bool{before: true}
	rec.mu.Unlock()
	// The first attempt was applied, its answer lost: the retry is
	// acknowledged as duplicates, and the purchase counts once.
	res, err := c.Events(t.Context(), evs)
	if err != nil || res.Applied != 0 || res.Duplicates != 2 {
		t.Fatalf("events: %+v %v", res, err)
	}
	sent := rec.sent()[before:]
	if len(sent) != 2 {
		t.Fatalf("%d attempts, want 2 (one lost answer, one retry)", len(sent))
	}
	first, retry := eventIDs(t, sent[0]), eventIDs(t, sent[1])
	if !slices.Equal(first, retry) || first[1] != "mine-1" || first[0] == "" {
		t.Fatalf("the retry sent event ids %v, the first attempt %v", retry, first)
	}
	if p, err := c.Customer(t.Context(), "ann"); err != nil || len(p.Purchases) != 1 || len(p.Views) != 1 {
		t.Fatalf("ann after a retried batch: %+v %v", p, err)
	}
}

// flakyWriter answers "overloaded" to its first fails writes, then
// applies to the engine.
type flakyWriter struct {
	e     *engine.Engine
	fails atomic.Int32
	calls atomic.Int32
}

func (w *flakyWriter) Write(recs []engine.Record, errs []error) error {
	w.calls.Add(1)
	if w.fails.Add(-1) >= 0 {
		return fmt.Errorf("store: queue full: %w", engine.ErrOverloaded)
	}
	for i := range recs {
		errs[i] = w.e.Apply(&recs[i])
	}
	return nil
}

// TestRetryAfterOverload: a 503 with Retry-After is retried after it.
func TestRetryAfterOverload(t *testing.T) {
	e := engine.New(engine.Options{})
	w := &flakyWriter{e: e}
	c := newClient(t, client.Options{BaseURL: startServer(t, e, w), WriteKey: writeKey})
	catalog(t, c)
	w.fails.Store(1)
	calls := w.calls.Load()
	start := time.Now()
	res, err := c.Inventory(t.Context(), []client.Inventory{{SKU: "HAT", Location: "online", Quantity: 0}})
	if err != nil || res.Applied != 1 || w.calls.Load()-calls != 2 {
		t.Fatalf("%+v %v after %d writes", res, err, w.calls.Load()-calls)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("retried after %v, before the server's Retry-After of 1 s", d)
	}
	// More overloads than attempts: the last answer is the error.
	w.fails.Store(10)
	c = newClient(t, client.Options{BaseURL: c.BaseURL(), WriteKey: writeKey, Retry: client.Retry{Attempts: 3, Base: time.Millisecond, Max: 2 * time.Second}})
	var ce *client.Error
	calls = w.calls.Load()
	if _, err := c.Inventory(t.Context(), []client.Inventory{{SKU: "HAT", Location: "online", Quantity: 1}}); !errors.As(err, &ce) || ce.Status != 503 || ce.RetryAfter != time.Second || w.calls.Load()-calls != 3 {
		t.Fatalf("overloaded three times: %v after %d writes", err, w.calls.Load()-calls)
	}
	// A Retry-After beyond Retry.Max is the caller's to schedule: no wait.
	c = newClient(t, client.Options{BaseURL: c.BaseURL(), WriteKey: writeKey, Retry: client.Retry{Attempts: 3, Base: time.Millisecond, Max: 100 * time.Millisecond}})
	calls, start = w.calls.Load(), time.Now()
	if _, err := c.Inventory(t.Context(), []client.Inventory{{SKU: "HAT", Location: "online", Quantity: 1}}); !errors.As(err, &ce) || ce.RetryAfter != time.Second || w.calls.Load()-calls != 1 || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("Retry-After over Max: %v after %d writes and %v", err, w.calls.Load()-calls, time.Since(start))
	}
}

// failingWriter's disk is full: 503, Retry-After 5.
type failingWriter struct{ calls *atomic.Int32 }

func (w failingWriter) Write([]engine.Record, []error) error {
	w.calls.Add(1)
	return errors.New("store: cannot write log: no space left on device")
}

// TestDiskFullIsRetriedAfterRetryAfter: the server says when to come back;
// within Retry.Max the client waits and retries, beyond it the caller
// gets the error with RetryAfter at once.
func TestDiskFullIsRetriedAfterRetryAfter(t *testing.T) {
	var calls atomic.Int32
	base := startServer(t, nil, failingWriter{&calls})
	c := newClient(t, client.Options{BaseURL: base, WriteKey: writeKey, Retry: client.Retry{Attempts: 3, Base: time.Millisecond, Max: time.Second}})
	var ce *client.Error
	start := time.Now()
	_, err := c.Locations(t.Context(), []client.Location{{ID: "store-1"}})
	if !errors.As(err, &ce) || ce.Status != 503 || ce.RetryAfter != 5*time.Second || calls.Load() != 1 || time.Since(start) > 4*time.Second {
		t.Fatalf("%v after %d writes and %v; want one 503 with Retry-After 5 s, returned at once", err, calls.Load(), time.Since(start))
	}
	// A deadline before the Retry-After ends the wait at once too.
	c = newClient(t, client.Options{BaseURL: base, WriteKey: writeKey, Retry: client.Retry{Attempts: 3, Base: time.Millisecond, Max: 10 * time.Second}})
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	calls.Store(0)
	if _, err := c.Locations(ctx, []client.Location{{ID: "store-1"}}); !errors.As(err, &ce) || !errors.Is(err, context.DeadlineExceeded) || calls.Load() != 1 {
		t.Fatalf("%v after %d writes; want the 503 and the deadline", err, calls.Load())
	}
}

// blockingWriter holds writes until release is closed.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write([]engine.Record, []error) error {
	<-w.release
	return nil
}

func TestContextDeadline(t *testing.T) {
	w := blockingWriter{make(chan struct{})}
	base := startServer(t, nil, w)
	t.Cleanup(func() { close(w.release) }) // before the server stops
	c := newClient(t, client.Options{BaseURL: base, WriteKey: writeKey})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Locations(ctx, []client.Location{{ID: "store-1"}})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("%v after %v; want the deadline", err, time.Since(start))
	}
}

// TestBatchesKeepOrderAndPositions: a write larger than MaxBatchBytes goes
// as several bodies, in order, and rejects name positions in the caller's
// slice.
func TestBatchesKeepOrderAndPositions(t *testing.T) {
	rec := &recorder{}
	c := newClient(t, client.Options{BaseURL: startServer(t, nil, nil), WriteKey: writeKey, MaxBatchBytes: 300, HTTPClient: &http.Client{Transport: rec}})
	catalog(t, c)
	before := len(rec.sent())
	var inv []client.Inventory
	for i := range 40 {
		sku := "HAT"
		if i%7 == 3 {
			sku = fmt.Sprint("NOPE-", i) // unknown SKU: rejected
		}
		inv = append(inv, client.Inventory{SKU: sku, Location: "online", Quantity: int64(i)})
	}
	res, err := c.Inventory(t.Context(), inv)
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for i := range inv {
		if i%7 == 3 {
			want = append(want, i)
		}
	}
	var got []int
	for _, r := range res.Rejected {
		got = append(got, r.Index)
		if r.Field != "sku" {
			t.Errorf("reject %+v: want field sku", r)
		}
	}
	bodies := rec.sent()[before:]
	if !slices.Equal(got, want) || res.Applied != len(inv)-len(want) || len(bodies) < 5 {
		t.Fatalf("rejected %v (want %v), applied %d, in %d bodies", got, want, res.Applied, len(bodies))
	}
	for _, b := range bodies {
		if len(b) > 300 {
			t.Fatalf("a body of %d bytes, over MaxBatchBytes", len(b))
		}
	}
	// The last quantity written wins: the bodies went in order.
	p, err := c.Picks(t.Context(), client.PicksQuery{K: 10})
	if err != nil || !slices.ContainsFunc(p.Picks, func(p client.Pick) bool { return p.Product == "HAT" }) {
		t.Fatalf("picks after the stock writes: %+v %v", p, err)
	}
}

func TestKeys(t *testing.T) {
	base := startServer(t, nil, nil)
	ctx := t.Context()
	var ce *client.Error
	reader := newClient(t, client.Options{BaseURL: base, ReadKey: readKey})
	if _, err := reader.Picks(ctx, client.PicksQuery{}); err != nil {
		t.Fatalf("read key, picks: %v", err)
	}
	if _, err := reader.Locations(ctx, []client.Location{{ID: "s"}}); !errors.As(err, &ce) || ce.Status != 403 {
		t.Fatalf("read key, write: %v", err)
	}
	writer := newClient(t, client.Options{BaseURL: base, WriteKey: writeKey})
	if _, err := writer.Picks(ctx, client.PicksQuery{}); err != nil {
		t.Fatalf("write key, picks: %v", err)
	}
	anon := newClient(t, client.Options{BaseURL: base})
	if _, err := anon.Picks(ctx, client.PicksQuery{}); !errors.As(err, &ce) || ce.Status != 401 {
		t.Fatalf("no key: %v", err)
	}
	if err := anon.Health(ctx); err != nil {
		t.Fatalf("health needs no key: %v", err)
	}
	if _, err := client.New(client.Options{BaseURL: "127.0.0.1:7070"}); err == nil {
		t.Fatal("a base URL without a scheme was accepted")
	}
}

// TestBadObjectsAreRejectsNotErrors: a batch where nothing applies (the
// server's 400) is a result with every object rejected.
func TestBadObjectsAreRejectsNotErrors(t *testing.T) {
	c := newClient(t, client.Options{BaseURL: startServer(t, nil, nil), WriteKey: writeKey})
	res, err := c.Events(t.Context(), []client.Event{{Type: "teleport", Customer: "a", Product: "p"}, {Type: client.View, Product: "p"}})
	if err != nil || res.Applied != 0 || len(res.Rejected) != 2 || res.Rejected[0].Field != "type" || res.Rejected[1].Field != "customer" {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestStreamsAndScreens: audiences row by row (zstd), the product feed,
// a store screen's picks.
func TestStreamsAndScreens(t *testing.T) {
	c := newClient(t, client.Options{BaseURL: startServer(t, nil, nil), WriteKey: writeKey})
	catalog(t, c)
	ctx := t.Context()
	if _, err := c.Locations(ctx, []client.Location{{ID: "store-1", Name: "Mitte"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Inventory(ctx, []client.Inventory{{SKU: "HAT", Location: "store-1", Quantity: 2}}); err != nil {
		t.Fatal(err)
	}
	two := time.Now().Add(-2 * time.Hour)
	if res, err := c.Events(ctx, []client.Event{
		{Type: client.CartAdd, Customer: "sarah", SKU: "LG-8", TS: two},
		{Type: client.CartAdd, AnonymousID: "cookie-1", Product: "HAT", TS: two},
		{Type: client.CartAdd, Customer: "fresh", SKU: "SW-8"}, // too recent for min_age
	}); err != nil || res.Applied != 3 {
		t.Fatalf("events: %+v %v", res, err)
	}
	members := map[string][]string{}
	err := c.Audience(ctx, client.AudienceQuery{Name: "cart_abandoners", MinAge: time.Hour, K: 2}, func(r client.AudienceRow) error {
		who := r.Customer + r.AnonymousID
		for _, p := range r.Picks {
			members[who] = append(members[who], p.Product)
		}
		if len(r.Picks) == 0 {
			members[who] = nil
		}
		return nil
	})
	if err != nil || len(members) != 2 || len(members["sarah"]) == 0 || members["sarah"][0] != "LG" || members["cookie-1"] == nil {
		t.Fatalf("cart abandoners: %v %v", members, err)
	}
	stop := errors.New("enough")
	if err := c.Audience(ctx, client.AudienceQuery{Name: "cart_abandoners"}, func(client.AudienceRow) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("a callback's error: %v", err)
	}
	var ce *client.Error
	if err := c.Audience(ctx, client.AudienceQuery{Name: "nope"}, func(client.AudienceRow) error { return nil }); !errors.As(err, &ce) || ce.Status != 404 {
		t.Fatalf("unknown audience: %v", err)
	}

	feed, err := c.ProductFeed(ctx, "google", "store-1")
	if err != nil {
		t.Fatal(err)
	}
	rss, err := io.ReadAll(feed)
	feed.Close()
	if err != nil || !bytes.Contains(rss, []byte("<g:id>HAT</g:id>")) || !bytes.Contains(rss, []byte("<g:availability>in_stock</g:availability>")) {
		t.Fatalf("feed: %v\n%.600s", err, rss)
	}

	sp, err := c.ScreenPicks(ctx, "store-1", 3)
	if err != nil || sp.Store != "store-1" || sp.Channel != "screen" || len(sp.Picks) != 1 || sp.Picks[0].Product != "HAT" {
		t.Fatalf("screen: %+v %v", sp, err)
	}
	if _, err := c.ScreenPicks(ctx, "store-404", 0); !errors.As(err, &ce) || ce.Status != 404 || ce.Field != "store" {
		t.Fatalf("unknown store: %v", err)
	}
}
