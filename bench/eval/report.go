package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes reports as one aligned text table, a row per set and
// method, followed by a line per set describing its data and run.
func WriteTable(w io.Writer, reports ...Report) error {
	// Right-aligned columns, but set and method padded to read left-aligned.
	ws, wm := len("set"), len("method")
	for _, r := range reports {
		ws = max(ws, len(r.Set))
		for _, m := range r.Methods {
			wm = max(wm, len(m.Method))
		}
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', tabwriter.AlignRight)
	for i, r := range reports {
		if i == 0 || r.K != reports[i-1].K {
			fmt.Fprintf(tw, "%-*s\t%-*s\tcustomers\tHR@%d\t95%% CI\tMAP@%d\t95%% CI\tRecall@%d\tcoverage\trebuy\tapply\trecommend\t\n",
				ws, "set", wm, "method", r.K, r.K, r.K)
		}
		for _, m := range r.Methods {
			fmt.Fprintf(tw, "%-*s\t%-*s\t%d\t%.4f\t%s\t%.4f\t%s\t%.4f\t%.4f\t%.4f\t%s\t%s\t\n",
				ws, r.Set, wm, m.Method, m.Customers, m.HitRate, m.HitRateCI, m.MAP, m.MAPCI, m.Recall, m.Coverage, m.Rebuy,
				roundDuration(m.ApplyTime), roundDuration(m.RecommendTime))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// AlignRight pads every cell on the left, the first one too: drop that.
	for line := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(w, strings.TrimPrefix(line, "  ")); err != nil {
			return err
		}
	}
	for _, r := range reports {
		inCat := 0.0
		if r.Targets > 0 {
			inCat = float64(r.TargetsInCatalog) / float64(r.Targets)
		}
		split := r.Split
		if split == "" {
			split = SplitDev
		}
		_, err := fmt.Fprintf(w, "%s (%s): catalog %d, train events %d, customers %d of %d in holdout, targets %d (%.1f%% in catalog), max HR %.4f, load %s, live heap %.1f MiB\n",
			r.Set, split, r.CatalogSize, r.TrainEvents, r.Customers, r.HoldoutCustomers, r.Targets, 100*inCat,
			r.MaxHitRate, roundDuration(r.LoadTime), float64(r.HeapBytes)/(1<<20))
		if err != nil {
			return err
		}
		for _, m := range r.Methods {
			if c := m.VsBest; c != nil {
				_, err := fmt.Fprintf(w, "%s (%s): %s minus the best baseline: HR@%d %+.4f %s (vs %s), MAP@%d %+.4f %s (vs %s)\n",
					r.Set, split, m.Method, r.K, c.HitRate, c.HitRateCI, c.HitRateBaseline, r.K, c.MAP, c.MAPCI, c.MAPBaseline)
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// String returns i as "[lo hi]" with four decimals, signed when lo < 0.
func (i Interval) String() string {
	if i.Lo < 0 {
		return fmt.Sprintf("[%+.4f %+.4f]", i.Lo, i.Hi)
	}
	return fmt.Sprintf("[%.4f %.4f]", i.Lo, i.Hi)
}

// String returns r as WriteTable writes it.
func (r Report) String() string {
	var b strings.Builder
	_ = WriteTable(&b, r) // a strings.Builder does not fail
	return b.String()
}

// methodJSON is one method of one report, flat, as WriteJSON writes it.
type methodJSON struct {
	Set    string `json:"set"`
	Split  Split  `json:"split"`
	Method string `json:"method"`
	K      int    `json:"k"`
	Metrics
	HitRateCI        Interval    `json:"hit_rate_ci"`
	MAPCI            Interval    `json:"map_ci"`
	VsBest           *Comparison `json:"vs_best,omitempty"`
	ApplyMS          float64     `json:"apply_ms"`
	RecommendMS      float64     `json:"recommend_ms"`
	CatalogSize      int         `json:"catalog_size"`
	TrainEvents      int         `json:"train_events"`
	Targets          int         `json:"targets"`
	TargetsInCatalog int         `json:"targets_in_catalog"`
	MaxHitRate       float64     `json:"max_hit_rate"`
}

// WriteJSON writes reports as a JSON array with one object per set and
// method, holding its metrics, timings (ms) and the set's sizes.
func WriteJSON(w io.Writer, reports ...Report) error {
	out := []methodJSON{}
	for _, r := range reports {
		for _, m := range r.Methods {
			out = append(out, methodJSON{
				Set: r.Set, Split: r.Split, Method: m.Method, K: r.K, Metrics: m.Metrics,
				HitRateCI: m.HitRateCI, MAPCI: m.MAPCI, VsBest: m.VsBest,
				ApplyMS:          ms(m.ApplyTime),
				RecommendMS:      ms(m.RecommendTime),
				CatalogSize:      r.CatalogSize,
				TrainEvents:      r.TrainEvents,
				Targets:          r.Targets,
				TargetsInCatalog: r.TargetsInCatalog,
				MaxHitRate:       r.MaxHitRate,
			})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// roundDuration keeps three significant digits or so.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
