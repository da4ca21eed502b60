package api

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

// localRoute is a partition rule like a cluster node's, owning every
// partition: xxhash of the actor into 64 partitions, a table of owners.
func localRoute() func(string, bool) (string, error) {
	var owners [64]string // "": this node
	return func(actor string, _ bool) (string, error) {
		return owners[xxhash.Sum64String(actor)%uint64(len(owners))], nil
	}
}

// BenchmarkPicksRoute measures a picks request through the handler on one
// core, on the demo world: route=none is a single node (no Route);
// route=local a cluster node that owns the actor (Route is asked, answers
// ""): the two should not differ. route=forward sends every request to a
// real owner server over loopback and relays its answer: the price of
// asking the wrong node.
//
//	go test ./api -run '^$' -bench PicksRoute -count 6 -cpu 1
func BenchmarkPicksRoute(b *testing.B) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	e := engine.New(engine.Options{Now: func() time.Time { return now }})
	if err := world.Generate(world.Demo(), func(r *engine.Record) error { e.Apply(r); return nil }); err != nil {
		b.Fatal(err)
	}
	owner, err := New(Options{Addr: "127.0.0.1:0", Engine: e})
	if err != nil {
		b.Fatal(err)
	}
	if err := owner.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		owner.Stop(ctx) //nolint:errcheck // the benchmark is over
	}()
	ownerURL := "http://" + owner.Addr()
	var uris []string
	for c := 1; c <= 300; c += 7 {
		uris = append(uris, fmt.Sprintf("/v1/picks?customer=C%04d&channel=web&k=10", c))
	}
	for _, tc := range []struct {
		name  string
		route func(string, bool) (string, error)
	}{
		{"none", nil},
		{"local", localRoute()},
		{"forward", func(string, bool) (string, error) { return ownerURL, nil }},
	} {
		b.Run("route="+tc.name, func(b *testing.B) {
			s, err := New(Options{Addr: "127.0.0.1:0", Engine: e, Route: tc.route})
			if err != nil {
				b.Fatal(err)
			}
			ctxs := make([]fasthttp.RequestCtx, len(uris))
			for i := range ctxs {
				ctxs[i].Request.Header.SetMethod("GET")
				ctxs[i].Request.SetRequestURI(uris[i])
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ctx := &ctxs[i%len(ctxs)]
				i++
				ctx.Response.Reset()
				s.handle(ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("%s: %d %s", ctx.RequestURI(), ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
