package eval

import (
	"math/rand/v2"
	"slices"
)

// DefaultBootstrap is the number of bootstrap resamples Run draws when
// Options.Bootstrap is 0.
const DefaultBootstrap = 2000

// bootstrapSeed seeds every bootstrap: the same run prints the same
// intervals.
const bootstrapSeed = 20261205

// Interval is a two-sided 95% confidence interval.
type Interval struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// Comparison is a method's difference to the best baseline of a run, each
// metric against the baseline best at that metric, with a paired bootstrap
// interval: both methods are scored on the same resampled customers.
type Comparison struct {
	HitRateBaseline string   `json:"hit_rate_baseline"`
	HitRate         float64  `json:"hit_rate"` // method minus baseline
	HitRateCI       Interval `json:"hit_rate_ci"`
	MAPBaseline     string   `json:"map_baseline"`
	MAP             float64  `json:"map"`
	MAPCI           Interval `json:"map_ci"`
}

// baseline marks the Recommenders that set the bar a method must beat.
type baseline interface{ baseline() }

// customerScores holds one method's score per customer, in the order the
// customers were scored: 1 or 0 for a hit, and the average precision.
type customerScores struct{ hits, aps []float64 }

// Bootstrap returns the 95% percentile interval of the mean of x over b
// resamples of its elements drawn with replacement by a PCG seeded with
// seed. It is {0, 0} for an empty x or b <= 0.
func Bootstrap(x []float64, b int, seed uint64) Interval {
	return bootstrap(len(x), b, seed, func(idx []int) float64 {
		s := 0.0
		for _, i := range idx {
			s += x[i]
		}
		return s / float64(len(idx))
	})
}

// PairedBootstrap returns the 95% percentile interval of mean(x) - mean(y)
// over b resamples of the indexes of x and y (the same customers for both),
// drawn as Bootstrap draws them. x and y must have the same length.
func PairedBootstrap(x, y []float64, b int, seed uint64) Interval {
	if len(x) != len(y) {
		panic("eval: PairedBootstrap of samples of different lengths")
	}
	return bootstrap(len(x), b, seed, func(idx []int) float64 {
		s := 0.0
		for _, i := range idx {
			s += x[i] - y[i]
		}
		return s / float64(len(idx))
	})
}

// bootstrap draws b resamples of n indexes and returns the 2.5th and 97.5th
// percentiles of stat over them: the resample means sorted, the values at
// positions floor(0.025 b) and ceil(0.975 b) - 1.
func bootstrap(n, b int, seed uint64, stat func(idx []int) float64) Interval {
	if n == 0 || b <= 0 {
		return Interval{}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	idx := make([]int, n)
	vals := make([]float64, b)
	for r := range vals {
		for i := range idx {
			idx[i] = rng.IntN(n)
		}
		vals[r] = stat(idx)
	}
	slices.Sort(vals)
	lo := b * 25 / 1000
	hi := (b*975+999)/1000 - 1
	return Interval{vals[lo], vals[hi]}
}

// addIntervals fills the methods' intervals and, for each method that is
// not a baseline, its comparison with the best baselines.
func (rep *Report) addIntervals(methods []Recommender, scores []customerScores, b int) {
	if b == 0 {
		b = DefaultBootstrap
	}
	if b < 0 {
		return
	}
	bestHR, bestMAP := -1, -1
	for i, m := range methods {
		res := &rep.Methods[i]
		res.HitRateCI = Bootstrap(scores[i].hits, b, bootstrapSeed)
		res.MAPCI = Bootstrap(scores[i].aps, b, bootstrapSeed)
		if _, ok := m.(baseline); !ok {
			continue
		}
		if bestHR < 0 || res.HitRate > rep.Methods[bestHR].HitRate {
			bestHR = i
		}
		if bestMAP < 0 || res.MAP > rep.Methods[bestMAP].MAP {
			bestMAP = i
		}
	}
	if bestHR < 0 {
		return
	}
	for i, m := range methods {
		if _, ok := m.(baseline); ok {
			continue
		}
		res := &rep.Methods[i]
		res.VsBest = &Comparison{
			HitRateBaseline: rep.Methods[bestHR].Method,
			HitRate:         res.HitRate - rep.Methods[bestHR].HitRate,
			HitRateCI:       PairedBootstrap(scores[i].hits, scores[bestHR].hits, b, bootstrapSeed),
			MAPBaseline:     rep.Methods[bestMAP].Method,
			MAP:             res.MAP - rep.Methods[bestMAP].MAP,
			MAPCI:           PairedBootstrap(scores[i].aps, scores[bestMAP].aps, b, bootstrapSeed),
		}
	}
}
