package load

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Summary is the outcome of Run: the target's report and, with a ceiling
// run, the ceiling's report and the target's share of it.
type Summary struct {
	Target  *Report  `json:"target"`
	Ceiling *Report  `json:"ceiling,omitempty"`
	Share   *Share   `json:"ceiling_share,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

// Share is the target's throughput as a fraction of the ceiling's, with
// the same client, connections and mix.
type Share struct {
	Picks float64 `json:"picks"` // picks req/s, target / ceiling
	All   float64 `json:"all"`   // every request, target / ceiling
}

// Report is what one run measured. Latencies are in microseconds.
type Report struct {
	Target   string  `json:"target"`
	Mode     string  `json:"mode"` // "closed" or "open"
	Conns    int     `json:"conns"`
	Rate     float64 `json:"rate,omitempty"` // open loop: scheduled req/s
	Mix      string  `json:"mix"`
	Batch    int     `json:"batch"`
	World    string  `json:"world"`
	Zipf     float64 `json:"zipf"`
	WarmupS  float64 `json:"warmup_s"`
	Seconds  float64 `json:"seconds"`  // measured: from the end of warm-up to the last answer
	Requests uint64  `json:"requests"` // measured requests sent
	Answered uint64  `json:"answered"` // of which got an HTTP response (any status)
	RPS      float64 `json:"rps"`      // answered per second

	Kinds []KindStats `json:"kinds"`
	Picks KindStats   `json:"picks"` // every picks kind together
	All   KindStats   `json:"all"`

	Events EventStats `json:"events"`

	// Open loop only: the time from the actual send to the answer (what a
	// closed-loop tool would report), and how late requests left.
	ServiceTime *Latency `json:"service_time_us,omitempty"`
	SendLag     *Latency `json:"send_lag_us,omitempty"`
	Unsent      uint64   `json:"unsent,omitempty"` // due before the end, never sent

	Status          map[string]uint64 `json:"status"`           // by HTTP status code
	TransportErrors map[string]uint64 `json:"transport_errors"` // by class
}

// KindStats is the throughput and latency of one kind of request.
type KindStats struct {
	Kind     string  `json:"kind"`
	Requests uint64  `json:"requests"`
	RPS      float64 `json:"rps"` // answered per second
	Latency  Latency `json:"latency_us"`
}

// Latency summarizes a histogram, in microseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// EventStats counts the events sent in POST /v1/events batches.
type EventStats struct {
	Accepted  uint64  `json:"accepted"`   // in 2xx batches, minus the lines the reply rejected
	Rejected  uint64  `json:"rejected"`   // lines a 2xx reply listed as rejected
	Failed    uint64  `json:"failed"`     // in batches answered non-2xx or not at all
	PerSecond float64 `json:"per_second"` // accepted per second
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// LatencyOf summarizes a histogram in microseconds.
func LatencyOf(h *Histogram) Latency {
	return Latency{
		Count: h.Count(),
		Mean:  us(h.Mean()),
		P50:   us(h.Quantile(0.50)),
		P90:   us(h.Quantile(0.90)),
		P99:   us(h.Quantile(0.99)),
		P999:  us(h.Quantile(0.999)),
		Max:   us(h.Max()),
	}
}

func (r *recorder) report(o *Options, base string, secs float64) *Report {
	rep := &Report{
		Target:  base,
		Mode:    "closed",
		Conns:   o.Conns,
		Mix:     o.Mix.String(),
		Batch:   o.Batch,
		World:   describeWorld(o.World),
		Zipf:    o.Zipf,
		WarmupS: o.Warmup.Seconds(),
		Seconds: secs,
		Unsent:  r.unsent.Load(),
		Status:  map[string]uint64{},
	}
	if o.Rate > 0 {
		rep.Mode, rep.Rate = "open", o.Rate
		s, l := LatencyOf(&r.service), LatencyOf(&r.lag)
		rep.ServiceTime, rep.SendLag = &s, &l
	}
	perSec := func(n uint64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(n) / secs
	}
	var picks, all Histogram
	var picksAnswered uint64
	for k := range NumKinds {
		h := &r.lat[k]
		sent, answered := r.sent[k].Load(), r.answered[k].Load()
		all.Merge(h)
		rep.Requests += sent
		rep.Answered += answered
		if k.IsPicks() {
			picks.Merge(h)
			rep.Picks.Requests += sent
			picksAnswered += answered
		}
		if o.Mix[k] > 0 {
			rep.Kinds = append(rep.Kinds, KindStats{Kind: k.String(), Requests: sent, RPS: perSec(answered), Latency: LatencyOf(h)})
		}
	}
	rep.RPS = perSec(rep.Answered)
	rep.Picks = KindStats{Kind: "picks", Requests: rep.Picks.Requests, RPS: perSec(picksAnswered), Latency: LatencyOf(&picks)}
	rep.All = KindStats{Kind: "all", Requests: rep.Requests, RPS: rep.RPS, Latency: LatencyOf(&all)}
	for code := range r.status {
		if n := r.status[code].Load(); n > 0 {
			rep.Status[strconv.Itoa(code)] = n
		}
	}
	rep.TransportErrors = make(map[string]uint64, len(r.errs))
	for c, n := range r.errs {
		rep.TransportErrors[c] = n
	}
	rep.Events = EventStats{
		Accepted:  r.evAccepted.Load(),
		Rejected:  r.evRejected.Load(),
		Failed:    r.evFailed.Load(),
		PerSecond: perSec(r.evAccepted.Load()),
	}
	return rep
}

func describeWorld(w World) string {
	return fmt.Sprintf("%d customers (%s..%s), %d products (%s..%s), %d stores",
		w.Customers, w.CustomerID(1), w.CustomerID(w.Customers),
		w.Products, w.ProductID(1), w.ProductID(w.Products), len(w.Stores))
}

func shareOf(target, ceiling *Report) *Share {
	ratio := func(a, b float64) float64 {
		if b <= 0 {
			return 0
		}
		return a / b
	}
	return &Share{Picks: ratio(target.Picks.RPS, ceiling.Picks.RPS), All: ratio(target.All.RPS, ceiling.All.RPS)}
}

func numCPU() int { return runtime.NumCPU() }

// fmtLatency prints microseconds with three significant digits.
func fmtLatency(v float64) string {
	switch {
	case v < 1000:
		return strconv.FormatFloat(v, 'f', 0, 64) + "µs"
	case v < 10_000:
		return strconv.FormatFloat(v/1e3, 'f', 2, 64) + "ms"
	case v < 1_000_000:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "ms"
	default:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "s"
	}
}

// WriteText writes s as tables for people.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	s.Target.writeText(&b, "target")
	if s.Ceiling != nil {
		b.WriteByte('\n')
		s.Ceiling.writeText(&b, "ceiling")
	}
	if s.Share != nil {
		fmt.Fprintf(&b, "\nshare of ceiling: picks %.1f%% (%.0f of %.0f req/s), all requests %.1f%% (%.0f of %.0f req/s)\n",
			100*s.Share.Picks, s.Target.Picks.RPS, s.Ceiling.Picks.RPS,
			100*s.Share.All, s.Target.All.RPS, s.Ceiling.All.RPS)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) writeText(b *strings.Builder, role string) {
	fmt.Fprintf(b, "%s %s: %s loop, %d connections", role, r.Target, r.Mode, r.Conns)
	if r.Mode == "open" {
		fmt.Fprintf(b, ", %.0f req/s scheduled", r.Rate)
	}
	fmt.Fprintf(b, ", %.1fs measured after %.1fs warm-up\n", r.Seconds, r.WarmupS)
	if role == "ceiling" {
		b.WriteString("  (a fixed 300-byte JSON answer to every request: the most this client gets through)\n")
	} else {
		fmt.Fprintf(b, "  mix %s; events in batches of %d\n  world: %s; zipf %.2g\n", r.Mix, r.Batch, r.World, r.Zipf)
	}
	if r.Mode == "open" {
		b.WriteString("  latency from each request's scheduled send time (coordinated omission corrected)\n")
	}
	const rowFmt = "  %-13s %9s %9s %8s %8s %8s %8s %8s\n"
	fmt.Fprintf(b, rowFmt, "kind", "requests", "req/s", "p50", "p90", "p99", "p99.9", "max")
	row := func(k KindStats) {
		l := k.Latency
		fmt.Fprintf(b, rowFmt, k.Kind, strconv.FormatUint(k.Requests, 10), strconv.FormatFloat(k.RPS, 'f', 1, 64),
			fmtLatency(l.P50), fmtLatency(l.P90), fmtLatency(l.P99), fmtLatency(l.P999), fmtLatency(l.Max))
	}
	if role != "ceiling" {
		for _, k := range r.Kinds {
			row(k)
		}
	}
	if r.Picks.Requests > 0 {
		row(r.Picks)
	}
	row(r.All)
	if r.ServiceTime != nil {
		l := r.ServiceTime
		fmt.Fprintf(b, "  service time (from the actual send, what a closed loop would report): p50 %s, p99 %s, p99.9 %s, max %s\n",
			fmtLatency(l.P50), fmtLatency(l.P99), fmtLatency(l.P999), fmtLatency(l.Max))
		l = r.SendLag
		fmt.Fprintf(b, "  send lag (actual - scheduled send): p50 %s, p99 %s, max %s\n",
			fmtLatency(l.P50), fmtLatency(l.P99), fmtLatency(l.Max))
	}
	fmt.Fprintf(b, "  throughput: %.1f req/s answered", r.RPS)
	if role != "ceiling" && r.Events.Accepted+r.Events.Rejected+r.Events.Failed > 0 {
		fmt.Fprintf(b, "; events %.1f/s accepted (%d accepted, %d rejected, %d in failed batches)",
			r.Events.PerSecond, r.Events.Accepted, r.Events.Rejected, r.Events.Failed)
	}
	b.WriteByte('\n')
	fmt.Fprintf(b, "  status: %s\n", fmtCounts(r.Status, "none"))
	fmt.Fprintf(b, "  transport errors: %s\n", fmtCounts(r.TransportErrors, "none"))
	if r.Unsent > 0 {
		fmt.Fprintf(b, "  UNSENT: %d requests were due before the end but could not be sent before the drain deadline: the target is far behind\n", r.Unsent)
	}
}

func fmtCounts(m map[string]uint64, none string) string {
	if len(m) == 0 {
		return none
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
