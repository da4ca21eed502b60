package load

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// testWorld is a small id space in the demo world's format.
func testWorld() World {
	return World{Customers: 300, Products: 600, CustomerDigits: 4, ProductDigits: 5,
		Stores: []string{"store-berlin-1", "store-hamburg-1", "store-munich-1"}}
}

func TestCeilingBody(t *testing.T) {
	if len(ceilingBody) != CeilingBodySize {
		t.Fatalf("ceiling body is %d bytes, want %d", len(ceilingBody), CeilingBodySize)
	}
	if !json.Valid(ceilingBody) {
		t.Fatalf("ceiling body is not JSON: %s", ceilingBody)
	}
}

// TestClosedLoopCeiling runs a short closed loop against the ceiling
// server: every request is answered 200 and the counts add up.
func TestClosedLoopCeiling(t *testing.T) {
	addr, stop, err := StartCeiling("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	s, err := Run(context.Background(), Options{
		Target:   "http://" + addr + "/",
		Conns:    3,
		Duration: 300 * time.Millisecond,
		Warmup:   50 * time.Millisecond,
		World:    testWorld(),
		Batch:    5,
		Zipf:     0.8,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := s.Target
	if r.Mode != "closed" || r.Requests == 0 || r.Answered != r.Requests || r.Status["200"] != r.Requests || len(r.Status) != 1 {
		t.Fatalf("requests %d, answered %d, status %v", r.Requests, r.Answered, r.Status)
	}
	if len(r.TransportErrors) != 0 {
		t.Fatalf("transport errors: %v", r.TransportErrors)
	}
	var sum, picks uint64
	for _, k := range r.Kinds {
		if k.Requests == 0 || k.Latency.Count != k.Requests {
			t.Errorf("%s: %d requests, %d latencies", k.Kind, k.Requests, k.Latency.Count)
		}
		sum += k.Requests
		if k.Kind != "events" {
			picks += k.Requests
		} else if r.Events.Accepted != 5*k.Requests {
			t.Errorf("events: %d accepted in %d batches of 5", r.Events.Accepted, k.Requests)
		}
	}
	if len(r.Kinds) != int(NumKinds) || sum != r.Requests || picks != r.Picks.Requests || r.All.Latency.Count != r.Requests {
		t.Errorf("%d kinds; sum of kinds %d, picks %d / %d, all %d", len(r.Kinds), sum, picks, r.Picks.Requests, r.Requests)
	}
	if r.Seconds < 0.25 || r.Seconds > 2 {
		t.Errorf("measured %.3fs, want about 0.3s", r.Seconds)
	}

	// A request budget stops the run by itself, exactly.
	s, err = Run(context.Background(), Options{Target: "http://" + addr, Conns: 2, Requests: 500, World: testWorld(), Ceiling: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Target.Requests != 500 || s.Ceiling == nil || s.Ceiling.Requests != 500 || s.Share == nil || s.Share.All <= 0 {
		t.Fatalf("requests %d, ceiling %+v, share %+v", s.Target.Requests, s.Ceiling, s.Share)
	}
}

// stallServer answers every request at once, except from stallAt to
// stallAt+stallFor after its start, when it answers nothing: a GC pause,
// a stop-the-world snapshot, a ^Z.
func stallServer(t *testing.T, stallAt, stallFor time.Duration) (addr string, start func()) {
	t.Helper()
	var mu sync.RWMutex
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		mu.RLock() // waits out a stall
		mu.RUnlock()
		ctx.SetBodyString(`{}`)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String(), func() {
		go func() {
			time.Sleep(stallAt)
			mu.Lock()
			time.Sleep(stallFor)
			mu.Unlock()
		}()
	}
}

// TestOpenLoopSeesStall is coordinated omission in one test: against a
// server that stalls for 200ms, the open loop's p99 shows the stall, while
// a closed loop's p99 hides it (its connections just wait, sending
// nothing, and only the few requests in flight see the stall).
func TestOpenLoopSeesStall(t *testing.T) {
	const stall = 200 * time.Millisecond
	run := func(rate float64) *Report {
		t.Helper()
		addr, start := stallServer(t, 300*time.Millisecond, stall)
		opts := Options{
			Target:   "http://" + addr,
			Conns:    2,
			Rate:     rate,
			Duration: time.Second,
			World:    testWorld(),
			Mix:      Mix{Ads: 1},
		}
		start()
		s, err := Run(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		r := s.Target
		if r.Answered != r.Requests || r.Unsent != 0 || len(r.TransportErrors) != 0 {
			t.Fatalf("rate %v: %d requests, %d answered, %d unsent, errors %v", rate, r.Requests, r.Answered, r.Unsent, r.TransportErrors)
		}
		return r
	}
	open := run(400)
	closed := run(0)
	ms := func(us float64) time.Duration { return time.Duration(us * 1e3) }
	t.Logf("open loop: %d requests, p50 %v, p99 %v, max %v; service time p99 %v",
		open.Requests, ms(open.All.Latency.P50), ms(open.All.Latency.P99), ms(open.All.Latency.Max), ms(open.ServiceTime.P99))
	t.Logf("closed loop: %d requests, p50 %v, p99 %v, max %v",
		closed.Requests, ms(closed.All.Latency.P50), ms(closed.All.Latency.P99), ms(closed.All.Latency.Max))

	// About 400 requests scheduled, 80 of them during the stall, waiting
	// from 0 to 200ms: the top 1% waited most of it.
	if open.Requests < 300 || open.Requests > 440 {
		t.Errorf("open loop sent %d requests, want about 400", open.Requests)
	}
	if ms(open.All.Latency.Max) < 150*time.Millisecond || ms(open.All.Latency.P99) < 150*time.Millisecond {
		t.Errorf("open loop max %v, p99 %v: the 200ms stall does not show", ms(open.All.Latency.Max), ms(open.All.Latency.P99))
	}
	// Uncorrected, the same run would have looked far better.
	if open.ServiceTime.P99 > open.All.Latency.P99/2 {
		t.Errorf("service time p99 %vµs is not far below the corrected p99 %vµs", open.ServiceTime.P99, open.All.Latency.P99)
	}
	// The closed loop sees the stall only in its max: 2 requests of many.
	if ms(closed.All.Latency.Max) < 150*time.Millisecond {
		t.Errorf("closed loop max %v: the stall does not show at all", ms(closed.All.Latency.Max))
	}
	if closed.Requests < 400 || ms(closed.All.Latency.P99) > 50*time.Millisecond {
		t.Errorf("closed loop: %d requests, p99 %v: expected the stall to hide below p99", closed.Requests, ms(closed.All.Latency.P99))
	}
}

// TestRunStopsOnCancel: a cancelled context ends the run early, with a
// report of what was measured.
func TestRunStopsOnCancel(t *testing.T) {
	addr, stop, err := StartCeiling("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	s, err := Run(ctx, Options{Target: "http://" + addr, Rate: 100, Duration: time.Minute, World: testWorld()})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 5*time.Second || s.Target.Requests == 0 {
		t.Fatalf("run took %v, %d requests", d, s.Target.Requests)
	}
	if _, err := Run(context.Background(), Options{Target: "http://127.0.0.1:1", World: testWorld()}); err == nil {
		t.Fatal("a run against a closed port did not fail up front")
	}
}
