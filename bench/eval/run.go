package eval

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/omnipick/omnipick/engine"
)

// Recommender is what the harness evaluates. Run feeds it the train split
// with Apply, in time order, then asks Recommend for each scored customer.
// Run never calls a Recommender from two goroutines at once.
type Recommender interface {
	// Name labels the method in reports.
	Name() string
	// Apply takes one state change. The Recommender must not keep r after
	// Apply returns; it may keep the strings and slices r holds.
	Apply(r *engine.Record) error
	// Recommend appends up to k product ids for customer, as of asOf
	// (unix ms), to dst and returns it. It should never return an item the
	// customer bought before.
	Recommend(customer string, k int, asOf int64, dst []string) []string
}

// Options trims an evaluation run for quick checks. The zero value runs
// everything.
type Options struct {
	// MaxCustomers, if > 0, scores at most this many customers: those
	// with the smallest hash of (Seed, customer id), so a sample is the
	// same on every run and a smaller one is a subset of a larger one.
	MaxCustomers int
	// CustomerFraction, if in (0, 1), scores only customers whose hash
	// falls in that fraction of the hash space (applied before
	// MaxCustomers).
	CustomerFraction float64
	// Seed salts the customer hash.
	Seed uint64
	// MaxTrainEvents, if > 0, feeds the methods only the latest
	// MaxTrainEvents train events (the catalog and stock are always fed
	// whole). Targets, and Rebuy, still use the whole train history.
	MaxTrainEvents int
}

// Report is the outcome of one Run: one data set, several methods.
type Report struct {
	Set              string         `json:"set"`
	K                int            `json:"k"`
	CatalogSize      int            `json:"catalog_size"`      // products fed
	TrainEvents      int            `json:"train_events"`      // events fed to the methods
	HoldoutCustomers int            `json:"holdout_customers"` // customers in the holdout file
	Customers        int            `json:"customers"`         // scored: sampled, with >= 1 target
	Targets          int            `json:"targets"`           // targets of the scored customers
	TargetsInCatalog int            `json:"targets_in_catalog"`
	MaxHitRate       float64        `json:"max_hit_rate"` // share of scored customers with a target in the catalog
	LoadTime         time.Duration  `json:"load_ns"`      // reading and replaying, without the methods' Apply
	HeapBytes        uint64         `json:"heap_bytes"`   // live heap after the replay, all methods' state included
	Load             LoadStats      `json:"load"`
	Methods          []MethodResult `json:"methods"`
}

// MethodResult is one method's metrics and timings in a Report.
type MethodResult struct {
	Method string `json:"method"`
	Metrics
	ApplyTime     time.Duration `json:"apply_ns"`     // total time in Apply
	RecommendTime time.Duration `json:"recommend_ns"` // total time in Recommend
}

// Run evaluates methods on the data set named set under dataDir (laid out
// as ../shared/data: dataDir/set/train/...). It reads the holdout file
// (HoldoutPath if holdoutFile is ""), replays the train split once, feeding
// every record to every method in turn, then asks each method for k picks
// as of the cut for every scored customer and scores them.
//
// Run stops at the first error a method's Apply returns.
func Run(set, dataDir, holdoutFile string, k int, methods []Recommender, opts Options) (Report, error) {
	if k <= 0 {
		return Report{}, fmt.Errorf("eval: k must be positive, got %d", k)
	}
	d, err := OpenDataset(set, dataDir)
	if err != nil {
		return Report{}, err
	}
	if holdoutFile == "" {
		holdoutFile = d.HoldoutPath()
	}
	start := time.Now()
	hold, err := d.ReadHoldout(holdoutFile)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Set: set, K: k, HoldoutCustomers: len(hold)}

	skip := 0 // events not fed to the methods
	if opts.MaxTrainEvents > 0 {
		n := 0
		if err := d.Events(func(*engine.Record) error { n++; return nil }); err != nil {
			return Report{}, err
		}
		skip = max(0, n-opts.MaxTrainEvents)
	}

	// Replay: feed the methods, and note what holdout customers bought and
	// which holdout items the catalog has.
	bought := make(map[string]map[string]struct{}, len(hold))
	inCatalog := map[string]bool{}
	for _, items := range hold {
		for _, it := range items {
			inCatalog[it] = false
		}
	}
	applied := make([]time.Duration, len(methods))
	events := 0
	err = d.Replay(func(r *engine.Record) error {
		switch r.Op {
		case engine.OpProduct:
			if _, ok := inCatalog[r.Product.ID]; ok {
				inCatalog[r.Product.ID] = true
			}
			rep.CatalogSize++
		case engine.OpEvent:
			events++
			if e := &r.Event; e.Type == engine.EventPurchase && e.Customer != "" {
				if _, ok := hold[e.Customer]; ok {
					b := bought[e.Customer]
					if b == nil {
						b = map[string]struct{}{}
						bought[e.Customer] = b
					}
					b[e.Product] = struct{}{}
				}
			}
			if events <= skip {
				return nil
			}
			rep.TrainEvents++
		}
		for i, m := range methods {
			t := time.Now()
			err := m.Apply(r)
			applied[i] += time.Since(t)
			if err != nil {
				return fmt.Errorf("%s: cannot apply %s record: %w", m.Name(), r.Op, err)
			}
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("cannot replay %s: %w", set, err)
	}
	rep.Load = d.Stats()
	var applyAll time.Duration
	for _, t := range applied {
		applyAll += t
	}
	rep.LoadTime = time.Since(start) - applyAll
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rep.HeapBytes = ms.HeapAlloc

	// Targets: holdout items not bought in train.
	type scored struct {
		id      string
		hash    uint64
		targets map[string]struct{}
	}
	var custs []scored
	for c, items := range hold {
		h := fnvString(fnvString(fnvOffset, seedString(opts.Seed)), c)
		if f := opts.CustomerFraction; f > 0 && f < 1 && float64(h) >= f*(1<<64) {
			continue
		}
		var t map[string]struct{}
		for _, it := range items {
			if _, ok := bought[c][it]; ok {
				continue
			}
			if t == nil {
				t = map[string]struct{}{}
			}
			t[it] = struct{}{}
		}
		if t != nil {
			custs = append(custs, scored{c, h, t})
		}
	}
	slices.SortFunc(custs, func(a, b scored) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	if opts.MaxCustomers > 0 && len(custs) > opts.MaxCustomers {
		custs = custs[:opts.MaxCustomers]
	}
	rep.Customers = len(custs)
	reachable := 0
	for _, c := range custs {
		rep.Targets += len(c.targets)
		hit := false
		for it := range c.targets {
			if inCatalog[it] {
				rep.TargetsInCatalog++
				hit = true
			}
		}
		if hit {
			reachable++
		}
	}
	if len(custs) > 0 {
		rep.MaxHitRate = float64(reachable) / float64(len(custs))
	}

	var list []string
	for i, m := range methods {
		s := NewScorer(k, rep.CatalogSize)
		var took time.Duration
		for _, c := range custs {
			t := time.Now()
			list = m.Recommend(c.id, k, d.Cut(), list[:0])
			took += time.Since(t)
			s.Add(list, c.targets, bought[c.id])
		}
		rep.Methods = append(rep.Methods, MethodResult{
			Method: m.Name(), Metrics: s.Metrics(),
			ApplyTime: applied[i], RecommendTime: took,
		})
	}
	return rep, nil
}

// seedString renders a seed for hashing; "" for 0 so the default sample
// needs no seed.
func seedString(seed uint64) string {
	if seed == 0 {
		return ""
	}
	return fmt.Sprintf("%d:", seed)
}
