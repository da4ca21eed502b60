package api

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/omnipick/omnipick/engine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"
)

// The metric families are listed, with what to alert on, in
// docs/operations.md, "Metrics". prometheus/client_golang was chosen over
// VictoriaMetrics/metrics by BenchmarkObserveRequest and BenchmarkPicksHTTP
// (figures in bench/README.md, "Metrics cost"), and because its histograms
// have the "le" buckets a stock Prometheus computes quantiles from.

type endpoint uint8

const (
	epOther endpoint = iota
	epPicks
	epEvents
	epProducts
	epInventory
	epIdentify
	epLocations
	epCustomer
	epHealth
	epMetrics
	epExclusions
	epScreen
	epAudiences
	epFeeds
	epAdminCompact
	epImages
	epExplore
	epOpenAPI
	numEndpoints
)

// endpointNames are the endpoint label's values: a fixed set, so a client
// requesting random paths cannot grow the number of series.
var endpointNames = [numEndpoints]string{"other", "picks", "events", "products", "inventory", "identify", "locations", "customer", "healthz", "metrics", "exclusions", "screen", "audiences", "feeds", "admin_compact", "images", "explore", "openapi"}

// statusCodes are the statuses counted apart; others count as "other".
var statusCodes = [...]int{200, 400, 401, 403, 404, 405, 408, 413, 415, 429, 431, 500, 503}

const numStatus = len(statusCodes) + 1

func statusIndex(code int) int {
	for i, c := range statusCodes {
		if c == code {
			return i
		}
	}
	return len(statusCodes)
}

func statusName(si int) string {
	if si < len(statusCodes) {
		return strconv.Itoa(statusCodes[si])
	}
	return "other"
}

// Status classes label the latency histogram: a fast 400 and a slow 200
// should not share quantiles, and classes keep the series few.
const (
	class2xx = iota
	class4xx
	class5xx
	classOther
	numClasses
)

var classNames = [numClasses]string{"2xx", "4xx", "5xx", "other"}

func statusClass(code int) int {
	switch code / 100 {
	case 2:
		return class2xx
	case 4:
		return class4xx
	case 5:
		return class5xx
	}
	return classOther
}

// latencyBuckets are the request histogram's upper bounds, in seconds: fine
// below a millisecond, where picks answer.
var latencyBuckets = []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1, 5}

// fsyncBuckets are the WAL fsync histogram's upper bounds, in seconds: from
// a battery-backed cache to a struggling disk.
var fsyncBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5}

// Metrics are a server's metrics, in a registry of their own (never
// prometheus.DefaultRegisterer: two servers in one test process must not
// share counters). New makes one unless Options.Metrics gives it, which
// cmd/omnipick does so that the write-ahead log, opened before the server,
// can report fsyncs to it (ObserveWALSync). A Metrics serves one Server.
// Safe for concurrent use.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	records   [engine.OpExpire + 1][3]prometheus.Counter // by engine.Op; applied, rejected, duplicate
	walFsync  prometheus.Histogram
	walSynced prometheus.Counter
	inUse     atomic.Bool // claimed by a Server

	// Forwarding to partition owners (cluster mode), by endpoint and
	// outcome; latency of the forwarded requests that got an answer or
	// failed trying. Cached on first use like the request series below,
	// so a single node, which never forwards, exports none of them.
	fwdCells    [numEndpoints][numForwardOutcomes]atomic.Pointer[prometheus.Counter]
	fwdLatCells [numEndpoints]atomic.Pointer[prometheus.Observer]
	forwardVec  *prometheus.CounterVec
	forwardHist *prometheus.HistogramVec

	// Request series are resolved on first use and cached, so that the
	// request path makes no label lookup (which hashes and locks) and only
	// series that saw a request are exported.
	reqCells [numEndpoints][numStatus]atomic.Pointer[prometheus.Counter]
	latCells [numEndpoints][numClasses]atomic.Pointer[prometheus.Observer]
}

// NewMetrics returns the metrics of a server about to be made, with the Go
// runtime's and the process's own (heap, GC pauses, RSS, file descriptors).
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omnipick_http_requests_total", Help: "HTTP requests by endpoint and status.",
	}, []string{"endpoint", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "omnipick_http_request_duration_seconds", Help: "HTTP request latency by endpoint and status class, from the handler's entry to its response.",
		Buckets: latencyBuckets,
	}, []string{"endpoint", "class"})
	records := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omnipick_records_total", Help: "Write records by kind and outcome (rejected: the engine refused it, see the 4xx body; duplicate: its event_id was applied before, acknowledged and not applied again).",
	}, []string{"kind", "outcome"})
	for op := engine.OpProduct; op <= engine.OpExpire; op++ {
		m.records[op][0] = records.WithLabelValues(op.String(), "applied")
		m.records[op][1] = records.WithLabelValues(op.String(), "rejected")
		m.records[op][2] = records.WithLabelValues(op.String(), "duplicate")
	}
	m.walFsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "omnipick_wal_fsync_duration_seconds", Help: "Write-ahead log segment fsync latency; _count is the number of fsyncs.",
		Buckets: fsyncBuckets,
	})
	m.walSynced = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "omnipick_wal_fsync_bytes_total", Help: "Write-ahead log bytes made durable by fsyncs.",
	})
	m.forwardVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omnipick_forwarded_requests_total", Help: "Requests about an actor another node owns, sent to that owner (cluster mode), by endpoint and outcome: ok (the owner answered, relayed whatever its status), failed (the owner could not be reached in time: answered 503), no_owner (no live owner: answered 503). Audience streams count one per peer asked.",
	}, []string{"endpoint", "outcome"})
	m.forwardHist = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "omnipick_forward_duration_seconds", Help: "Latency of requests forwarded to a partition's owner, from sending to the owner's whole answer (audiences: to its first bytes), by endpoint.",
		Buckets: latencyBuckets,
	}, []string{"endpoint"})
	m.reg.MustRegister(m.requests, m.latency, records, m.walFsync, m.walSynced, m.forwardVec, m.forwardHist,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveWALSync records one fsync of the write-ahead log; it fits
// store.Options.OnWALSync. It does not allocate.
func (m *Metrics) ObserveWALSync(d time.Duration, bytes int) {
	m.walFsync.Observe(d.Seconds())
	m.walSynced.Add(float64(bytes))
}

// observe counts one request. It allocates nothing once the request's
// series exist: a few atomic adds.
func (m *Metrics) observe(ep endpoint, status int, d time.Duration) {
	si := statusIndex(status)
	c := m.reqCells[ep][si].Load()
	if c == nil {
		c = m.counterCell(ep, si)
	}
	(*c).Inc()
	cl := statusClass(status)
	h := m.latCells[ep][cl].Load()
	if h == nil {
		h = m.latencyCell(ep, cl)
	}
	(*h).Observe(d.Seconds())
}

// counterCell resolves a request counter; racing callers get the same
// child from the vector, so whichever store wins is right.
func (m *Metrics) counterCell(ep endpoint, si int) *prometheus.Counter {
	c := m.requests.WithLabelValues(endpointNames[ep], statusName(si))
	m.reqCells[ep][si].Store(&c)
	return &c
}

func (m *Metrics) latencyCell(ep endpoint, cl int) *prometheus.Observer {
	h := m.latency.WithLabelValues(endpointNames[ep], classNames[cl])
	m.latCells[ep][cl].Store(&h)
	return &h
}

// forwardOutcome is how forwarding a request ended.
type forwardOutcome uint8

const (
	forwardOK forwardOutcome = iota
	forwardFailed
	forwardNoOwner
	numForwardOutcomes
)

var forwardOutcomeNames = [numForwardOutcomes]string{"ok", "failed", "no_owner"}

// observeForward counts one forwarded request. Series are made on first
// use (a single node never exports them), lock-free as in observe; the
// latency series only once a latency is measured (d > 0).
func (m *Metrics) observeForward(ep endpoint, o forwardOutcome, d time.Duration) {
	c := m.fwdCells[ep][o].Load()
	if c == nil {
		c = m.forwardCell(ep, o)
	}
	(*c).Inc()
	if d <= 0 {
		return
	}
	h := m.fwdLatCells[ep].Load()
	if h == nil {
		h = m.forwardLatencyCell(ep)
	}
	(*h).Observe(d.Seconds())
}

// forwardCell resolves a forward counter; as in counterCell, racing
// callers get the same child, so whichever store wins is right.
func (m *Metrics) forwardCell(ep endpoint, o forwardOutcome) *prometheus.Counter {
	c := m.forwardVec.WithLabelValues(endpointNames[ep], forwardOutcomeNames[o])
	m.fwdCells[ep][o].Store(&c)
	return &c
}

func (m *Metrics) forwardLatencyCell(ep endpoint) *prometheus.Observer {
	h := m.forwardHist.WithLabelValues(endpointNames[ep])
	m.fwdLatCells[ep].Store(&h)
	return &h
}

// countApplied counts a write batch's records by outcome.
func (m *Metrics) countApplied(op engine.Op, recs []engine.Record, errs []error) {
	if op < engine.OpProduct || op > engine.OpExpire {
		return
	}
	var ok, bad, dup int
	for i := range recs {
		switch {
		case errs[i] == nil:
			ok++
		case errors.Is(errs[i], engine.ErrDuplicate):
			dup++
		default:
			bad++
		}
	}
	m.records[op][0].Add(float64(ok))
	m.records[op][1].Add(float64(bad))
	m.records[op][2].Add(float64(dup))
}

// scrapeCollector reads the engine's, the store's and the server's gauges
// when Prometheus scrapes, so that the paths that change them count
// nothing (engine.Stats takes the engine's read locks briefly).
type scrapeCollector struct {
	s *Server

	events, products, skus, locations, facets, profiles, inFlight *prometheus.Desc
	profileBytes                                                  *prometheus.Desc
	walBytes, walSegments, walBuffered, walAppends, walFull       *prometheus.Desc
	walFailures, walHeals, writable                               *prometheus.Desc
	screenStreams, screenRecomputes                               *prometheus.Desc
	eventIDs, eventIDsEvicted                                     *prometheus.Desc
	profilesRemoved                                               *prometheus.Desc
	snapAge, snapBytes, snapRawBytes, snapDuration, snapPause     *prometheus.Desc
}

func newScrapeCollector(s *Server) *scrapeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &scrapeCollector{
		s:                s,
		events:           d("omnipick_events_total", "Events applied by type (live and replayed at start-up).", "type"),
		products:         d("omnipick_products", "Products in the catalog."),
		skus:             d("omnipick_skus", "SKUs in the catalog."),
		locations:        d("omnipick_locations", "Stock locations."),
		facets:           d("omnipick_facets", "Catalog facets (categories, brands, tags) indexed."),
		profiles:         d("omnipick_profiles", "Customer and anonymous profiles."),
		profileBytes:     d("omnipick_profile_bytes", "Bytes of the profiles' arenas (encoded profiles and room left to grow)."),
		inFlight:         d("omnipick_http_requests_in_flight", "Requests being handled, against -max-in-flight."),
		profilesRemoved:  d("omnipick_profiles_removed_total", "Profiles removed since start (replay included): erased on request (DELETE /v1/customers), expired (anonymous, unused for -anonymous-ttl), evicted (least recently active anonymous, for -max-profiles).", "reason"),
		eventIDs:         d("omnipick_event_ids", "Event ids kept to refuse duplicates (about 55 bytes each), against -max-event-ids."),
		eventIDsEvicted:  d("omnipick_event_ids_evicted_total", "Event ids dropped before their window ended because -max-event-ids were kept: a retry of one of them would be applied again."),
		screenStreams:    d("omnipick_screen_streams", "Store screen event streams open, against -max-screen-streams."),
		screenRecomputes: d("omnipick_screen_recomputes_total", "Picks computed for store screen event streams: one per scan, and at most one a second per screen for stock and catalog writes."),
		walBytes:         d("omnipick_wal_bytes", "Bytes in write-ahead log segment files."),
		walSegments:      d("omnipick_wal_segments", "Write-ahead log segment files."),
		walBuffered:      d("omnipick_wal_buffered_bytes", "Log bytes appended but not yet written, against -max-queued-bytes."),
		walAppends:       d("omnipick_wal_records_total", "Records appended to the write-ahead log since start: one per write request (a request's records travel as one batch record)."),
		walFull:          d("omnipick_wal_full_total", "Appends refused because -max-queued-bytes were queued (answered 503)."),
		walFailures:      d("omnipick_wal_failures_total", "Write-ahead log write or fsync failures (a full disk, an I/O error): the writes not yet durable failed with 503."),
		walHeals:         d("omnipick_wal_heals_total", "Times the write-ahead log healed after a failure and took writes again."),
		writable:         d("omnipick_writable", "1 while writes are accepted; 0 while the log has failed and not healed, or snapshots lack disk space (writes answer 503, reads go on)."),
		snapAge:          d("omnipick_snapshot_age_seconds", "Seconds since the capture of the newest snapshot (written, or loaded at start)."),
		snapBytes:        d("omnipick_snapshot_bytes", "File size of the newest snapshot."),
		snapRawBytes:     d("omnipick_snapshot_raw_bytes", "Uncompressed size of the newest snapshot."),
		snapDuration:     d("omnipick_snapshot_duration_seconds", "How long the newest snapshot written since start took."),
		snapPause:        d("omnipick_snapshot_pause_seconds", "How long the newest snapshot written since start held writes back."),
	}
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.events, c.products, c.skus, c.locations, c.facets, c.profiles, c.profileBytes, c.inFlight,
		c.screenStreams, c.screenRecomputes, c.eventIDs, c.eventIDsEvicted, c.profilesRemoved,
		c.walBytes, c.walSegments, c.walBuffered, c.walAppends, c.walFull, c.walFailures, c.walHeals, c.writable,
		c.snapAge, c.snapBytes, c.snapRawBytes, c.snapDuration, c.snapPause} {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	st := c.s.opts.Engine.Stats()
	for t := engine.EventView; t <= engine.EventImpression; t++ {
		counter(c.events, float64(st.EventCount(t)), t.String())
	}
	gauge(c.products, float64(st.Products))
	gauge(c.skus, float64(st.SKUs))
	gauge(c.locations, float64(st.Locations))
	gauge(c.facets, float64(st.Facets))
	gauge(c.profiles, float64(st.Profiles))
	gauge(c.profileBytes, float64(st.ProfileBytes))
	gauge(c.inFlight, float64(c.s.inFlight.Load()))
	counter(c.profilesRemoved, float64(st.ProfilesErased), "erased")
	counter(c.profilesRemoved, float64(st.ProfilesExpired), "expired")
	counter(c.profilesRemoved, float64(st.ProfilesEvicted), "evicted")
	gauge(c.eventIDs, float64(st.EventIDs))
	counter(c.eventIDsEvicted, float64(st.EventIDsEvicted))
	gauge(c.screenStreams, float64(c.s.screenStreams.Load()))
	counter(c.screenRecomputes, float64(c.s.screenRecomputes.Load()))
	if c.s.opts.StoreStats == nil {
		return
	}
	ss := c.s.opts.StoreStats()
	gauge(c.walBytes, float64(ss.WAL.Bytes))
	gauge(c.walSegments, float64(ss.WAL.Segments))
	gauge(c.walBuffered, float64(ss.WAL.BufferedBytes))
	counter(c.walAppends, float64(ss.WAL.Appends))
	counter(c.walFull, float64(ss.WAL.Full))
	counter(c.walFailures, float64(ss.WAL.Failures))
	counter(c.walHeals, float64(ss.WAL.Heals))
	writable := 1.0
	if ss.WAL.Err != nil || ss.DiskFull != nil {
		writable = 0
	}
	gauge(c.writable, writable)
	if snap := ss.LastSnapshot; snap != nil {
		gauge(c.snapAge, c.s.opts.Now().Sub(snap.At).Seconds())
		gauge(c.snapBytes, float64(snap.FileBytes))
		gauge(c.snapRawBytes, float64(snap.RawBytes))
		if snap.Took > 0 { // zero for a snapshot loaded at start: not measured
			gauge(c.snapDuration, snap.Took.Seconds())
			gauge(c.snapPause, snap.Pause.Seconds())
		}
	}
}

// Register adds a collector of figures kept outside the server (a cluster
// node's lag and publish latency) to the metrics /metrics serves.
func (m *Metrics) Register(c prometheus.Collector) error {
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("cannot register metrics: %w", err)
	}
	return nil
}

// errMetricsShared refuses a Metrics already serving another Server: the
// scrape-time gauges would be registered twice.
var errMetricsShared = errors.New("api: Options.Metrics already serves another Server")

// register adds the server's scrape-time collector to m.
func (m *Metrics) register(s *Server) error {
	if !m.inUse.CompareAndSwap(false, true) {
		return errMetricsShared
	}
	if err := m.reg.Register(newScrapeCollector(s)); err != nil {
		return fmt.Errorf("cannot register the server's metrics: %w", err)
	}
	return nil
}

// handleMetrics writes the Prometheus text exposition format. A collector
// that fails does not hide the others: what was gathered is served, and
// the failure logged.
func (s *Server) handleMetrics(ctx *fasthttp.RequestCtx) {
	mfs, err := s.metrics.reg.Gather()
	if err != nil {
		s.opts.Log.Warn("metrics: cannot gather every metric", "err", err)
	}
	ctx.SetContentType(string(expfmt.FmtText))
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(ctx, mf); err != nil {
			// Writes into the response buffer do not fail; a bad family
			// (an invalid name) would, and the rest still go out.
			s.opts.Log.Warn("metrics: cannot encode", "family", mf.GetName(), "err", err)
		}
	}
}
