package scale

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/bench/load"
	"github.com/omnipick/omnipick/engine/store"
)

// HTTPOptions configure the over-HTTP part of a Run: the built store is
// served by the real API server on a loopback port in this process and
// the load tool drives it, as `omnipick serve` plus `omnipick bench load`
// would, without a second world build.
type HTTPOptions struct {
	// Duration of each measured run (picks, the ceiling, events); 0
	// skips the HTTP measurements.
	Duration time.Duration
	// PicksConns is the closed loop's connection count for picks and the
	// ceiling; default 32, as issue 13's target states.
	PicksConns int
	// EventConns and EventBatch shape the ingest run: POST /v1/events
	// bodies of EventBatch events from EventConns connections; default 8
	// and 1,000. Every batch is durable (fsync) before its answer.
	EventConns int
	EventBatch int
}

// HTTPReport holds the over-HTTP figures.
type HTTPReport struct {
	Picks   load.KindStats // picks through the API, every kind together
	Ceiling load.KindStats // the bare 300-byte handler, same client and connections
	Share   float64        // Picks.RPS / Ceiling.RPS
	Events  load.EventStats
	Conns   int
	Batch   int
	Notes   []string
}

func (o *HTTPOptions) setDefaults() {
	if o.PicksConns <= 0 {
		o.PicksConns = 32
	}
	if o.EventConns <= 0 {
		o.EventConns = 8
	}
	if o.EventBatch <= 0 {
		o.EventBatch = 1000
	}
}

// measureHTTP serves st on a loopback port and measures picks against the
// ceiling, then event ingest in batches. The events change the state, so
// it runs after the in-process picks and before the restart (which then
// replays them from the log).
func measureHTTP(st *store.Store, opts Options, rep *Report) error {
	ho := opts.HTTP
	ho.setDefaults()
	w, err := load.WorldOf(opts.World)
	if err != nil {
		return err
	}
	srv, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: st.Engine(), Writer: st, StoreStats: st.Stats})
	if err != nil {
		return fmt.Errorf("cannot make the API server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("cannot start the API server: %w", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	}()
	target := "http://" + srv.Addr()
	picksMix, err := load.ParseMix("picks=1")
	if err != nil {
		return err
	}
	ctx := context.Background()
	fmt.Fprintf(opts.Log, "HTTP: picks and the ceiling, %d connections, %v each\n", ho.PicksConns, ho.Duration)
	ps, err := load.Run(ctx, load.Options{
		Target: target, Conns: ho.PicksConns, Duration: ho.Duration, Warmup: time.Second,
		Mix: picksMix, World: w, Ceiling: true, Seed: 1,
	})
	if err != nil {
		return fmt.Errorf("picks over HTTP: %w", err)
	}
	if err := answeredOK(ps.Target); err != nil {
		return fmt.Errorf("picks over HTTP: %w", err)
	}
	h := &HTTPReport{Picks: ps.Target.Picks, Conns: ho.PicksConns, Batch: ho.EventBatch, Notes: ps.Notes}
	if ps.Ceiling != nil {
		h.Ceiling, h.Share = ps.Ceiling.Picks, ps.Share.Picks
	}
	eventsMix, err := load.ParseMix("events=1")
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.Log, "HTTP: events in batches of %d, %d connections, %v\n", ho.EventBatch, ho.EventConns, ho.Duration)
	es, err := load.Run(ctx, load.Options{
		Target: target, Conns: ho.EventConns, Duration: ho.Duration, Mix: eventsMix,
		Batch: ho.EventBatch, World: w, Seed: 2,
	})
	if err != nil {
		return fmt.Errorf("events over HTTP: %w", err)
	}
	if err := answeredOK(es.Target); err != nil {
		return fmt.Errorf("events over HTTP: %w", err)
	}
	h.Events = es.Target.Events
	rep.HTTP = h
	return nil
}

// answeredOK fails a run whose answers were not all 2xx: a share of the
// ceiling counted over 4xx answers would measure the error path.
func answeredOK(r *load.Report) error {
	var bad []string
	for code, n := range r.Status {
		if code[0] != '2' {
			bad = append(bad, fmt.Sprintf("%d answers %s", n, code))
		}
	}
	if len(bad) > 0 || r.Answered == 0 {
		return fmt.Errorf("%d of %d requests answered; %s", r.Answered, r.Requests, strings.Join(bad, ", "))
	}
	return nil
}

// writeText appends the HTTP lines of the report.
func (h *HTTPReport) writeText(b *strings.Builder) {
	fmt.Fprintf(b, "picks over HTTP, %d connections: %.0f req/s, p50 %.1f us, p99 %.1f us; ceiling %.0f req/s; share %.1f %%\n",
		h.Conns, h.Picks.RPS, h.Picks.Latency.P50, h.Picks.Latency.P99, h.Ceiling.RPS, 100*h.Share)
	fmt.Fprintf(b, "events over HTTP, batches of %d (fsync each): %.0f events/s accepted, %d rejected, %d failed\n",
		h.Batch, h.Events.PerSecond, h.Events.Rejected, h.Events.Failed)
}
