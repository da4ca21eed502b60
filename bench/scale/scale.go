// Package scale measures Omnipick at retail scale in one process. Run
// builds a generated world (bench/world) into a durable store, applying
// events from several goroutines, and reports what the targets
// ask about: the build rate, memory per customer and per product, a full
// GC's duration, picks latency percentiles and allocations per call, and
// the snapshot and restart times.
//
// The world is applied to the engine directly, not through the log: the
// ingest path over HTTP (log, fsync) is measured by the load tool and
// BenchmarkIngestHTTP; here the question is what the engine holds and how
// fast it answers once it holds it. A snapshot at the end makes the state
// durable, and the restart reads it back.
package scale

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/omnipick/omnipick/bench/load"
	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/store"
)

// Options configure a Run.
type Options struct {
	World   world.Config
	Dir     string         // the store's data folder; must be empty or absent
	Workers int            // goroutines applying events; default GOMAXPROCS
	Queries int            // picks calls measured; default 200,000
	Engine  engine.Options // engine options; Now defaults to the world's end
	Restart bool           // also snapshot, close and reopen the store, timing each
	HTTP    HTTPOptions    // picks and ingest over HTTP; zero Duration: skipped
	Log     io.Writer      // progress lines; nil: none
}

// Report holds the figures of one Run.
type Report struct {
	World    world.Config
	Workers  int
	Records  int // applied, catalog and stock included
	Rejected int
	Events   int

	CatalogTook time.Duration // locations, products and stock
	EventsTook  time.Duration
	Products    int
	SKUs        int
	Profiles    int

	HeapCatalog uint64 // live heap after the catalog and stock, after a GC
	HeapAll     uint64 // live heap after everything, after a GC
	RSS         uint64 // resident set size of the process, after everything
	GCTook      time.Duration

	Picks          map[string]load.Latency // by kind, and "all"
	PicksN         int
	AllocsPerCall  float64
	GCsDuringPicks uint32 // collections while the picks were measured

	SnapshotTook  time.Duration
	SnapshotBytes int64 // on disk
	SnapshotRaw   int64
	RestartTook   time.Duration

	HTTP *HTTPReport // nil unless Options.HTTP.Duration > 0
}

// Kinds of picks calls, as the load tool's mix weighs them.
var kinds = []struct {
	name   string
	weight float64
}{{"ads", 25}, {"email", 15}, {"screen", 15}, {"screen_known", 15}, {"web", 20}}

// setDefaults fills what Run and Reuse default: the picks calls, the log,
// and the engine's clock at the world's end.
func (opts *Options) setDefaults() {
	if opts.Queries <= 0 {
		opts.Queries = 200_000
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	end := opts.World.Start.AddDate(0, 0, opts.World.Days)
	if opts.Engine.Now == nil {
		opts.Engine.Now = func() time.Time { return end }
	}
}

// Run builds the world and measures it.
func Run(opts Options) (*Report, error) {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	opts.setDefaults()
	st, _, err := store.Open(store.Options{Dir: opts.Dir, Engine: opts.Engine, NoBackground: true})
	if err != nil {
		return nil, fmt.Errorf("cannot open the store in %s: %w", opts.Dir, err)
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	e := st.Engine()
	rep := &Report{World: opts.World, Workers: opts.Workers}
	b, err := Build(e, opts.World, opts.Workers, opts.Log)
	if err != nil {
		return nil, err
	}
	rep.Records, rep.Rejected, rep.Events = b.Records, b.Rejected, b.Events
	rep.CatalogTook, rep.EventsTook, rep.HeapCatalog = b.CatalogTook, b.EventsTook, b.HeapCatalog
	s := e.Stats()
	rep.Products, rep.SKUs, rep.Profiles = s.Products, s.SKUs, s.Profiles
	start := time.Now()
	runtime.GC()
	rep.GCTook = time.Since(start)
	rep.HeapAll = liveHeap()
	rep.RSS = rss()
	fmt.Fprintf(opts.Log, "built: %d records in %v; heap %d MiB, RSS %d MiB, full GC %v\n",
		rep.Records, (rep.CatalogTook + rep.EventsTook).Round(time.Millisecond), rep.HeapAll>>20, rep.RSS>>20, rep.GCTook.Round(time.Millisecond))

	measurePicks(e, opts, rep)
	if opts.HTTP.Duration > 0 {
		if err := measureHTTP(st, opts, rep); err != nil {
			return nil, err
		}
	}

	if opts.Restart {
		profiles := e.Stats().Profiles // the HTTP run's events may have added some
		info, err := st.Snapshot()
		if err != nil {
			return nil, fmt.Errorf("cannot snapshot the world: %w", err)
		}
		rep.SnapshotTook, rep.SnapshotBytes, rep.SnapshotRaw = info.Took, info.FileBytes, info.RawBytes
		if err := st.Close(); err != nil {
			return nil, fmt.Errorf("cannot close the store: %w", err)
		}
		st = nil
		e = nil
		runtime.GC()
		start := time.Now()
		st2, rinfo, err := store.Open(store.Options{Dir: opts.Dir, Engine: opts.Engine, NoBackground: true})
		if err != nil {
			return nil, fmt.Errorf("cannot reopen the store: %w", err)
		}
		rep.RestartTook = time.Since(start)
		if rinfo.Snapshot == "" {
			st2.Close()
			return nil, errors.New("the store restarted without its snapshot")
		}
		if got := st2.Engine().Stats().Profiles; got != profiles {
			st2.Close()
			return nil, fmt.Errorf("restarted with %d profiles, had %d", got, profiles)
		}
		st = st2
	}
	return rep, nil
}

// BuildStats says what Build applied and how long it took.
type BuildStats struct {
	Records     int // catalog and stock included
	Events      int // events and links
	Rejected    int
	CatalogTook time.Duration // locations, products and stock
	EventsTook  time.Duration
	HeapCatalog uint64 // live heap once the catalog and stock were in, after a GC
}

// Build applies the world cfg generates to e, straight, without a log: the
// catalog and stock in order on this goroutine, then events from workers
// goroutines, each actor's events on one of them (by a hash of the actor),
// so that every profile sees its events in order, as with one goroutine. A
// link goes with its anonymous id. Progress lines go to log (may be nil).
func Build(e *engine.Engine, cfg world.Config, workers int, log io.Writer) (BuildStats, error) {
	const batch = 512
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if log == nil {
		log = io.Discard
	}
	var st BuildStats
	chans := make([]chan []engine.Record, workers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var rejected int
	pool := sync.Pool{New: func() any { return make([]engine.Record, 0, batch) }}
	for i := range chans {
		chans[i] = make(chan []engine.Record, 64)
		wg.Add(1)
		go func(in <-chan []engine.Record) {
			defer wg.Done()
			bad := 0
			for recs := range in {
				for j := range recs {
					if e.Apply(&recs[j]) != nil {
						bad++
					}
				}
				clear(recs)
				pool.Put(recs[:0])
			}
			mu.Lock()
			rejected += bad
			mu.Unlock()
		}(chans[i])
	}
	pending := make([][]engine.Record, workers)
	start := time.Now()
	catalogDone := false
	progress := time.Now()
	err := world.Generate(cfg, func(r *engine.Record) error {
		st.Records++
		if r.Op != engine.OpEvent && r.Op != engine.OpIdentify {
			if e.Apply(r) != nil {
				st.Rejected++
			}
			return nil
		}
		if !catalogDone {
			catalogDone = true
			st.CatalogTook = time.Since(start)
			st.HeapCatalog = liveHeap()
			fmt.Fprintf(log, "catalog and stock: %d records in %v, heap %d MiB\n", st.Records-1, st.CatalogTook.Round(time.Millisecond), st.HeapCatalog>>20)
			start = time.Now()
		}
		st.Events++
		actor := r.Event.Customer
		switch {
		case r.Op == engine.OpIdentify:
			actor = r.Identify.AnonymousID
		case actor == "":
			actor = r.Event.AnonymousID
		}
		w := int(xxhash.Sum64String(actor) % uint64(len(chans)))
		if pending[w] == nil {
			pending[w] = pool.Get().([]engine.Record)
		}
		pending[w] = append(pending[w], *r)
		if len(pending[w]) == batch {
			chans[w] <- pending[w]
			pending[w] = nil
		}
		if st.Events%(1<<20) == 0 && time.Since(progress) > 10*time.Second {
			progress = time.Now()
			fmt.Fprintf(log, "  %d events, %.0f/s\n", st.Events, float64(st.Events)/time.Since(start).Seconds())
		}
		return nil
	})
	for i, p := range pending {
		if len(p) > 0 {
			chans[i] <- p
		}
		close(chans[i])
	}
	wg.Wait()
	st.EventsTook = time.Since(start)
	st.Rejected += rejected
	if !catalogDone {
		st.CatalogTook, st.EventsTook = st.EventsTook, 0
		st.HeapCatalog = liveHeap()
	}
	if err != nil {
		return st, fmt.Errorf("cannot generate the world: %w", err)
	}
	return st, nil
}

// measurePicks times opts.Queries picks calls on one goroutine, drawn like
// the load tool's mix: customers uniformly, products and stores from the
// world.
func measurePicks(e *engine.Engine, opts Options, rep *Report) {
	w, err := load.WorldOf(opts.World)
	if err != nil || w.Validate() != nil {
		return
	}
	rng := rand.New(rand.NewPCG(uint64(opts.World.Seed), 7))
	cum := make([]float64, len(kinds))
	total := 0.0
	for i, k := range kinds {
		total += k.weight
		cum[i] = total
	}
	type call struct {
		kind int
		q    engine.Query
	}
	calls := make([]call, opts.Queries)
	for i := range calls {
		u := rng.Float64() * total
		k := 0
		for cum[k] < u {
			k++
		}
		c := &calls[i]
		c.kind = k
		cust := w.CustomerID(1 + rng.IntN(w.Customers))
		prod := w.ProductID(1 + rng.IntN(w.Products))
		store := w.Stores[rng.IntN(len(w.Stores))]
		switch kinds[k].name {
		case "ads":
			c.q = engine.Query{Channel: engine.ChannelAds, K: 10, Customer: cust}
		case "email":
			c.q = engine.Query{Channel: engine.ChannelEmail, K: 8, Customer: cust}
		case "screen":
			c.q = engine.Query{Channel: engine.ChannelScreen, K: 8, Locations: []string{store}, Context: prod}
		case "screen_known":
			c.q = engine.Query{Channel: engine.ChannelScreen, K: 8, Locations: []string{store}, Context: prod, Customer: cust}
		case "web":
			c.q = engine.Query{Channel: engine.ChannelWeb, K: 10, Customer: cust, Context: prod}
		}
	}
	hists := make([]load.Histogram, len(kinds))
	var all load.Histogram
	dst := make([]engine.Pick, 0, engine.MaxK)
	// One P while warming and measuring, as testing.AllocsPerRun does: the
	// picks scratch comes from a sync.Pool, whose per-P private slot
	// another P cannot take, so a goroutine moved to another P between
	// warm-up and measurement would grow a second scratch from nothing and
	// count its allocations (one run in three on the 2-core machine).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	// Warm the pooled scratch first with every call: its growth to the
	// catalog's size and to the largest profile met is not what a call
	// costs once warm.
	for i := range calls {
		dst = e.PicksInto(dst[:0], &calls[i].q)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range calls {
		c := &calls[i]
		t := time.Now()
		dst = e.PicksInto(dst[:0], &c.q)
		d := time.Since(t)
		hists[c.kind].Record(d)
		all.Record(d)
	}
	runtime.ReadMemStats(&after)
	rep.PicksN = len(calls)
	rep.AllocsPerCall = float64(after.Mallocs-before.Mallocs) / float64(len(calls))
	rep.GCsDuringPicks = after.NumGC - before.NumGC
	rep.Picks = map[string]load.Latency{"all": load.LatencyOf(&all)}
	for i, k := range kinds {
		rep.Picks[k.name] = load.LatencyOf(&hists[i])
	}
}

// liveHeap is the heap in use after a full collection. It collects twice:
// objects with finalizers (closed connections and files of an earlier
// run in the same process) are freed only by the cycle after the one
// that ran their finalizers.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// rss reads the resident set size from /proc; 0 where there is none.
func rss() uint64 { return procStatus("VmRSS:") }

// WriteText writes the report as the bench/README table's rows.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	wc := r.World
	fmt.Fprintf(&b, "world: %d products, %d customers, %d locations, %d days (seed %d); %d workers, GOMAXPROCS %d\n",
		wc.Products, wc.Customers, wc.Stores+1, wc.Days, wc.Seed, r.Workers, runtime.GOMAXPROCS(0))
	fmt.Fprintf(&b, "records: %d (%d events, %d rejected); catalog and stock %v; events %v = %.0f events/s\n",
		r.Records, r.Events, r.Rejected, r.CatalogTook.Round(time.Millisecond), r.EventsTook.Round(time.Millisecond), perSec(r.Events, r.EventsTook))
	fmt.Fprintf(&b, "state: %d products, %d SKUs, %d profiles\n", r.Products, r.SKUs, r.Profiles)
	fmt.Fprintf(&b, "memory: live heap %d MiB (catalog and stock %d MiB), RSS %d MiB; %.0f bytes/product (catalog, stock), %.0f bytes/profile (the rest: profiles, relations, popularity); full GC %v\n",
		r.HeapAll>>20, r.HeapCatalog>>20, r.RSS>>20, per(r.HeapCatalog, r.Products), per(r.HeapAll-min(r.HeapAll, r.HeapCatalog), r.Profiles), r.GCTook.Round(time.Millisecond))
	fmt.Fprintf(&b, "picks in-process, one goroutine, %d calls, %.2f allocs/call:\n", r.PicksN, r.AllocsPerCall)
	writePicks(&b, r.Picks)
	if r.HTTP != nil {
		r.HTTP.writeText(&b)
	}
	if r.SnapshotTook > 0 {
		fmt.Fprintf(&b, "snapshot: %d MiB raw, %d MiB on disk, %v; restart from it %v\n",
			r.SnapshotRaw>>20, r.SnapshotBytes>>20, r.SnapshotTook.Round(time.Millisecond), r.RestartTook.Round(time.Millisecond))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writePicks writes the picks latency lines, all calls first, then by
// kind.
func writePicks(b *strings.Builder, picks map[string]load.Latency) {
	names := []string{"all"}
	for _, k := range kinds {
		names = append(names, k.name)
	}
	for _, n := range names {
		l := picks[n]
		fmt.Fprintf(b, "  %-13s n=%-8d p50 %7.1f us  p90 %7.1f us  p99 %7.1f us  p99.9 %7.1f us  max %8.1f us\n",
			n, l.Count, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
}

func perSec(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func per(bytes uint64, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(bytes) / float64(n)
}
