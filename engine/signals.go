package engine

import (
	"math"
	"slices"
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
// from co-occurrence, sorted by weight (strongest first, so a query takes a
// prefix). Bounded lists use Space-Saving: when a list is full, a newcomer
// replaces the weakest entry and inherits its weight, so heavy relations
// survive and the list never grows.
//
// The outer slice grows only under the engine's write lock; lists are read
// and written under their stripe lock.
type relations struct {
	mu    [stripes]sync.Mutex
	lists [][]relEntry
	max   int

	// A snapshot in progress waits for these stripes' lists (see Capture);
	// each is guarded by its stripe lock.
	snapPending [stripes]bool
	snapLists   [stripes][][]relEntry // the stripe's lists, by p/stripes
	snapN       int                   // products when the capture began
}

// captureLocked copies stripe i's lists if a capture waits for them.
// r.mu[i] must be held.
func (r *relations) captureLocked(i int) {
	if !r.snapPending[i] {
		return
	}
	r.snapPending[i] = false
	var out [][]relEntry
	for p := i; p < r.snapN; p += stripes {
		out = append(out, slices.Clone(r.lists[p]))
	}
	r.snapLists[i] = out
}

func (r *relations) grow(n int) {
	for len(r.lists) < n {
		r.lists = append(r.lists, nil)
	}
}

// add strengthens the relation from a to b by w (w > 0).
func (r *relations) add(a, b uint32, w float32) {
	if a == b || int(a) >= len(r.lists) || w <= 0 {
		return
	}
	m := &r.mu[a%stripes]
	m.Lock()
	r.captureLocked(int(a % stripes))
	l := r.lists[a]
	i := 0
	for i < len(l) && l[i].p != b {
		i++
	}
	switch {
	case i < len(l):
		l[i].w += w
	case len(l) < r.max:
		l = append(l, relEntry{p: b, w: w})
		r.lists[a] = l
	default: // full: the weakest (last) entry makes way and hands on its weight
		i = len(l) - 1
		l[i] = relEntry{p: b, w: l[i].w + w}
	}
	// Weights only grow: bubble the entry up to its place.
	for ; i > 0 && l[i].w > l[i-1].w; i-- {
		l[i], l[i-1] = l[i-1], l[i]
	}
	m.Unlock()
}

// appendTo appends up to n of the strongest relations of a to dst.
func (r *relations) appendTo(dst []relEntry, a uint32, n int) []relEntry {
	if int(a) >= len(r.lists) {
		return dst
	}
	m := &r.mu[a%stripes]
	m.Lock()
	l := r.lists[a]
	dst = append(dst, l[:min(n, len(l))]...)
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
// one facet (or overall), bounded, sorted best first (ties: smaller id), so
// a query walks it in order. Updated on every event, so a new favourite
// enters at once.
type topList struct {
	mu     sync.Mutex
	ids    []uint32
	scores []float64
}

func before(s1 float64, d1 uint32, s2 float64, d2 uint32) bool {
	return s1 > s2 || (s1 == s2 && d1 < d2)
}

// offer updates product d's log-score ls in the list; noScore removes it.
// rose says the score only went up since d was last offered: then a score
// that cannot enter a full list was not in it before either, and the scan
// for d is skipped (most events are on products far from any top list).
func (t *topList) offer(d uint32, ls float64, max int, rose bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.ids); rose && n >= max && n > 0 && !before(ls, d, t.scores[n-1], t.ids[n-1]) {
		return
	}
	for i, id := range t.ids {
		if id == d {
			t.ids = append(t.ids[:i], t.ids[i+1:]...)
			t.scores = append(t.scores[:i], t.scores[i+1:]...)
			break
		}
	}
	if ls == noScore {
		return
	}
	n := len(t.ids)
	if n >= max {
		if n == 0 || !before(ls, d, t.scores[n-1], t.ids[n-1]) {
			return
		}
		t.ids, t.scores = t.ids[:n-1], t.scores[:n-1]
	}
	// Binary search for the first entry d goes before.
	lo, hi := 0, len(t.ids)
	for lo < hi {
		m := (lo + hi) / 2
		if before(t.scores[m], t.ids[m], ls, d) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	t.ids = append(t.ids, 0)
	t.scores = append(t.scores, 0)
	copy(t.ids[lo+1:], t.ids[lo:])
	copy(t.scores[lo+1:], t.scores[lo:])
	t.ids[lo], t.scores[lo] = d, ls
}

// appendTo appends up to n of the list's products to dst, best first.
func (t *topList) appendTo(dst []uint32, n int) []uint32 {
	t.mu.Lock()
	dst = append(dst, t.ids[:min(n, len(t.ids))]...)
	t.mu.Unlock()
	return dst
}

// best returns the highest log-score in the list (noScore if empty).
func (t *topList) best() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.scores) == 0 {
		return noScore
	}
	return t.scores[0]
}
