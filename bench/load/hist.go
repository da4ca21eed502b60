package load

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout, HDR-style (log-linear): values below 256 ns have a
// bucket each; above, every power of two [2^e, 2^(e+1)) is split into 128
// equal buckets, so a bucket is never wider than 1/128 of its lower bound.
// Quantile answers a bucket's midpoint: within 0.4% of any value in it.
const (
	subBits  = 7
	maxShift = 35 // the last bucket starts at 255<<35 ns, about 2.4 hours
	// numBuckets is 37*128: about 37 KiB of counters per histogram.
	numBuckets = (maxShift + 2) << subBits
)

// Histogram counts durations with about 1% precision, from 1 ns to hours;
// the largest value is kept exactly. The zero value is empty and ready.
// Record, Merge and the read methods are safe for concurrent use; reads
// during writes see some consistent-enough mix, so read after the writers
// stopped.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
	max    atomic.Int64
}

// bucketOf maps a value in nanoseconds to its bucket index.
func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	shift := bits.Len64(u) - (subBits + 1)
	if shift < 0 {
		shift = 0
	}
	if shift > maxShift {
		return numBuckets - 1
	}
	return shift<<subBits + int(u>>shift)
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (lo, width int64) {
	if i < 2<<subBits {
		return int64(i), 1
	}
	shift := i>>subBits - 1
	m := int64(i - shift<<subBits) // in [128, 256)
	return m << shift, 1 << shift
}

// Record counts one duration.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Merge adds the counts of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	for v := o.max.Load(); ; {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count is how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max is the largest duration recorded, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean is the average duration, exactly (0 when empty).
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the q-quantile (0 < q <= 1) by the nearest-rank rule:
// the smallest recorded value v such that at least q of the values are
// <= v, to within 0.4% (the midpoint of v's bucket, never above Max;
// exactly Max for the top rank).
// It returns 0 when the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	if rank == n {
		return h.Max()
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, w := bucketRange(i)
			return min(time.Duration(lo+(w-1)/2), h.Max())
		}
	}
	return h.Max()
}
