package eval

import (
	"cmp"
	"errors"
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
	// Split is the part of the data scored: SplitDev when "".
	Split Split
	// Bootstrap is the number of bootstrap resamples behind the intervals
	// (DefaultBootstrap when 0, none when negative).
	Bootstrap int
	// Fold 2 moves SplitValidation to an earlier window of train (hm:
	// learn 09-16, validate 09-17; online_retail: August 2011; taobao:
	// 2017-11-30): a second fold, so that a decision need not rest on one
	// window. Fold 3 scores a window as long as holdout_dev's, ending
	// where train ends (hm: 09-17..19; online_retail: the ten weeks from
	// 2011-07-23; taobao: 11-30..12-01), for changes whose gain may
	// depend on how far ahead picks are scored. 0 or 1: the split's
	// usual window.
	Fold int
}

// Report is the outcome of one Run: one data set, several methods.
type Report struct {
	Set              string         `json:"set"`
	Split            Split          `json:"split"`
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
	// HitRateCI and MAPCI are 95% bootstrap intervals of HitRate and MAP,
	// resampling the scored customers.
	HitRateCI Interval `json:"hit_rate_ci"`
	MAPCI     Interval `json:"map_ci"`
	// VsBest compares a method that is not a baseline with the best
	// baseline of the run; nil for baselines and when the run has none.
	VsBest *Comparison `json:"vs_best,omitempty"`
	// scores holds the per-customer hits and average precisions, for
	// paired comparisons between methods of one run.
	scores customerScores
}

// Split names which part of a data set a Run learns from and scores on.
type Split string

const (
	// SplitDev learns from the whole train split and scores the holdout
	// file (holdout_dev by default): read once per candidate change, to
	// confirm it.
	SplitDev Split = "dev"
	// SplitValidation learns from train before the set's validation cut and
	// scores the train purchases after it, built the way the holdout files
	// are: purchases of items the customer did not buy before the
	// validation cut, by customers present before it. Tuning and every
	// "does it help?" decision use it.
	SplitValidation Split = "validation"
)

// Splits lists the splits Run accepts.
func Splits() []Split { return []Split{SplitValidation, SplitDev} }

// ErrUnknownSplit is returned for a Split not in Splits.
var ErrUnknownSplit = errors.New("eval: unknown split")

// ErrUnknownFold is returned for an Options.Fold other than 0 to 3.
var ErrUnknownFold = errors.New("eval: unknown fold")

// Run evaluates methods on the data set named set under dataDir (laid out
// as ../shared/data: dataDir/set/train/...). With SplitDev (the default) it
// reads the holdout file (HoldoutPath if holdoutFile is ""), replays the
// train split once, feeding every record to every method in turn, then
// asks each method for k picks as of the cut for every scored customer and
// scores them. With SplitValidation it feeds only the train events before
// the validation cut of Options.Fold's window, asks as of it and scores
// against the train purchases in the window (holdoutFile must be "").
//
// Run stops at the first error a method's Apply returns.
func Run(set, dataDir, holdoutFile string, k int, methods []Recommender, opts Options) (Report, error) {
	if k <= 0 {
		return Report{}, fmt.Errorf("eval: k must be positive, got %d", k)
	}
	if opts.Fold < 0 || opts.Fold > 3 {
		return Report{}, fmt.Errorf("%w: %d (have 1, 2, 3)", ErrUnknownFold, opts.Fold)
	}
	split, err := resolveSplit(opts.Split, holdoutFile)
	if err != nil {
		return Report{}, err
	}
	d, err := OpenDataset(set, dataDir)
	if err != nil {
		return Report{}, err
	}
	start := time.Now()
	st := &runState{d: d, validation: split == SplitValidation, rep: Report{Set: set, Split: split, K: k}}
	if err := st.selectHoldout(holdoutFile, opts.Fold); err != nil {
		return Report{}, err
	}
	if err := st.scanTrain(opts.MaxTrainEvents); err != nil {
		return Report{}, err
	}
	if err := st.replay(methods); err != nil {
		return Report{}, fmt.Errorf("cannot replay %s: %w", set, err)
	}
	st.finishLoad(start)
	custs := st.scoredCustomers(opts)
	st.countTargets(custs)
	perCustomer := st.ask(methods, custs, k)
	st.rep.addIntervals(methods, perCustomer, opts.Bootstrap)
	return st.rep, nil
}

// resolveSplit checks a Run's split (SplitDev when "") against the
// holdout file it was given.
func resolveSplit(split Split, holdoutFile string) (Split, error) {
	if split == "" {
		split = SplitDev
	}
	if !slices.Contains(Splits(), split) {
		return "", fmt.Errorf("%w %q (have validation, dev)", ErrUnknownSplit, split)
	}
	if split == SplitValidation && holdoutFile != "" {
		return "", fmt.Errorf("eval: the validation split takes its targets from train, not from %q", holdoutFile)
	}
	return split, nil
}

// runState is what the steps of one Run share: the cut, the holdout and
// what the replay learned about the customers and the catalog.
type runState struct {
	d          *Dataset
	validation bool
	rep        Report
	cut        int64               // methods learn from events before it; asked as of it
	end        int64               // validation: targets are purchases before it (0: all after cut)
	hold       map[string][]string // customer -> holdout items
	// learned: on the validation split of a set whose catalog file lists
	// the items seen in train, the items seen before the cut: only they
	// are fed, as the holdout's catalog holds only items seen before its
	// cut. nil: the whole catalog is fed.
	learned   map[string]struct{}
	skip      int                            // events not fed to the methods
	bought    map[string]map[string]struct{} // what (holdout) customers bought before the cut
	present   map[string]bool                // validation: customers seen before the cut
	inCatalog map[string]bool                // holdout items: fed as products?
	catalog   map[string]struct{}            // validation: every product fed
	applied   []time.Duration                // per method: total time in Apply
	events    int                            // train events before the cut
}

// scoredCustomer is one customer a Run asks for picks.
type scoredCustomer struct {
	id      string
	hash    uint64
	targets map[string]struct{}
}

// selectHoldout sets the cut and the holdout: the holdout file's for dev,
// an empty one that the replay fills for validation, over the window of
// fold (Options.Fold).
func (st *runState) selectHoldout(holdoutFile string, fold int) error {
	st.cut = st.d.Cut()
	if st.validation {
		st.cut, st.end = st.d.spec.window(fold)
		st.hold = map[string][]string{}
		return nil
	}
	if holdoutFile == "" {
		holdoutFile = st.d.HoldoutPath()
	}
	var err error
	st.hold, err = st.d.ReadHoldout(holdoutFile)
	return err
}

// scanTrain counts the train events before the cut, to skip all but the
// latest maxTrainEvents, and notes the items seen before it when only
// they are fed (learned).
func (st *runState) scanTrain(maxTrainEvents int) error {
	if st.validation && st.d.spec.catalogFromTrain {
		st.learned = map[string]struct{}{}
	}
	if maxTrainEvents <= 0 && st.learned == nil {
		return nil
	}
	n := 0
	if err := st.d.Events(func(r *engine.Record) error {
		if r.Event.TS < st.cut {
			n++
			if st.learned != nil {
				st.learned[r.Event.Product] = struct{}{}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if maxTrainEvents > 0 {
		st.skip = max(0, n-maxTrainEvents)
	}
	return nil
}

// replay feeds the methods, and notes what (holdout) customers bought
// before the cut and which holdout items the catalog has. For validation,
// the events after the cut become the holdout instead.
func (st *runState) replay(methods []Recommender) error {
	st.bought = map[string]map[string]struct{}{}
	st.present = map[string]bool{}
	st.inCatalog = map[string]bool{}
	for _, items := range st.hold {
		for _, it := range items {
			st.inCatalog[it] = false
		}
	}
	st.catalog = map[string]struct{}{}
	st.applied = make([]time.Duration, len(methods))
	return st.d.Replay(func(r *engine.Record) error {
		if !st.note(r) {
			return nil
		}
		for i, m := range methods {
			t := time.Now()
			err := m.Apply(r)
			st.applied[i] += time.Since(t)
			if err != nil {
				return fmt.Errorf("%s: cannot apply %s record: %w", m.Name(), r.Op, err)
			}
		}
		return nil
	})
}

// note takes in what one replayed record says about the catalog, the
// customers and the holdout, and reports whether the methods get it.
func (st *runState) note(r *engine.Record) bool {
	switch r.Op {
	case engine.OpProduct:
		if _, ok := st.learned[r.Product.ID]; !ok && st.learned != nil {
			return false
		}
		if _, ok := st.inCatalog[r.Product.ID]; ok {
			st.inCatalog[r.Product.ID] = true
		}
		if st.validation {
			st.catalog[r.Product.ID] = struct{}{}
		}
		st.rep.CatalogSize++
	case engine.OpInventory:
		if _, ok := st.learned[r.Inventory.SKU]; !ok && st.learned != nil {
			return false
		}
	case engine.OpEvent:
		return st.noteEvent(&r.Event)
	}
	return true
}

// noteEvent is note for an event: one after the cut is a validation
// target, not fed; one before it is fed unless skipped.
func (st *runState) noteEvent(e *engine.Event) bool {
	if e.TS >= st.cut { // validation only: a target, not fed
		if (st.end == 0 || e.TS < st.end) && e.Type == engine.EventPurchase && e.Customer != "" && st.present[e.Customer] {
			if items := st.hold[e.Customer]; !containsString(items, e.Product) {
				st.hold[e.Customer] = append(items, e.Product)
			}
		}
		return false
	}
	st.events++
	if e.Customer != "" {
		purchase := e.Type == engine.EventPurchase
		if st.validation && (purchase || st.d.spec.presentByAnyEvent) {
			st.present[e.Customer] = true
		}
		if _, ok := st.hold[e.Customer]; purchase && (ok || st.validation) {
			b := st.bought[e.Customer]
			if b == nil {
				b = map[string]struct{}{}
				st.bought[e.Customer] = b
			}
			b[e.Product] = struct{}{}
		}
	}
	if st.events <= st.skip {
		return false
	}
	st.rep.TrainEvents++
	return true
}

// finishLoad records the holdout size, the load statistics, the time
// spent loading (without the methods' Apply) and the live heap.
func (st *runState) finishLoad(start time.Time) {
	if st.validation {
		for _, items := range st.hold {
			for _, it := range items {
				_, st.inCatalog[it] = st.catalog[it]
			}
		}
	}
	st.rep.HoldoutCustomers = len(st.hold)
	st.rep.Load = st.d.Stats()
	var applyAll time.Duration
	for _, t := range st.applied {
		applyAll += t
	}
	st.rep.LoadTime = time.Since(start) - applyAll
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.rep.HeapBytes = ms.HeapAlloc
}

// scoredCustomers returns the customers to score, each with its targets
// (holdout items not bought before the cut), in the order of the sample
// hash, cut to opts' sample.
func (st *runState) scoredCustomers(opts Options) []scoredCustomer {
	var custs []scoredCustomer
	for c, items := range st.hold {
		h := fnvString(fnvString(fnvOffset, seedString(opts.Seed)), c)
		if f := opts.CustomerFraction; f > 0 && f < 1 && float64(h) >= f*(1<<64) {
			continue
		}
		var t map[string]struct{}
		for _, it := range items {
			if _, ok := st.bought[c][it]; ok {
				continue
			}
			if t == nil {
				t = map[string]struct{}{}
			}
			t[it] = struct{}{}
		}
		if t != nil {
			custs = append(custs, scoredCustomer{c, h, t})
		}
	}
	slices.SortFunc(custs, func(a, b scoredCustomer) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	if opts.MaxCustomers > 0 && len(custs) > opts.MaxCustomers {
		custs = custs[:opts.MaxCustomers]
	}
	return custs
}

// countTargets fills the report's customer and target counts and the
// highest hit rate any method could reach.
func (st *runState) countTargets(custs []scoredCustomer) {
	st.rep.Customers = len(custs)
	reachable := 0
	for _, c := range custs {
		st.rep.Targets += len(c.targets)
		hit := false
		for it := range c.targets {
			if st.inCatalog[it] {
				st.rep.TargetsInCatalog++
				hit = true
			}
		}
		if hit {
			reachable++
		}
	}
	if len(custs) > 0 {
		st.rep.MaxHitRate = float64(reachable) / float64(len(custs))
	}
}

// ask asks every method for k picks for every scored customer, scores
// them into the report and returns the per-customer scores.
func (st *runState) ask(methods []Recommender, custs []scoredCustomer, k int) []customerScores {
	var list []string
	perCustomer := make([]customerScores, len(methods))
	for i, m := range methods {
		s := NewScorer(k, st.rep.CatalogSize)
		var took time.Duration
		for _, c := range custs {
			t := time.Now()
			list = m.Recommend(c.id, k, st.cut, list[:0])
			took += time.Since(t)
			s.Add(list, c.targets, st.bought[c.id])
		}
		perCustomer[i] = customerScores{hits: s.hits, aps: s.aps}
		st.rep.Methods = append(st.rep.Methods, MethodResult{
			Method: m.Name(), Metrics: s.Metrics(),
			ApplyTime: st.applied[i], RecommendTime: took,
			scores: perCustomer[i],
		})
	}
	return perCustomer
}

// seedString renders a seed for hashing; "" for 0 so the default sample
// needs no seed.
func seedString(seed uint64) string {
	if seed == 0 {
		return ""
	}
	return fmt.Sprintf("%d:", seed)
}
