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

// relList is one product's relations as struct-of-arrays in one block of
// 2*c words (c = cap/2): ids in [0, c), float32 weight bits in [c, 2c), and
// len(l) is the number of entries. Every event searches up to 64 lists for
// one id; keeping the ids apart makes that a scan of 4-byte words that
// touches half the cache lines of a list of (id, weight) pairs.
type relList []uint32

func (l relList) ws() []uint32 {
	c := cap(l) / 2
	return l[c : c+len(l) : c+len(l)]
}

// indexOf returns the position of id b in ids, or -1.
func indexOf(ids []uint32, b uint32) int {
	i := 0
	// Four at a time: one branch per four ids keeps the loop at about a
	// cycle per id; this is where ingest spends its time.
	for ; i+4 <= len(ids); i += 4 {
		s := ids[i : i+4 : i+4]
		if s[0] == b || s[1] == b || s[2] == b || s[3] == b {
			break
		}
	}
	for ; i < len(ids); i++ {
		if ids[i] == b {
			return i
		}
	}
	return -1
}

// relations holds, per product, a bounded list of related products learned
// from co-occurrence, sorted by weight (strongest first, so a query takes a
// prefix). Bounded lists use Space-Saving: when a list is full, a newcomer
// replaces the weakest entry and inherits its weight, so heavy relations
// survive and the list never grows. Among equal weights, the entry that
// reached its weight first comes first: an entry moves up only past
// strictly lighter ones.
//
// The outer slice grows only under the engine's write lock; lists are read
// and written under their stripe lock.
type relations struct {
	mu    [stripes]sync.Mutex
	lists []relList
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
		out = append(out, r.lists[p].appendTo(nil, len(r.lists[p])))
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
	i := indexOf(l, b)
	switch {
	case i >= 0:
	case len(l) < r.max:
		l, i = r.extend(a, l), len(l)
		l[i] = b
	default: // full: the weakest (last) entry makes way and hands on its weight
		i = len(l) - 1
		l[i] = b
	}
	ws := l.ws()
	ws[i] = math.Float32bits(math.Float32frombits(ws[i]) + w)
	raise(l, ws, i, nil)
	m.Unlock()
}

// addAll strengthens the relation from a to each anchor's product by
// min(w, anchor's weight), exactly as one add per anchor in order would,
// but finds every anchor with one scan of a's list instead of one scan per
// anchor: an event relates its product to up to 64 anchors, and a's list
// holds up to r.max. The anchors' products must be distinct.
func (r *relations) addAll(a uint32, anchors []relEntry, w float32) {
	if int(a) >= len(r.lists) || len(anchors) == 0 {
		return
	}
	// The scratch below indexes anchors with int8 and list positions with
	// a [256]uint8; past those bounds, one add per anchor.
	if len(anchors) > 64 || r.max > 256 {
		for _, x := range anchors {
			r.add(a, x.p, min(w, x.w))
		}
		return
	}
	// Open addressing from anchor product to its index in anchors; 128
	// slots for at most 64 keys keep probes short.
	var keys [128]uint32 // product+1; 0 is empty
	var slot [128]int8
	for k, x := range anchors {
		h := (x.p * 0x9E3779B1) >> 25
		for keys[h] != 0 {
			if keys[h] == x.p+1 { // not distinct after all: the slow way
				for _, x := range anchors {
					r.add(a, x.p, min(w, x.w))
				}
				return
			}
			h = (h + 1) & 127
		}
		keys[h], slot[h] = x.p+1, int8(k)
	}
	// pos[k] is anchor k's position in the list (-1: absent); who[i] is
	// 1 + the anchor at position i (0: none). Both follow every move.
	var pos [64]int16
	var who [256]uint8
	m := &r.mu[a%stripes]
	m.Lock()
	r.captureLocked(int(a % stripes))
	l := r.lists[a]
	for k := range anchors {
		pos[k] = -1
	}
	for i, id := range l {
		h := (id * 0x9E3779B1) >> 25
		for keys[h] != 0 {
			if keys[h] == id+1 {
				k := slot[h]
				pos[k], who[i] = int16(i), uint8(k)+1
				break
			}
			h = (h + 1) & 127
		}
	}
	for k, x := range anchors {
		rw := min(w, x.w)
		if x.p == a || rw <= 0 {
			continue
		}
		i := int(pos[k])
		switch {
		case i >= 0:
		case len(l) < r.max:
			l, i = r.extend(a, l), len(l)
			l[i] = x.p
		default: // full: the weakest (last) entry makes way and hands on its weight
			i = len(l) - 1
			if o := who[i]; o != 0 {
				pos[o-1] = -1 // an anchor still to come is evicted: it comes back as a newcomer
			}
			l[i] = x.p
		}
		who[i] = uint8(k) + 1
		ws := l.ws()
		ws[i] = math.Float32bits(math.Float32frombits(ws[i]) + rw)
		j := raise(l, ws, i, who[:len(l)])
		for ; j <= i; j++ { // the entries raise moved, this one included
			if o := who[j]; o != 0 {
				pos[o-1] = int16(j)
			}
		}
	}
	m.Unlock()
}

// extend appends a zero entry to a's list l, reallocating it doubled (up
// to r.max) when full, and returns the list.
func (r *relations) extend(a uint32, l relList) relList {
	n, c := len(l), cap(l)/2
	if n == c {
		nc := min(r.max, max(4, 2*c))
		nl := make(relList, n, 2*nc)
		copy(nl, l)
		copy(nl[nc:nc+n], l.ws())
		l = nl
	}
	l = l[:n+1]
	l.ws()[n] = 0
	r.lists[a] = l
	return l
}

// raise moves entry i, whose weight just grew, up past every strictly
// lighter entry: a binary search for its place, then one shift. The
// entries before i are sorted, so this is where the pairwise bubble of
// the plain algorithm would stop. who, if not nil, moves along (see
// addAll).
func raise(ids []uint32, ws []uint32, i int, who []uint8) int {
	w := math.Float32frombits(ws[i])
	if i == 0 || !(w > math.Float32frombits(ws[i-1])) {
		return i
	}
	lo, hi := 0, i-1 // the first entry lighter than w is in [lo, hi]
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if math.Float32frombits(ws[m]) >= w {
			lo = m + 1
		} else {
			hi = m
		}
	}
	id, wb := ids[i], ws[i]
	copy(ids[lo+1:i+1], ids[lo:i])
	copy(ws[lo+1:i+1], ws[lo:i])
	ids[lo], ws[lo] = id, wb
	if who != nil {
		k := who[i]
		copy(who[lo+1:i+1], who[lo:i])
		who[lo] = k
	}
	return lo
}

// appendTo appends up to n of the strongest relations of a to dst.
func (r *relations) appendTo(dst []relEntry, a uint32, n int) []relEntry {
	if int(a) >= len(r.lists) {
		return dst
	}
	m := &r.mu[a%stripes]
	m.Lock()
	dst = r.lists[a].appendTo(dst, n)
	m.Unlock()
	return dst
}

func (l relList) appendTo(dst []relEntry, n int) []relEntry {
	ws := l.ws()
	for i := range min(n, len(l)) {
		dst = append(dst, relEntry{p: l[i], w: math.Float32frombits(ws[i])})
	}
	return dst
}

// topList keeps the products with the highest popularity values
// (popularity.value: counts at the common reference time) within one facet
// (or overall), bounded, sorted best first (ties: smaller id), so
// a query walks it in order. Updated on every event, so a new favourite
// enters at once.
type topList struct {
	mu     sync.Mutex
	ids    []uint32
	scores []float64

	// floor is, while the list is full, the bits of its last score (0:
	// not full, or not known). Most events are on products far below
	// every top list; this lets them skip the lock, which every event
	// would otherwise take for the global list. Written under mu.
	floor atomic.Uint64
}

func before(s1 float64, d1 uint32, s2 float64, d2 uint32) bool {
	return s1 > s2 || (s1 == s2 && d1 < d2)
}

// offer updates product d's popularity value ls in the list; 0 removes it.
// rose says the score only went up since d was last offered: then a score
// that cannot enter a full list was not in it before either, and the scan
// for d is skipped (most events are on products far from any top list).
func (t *topList) offer(d uint32, ls float64, max int, rose bool) {
	// Lower than the last of a full list cannot enter it: what the
	// locked check below says too, for one atomic load.
	if f := t.floor.Load(); rose && f != 0 && ls < math.Float64frombits(f) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.setFloor(ls, max)
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
	if ls == 0 {
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

// setFloor publishes the list's floor after an offer of ls with bound
// max; a removal (0, any bound) clears it until the next offer.
// t.mu must be held.
func (t *topList) setFloor(ls float64, max int) {
	var f uint64
	if n := len(t.scores); ls != 0 && n > 0 && n >= max {
		f = math.Float64bits(t.scores[n-1])
	}
	t.floor.Store(f)
}

// appendTo appends up to n of the list's products to dst, best first.
func (t *topList) appendTo(dst []uint32, n int) []uint32 {
	t.mu.Lock()
	dst = append(dst, t.ids[:min(n, len(t.ids))]...)
	t.mu.Unlock()
	return dst
}

// best returns the highest value in the list (0 if empty).
func (t *topList) best() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.scores) == 0 {
		return 0
	}
	return t.scores[0]
}

// rescale multiplies every score by 2^-shift (popularity.rebase): exact,
// so the order stays, but for scores that underflow to 0, which leave the
// list. The engine's write lock must be held.
func (t *topList) rescale(shift int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for i, s := range t.scores {
		if s = math.Ldexp(s, -shift); s != 0 {
			t.ids[n], t.scores[n] = t.ids[i], s
			n++
		}
	}
	full := t.floor.Load() != 0 && n == len(t.ids)
	t.ids, t.scores = t.ids[:n], t.scores[:n]
	var f uint64
	if full && n > 0 {
		f = math.Float64bits(t.scores[n-1])
	}
	t.floor.Store(f)
}

// resort orders the list best first again after its scores were
// converted (snapshots before version 5), which may have made ties.
func (t *topList) resort() {
	idx := make([]int, len(t.ids))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case before(t.scores[a], t.ids[a], t.scores[b], t.ids[b]):
			return -1
		case before(t.scores[b], t.ids[b], t.scores[a], t.ids[a]):
			return 1
		}
		return 0
	})
	ids, scores := make([]uint32, len(idx)), make([]float64, len(idx))
	for i, j := range idx {
		ids[i], scores[i] = t.ids[j], t.scores[j]
	}
	t.ids, t.scores = ids, scores
	t.floor.Store(0)
}
