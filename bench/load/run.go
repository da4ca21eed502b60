package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Options configure a load run. Zero values take the defaults noted.
type Options struct {
	Target string // base URL of the service, "http://127.0.0.1:7070"
	Key    string // sent as "Authorization: Bearer <Key>" when set

	Conns int // connections (closed loop: concurrent requests); default 4
	// Rate > 0 selects the open loop: Rate requests a second over all
	// connections, each connection on a fixed schedule, latency measured
	// from the scheduled send time. 0 selects the closed loop.
	Rate float64
	// Duration is the measured time after Warmup; Requests bounds the
	// number of measured requests (open loop: the run lasts
	// Requests/Rate). With both zero, Duration is 10s.
	Duration time.Duration
	Requests int
	Warmup   time.Duration // sent, not counted; default 0
	// Drain is how long after the end an open-loop run keeps sending
	// requests that were due before the end (a backlog behind a stalled
	// server); what is still unsent then is reported as Unsent. Default 5s.
	Drain   time.Duration
	Timeout time.Duration // per request, after which it counts as a timeout; default 5s

	Mix   Mix     // default DefaultMix()
	World World   // the id space; required
	Zipf  float64 // skew of customer and product popularity; 0 is uniform
	Batch int     // events per POST /v1/events; default 10
	Seed  uint64  // same seed, same request sequence per connection

	// Ceiling also runs the same closed loop (Conns, Mix, Duration,
	// Requests, Warmup) against a trivial server answering a fixed 300-byte
	// JSON body: CeilingTarget if set, else one started in this process.
	Ceiling       bool
	CeilingTarget string
}

func (o *Options) setDefaults() error {
	if o.Conns <= 0 {
		o.Conns = 4
	}
	if o.Duration <= 0 && o.Requests <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Mix == (Mix{}) {
		o.Mix = DefaultMix()
	}
	if o.Batch <= 0 {
		o.Batch = 10
	}
	switch {
	case o.Rate < 0 || o.Rate > 1e7:
		return fmt.Errorf("load: rate %v is not in [0, 1e7]", o.Rate)
	case o.Zipf < 0 || o.Zipf > 10:
		return fmt.Errorf("load: zipf exponent %v is not in [0, 10]", o.Zipf)
	case o.Conns > 100_000:
		return fmt.Errorf("load: %d connections is too many", o.Conns)
	case o.Batch > 100_000:
		return fmt.Errorf("load: a batch of %d events is too large", o.Batch)
	}
	for _, w := range o.Mix {
		if !(w >= 0) {
			return errors.New("load: mix weights must be >= 0")
		}
	}
	return o.World.Validate()
}

// Run measures the target with opts and, with opts.Ceiling, the ceiling
// server after it. It stops by itself when the duration or the request
// count is reached, or early when ctx ends (the report then covers the
// time run so far).
func Run(ctx context.Context, opts Options) (*Summary, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	target, err := runOnce(ctx, &opts, opts.Target, opts.Key)
	if err != nil {
		return nil, err
	}
	s := &Summary{Target: target}
	if local, err := isLoopback(opts.Target); err == nil && local {
		s.Notes = append(s.Notes, fmt.Sprintf("the target is on this machine: it shares its %d CPUs with this load generator", numCPU()))
	}
	var clientErrs uint64
	for code, n := range target.Status {
		if code[0] == '4' {
			clientErrs += n
		}
	}
	if clientErrs > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%d answers were 4xx: check that the load world matches the target's data "+
			"(make run serves the demo world) and that a key is given if the target requires one", clientErrs))
	}
	if !opts.Ceiling || ctx.Err() != nil {
		return s, nil
	}
	co := opts
	co.Rate = 0 // the ceiling is the most this client gets through: closed loop
	ceiling := co.CeilingTarget
	if ceiling == "" {
		addr, stop, err := StartCeiling("127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer stop()
		ceiling = "http://" + addr
		s.Notes = append(s.Notes, "the ceiling server ran in this process: it shared the CPUs with the load generator (and with the target, if local), as the target did")
	}
	if s.Ceiling, err = runOnce(ctx, &co, ceiling, ""); err != nil {
		return nil, fmt.Errorf("ceiling run: %w", err)
	}
	s.Share = shareOf(s.Target, s.Ceiling)
	if opts.Rate > 0 {
		s.Notes = append(s.Notes, "the target ran open loop at a fixed rate: its share of the ceiling is that rate's share, not the target's limit")
	}
	return s, nil
}

// recorder collects the measurements of one run. Safe for concurrent use.
type recorder struct {
	lat     [NumKinds]Histogram // closed loop: from send; open loop: from the scheduled send
	service Histogram           // open loop: from the actual send, as a closed-loop tool sees it
	lag     Histogram           // open loop: actual send - scheduled send

	sent       [NumKinds]atomic.Uint64 // measured requests sent
	answered   [NumKinds]atomic.Uint64 // of which got an HTTP response
	status     [600]atomic.Uint64      // by HTTP status; 0 holds codes outside [100, 600)
	errMu      sync.Mutex
	errs       map[string]uint64
	unsent     atomic.Uint64
	evAccepted atomic.Uint64 // events in 2xx batches, minus the ones the reply rejected
	evRejected atomic.Uint64
	evFailed   atomic.Uint64 // events in batches that got no 2xx
	t0         time.Time     // start of the run
	lastDone   atomic.Int64  // the last measured answer, in ns since t0 (monotonic)
}

// maxErrorClasses bounds the distinct transport error texts kept.
const maxErrorClasses = 16

func (r *recorder) transportError(err error) {
	c := errClass(err)
	r.errMu.Lock()
	if _, ok := r.errs[c]; !ok && len(r.errs) >= maxErrorClasses {
		c = "other"
	}
	r.errs[c]++
	r.errMu.Unlock()
}

// errClass names a transport error by what an operator would look for.
func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no free connections"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return "other: " + s
}

func (r *recorder) markDone(t time.Time) {
	v := int64(t.Sub(r.t0))
	for {
		m := r.lastDone.Load()
		if v <= m || r.lastDone.CompareAndSwap(m, v) {
			return
		}
	}
}

// worker sends one request at a time on behalf of one connection. Not
// safe for concurrent use.
type worker struct {
	b         *builder
	hc        *fasthttp.HostClient
	get, post *fasthttp.Request
	resp      *fasthttp.Response
	rec       *recorder
}

func newWorker(hc *fasthttp.HostClient, base, key string, b *builder, rec *recorder) *worker {
	w := &worker{b: b, hc: hc, rec: rec, get: new(fasthttp.Request), post: new(fasthttp.Request), resp: new(fasthttp.Response)}
	w.post.Header.SetMethod(fasthttp.MethodPost)
	w.post.SetRequestURI(base + "/v1/events")
	w.post.Header.SetContentType("application/x-ndjson")
	if key != "" {
		w.get.Header.Set("Authorization", "Bearer "+key)
		w.post.Header.Set("Authorization", "Bearer "+key)
	}
	return w
}

// send makes one request of kind k and waits for the answer.
func (w *worker) send(k Kind) error {
	if k == Events {
		w.post.SetBody(w.b.eventsBody())
		return w.hc.Do(w.post, w.resp)
	}
	w.get.SetRequestURIBytes(w.b.picksURI(k))
	return w.hc.Do(w.get, w.resp)
}

var appliedKey = []byte(`"applied":`)

// record counts the outcome of a measured request that took lat.
func (w *worker) record(k Kind, lat time.Duration, err error) {
	r := w.rec
	r.sent[k].Add(1)
	if err != nil {
		r.transportError(err)
		if k == Events {
			r.evFailed.Add(uint64(w.b.batch))
		}
		if errClass(err) != "timeout" {
			return
		}
		// A timeout took at least lat: keep it, or stalls would vanish.
		r.lat[k].Record(lat)
		return
	}
	r.lat[k].Record(lat)
	r.answered[k].Add(1)
	code := w.resp.StatusCode()
	if code < 100 || code >= len(r.status) {
		code = 0
	}
	r.status[code].Add(1)
	if k != Events {
		return
	}
	if code < 200 || code > 299 {
		r.evFailed.Add(uint64(w.b.batch))
		return
	}
	applied := uint64(w.b.batch)
	if body := w.resp.Body(); len(body) > 0 {
		if i := bytes.Index(body, appliedKey); i >= 0 {
			rest := body[i+len(appliedKey):]
			n, digits := uint64(0), 0
			for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
				n = n*10 + uint64(rest[digits]-'0')
				digits++
			}
			if digits > 0 && n <= applied {
				r.evRejected.Add(applied - n)
				applied = n
			}
		}
	}
	r.evAccepted.Add(applied)
}

// closedLoop sends the next request as soon as the previous answer
// arrives, until end, stop, or the budget of measured requests runs out.
func (w *worker) closedLoop(stop *atomic.Bool, warmEnd, end time.Time, budget *atomic.Int64) {
	for !stop.Load() {
		start := time.Now()
		if !end.IsZero() && !start.Before(end) {
			return
		}
		measured := !start.Before(warmEnd)
		if measured && budget != nil && budget.Add(-1) < 0 {
			return
		}
		k := w.b.next()
		err := w.send(k)
		done := time.Now()
		if measured {
			w.record(k, done.Sub(start), err)
			w.rec.markDone(done)
		}
	}
}

// openLoop sends request i at t0 + offset + i*every, or as soon as the
// connection is free when it is late, and measures each latency from its
// scheduled time. Requests due before end are sent until end+drain; the
// rest count as unsent.
func (w *worker) openLoop(stop *atomic.Bool, done <-chan struct{}, t0, warmEnd, end time.Time, drain time.Duration, nth, conns int, rate float64) {
	hardStop := end.Add(drain)
	for i := 0; ; i++ {
		due := t0.Add(time.Duration(float64(nth+i*conns) * 1e9 / rate))
		if !due.Before(end) {
			return
		}
		now := time.Now()
		if due.After(now) {
			if !waitUntil(due, done) {
				return
			}
			now = time.Now()
		}
		if stop.Load() {
			return
		}
		if now.After(hardStop) {
			left := float64(end.Sub(due)) * rate / 1e9 / float64(conns)
			w.rec.unsent.Add(uint64(left) + 1)
			return
		}
		k := w.b.next()
		err := w.send(k)
		answered := time.Now()
		if !due.Before(warmEnd) {
			w.record(k, answered.Sub(due), err)
			if err == nil || errClass(err) == "timeout" {
				w.rec.service.Record(answered.Sub(now))
				w.rec.lag.Record(now.Sub(due))
			}
			w.rec.markDone(answered)
		}
	}
}

// shortWait is the part of a wait slept in sleepShort rather than
// time.Sleep.
const shortWait = 2 * time.Millisecond

// waitUntil sleeps until t, or until done is closed (then it returns
// false). Go's timers wake a sub-millisecond sleep up to 1ms late in a
// mostly idle process (the runtime's poller waits in whole milliseconds):
// that would add up to 1ms to every open-loop latency. So the last 2ms are
// slept in sleepShort, which blocks the thread (the runtime hands its P to
// another) and wakes within tens of microseconds. The send lag in the
// report shows what is left of the error.
func waitUntil(t time.Time, done <-chan struct{}) bool {
	d := time.Until(t)
	if d > shortWait {
		tm := time.NewTimer(d - shortWait)
		select {
		case <-tm.C:
		case <-done:
			tm.Stop()
			return false
		}
		d = time.Until(t)
	}
	if d > 0 {
		sleepShort(d)
	}
	return true
}

// runOnce runs opts against one base URL.
func runOnce(ctx context.Context, opts *Options, base, key string) (*Report, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("load: target %q is not an http:// or https:// base URL", base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	base = u.Scheme + "://" + u.Host + trimSlash(u.Path)
	hc := &fasthttp.HostClient{
		Addr:                      addr,
		IsTLS:                     u.Scheme == "https",
		Name:                      "omnipick-load",
		MaxConns:                  opts.Conns,
		MaxConnWaitTimeout:        opts.Timeout,
		ReadTimeout:               opts.Timeout,
		WriteTimeout:              opts.Timeout,
		MaxIdemponentCallAttempts: 1, // a retry would hide an error and its latency
		MaxResponseBodySize:       64 << 20,
	}
	defer hc.CloseIdleConnections()
	if err := preflight(hc, base, opts.Timeout); err != nil {
		return nil, err
	}

	rec := &recorder{errs: make(map[string]uint64)}
	cust := newPopularity(opts.World.Customers, opts.Zipf, opts.Seed)
	prod := newPopularity(opts.World.Products, opts.Zipf, opts.Seed+1)
	workers := make([]*worker, opts.Conns)
	for i := range workers {
		b := newBuilder(base, opts.World, opts.Mix, &cust, &prod, opts.Batch, opts.Seed, uint64(i))
		workers[i] = newWorker(hc, base, key, b, rec)
	}

	var stop atomic.Bool
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-runCtx.Done()
		stop.Store(true)
	}()

	t0 := time.Now()
	rec.t0 = t0
	warmEnd := t0.Add(opts.Warmup)
	var end time.Time
	if opts.Duration > 0 {
		end = warmEnd.Add(opts.Duration)
	}
	var budget *atomic.Int64
	if opts.Requests > 0 {
		if opts.Rate > 0 {
			e := warmEnd.Add(time.Duration(float64(opts.Requests) * 1e9 / opts.Rate))
			if end.IsZero() || e.Before(end) {
				end = e
			}
		} else {
			budget = new(atomic.Int64)
			budget.Store(int64(opts.Requests))
		}
	}
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() {
			if opts.Rate > 0 {
				w.openLoop(&stop, runCtx.Done(), t0, warmEnd, end, opts.Drain, i, opts.Conns, opts.Rate)
			} else {
				w.closedLoop(&stop, warmEnd, end, budget)
			}
		})
	}
	wg.Wait()

	secs := 0.0
	if last := time.Duration(rec.lastDone.Load()); last > opts.Warmup {
		secs = (last - opts.Warmup).Seconds()
	}
	return rec.report(opts, base, secs), nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// preflight checks that the target answers GET /healthz with 200, so that
// a wrong address is one clear error rather than a report full of them.
func preflight(hc *fasthttp.HostClient, base string, timeout time.Duration) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(base + "/healthz")
	if err := hc.DoTimeout(req, resp, min(timeout, 5*time.Second)); err != nil {
		return fmt.Errorf("target %s does not answer GET /healthz: %w", base, err)
	}
	if c := resp.StatusCode(); c != fasthttp.StatusOK {
		return fmt.Errorf("target %s is not ready: GET /healthz answered %d", base, c)
	}
	return nil
}

// isLoopback reports whether the base URL's host is this machine.
func isLoopback(base string) (bool, error) {
	u, err := url.Parse(base)
	if err != nil {
		return false, err
	}
	h := u.Hostname()
	if h == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(h)
	if ip == nil {
		return false, nil
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true, nil
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true, nil
		}
	}
	return false, nil
}
