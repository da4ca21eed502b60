package engine

import (
	"cmp"
	"math"
	"slices"
	"sync"

	"github.com/omnipick/omnipick/internal/binfmt"
)

// The user-neighbour signal (TIFU-KNN's neighbour part, learned per
// event). Each customer has a basket vector: the products they bought,
// each weighing its purchases decayed with NeighbourHalfLife, bounded to
// the NeighbourBasket heaviest. Each product keeps its NeighbourBuyers
// latest distinct buyers. Picks for a customer score the customers who
// bought what they bought (similarity: the customer's normalised weight
// of each shared product, summed, over the square root of the other's
// basket size), take the Neighbours most similar, and propose the
// NeighbourItems products heaviest in those neighbours' normalised
// baskets, weighted by similarity, as related candidates: relation
// strength NeighbourWeight times the product's score relative to the
// best. Exact neighbour search would compare every pair of customers;
// the buyers lists make it a walk over who bought the same things lately.
//
// Only customers (not anonymous ids) have baskets: an anonymous visitor
// resolved to a customer (identify) uses the customer's. Erasing a
// customer drops their basket and name; Expire drops the baskets of
// customers who bought nothing since its cut-off.

// neighbours is the signal's state, under one leaf lock: Apply takes it
// for writing once per purchase (after the profile and relations), picks
// for reading while they walk it.
type neighbours struct {
	mu      sync.RWMutex
	ids     map[string]uint32 // customer -> basket number
	names   []string          // basket number -> customer; "" once dropped
	baskets [][]basketEntry   // by basket number
	last    []uint32          // by basket number: the latest purchase, unix seconds
	buyers  [][]uint32        // by product: latest distinct buyers' basket numbers, oldest first

	halfLife  float64 // seconds
	maxBasket int
	maxBuyers int
}

// basketEntry is one product of a basket with its decayed weight as a
// log-score, as popularity keeps them: ls = log2(weight at t) + t/halfLife,
// so entries compare at any common time without re-decaying.
type basketEntry struct {
	p  uint32
	ls float32
}

func (n *neighbours) init(o *Options) {
	n.halfLife, n.maxBasket, n.maxBuyers = o.NeighbourHalfLife.Seconds(), o.NeighbourBasket, o.NeighbourBuyers
}

// basketOf returns customer's basket number, adding an empty basket if
// there is none. n.mu must be held for writing.
func (n *neighbours) basketOf(customer string) uint32 {
	if u, ok := n.ids[customer]; ok {
		return u
	}
	if n.ids == nil {
		n.ids = map[string]uint32{}
	}
	u := uint32(len(n.baskets))
	n.ids[customer] = u
	n.names = append(n.names, customer)
	n.baskets = append(n.baskets, nil)
	n.last = append(n.last, 0)
	return u
}

// record adds a purchase of product p at time t (unix seconds) by
// customer, weighing w, to the customer's basket and p's buyers.
func (n *neighbours) record(customer string, p, t uint32, w float64) {
	if customer == "" || w <= 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	u := n.basketOf(customer)
	n.last[u] = max(n.last[u], t)
	at := float64(t) / n.halfLife
	b := n.baskets[u]
	if i := slices.IndexFunc(b, func(x basketEntry) bool { return x.p == p }); i >= 0 {
		b[i].ls = float32(math.Log2(math.Exp2(float64(b[i].ls)-at)+w) + at)
	} else {
		b = append(b, basketEntry{p: p, ls: float32(math.Log2(w) + at)})
		if len(b) > n.maxBasket { // the lightest goes; among equals the first
			low := 0
			for j := range b {
				if b[j].ls < b[low].ls {
					low = j
				}
			}
			b = slices.Delete(b, low, low+1)
		}
	}
	n.baskets[u] = b
	for int(p) >= len(n.buyers) {
		n.buyers = append(n.buyers, nil)
	}
	l := n.buyers[p]
	if j := slices.Index(l, u); j >= 0 {
		l = slices.Delete(l, j, j+1)
	}
	if l = append(l, u); len(l) > n.maxBuyers {
		l = slices.Delete(l, 0, 1)
	}
	n.buyers[p] = l
}

// forget drops customer's basket and name, and their number from the
// buyers of what the basket held.
func (n *neighbours) forget(customer string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if u, ok := n.ids[customer]; ok {
		n.dropLocked(u)
	}
}

func (n *neighbours) dropLocked(u uint32) {
	for _, x := range n.baskets[u] {
		if int(x.p) < len(n.buyers) {
			n.buyers[x.p] = slices.DeleteFunc(n.buyers[x.p], func(v uint32) bool { return v == u })
		}
	}
	delete(n.ids, n.names[u])
	n.names[u], n.baskets[u], n.last[u] = "", nil, 0
}

// expire drops the baskets of customers whose latest purchase is before
// t (unix seconds).
func (n *neighbours) expire(t uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for u, name := range n.names {
		if name != "" && n.last[u] < t {
			n.dropLocked(uint32(u))
		}
	}
}

// nbScratch is a picker's scratch for the neighbour signal.
type nbScratch struct {
	sim   accum    // basket number -> similarity
	score accum    // product -> score
	top   []nbPair // the best neighbours, then the best products
}

type nbPair struct {
	id uint32
	s  float64
}

// byScore orders pairs best first, ties by smaller id: one order whatever
// the order they were found in.
func byScore(a, b nbPair) int {
	if a.s != b.s {
		return -cmp.Compare(a.s, b.s)
	}
	return cmp.Compare(a.id, b.id)
}

// proposeNeighbours proposes the products the customer's neighbours
// bought (see the signal's doc above), each as related with strength
// NeighbourWeight times its score relative to the best.
func (e *Engine) proposeNeighbours(pk *picker) {
	n := &e.nb
	if e.opts.NeighbourWeight <= 0 || pk.actor == "" {
		return
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	u, ok := n.ids[pk.actor]
	if !ok {
		return
	}
	at := float64(pk.now) / n.halfLife
	sc := &pk.nb
	sc.sim.reset()
	sc.score.reset()
	mine := n.baskets[u]
	norm := basketNorm(mine, at)
	for _, x := range mine {
		if int(x.p) >= len(n.buyers) {
			continue
		}
		wu := math.Exp2(float64(x.ls)-at) / norm
		for _, v := range n.buyers[x.p] {
			if v != u {
				sc.sim.add(v, wu)
			}
		}
	}
	sc.top = sc.top[:0]
	for i := range sc.sim.len() {
		if v := sc.sim.key(i); len(n.baskets[v]) > 0 {
			b := n.baskets[v]
			sc.top = append(sc.top, nbPair{v, sc.sim.val(i) / math.Sqrt(float64(len(b)))})
		}
	}
	slices.SortFunc(sc.top, byScore)
	for _, nv := range sc.top[:min(len(sc.top), e.opts.Neighbours)] {
		b := n.baskets[nv.id]
		tot := basketNorm(b, at)
		// The asker's own products stay in: the filters drop them later,
		// and they set the scale (best[0] below) the others are relative
		// to. Left out, the best new product takes the full weight; that
		// variant lost hm 0.022 HR@12 on validation (docs/ranking.md).
		for _, x := range b {
			sc.score.add(x.p, nv.s*math.Exp2(float64(x.ls)-at)/tot)
		}
	}
	sc.top = sc.top[:0]
	for i := range sc.score.len() {
		sc.top = append(sc.top, nbPair{sc.score.key(i), sc.score.val(i)})
	}
	slices.SortFunc(sc.top, byScore)
	best := sc.top[:min(len(sc.top), e.opts.NeighbourItems)]
	for _, x := range best {
		if s := pk.propose(x.id, flagRelated); s != nil {
			s.rel += float32(e.opts.NeighbourWeight * x.s / best[0].s)
		}
	}
}

// basketNorm is the sum of a basket's weights at time at (in half-lives).
func basketNorm(b []basketEntry, at float64) float64 {
	s := 0.0
	for _, x := range b {
		s += math.Exp2(float64(x.ls) - at)
	}
	return s
}

// accum sums float64 values by uint32 key: open addressing in a table
// that doubles when half full and is kept across calls, so that once warm
// it allocates nothing. Keys are listed (key(i), i < len()) in the order
// they came.
type accum struct {
	slots []accSlot
	order []uint32 // slot index of each key, in insertion order
	shift uint32
}

type accSlot struct {
	key uint32 // key+1; 0: empty
	v   float64
}

func (a *accum) reset() {
	for _, i := range a.order {
		a.slots[i] = accSlot{}
	}
	a.order = a.order[:0]
}

func (a *accum) add(k uint32, v float64) {
	if 2*(len(a.order)+1) > len(a.slots) {
		a.grow()
	}
	mask := uint32(len(a.slots) - 1)
	for i := ((k + 1) * 0x9E3779B1) >> a.shift; ; i = (i + 1) & mask {
		s := &a.slots[i]
		if s.key == k+1 {
			s.v += v
			return
		}
		if s.key == 0 {
			s.key, s.v = k+1, v
			a.order = append(a.order, i)
			return
		}
	}
}

func (a *accum) grow() {
	old, order := a.slots, a.order
	bits := uint32(6)
	if len(old) > 0 {
		bits = 33 - a.shift // double
	}
	a.slots, a.shift = make([]accSlot, 1<<bits), 32-bits
	a.order = make([]uint32, 0, 1<<(bits-1))
	for _, i := range order {
		s := old[i]
		mask := uint32(len(a.slots) - 1)
		for j := (s.key * 0x9E3779B1) >> a.shift; ; j = (j + 1) & mask {
			if a.slots[j].key == 0 {
				a.slots[j] = s
				a.order = append(a.order, j)
				break
			}
		}
	}
}

// len returns the number of keys.
func (a *accum) len() int { return len(a.order) }

// key returns the i-th key in insertion order.
func (a *accum) key(i int) uint32 { return a.slots[a.order[i]].key - 1 }

// val returns the sum of the i-th key in insertion order.
func (a *accum) val(i int) float64 { return a.slots[a.order[i]].v }

// appendSnapshot appends the signal's state (engine snapshot version 6):
//
//	nbaskets:u nbaskets×(customer:string last:u n:u n×(product:u ls:f32))
//	nlists:u nlists×(n:u n×(basket:u))
//
// Dropped baskets stay, empty and unnamed, so basket numbers keep their
// meaning. The caller makes sure no Apply runs (BeginSnapshot).
func (n *neighbours) appendSnapshot(b []byte) []byte {
	n.mu.RLock()
	defer n.mu.RUnlock()
	b = binfmt.AppendUvarint(b, uint64(len(n.baskets)))
	for u, bk := range n.baskets {
		b = binfmt.AppendString(b, n.names[u])
		b = binfmt.AppendUvarint(binfmt.AppendUvarint(b, uint64(n.last[u])), uint64(len(bk)))
		for _, x := range bk {
			b = binfmt.AppendFloat32(binfmt.AppendUvarint(b, uint64(x.p)), x.ls)
		}
	}
	b = binfmt.AppendUvarint(b, uint64(len(n.buyers)))
	for _, l := range n.buyers {
		b = binfmt.AppendUvarint(b, uint64(len(l)))
		for _, u := range l {
			b = binfmt.AppendUvarint(b, uint64(u))
		}
	}
	return b
}

// loadSnapshot reads what appendSnapshot wrote, for a catalog of products.
// Not safe for concurrent use (the engine is not shared yet).
func (n *neighbours) loadSnapshot(r *binfmt.Reader, products uint32) error {
	nb := r.Count(r.Len())
	for u := range nb {
		name := r.String()
		last := r.Uint32()
		k := r.Count(r.Len() / 5) // an entry takes 5 bytes at the least
		if _, dup := n.ids[name]; (name != "" && dup) || (name == "" && k > 0) {
			return badSnapshot("neighbour basket %d: customer %q", u, name)
		}
		v := n.basketOf(name)
		if name == "" {
			delete(n.ids, "")
		}
		n.last[v] = last
		for range k {
			p, ls := r.Uint32(), r.Float32()
			if p >= products || math.IsNaN(float64(ls)) || math.IsInf(float64(ls), 0) {
				return badSnapshot("neighbour basket %d: product %d weight %v", u, p, ls)
			}
			n.baskets[v] = append(n.baskets[v], basketEntry{p: p, ls: ls})
		}
	}
	nl := r.Count(int(products))
	n.buyers = make([][]uint32, nl)
	for p := range nl {
		k := r.Count(r.Len())
		for range k {
			u := r.Uint32()
			if int(u) >= nb {
				return badSnapshot("buyer %d of product %d: %d baskets", u, p, nb)
			}
			n.buyers[p] = append(n.buyers[p], u)
		}
	}
	return r.Err()
}
