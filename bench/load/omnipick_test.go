package load

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
)

// loadDemo applies internal/demo to e the way `omnipick serve -demo` does,
// minus the write-ahead log.
func loadDemo(t *testing.T, e *engine.Engine) {
	t.Helper()
	var dec api.Decoder
	var recs []engine.Record
	var rejects []api.Reject
	for _, f := range world.Files() {
		body, err := os.ReadFile(filepath.Join("..", "..", "internal", "demo", f.Name))
		if err != nil {
			t.Fatal(err)
		}
		for chunk := range bytes.Lines(body) {
			recs, rejects, err = dec.Decode(f.Op, chunk, true, time.Now().UnixMilli(), recs[:0], rejects[:0])
			if err != nil || len(rejects) > 0 {
				t.Fatalf("%s: %v %v", f.Name, err, rejects)
			}
			for i := range recs {
				if err := e.Apply(&recs[i]); err != nil {
					t.Fatalf("%s: %v", f.Name, err)
				}
			}
		}
	}
}

// TestMixedWorkloadAgainstOmnipick runs the default mix, -world demo, on a
// real in-process server holding the demo world: every request is answered
// 2xx and every event is applied.
func TestMixedWorkloadAgainstOmnipick(t *testing.T) {
	e := engine.New(engine.Options{})
	loadDemo(t, e)
	srv, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: e})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	w, err := WorldOf(world.Demo())
	if err != nil {
		t.Fatal(err)
	}
	// A count of requests, not a duration: on a loaded machine a fixed
	// 400 ms once fitted fewer requests than the check below asks for.
	const requests = 150
	for _, rate := range []float64{0, 300} { // closed, then open loop
		s, err := Run(context.Background(), Options{
			Target:   "http://" + srv.Addr(),
			Conns:    2,
			Rate:     rate,
			Requests: requests,
			Warmup:   50 * time.Millisecond,
			World:    w,
			Zipf:     0.8,
		})
		if err != nil {
			t.Fatal(err)
		}
		r := s.Target
		for code, n := range r.Status {
			if code[0] != '2' {
				t.Errorf("rate %v: %d answers with status %s", rate, n, code)
			}
		}
		if len(r.TransportErrors) != 0 || r.Answered != r.Requests || r.Requests < requests {
			t.Errorf("rate %v: %d requests, %d answered, transport errors %v", rate, r.Requests, r.Answered, r.TransportErrors)
		}
		if r.Events.Rejected != 0 || r.Events.Failed != 0 || r.Events.Accepted == 0 {
			t.Errorf("rate %v: events %+v", rate, r.Events)
		}
		for _, k := range r.Kinds {
			if k.Requests == 0 {
				t.Errorf("rate %v: no %s requests", rate, k.Kind)
			}
		}
	}
}
