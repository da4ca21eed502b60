package engine_test

import (
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
)

// TestWorldProfileMemory measures what profiles cost the heap and the
// garbage collector on a generated world: heap in use per profile (all that
// the events added: profiles, their ids, relations and popularity), the
// process's RSS, the duration of a forced GC, Apply throughput over the
// events and picks latency. It is a measurement, not a check: run it by
// hand (issue 4's figures: 1M customers, 100k products):
//
//	OMNIPICK_PROFILE_MEMORY=1 OMNIPICK_WORLD_CUSTOMERS=1000000 \
//	  OMNIPICK_WORLD_PRODUCTS=100000 go test ./engine -run WorldProfileMemory -v -timeout 60m
func TestWorldProfileMemory(t *testing.T) {
	if os.Getenv("OMNIPICK_PROFILE_MEMORY") == "" {
		t.Skip("set OMNIPICK_PROFILE_MEMORY=1 to measure")
	}
	env := func(name string, def int) int {
		if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
			return n
		}
		return def
	}
	cfg := world.Bench()
	cfg.Customers = env("OMNIPICK_WORLD_CUSTOMERS", 1_000_000)
	cfg.Products = env("OMNIPICK_WORLD_PRODUCTS", 100_000)
	cfg.Stores = 19

	e := engine.New(engine.Options{})
	var ms runtime.MemStats
	heap := func() (inuse, alloc uint64) {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse, ms.HeapAlloc
	}
	var catInuse, catAlloc uint64
	var events, rejected int
	var evStart time.Time
	start := time.Now()
	err := world.Generate(cfg, func(r *engine.Record) error {
		if r.Op == engine.OpEvent {
			if events == 0 {
				catInuse, catAlloc = heap()
				evStart = time.Now()
			}
			events++
		}
		if e.Apply(r) != nil {
			rejected++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	evTook := time.Since(evStart)
	t.Logf("world built in %v: %d events (%d records rejected) at %.0f events/s (generator included); %s",
		time.Since(start).Round(time.Millisecond), events, rejected, float64(events)/evTook.Seconds(), e)

	inuse, alloc := heap()
	st := e.Stats()
	profiles := st.Profiles
	t.Logf("stats: %+v", st)
	t.Logf("heap after GC: catalog %d MiB in use (%d MiB live); with profiles %d MiB in use (%d MiB live); RSS %s",
		catInuse>>20, catAlloc>>20, inuse>>20, alloc>>20, rss())
	debug.FreeOSMemory()
	runtime.ReadMemStats(&ms)
	t.Logf("after FreeOSMemory: RSS %s; heap sys %d MiB, idle %d MiB, released %d MiB; GC cycles %d",
		rss(), ms.HeapSys>>20, ms.HeapIdle>>20, ms.HeapReleased>>20, ms.NumGC)
	t.Logf("per profile (%d profiles): %.0f bytes in use, %.0f bytes live",
		profiles, float64(inuse-catInuse)/float64(profiles), float64(alloc-catAlloc)/float64(profiles))

	var gcs []time.Duration
	for range 5 {
		s := time.Now()
		runtime.GC()
		gcs = append(gcs, time.Since(s))
	}
	slices.Sort(gcs)
	t.Logf("forced GC: median %v (min %v, max %v); GC CPU fraction so far %.3f",
		gcs[2].Round(time.Microsecond), gcs[0].Round(time.Microsecond), gcs[4].Round(time.Microsecond), ms.GCCPUFraction)

	q := engine.Query{Channel: engine.ChannelWeb, K: 10}
	var dst []engine.Pick
	const rounds = 20000
	s := time.Now()
	for i := range rounds {
		q.Customer = "C" + pad(i*7919%cfg.Customers+1, max(4, len(strconv.Itoa(cfg.Customers))))
		dst = e.PicksInto(dst[:0], &q)
	}
	t.Logf("picks (web, k=10, %d customers spread over the world): %v each", rounds, time.Since(s)/rounds)
	runtime.KeepAlive(e)
}

// pad writes a customer number the way bench/world does: zero-padded to
// the width of the largest.
func pad(n, width int) string {
	s := strconv.Itoa(n)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

// rss returns the process's resident set size from /proc, where there is one.
func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
