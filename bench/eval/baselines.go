package eval

import (
	"math"
	"slices"
	"strings"

	"github.com/omnipick/omnipick/engine"
)

// Baselines returns fresh instances of the baselines, the bar the engine
// must beat (the best of them at each metric): global popularity,
// popularity of the last day and of the last 7 days, item co-occurrence
// (raw counts), item-based CF (cosine-normalised co-occurrence), and
// item-based CF plus the same-group siblings of what the customer bought.
func Baselines() []Recommender {
	return []Recommender{NewPopularity(), NewLastDayPopularity(), NewWeekPopularity(),
		NewCoOccurrence(), NewItemCF(false), NewItemCF(true)}
}

// purchases is the state every baseline keeps: the catalog as dense item
// ids, purchase counts, and each actor's distinct purchased items. Actors
// are customers and anonymous visitors; only customers can be asked for.
type purchases struct {
	itemIDs []string          // dense item id -> product id
	items   map[string]uint32 // product id -> dense item id
	listed  []bool            // in the catalog and active: may be recommended
	count   []uint32          // purchase events per item
	actors  map[string]uint32 // customer id, or "\x00"+anonymous id -> actor
	bought  [][]uint32        // actor -> distinct items bought, sorted
	buyers  [][]uint32        // item -> distinct actors who bought it (co-occurrence only)
	byPop   []uint32          // listed items by count desc, id asc; nil when stale
	rank    []uint32          // item -> position in byPop (unlisted: after all)
	group   []uint32          // item -> dense product group + 1; 0: none
	groups  map[string]uint32 // product group -> dense group
	members [][]uint32        // dense group -> its items, in catalog order
	// keepBuyers makes apply fill buyers.
	keepBuyers bool
}

func newPurchases(keepBuyers bool) purchases {
	return purchases{items: map[string]uint32{}, actors: map[string]uint32{}, groups: map[string]uint32{}, keepBuyers: keepBuyers}
}

// item returns the dense id of product id, adding it if new.
func (p *purchases) item(id string) uint32 {
	if d, ok := p.items[id]; ok {
		return d
	}
	d := uint32(len(p.itemIDs))
	p.items[id] = d
	p.itemIDs = append(p.itemIDs, id)
	p.listed = append(p.listed, false)
	p.count = append(p.count, 0)
	p.group = append(p.group, 0)
	if p.keepBuyers {
		p.buyers = append(p.buyers, nil)
	}
	return d
}

// apply records products and purchase events. It reports the purchased
// item and whether r was a purchase.
func (p *purchases) apply(r *engine.Record) (uint32, bool) {
	switch r.Op {
	case engine.OpProduct:
		d := p.item(r.Product.ID)
		if g := r.Product.Group; g != "" && p.group[d] == 0 {
			gd, ok := p.groups[g]
			if !ok {
				gd = uint32(len(p.members))
				p.groups[g] = gd
				p.members = append(p.members, nil)
			}
			p.group[d] = gd + 1
			p.members[gd] = append(p.members[gd], d)
		}
		if p.listed[d] != !r.Product.Inactive {
			p.listed[d] = !r.Product.Inactive
			p.byPop = nil
		}
	case engine.OpEvent:
		e := &r.Event
		if e.Type != engine.EventPurchase {
			return 0, false
		}
		id := e.Product
		if id == "" {
			id = e.SKU // one-size SKUs are product ids in these data sets
		}
		if id == "" {
			return 0, false
		}
		d := p.item(id)
		p.count[d]++
		p.byPop = nil
		key := e.Customer
		if key == "" {
			if e.AnonymousID == "" {
				return d, true
			}
			key = "\x00" + e.AnonymousID
		}
		a, ok := p.actors[key]
		if !ok {
			a = uint32(len(p.bought))
			p.actors[strings.Clone(key)] = a
			p.bought = append(p.bought, nil)
		}
		if i, found := slices.BinarySearch(p.bought[a], d); !found {
			p.bought[a] = slices.Insert(p.bought[a], i, d)
			if p.keepBuyers {
				p.buyers[d] = append(p.buyers[d], a)
			}
		}
		return d, true
	}
	return 0, false
}

// boughtBy returns the sorted items customer bought, nil if none.
func (p *purchases) boughtBy(customer string) []uint32 {
	if customer == "" {
		return nil
	}
	if a, ok := p.actors[customer]; ok {
		return p.bought[a]
	}
	return nil
}

// popular returns the listed items by purchase count, most first, ties by
// product id.
func (p *purchases) popular() []uint32 {
	if p.byPop != nil {
		return p.byPop
	}
	order := make([]uint32, 0, len(p.itemIDs))
	for d, ok := range p.listed {
		if ok {
			order = append(order, uint32(d))
		}
	}
	slices.SortFunc(order, func(a, b uint32) int {
		if p.count[a] != p.count[b] {
			if p.count[a] > p.count[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(p.itemIDs[a], p.itemIDs[b])
	})
	if cap(p.rank) < len(p.itemIDs) {
		p.rank = make([]uint32, len(p.itemIDs))
	}
	p.rank = p.rank[:len(p.itemIDs)]
	for i := range p.rank {
		p.rank[i] = uint32(len(order))
	}
	for i, d := range order {
		p.rank[d] = uint32(i)
	}
	p.byPop = order
	return order
}

// bestK returns the best k of cands, best first, in top's storage; better
// reports whether a ranks before b.
func bestK(top, cands []uint32, k int, better func(a, b uint32) bool) []uint32 {
	top = top[:0]
	if k <= 0 {
		return top
	}
	for _, c := range cands {
		n := len(top)
		if n == k && !better(c, top[n-1]) {
			continue
		}
		i := n
		for i > 0 && better(c, top[i-1]) {
			i--
		}
		if n < k {
			top = append(top, 0)
		}
		copy(top[i+1:], top[i:len(top)-1])
		top[i] = c
	}
	return top
}

// fill appends items of order to dst until it holds k, skipping items the
// customer bought, items not listed and items already in dst (from
// position from on).
func (p *purchases) fill(dst []string, from, k int, order []uint32, bought []uint32) []string {
	for _, d := range order {
		if len(dst)-from >= k {
			break
		}
		if !p.listed[d] {
			continue
		}
		if _, found := slices.BinarySearch(bought, d); found {
			continue
		}
		id := p.itemIDs[d]
		if containsString(dst[from:], id) {
			continue
		}
		dst = append(dst, id)
	}
	return dst
}

// Popularity recommends the most purchased items of all train, minus what
// the customer bought.
//
// A Popularity is not safe for concurrent use.
type Popularity struct{ p purchases }

func (*Popularity) baseline() {}

// NewPopularity returns an empty Popularity.
func NewPopularity() *Popularity { return &Popularity{p: newPurchases(false)} }

// Name returns "popularity".
func (m *Popularity) Name() string { return "popularity" }

// Apply records products and purchases.
func (m *Popularity) Apply(r *engine.Record) error {
	m.p.apply(r)
	return nil
}

// Recommend appends the k most purchased items customer has not bought.
func (m *Popularity) Recommend(customer string, k int, asOf int64, dst []string) []string {
	return m.p.fill(dst, len(dst), k, m.p.popular(), m.p.boughtBy(customer))
}

// Day is the window of LastDayPopularity, in milliseconds.
const Day = 24 * 60 * 60 * 1000

// LastDayPopularity recommends the items most purchased in a window (a day
// for NewLastDayPopularity, 7 for NewWeekPopularity) before asOf, then
// backfills with global popularity; both minus what the customer bought.
//
// A LastDayPopularity is not safe for concurrent use.
type LastDayPopularity struct {
	name   string
	span   int64 // window, ms
	p      purchases
	recent []stamped // purchases in time order; recent[head:] are within Day of the newest
	head   int
	newest int64
	// Cached ranking for asOf.
	cachedAt int64
	ranked   []uint32
	window   []uint32 // scratch: purchases per item in the window
}

type stamped struct {
	ts   int64
	item uint32
}

func (*LastDayPopularity) baseline() {}

// NewLastDayPopularity returns an empty LastDayPopularity.
func NewLastDayPopularity() *LastDayPopularity {
	return &LastDayPopularity{name: "popularity-1d", span: Day, p: newPurchases(false)}
}

// NewWeekPopularity returns an empty LastDayPopularity over the last 7
// days, named "popularity-7d".
func NewWeekPopularity() *LastDayPopularity {
	return &LastDayPopularity{name: "popularity-7d", span: 7 * Day, p: newPurchases(false)}
}

// Name returns "popularity-1d" or "popularity-7d".
func (m *LastDayPopularity) Name() string { return m.name }

// Apply records products and purchases.
func (m *LastDayPopularity) Apply(r *engine.Record) error {
	d, ok := m.p.apply(r)
	m.ranked = nil
	if !ok {
		return nil
	}
	ts := r.Event.TS
	m.newest = max(m.newest, ts)
	m.recent = append(m.recent, stamped{ts, d})
	// Drop what no asOf >= newest can see; compact when half is dead.
	for m.head < len(m.recent) && m.recent[m.head].ts < m.newest-m.span {
		m.head++
	}
	if m.head > 1024 && m.head >= len(m.recent)/2 {
		m.recent = append(m.recent[:0], m.recent[m.head:]...)
		m.head = 0
	}
	return nil
}

// Recommend appends the k items most purchased in [asOf-window, asOf) that
// customer has not bought, backfilled by global popularity.
func (m *LastDayPopularity) Recommend(customer string, k int, asOf int64, dst []string) []string {
	if m.ranked == nil || m.cachedAt != asOf {
		m.rank(asOf)
	}
	bought := m.p.boughtBy(customer)
	from := len(dst)
	dst = m.p.fill(dst, from, k, m.ranked, bought)
	return m.p.fill(dst, from, k, m.p.popular(), bought)
}

// rank orders the items purchased in [asOf-window, asOf) by purchases in
// the window, then by global purchases, then by id.
func (m *LastDayPopularity) rank(asOf int64) {
	if cap(m.window) < len(m.p.itemIDs) {
		m.window = make([]uint32, len(m.p.itemIDs))
	}
	m.window = m.window[:len(m.p.itemIDs)]
	ranked := m.ranked[:0]
	for _, s := range m.recent[m.head:] {
		if s.ts < asOf-m.span || s.ts >= asOf {
			continue
		}
		if m.window[s.item] == 0 {
			ranked = append(ranked, s.item)
		}
		m.window[s.item]++
	}
	w, c := m.window, m.p.count
	slices.SortFunc(ranked, func(a, b uint32) int {
		switch {
		case w[a] != w[b]:
			return cmpDesc(w[a], w[b])
		case c[a] != c[b]:
			return cmpDesc(c[a], c[b])
		}
		return strings.Compare(m.p.itemIDs[a], m.p.itemIDs[b])
	})
	for _, d := range ranked {
		w[d] = 0
	}
	if ranked == nil {
		ranked = []uint32{}
	}
	m.ranked, m.cachedAt = ranked, asOf
}

func cmpDesc[T int | uint32 | float64](a, b T) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// CoOccurrence recommends items bought by the customers (and anonymous
// visitors) who bought what the customer bought: item y scores
// sum over x in bought(customer) of |buyers(x) ∩ buyers(y)|, computed at
// query time from the buyer lists so memory stays linear in purchases. Ties
// and the rest of the list go by global popularity, so it returns k items
// whenever the catalog has them; customers with no purchase get popularity.
//
// A CoOccurrence is not safe for concurrent use.
type CoOccurrence struct {
	p  purchases
	cf cfScratch[uint32] // actor weight: |bought(actor) ∩ bought(customer)|
}

func (*CoOccurrence) baseline() {}

// NewCoOccurrence returns an empty CoOccurrence.
func NewCoOccurrence() *CoOccurrence { return &CoOccurrence{p: newPurchases(true)} }

// Name returns "cooccurrence".
func (m *CoOccurrence) Name() string { return "cooccurrence" }

// Apply records products and purchases.
func (m *CoOccurrence) Apply(r *engine.Record) error {
	m.p.apply(r)
	return nil
}

// Recommend appends the k items with the highest co-occurrence score with
// customer's purchases, backfilled by popularity.
func (m *CoOccurrence) Recommend(customer string, k int, asOf int64, dst []string) []string {
	p := &m.p
	bought := p.boughtBy(customer)
	from := len(dst)
	if len(bought) > 0 {
		one := func(uint32) uint32 { return 1 }
		c := &m.cf
		c.begin(p, bought)
		c.spread(p, bought, p.actors[customer], one)
		c.collect(p, one)
		dst = c.finish(p, dst, from, k, bought)
	}
	return p.fill(dst, from, k, p.popular(), bought)
}

// cfScratch is the scratch of the co-occurrence baselines, reused across
// queries: a weight per actor who shares purchases with the customer, a
// score per item those actors bought.
type cfScratch[T uint32 | float64] struct {
	weight []T      // actor -> weight from the purchases shared with the customer
	actors []uint32 // actors with weight > 0
	score  []T      // item -> score
	cands  []uint32 // items with score > 0
	mine   []uint32 // item -> gen if the customer bought it
	top    []uint32 // the best k candidates
	gen    uint32
}

// begin sizes the scratch and marks the customer's purchases.
func (c *cfScratch[T]) begin(p *purchases, bought []uint32) {
	if len(c.weight) < len(p.bought) {
		c.weight = make([]T, len(p.bought))
	}
	if len(c.score) < len(p.itemIDs) {
		c.score = make([]T, len(p.itemIDs))
		c.mine = make([]uint32, len(p.itemIDs))
	}
	c.gen++
	if c.gen == 0 { // wrapped: forget all marks
		clear(c.mine)
		c.gen = 1
	}
	for _, x := range bought {
		c.mine[x] = c.gen
	}
}

// spread adds w(x) to the weight of every other buyer of each item x the
// customer (actor self) bought.
func (c *cfScratch[T]) spread(p *purchases, bought []uint32, self uint32, w func(x uint32) T) {
	for _, x := range bought {
		wx := w(x)
		for _, a := range p.buyers[x] {
			if a == self {
				continue
			}
			if c.weight[a] == 0 {
				c.actors = append(c.actors, a)
			}
			c.weight[a] += wx
		}
	}
}

// collect scores every item y those actors bought by the sum of their
// weights times scale(y), and clears the actors' weights.
func (c *cfScratch[T]) collect(p *purchases, scale func(y uint32) T) {
	for _, a := range c.actors {
		for _, y := range p.bought[a] {
			c.add(p, y, c.weight[a]*scale(y))
		}
		c.weight[a] = 0
	}
	c.actors = c.actors[:0]
}

// add adds v to item y's score, unless the customer bought y or it is not
// listed.
func (c *cfScratch[T]) add(p *purchases, y uint32, v T) {
	if c.mine[y] == c.gen || !p.listed[y] {
		return
	}
	if c.score[y] == 0 {
		c.cands = append(c.cands, y)
	}
	c.score[y] += v
}

// finish appends the best k scored items (ties by popularity) to dst and
// clears the scores.
func (c *cfScratch[T]) finish(p *purchases, dst []string, from, k int, bought []uint32) []string {
	p.popular() // fills rank
	s, rank := c.score, p.rank
	c.top = bestK(c.top, c.cands, k, func(a, b uint32) bool {
		return s[a] > s[b] || s[a] == s[b] && rank[a] < rank[b]
	})
	dst = p.fill(dst, from, k, c.top, bought)
	for _, y := range c.cands {
		s[y] = 0
	}
	c.cands = c.cands[:0]
	return dst
}

// ItemCF is item-based collaborative filtering over purchases: item y
// scores sum over x in bought(customer) of cos(x, y), the cosine of their
// buyer sets, |buyers(x) ∩ buyers(y)| / sqrt(|buyers(x)| |buyers(y)|), so
// a best seller no longer co-occurs with everything. With siblings, each
// item of the same product group as an item the customer bought adds 1
// more, as if bought with it by all its buyers. Ties and the rest of the
// list go by global popularity.
//
// An ItemCF is not safe for concurrent use.
type ItemCF struct {
	p        purchases
	siblings bool
	cf       cfScratch[float64] // actor weight: sum over shared items x of 1/sqrt(|buyers(x)|)
}

func (*ItemCF) baseline() {}

// NewItemCF returns an empty ItemCF, adding same-group siblings if
// siblings.
func NewItemCF(siblings bool) *ItemCF { return &ItemCF{p: newPurchases(true), siblings: siblings} }

// Name returns "itemcf" or "itemcf-group".
func (m *ItemCF) Name() string {
	if m.siblings {
		return "itemcf-group"
	}
	return "itemcf"
}

// Apply records products and purchases.
func (m *ItemCF) Apply(r *engine.Record) error {
	m.p.apply(r)
	return nil
}

// Recommend appends the k items of highest score, backfilled by
// popularity.
func (m *ItemCF) Recommend(customer string, k int, asOf int64, dst []string) []string {
	p := &m.p
	bought := p.boughtBy(customer)
	from := len(dst)
	if len(bought) > 0 {
		norm := func(x uint32) float64 { return 1 / math.Sqrt(float64(len(p.buyers[x]))) }
		c := &m.cf
		c.begin(p, bought)
		c.spread(p, bought, p.actors[customer], norm)
		c.collect(p, norm)
		if m.siblings {
			for _, x := range bought {
				if g := p.group[x]; g != 0 {
					for _, y := range p.members[g-1] {
						c.add(p, y, 1)
					}
				}
			}
		}
		dst = c.finish(p, dst, from, k, bought)
	}
	return p.fill(dst, from, k, p.popular(), bought)
}
