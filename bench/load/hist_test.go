package load

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramQuantiles compares the histogram's percentiles with the
// exact nearest-rank percentiles of the sorted samples, on data spread
// from nanoseconds to seconds.
func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	f := func(name string, draw func() time.Duration) {
		t.Helper()
		var h Histogram
		vals := make([]time.Duration, 200_000)
		for i := range vals {
			vals[i] = draw()
			h.Record(vals[i])
		}
		slices.Sort(vals)
		for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
			want := vals[int(math.Ceil(q*float64(len(vals))))-1]
			got := h.Quantile(q)
			if err := math.Abs(float64(got-want)) / math.Max(float64(want), 1); err > 0.01 {
				t.Errorf("%s: q%v = %v, want %v (error %.2f%%)", name, q, got, want, 100*err)
			}
		}
		if h.Max() != vals[len(vals)-1] {
			t.Errorf("%s: max %v, want %v", name, h.Max(), vals[len(vals)-1])
		}
		if h.Count() != uint64(len(vals)) {
			t.Errorf("%s: count %d, want %d", name, h.Count(), len(vals))
		}
	}
	f("lognormal", func() time.Duration { return time.Duration(math.Exp(r.NormFloat64()*2 + 12)) }) // ~160µs, wide
	f("uniform", func() time.Duration { return time.Duration(r.Int64N(int64(time.Second))) })
	f("small", func() time.Duration { return time.Duration(r.Int64N(1000)) })
	f("bimodal", func() time.Duration {
		if r.IntN(100) == 0 {
			return 200*time.Millisecond + time.Duration(r.Int64N(int64(time.Millisecond)))
		}
		return 50*time.Microsecond + time.Duration(r.Int64N(int64(20*time.Microsecond)))
	})
}

func TestHistogramBuckets(t *testing.T) {
	// Buckets tile the value range without gaps or overlaps.
	next := int64(0)
	for i := range numBuckets {
		lo, w := bucketRange(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		if i >= 2<<subBits && float64(w)/float64(lo) > 1.0/128 {
			t.Fatalf("bucket %d [%d, +%d) is wider than 1/128", i, lo, w)
		}
		if bucketOf(lo) != i || bucketOf(lo+w-1) != i {
			t.Fatalf("bucket %d [%d, +%d): bucketOf gives %d, %d", i, lo, w, bucketOf(lo), bucketOf(lo+w-1))
		}
		next = lo + w
	}
	if bucketOf(math.MaxInt64) != numBuckets-1 || bucketOf(-5) != 0 {
		t.Fatal("out-of-range values are not clamped")
	}
	var h, o Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Fatal("an empty histogram is not zero")
	}
	h.Record(3 * time.Hour) // beyond the last bucket: max stays exact
	o.Record(100)           // small values are exact
	h.Merge(&o)
	if h.Count() != 2 || h.Max() != 3*time.Hour || h.Quantile(1) != 3*time.Hour || h.Quantile(0.5) != 100 {
		t.Fatalf("count %d, max %v, q1 %v, q.5 %v", h.Count(), h.Max(), h.Quantile(1), h.Quantile(0.5))
	}
}
