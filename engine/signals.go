package engine

import (
	"math"
	"sync"
	"sync/atomic"
)

// stripes is the number of locks guarding the relation lists; a product's
// list is guarded by stripe p % stripes.
const stripes = 256

// relEntry is one learned relation: product p co-occurred with the owner
// of the list, with decay-free weight w.
type relEntry struct {
	p uint32
	w float32
}

// relations holds, per product, a bounded list of related products learned
// from co-occurrence. Bounded lists use Space-Saving: when a list is full,
// a newcomer replaces the weakest entry and inherits its weight, so heavy
// relations survive and the list never grows.
//
// The outer slice grows only under the engine's write lock; lists are read
// and written under their stripe lock.
type relations struct {
	mu    [stripes]sync.Mutex
	lists [][]relEntry
	max   int
}

func (r *relations) grow(n int) {
	for len(r.lists) < n {
		r.lists = append(r.lists, nil)
	}
}

// add strengthens the relation from a to b by w.
func (r *relations) add(a, b uint32, w float32) {
	if a == b || int(a) >= len(r.lists) {
		return
	}
	m := &r.mu[a%stripes]
	m.Lock()
	l := r.lists[a]
	weakest := -1
	for i := range l {
		if l[i].p == b {
			l[i].w += w
			m.Unlock()
			return
		}
		if weakest < 0 || l[i].w < l[weakest].w {
			weakest = i
		}
	}
	if len(l) < r.max {
		r.lists[a] = append(l, relEntry{p: b, w: w})
	} else if weakest >= 0 {
		l[weakest] = relEntry{p: b, w: l[weakest].w + w}
	}
	m.Unlock()
}

// appendTo appends the relations of a to dst.
func (r *relations) appendTo(dst []relEntry, a uint32) []relEntry {
	if int(a) >= len(r.lists) {
		return dst
	}
	m := &r.mu[a%stripes]
	m.Lock()
	dst = append(dst, r.lists[a]...)
	m.Unlock()
	return dst
}

// popularity keeps a time-decayed count per product as a log-score:
// ls = log2(value at time t) + t/halfLife. Comparing log-scores compares
// values at any common time, so nothing needs re-decaying as time passes,
// and the value at time now is 2^(ls - now/halfLife). Each score is a
// float64 updated with compare-and-swap.
type popularity struct {
	ls       []atomic.Uint64 // float64 bits; grows only under the engine's write lock
	halfLife float64         // seconds
}

const noScore = -math.MaxFloat64

func (p *popularity) grow(n int) {
	if n <= len(p.ls) {
		return
	}
	ls := make([]atomic.Uint64, n+n/4+16)
	for i := range p.ls {
		ls[i].Store(p.ls[i].Load())
	}
	for i := len(p.ls); i < len(ls); i++ {
		ls[i].Store(math.Float64bits(noScore))
	}
	p.ls = ls
}

// add adds w (may be negative) at time t (seconds) and returns the new
// log-score.
func (p *popularity) add(d uint32, w float64, t uint32) float64 {
	if int(d) >= len(p.ls) {
		return noScore
	}
	at := float64(t) / p.halfLife
	for {
		old := p.ls[d].Load()
		ls := math.Float64frombits(old)
		v := 0.0
		if ls != noScore {
			v = math.Exp2(ls - at)
		}
		v += w
		nls := noScore
		if v > 1e-9 {
			nls = math.Log2(v) + at
		}
		if p.ls[d].CompareAndSwap(old, math.Float64bits(nls)) {
			return nls
		}
	}
}

// logScore returns the log-score of product d (noScore if never seen).
func (p *popularity) logScore(d uint32) float64 {
	if int(d) >= len(p.ls) {
		return noScore
	}
	return math.Float64frombits(p.ls[d].Load())
}

// valueAt returns the decayed value of a log-score at time now (seconds).
func (p *popularity) valueAt(ls float64, now uint32) float64 {
	if ls == noScore {
		return 0
	}
	return math.Exp2(ls - float64(now)/p.halfLife)
}

// topList keeps the products with the highest popularity log-scores within
// one facet (or overall), bounded by max. Updated on every event, so a new
// favourite enters at once; scores go stale only for products that left the
// list, which the next event on them fixes.
type topList struct {
	mu     sync.Mutex
	ids    []uint32
	scores []float64
}

// offer updates product d's log-score ls in the list.
func (t *topList) offer(d uint32, ls float64, max int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	weakest := -1
	for i, id := range t.ids {
		if id == d {
			if ls == noScore {
				t.ids = append(t.ids[:i], t.ids[i+1:]...)
				t.scores = append(t.scores[:i], t.scores[i+1:]...)
				return
			}
			t.scores[i] = ls
			return
		}
		if weakest < 0 || t.scores[i] < t.scores[weakest] {
			weakest = i
		}
	}
	if ls == noScore {
		return
	}
	if len(t.ids) < max {
		t.ids = append(t.ids, d)
		t.scores = append(t.scores, ls)
		return
	}
	if weakest >= 0 && ls > t.scores[weakest] {
		t.ids[weakest], t.scores[weakest] = d, ls
	}
}

// appendTo appends the list's products to dst, in no particular order.
func (t *topList) appendTo(dst []uint32) []uint32 {
	t.mu.Lock()
	dst = append(dst, t.ids...)
	t.mu.Unlock()
	return dst
}

// best returns the highest log-score in the list (noScore if empty).
func (t *topList) best() float64 {
	t.mu.Lock()
	b := noScore
	for _, s := range t.scores {
		if s > b {
			b = s
		}
	}
	t.mu.Unlock()
	return b
}
