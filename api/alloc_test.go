//go:build !race

package api

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

// TestPicksHandlerAllocatesNothing proves that a picks request allocates
// nothing from the handler's entry to its response, with access control
// and request metrics on, once the pools are warm and the request's
// metric series exist (the race detector's instrumentation allocates, so
// this runs without it). The request rides a reused
// RequestCtx, as fasthttp reuses one per connection.
//
// So does a cluster node's picks request about an actor it owns: Route is
// asked (here the partition rule of a 64-partition map, all owned here)
// and answers "" (see TestPicksLocalRouteAllocatesNothing).
func TestPicksHandlerAllocatesNothing(t *testing.T) {
	checkPicksHandlerAllocatesNothing(t, nil)
}

func TestPicksLocalRouteAllocatesNothing(t *testing.T) {
	checkPicksHandlerAllocatesNothing(t, localRoute())
}

func checkPicksHandlerAllocatesNothing(t *testing.T, route func(string, bool) (string, error)) {
	const writeKey, readKey = "alloc-test-write-key-0123456789abcdef", "alloc-test-read-key-0123456789abcdef"
	s, err := New(Options{Addr: "127.0.0.1:0", Engine: engine.New(engine.Options{}), WriteKeys: []string{writeKey}, ReadKeys: []string{"other-read-key", readKey}, Route: route})
	if err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	post := func(path string, lines ...string) {
		t.Helper()
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI(path)
		ctx.Request.Header.Set("Authorization", "Bearer "+writeKey)
		ctx.Request.Header.SetContentType("application/x-ndjson")
		ctx.Request.SetBodyString(strings.Join(lines, "\n"))
		s.handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("POST %s: %d %s", path, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	var products, stock, events []string
	for i := range 40 {
		products = append(products, fmt.Sprintf(`{"id":"P%d","title":"Product %d","price":10,"category":"c%d/d%d","brand":"b%d","tags":["t%d"],"size_group":"g","variants":[{"sku":"P%d-S","size":"S"},{"sku":"P%d-M","size":"M"}]}`, i, i, i%3, i%6, i%4, i%5, i, i))
		stock = append(stock, fmt.Sprintf(`{"sku":"P%d-S","location":"online","quantity":3}`, i), fmt.Sprintf(`{"sku":"P%d-M","location":"store-1","quantity":2}`, i))
		events = append(events, fmt.Sprintf(`{"type":"purchase","customer":"shopper%d","sku":"P%d-S"}`, i%7, i), fmt.Sprintf(`{"type":"view","customer":"c1","product":"P%d"}`, (i*7)%40))
	}
	post("/v1/products", products...)
	post("/v1/inventory", stock...)
	post("/v1/events", events...)
	post("/v1/events", `{"type":"cart_add","customer":"c1","sku":"P3-S"}`)

	// The whole request allocates nothing: the HTTP layer, and the
	// engine's PicksInto, which is also measured alone so that a failure
	// says which side allocates.
	for _, tc := range []struct {
		name, uri, header, key string
		status                 int
	}{
		{"read key as bearer", "/v1/picks?customer=c1&channel=ads&k=10", "Authorization", "Bearer " + readKey, 200},
		{"write key as X-API-Key", "/v1/picks?customer=c1&channel=email&k=20&exclude=P1,P2", "X-API-Key", writeKey, 200},
		{"anonymous with context", "/v1/picks?channel=screen&location=store-1&context=P5&k=5", "Authorization", "Bearer " + readKey, 200},
		{"unknown key", "/v1/picks?customer=c1", "Authorization", "Bearer not-a-key", 401},
		{"no key", "/v1/picks?customer=c1", "X-Other", "x", 401},
		{"bad parameter", "/v1/picks?customer=c1&k=1000", "Authorization", "Bearer " + readKey, 400},
		{"category, fallback", "/v1/picks?customer=c1&channel=email&k=20&location=online&exclude=P1,P2&category=c1", "X-API-Key", writeKey, 200},
		{"several locations, fallback", "/v1/picks?customer=c1&location=online,store-1&category=c1", "Authorization", "Bearer " + readKey, 200},
		{"boost and bury", "/v1/picks?customer=c1&k=12&boost=category:C1/,brand:B2&bury=tag:T3,brand:nope", "Authorization", "Bearer " + readKey, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx.Request.Reset()
			ctx.Request.Header.SetMethod("GET")
			ctx.Request.SetRequestURI(tc.uri)
			ctx.Request.Header.Set(tc.header, tc.key)
			run := func() {
				ctx.Response.Reset()
				s.handle(&ctx)
			}
			run() // warm the pools
			run()
			handler := testing.AllocsPerRun(200, run)
			if got := ctx.Response.StatusCode(); got != tc.status {
				t.Fatalf("status %d, want %d: %s", got, tc.status, ctx.Response.Body())
			}
			if tc.status == 200 && !bytes.Contains(ctx.Response.Body(), []byte(`"product":"P`)) {
				t.Fatalf("no picks: %s", ctx.Response.Body())
			}
			var engineAllocs float64
			if tc.status == 200 {
				var pr pickRequest
				if field, msg := parsePickRequest(&pr, ctx.QueryArgs()); field != "" {
					t.Fatal(msg)
				}
				dst := s.opts.Engine.PicksInto(nil, &pr.q)
				engineAllocs = testing.AllocsPerRun(200, func() { dst = s.opts.Engine.PicksInto(dst[:0], &pr.q) })
			}
			if handler != 0 || engineAllocs != 0 {
				t.Fatalf("%v allocations per request, of which the engine's PicksInto makes %v", handler, engineAllocs)
			}
		})
	}
}
