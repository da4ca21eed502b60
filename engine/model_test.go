package engine

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine/profile"
)

// The model test drives random catalog, stock and event operations into the
// engine and into a naive reference kept in plain maps, and compares picks.
// The reference filters by brute force over every product; it scores with
// the documented formula, reading the engine's learned affinity vector and
// relations, which are what this test does not check. Popularity it
// computes the straightforward way, from each product's events: the sum
// of their weights each halved every half-life since (the engine keeps
// values at a moving reference time instead, see popularity.go).
// Bounds are set high enough that no bounded structure saturates, where the
// engine's sources are exactly "every product with positive popularity".

type refProduct struct {
	id, category, group string
	sizes               []string // "" for one-size
	active              bool
}

type refLine struct {
	sku, product string
	t            int64
}

// refPop is one event's weight w at time t (unix seconds).
type refPop struct {
	w float64
	t int64
}

// popularity returns the sum of the product's event weights decayed to
// time now (seconds).
func (r *refWorld) popularity(id string, now int64) float64 {
	v := 0.0
	for _, x := range r.pop[id] {
		v += x.w * math.Exp2(-float64(now-x.t)/r.halfLife)
	}
	return v
}

type refSize struct {
	t        int64
	purchase bool
}

type refCustomer struct {
	purchased map[string]int64
	cart      []refLine
	views     []string // most recent last
	sizes     map[[2]string]refSize
}

type refWorld struct {
	pop      map[string][]refPop // by product; none: no popularity
	halfLife float64             // seconds
	weights  [numEventTypes]float32
	products map[string]*refProduct
	skuOf    map[string][2]string // sku -> product, size
	stock    map[[2]string]int64  // sku, location
	cust     map[string]*refCustomer
}

func newRef() *refWorld {
	return &refWorld{pop: map[string][]refPop{}, products: map[string]*refProduct{}, skuOf: map[string][2]string{}, stock: map[[2]string]int64{}, cust: map[string]*refCustomer{}}
}

func (r *refWorld) customer(id string) *refCustomer {
	c := r.cust[id]
	if c == nil {
		c = &refCustomer{purchased: map[string]int64{}, sizes: map[[2]string]refSize{}}
		r.cust[id] = c
	}
	return c
}

func (r *refWorld) wear(c *refCustomer, group string) string {
	if c == nil || group == "" {
		return ""
	}
	best, bt, bp := "", int64(-1), false
	for k, s := range c.sizes {
		if k[0] != group {
			continue
		}
		if bt < 0 || (s.purchase && !bp) || (s.purchase == bp && s.t > bt) {
			best, bt, bp = k[1], s.t, s.purchase
		}
	}
	return best
}

func (r *refWorld) applyEvent(ev Event) {
	var p *refProduct
	size := ""
	if ev.SKU != "" {
		ps := r.skuOf[ev.SKU]
		p, size = r.products[ps[0]], ps[1]
	} else {
		p = r.products[ev.Product]
	}
	sku := ev.SKU
	if sku == "" && len(p.sizes) == 1 {
		sku, size = p.id+"-"+p.sizes[0], p.sizes[0]
		if p.sizes[0] == "" {
			sku = p.id
		}
	}
	c := r.customer(ev.Customer)
	t := ev.TS / 1000
	if w := float64(r.weights[ev.Type]); w != 0 {
		// A count taken to nothing (by a return) is forgotten.
		if r.popularity(p.id, t)+w > 1e-9 {
			r.pop[p.id] = append(r.pop[p.id], refPop{w: w, t: t})
		} else {
			delete(r.pop, p.id)
		}
	}
	switch ev.Type {
	case EventView, EventScan, EventEmailClick, EventAdClick:
		c.views = slices.DeleteFunc(c.views, func(v string) bool { return v == p.id })
		c.views = append(c.views, p.id)
	case EventCartAdd:
		found := false
		for i := range c.cart {
			if c.cart[i].sku == sku && c.cart[i].product == p.id {
				c.cart[i].t, found = t, true
			}
		}
		if !found {
			c.cart = append(c.cart, refLine{sku: sku, product: p.id, t: t})
		}
		if size != "" {
			k := [2]string{p.group, size}
			s := c.sizes[k]
			c.sizes[k] = refSize{t: t, purchase: s.purchase}
		}
	case EventCartRemove:
		c.cart = slices.DeleteFunc(c.cart, func(l refLine) bool {
			return l.product == p.id && (sku == "" || l.sku == sku || l.sku == "")
		})
	case EventPurchase:
		c.purchased[p.id] = t
		c.cart = slices.DeleteFunc(c.cart, func(l refLine) bool { return l.product == p.id })
		if size != "" {
			c.sizes[[2]string{p.group, size}] = refSize{t: t, purchase: true}
		}
	case EventReturn:
		delete(c.purchased, p.id)
		if size != "" {
			delete(c.sizes, [2]string{p.group, size})
		}
	}
}

type refPick struct {
	id     string
	score  float64
	reason Reason
}

// picks is the brute-force reference of PicksInto.
func (r *refWorld) picks(e *Engine, q Query) []refPick {
	k := cmp.Or(q.K, 10)
	if q.Category != "" {
		if _, ok := e.idx.Facet("c:" + q.Category); !ok {
			return nil
		}
	}
	c := r.cust[q.Customer]
	locs := q.Locations
	if len(locs) == 0 {
		locs = []string{"online"}
	}
	excluded := map[string]bool{q.Context: true}
	for _, x := range q.Exclude {
		excluded[x] = true
	}
	eligible := func(p *refProduct) bool {
		if !p.active || excluded[p.id] || (c != nil && c.purchased[p.id] != 0) {
			return false
		}
		if q.Category != "" && p.category != q.Category && !strings.HasPrefix(p.category, q.Category+"/") {
			return false
		}
		want := r.wear(c, p.group)
		for _, s := range p.sizes {
			if want != "" && s != want {
				continue
			}
			sku := p.id
			if s != "" {
				sku += "-" + s
			}
			for _, l := range locs {
				if r.stock[[2]string{sku, l}] > 0 {
					return true
				}
			}
		}
		return false
	}

	// Sources, from the naive history.
	cart, viewed := map[string]bool{}, map[string]bool{}
	var anchors []string
	addAnchor := func(id string) {
		if !slices.Contains(anchors, id) {
			anchors = append(anchors, id)
		}
	}
	var aff []profile.AffEntry
	if c != nil {
		for i := len(c.cart) - 1; i >= 0; i-- {
			cart[c.cart[i].product] = true
			addAnchor(c.cart[i].product)
		}
		for i := len(c.views) - 1; i >= 0; i-- {
			viewed[c.views[i]] = true
			addAnchor(c.views[i])
		}
		bought := make([]string, 0, len(c.purchased))
		for id := range c.purchased {
			bought = append(bought, id)
		}
		dense := func(id string) uint32 { it, _ := e.idx.Item(id); return it.Dense }
		slices.SortFunc(bought, func(a, b string) int {
			if c.purchased[a] != c.purchased[b] {
				return cmp.Compare(c.purchased[b], c.purchased[a])
			}
			return cmp.Compare(dense(a), dense(b))
		})
		for _, id := range bought {
			addAnchor(id)
		}
		var pr profile.Profile
		if e.profiles.Read(q.Customer, false, &pr, true) {
			aff = pr.Aff
		}
	}
	var affSum float64
	for _, a := range aff {
		affSum += float64(a.W)
	}
	byWeight := slices.Clone(aff)
	slices.SortFunc(byWeight, func(a, b profile.AffEntry) int {
		if a.W != b.W {
			return cmp.Compare(b.W, a.W)
		}
		return cmp.Compare(a.Facet, b.Facet)
	})
	var top []uint32
	for i := 0; i < len(byWeight) && i < e.opts.AffinityFacets; i++ {
		top = append(top, byWeight[i].Facet)
	}
	rel := map[uint32]float32{}
	relate := func(id string, w float32) {
		it, ok := e.idx.Item(id)
		if !ok {
			return
		}
		l := e.rel.appendTo(nil, it.Dense, e.opts.MaxRelated)
		if len(l) == 0 || l[0].w <= 0 {
			return
		}
		if a := e.opts.RelatedPopNorm; a > 0 { // item-CF normalisation
			for i := range l {
				v := r.popularity(e.idx.ItemAt(l[i].p).ID, int64(secs(q.Now)))
				l[i].w = float32(float64(l[i].w) / math.Pow(1+v, a))
			}
		}
		var mx float32
		for _, x := range l {
			mx = max(mx, x.w)
		}
		for _, x := range l {
			if mx > 0 {
				rel[x.p] += w * x.w / mx
			}
		}
	}
	if q.Context != "" {
		relate(q.Context, 2)
	}
	if q.Channel != ChannelScreen || q.Context == "" {
		for _, a := range anchors {
			relate(a, 1)
		}
	}
	now := secs(q.Now)
	popMax := 0.0
	for id := range r.pop {
		popMax = max(popMax, r.popularity(id, int64(now)))
	}

	prior := e.opts.Priors[q.Channel]
	score := func(p *refProduct) refPick {
		it, _ := e.idx.Item(p.id)
		_, learned := rel[it.Dense]
		isRel := learned
		reason, best := ReasonPopular, prior[ReasonPopular]
		consider := func(on bool, rr Reason) {
			if on && (prior[rr] > best || (prior[rr] == best && rr > reason)) {
				reason, best = rr, prior[rr]
			}
		}
		consider(cart[p.id], ReasonCart)
		consider(viewed[p.id], ReasonViewed)
		consider(isRel, ReasonRelated)
		relScore := float64(rel[it.Dense])
		if ctx, ok := e.idx.Item(q.Context); ok {
			var shared, norm float64
			for _, f := range ctx.Facets {
				norm += float64(e.weights.Of(f))
				if slices.Contains(it.Facets, f) {
					shared += float64(e.weights.Of(f))
				}
			}
			if norm > 0 && shared/norm >= 0.5 {
				consider(true, ReasonRelated)
				relScore = float64(rel[it.Dense] + float32(shared/norm*e.opts.ContextWeight))
			}
		}
		var dot float64
		affine := false
		for _, f := range it.Facets {
			for _, a := range aff {
				if a.Facet == f {
					dot += float64(a.W)
				}
			}
			affine = affine || slices.Contains(top, f)
		}
		consider(affine, ReasonAffinity)
		if affSum > 0 {
			dot /= affSum
		}
		pop := 0.0
		if popMax > 0 {
			pop = math.Log1p(r.popularity(p.id, int64(now))) / math.Log1p(popMax)
		}
		o := e.opts
		return refPick{id: p.id, reason: reason,
			score: best + o.AffinityWeight*dot + o.RelatedWeight*relScore + o.PopularityWeight*pop}
	}

	// 1. Personal sources.
	considered := map[string]bool{}
	var cands []refPick
	take := func(p *refProduct) bool {
		considered[p.id] = true
		if !eligible(p) {
			return false
		}
		cands = append(cands, score(p))
		return true
	}
	for _, p := range r.products {
		it, _ := e.idx.Item(p.id)
		if _, learned := rel[it.Dense]; cart[p.id] || viewed[p.id] || learned {
			take(p)
		}
	}
	// 2. Top lists: products with popularity, by facet, best first.
	byDense := func(d uint32) *refProduct { return r.products[e.idx.ItemAt(d).ID] }
	walk := func(facet int64, quota int) { // facet -1: every product
		var list []uint32
		for d := range e.idx.Products() {
			it := e.idx.ItemAt(uint32(d))
			if r.pop[it.ID] != nil && (facet < 0 || slices.Contains(it.Facets, uint32(facet))) {
				list = append(list, uint32(d))
			}
		}
		slices.SortFunc(list, func(a, b uint32) int {
			sa, sb := r.popularity(e.idx.ItemAt(a).ID, int64(now)), r.popularity(e.idx.ItemAt(b).ID, int64(now))
			if sa != sb {
				return cmp.Compare(sb, sa)
			}
			return cmp.Compare(a, b)
		})
		n := 0
		leaves := map[string]int{}
		for _, d := range list {
			p := byDense(d)
			if considered[p.id] {
				continue
			}
			if take(p) {
				if leaves[p.category]++; leaves[p.category] > (k+2)/3 {
					continue
				}
				if n++; n == quota {
					return
				}
			}
		}
	}
	if ctx, ok := e.idx.Item(q.Context); ok {
		for _, f := range ctx.Facets {
			walk(int64(f), k)
		}
	}
	for _, f := range top {
		walk(int64(f), k)
	}
	if q.Category != "" {
		f, _ := e.idx.Facet("c:" + q.Category)
		walk(int64(f), 2*k)
	} else {
		walk(-1, 2*k)
	}
	// 3. Fallback: the category's products, else those in stock (any size)
	// at each location in turn, in id order, until k.
	inStockAnywhere := func(p *refProduct, l string) bool {
		for _, s := range p.sizes {
			sku := p.id
			if s != "" {
				sku += "-" + s
			}
			if r.stock[[2]string{sku, l}] > 0 {
				return true
			}
		}
		return false
	}
	scanOrder := [][]string{{""}}
	if q.Category == "" {
		scanOrder = nil
		for _, l := range locs {
			if l == "online" || l == "s1" || l == "s2" { // the locations the test knows
				scanOrder = append(scanOrder, []string{l})
			}
		}
	}
	for _, pass := range scanOrder {
		for d := 0; d < e.idx.Products() && len(cands) < k; d++ {
			p := byDense(uint32(d))
			if p == nil || considered[p.id] {
				continue
			}
			if q.Category != "" {
				if p.category != q.Category && !strings.HasPrefix(p.category, q.Category+"/") {
					continue
				}
			} else if !inStockAnywhere(p, pass[0]) {
				continue
			}
			take(p)
		}
	}
	slices.SortFunc(cands, func(a, b refPick) int {
		if a.score != b.score {
			return cmp.Compare(b.score, a.score)
		}
		return strings.Compare(a.id, b.id)
	})
	// Diversity: at most ceil(k/3) per leaf, then fill.
	var out, held []refPick
	per := map[string]int{}
	for _, c := range cands {
		if len(out) == k {
			break
		}
		leaf := r.products[c.id].category
		if per[leaf]++; per[leaf] > (k+2)/3 {
			held = append(held, c)
			continue
		}
		out = append(out, c)
	}
	for _, c := range held {
		if len(out) == k {
			break
		}
		out = append(out, c)
	}
	return out
}

func TestModelPicksMatchBruteForce(t *testing.T) {
	seeds, ops := 40, 400
	if s := os.Getenv("OMNIPICK_MODEL_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, uint64(seed), ops) })
	}
}

func runModel(t *testing.T, seed uint64, ops int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	now := t0
	opts := Options{
		TopGlobal: 1000, TopPerFacet: 1000, MaxRelated: 1000, MaxAffinity: 1000, MaxViews: 1000,
		MaxCart: 1000, MaxPurchases: 1000, Anchors: 1000, RelatedPerAnchor: 1000, FallbackScan: 1 << 20,
		Now: func() time.Time { return now },
	}
	if seed%3 == 2 { // the relations' popularity normalisation, off by default
		opts.RelatedPopNorm = 0.5
	}
	if seed%4 == 3 {
		// A short half-life: the ~400 hours of a run are as many half-lives,
		// so popularity's reference moves several times (every 64).
		opts.PopularityHalfLife = time.Hour
	}
	e := New(opts)
	if seed%2 == 1 {
		// Compact the profile arenas whenever half is unused, so that
		// compaction runs under the model too.
		e.profiles.SetMinGarbage(0)
	}
	ref := newRef()
	ref.halfLife, ref.weights = e.opts.PopularityHalfLife.Seconds(), e.opts.EventWeights
	cats := []string{"w/tops", "w/knit/sweaters", "w/knit/cardigans", "m/coats", "acc/hats"}
	locs := []string{"online", "s1", "s2"}
	customers := []string{"c0", "c1", "c2", "c3", "c4"}
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d after %d ops:\n%s\n%s", seed, len(log), strings.Join(log[max(0, len(log)-15):], "\n"), fmt.Sprintf(format, args...))
	}
	randProduct := func() *refProduct {
		if len(ref.products) == 0 {
			return nil
		}
		id := fmt.Sprintf("p%02d", rng.IntN(len(ref.products)))
		return ref.products[id]
	}
	skuOf := func(p *refProduct, s string) string {
		if s == "" {
			return p.id
		}
		return p.id + "-" + s
	}
	for range ops {
		now = now.Add(time.Duration(1+rng.IntN(120)) * time.Minute)
		switch op := rng.IntN(20); {
		case op < 3 || len(ref.products) < 5: // upsert a product (new or existing)
			n := len(ref.products)
			if n > 0 && rng.IntN(3) == 0 {
				n = rng.IntN(n)
			}
			p := &refProduct{id: fmt.Sprintf("p%02d", n), category: cats[rng.IntN(len(cats))], active: rng.IntN(10) > 0}
			if old := ref.products[p.id]; old != nil {
				p.group = old.group // sizes may change, the size group stays: SKUs keep their meaning
			} else if rng.IntN(2) == 0 {
				p.group = "g1"
			}
			if p.group == "" {
				p.sizes = []string{""}
			} else {
				for _, s := range []string{"S", "M", "L"} {
					if rng.IntN(3) > 0 || len(p.sizes) == 0 {
						p.sizes = append(p.sizes, s)
					}
				}
			}
			rec := Record{Op: OpProduct, Product: Product{ID: p.id, Category: p.category, SizeGroup: p.group, Inactive: !p.active,
				Brand: fmt.Sprint("b", rng.IntN(3)), Tags: []string{fmt.Sprint("t", rng.IntN(4))}}}
			for _, s := range p.sizes {
				rec.Product.Variants = append(rec.Product.Variants, Variant{SKU: skuOf(p, s), Size: s})
			}
			if err := e.Apply(&rec); err != nil {
				fail("upsert: %v", err)
			}
			ref.products[p.id] = p
			for _, s := range p.sizes {
				ref.skuOf[skuOf(p, s)] = [2]string{p.id, s}
			}
			log = append(log, fmt.Sprintf("product %+v", *p))
		case op < 8: // stock
			p := randProduct()
			s := p.sizes[rng.IntN(len(p.sizes))]
			inv := Inventory{SKU: skuOf(p, s), Location: locs[rng.IntN(len(locs))], Quantity: int64(rng.IntN(3))}
			if err := e.Apply(&Record{Op: OpInventory, Inventory: inv}); err != nil {
				fail("stock: %v", err)
			}
			ref.stock[[2]string{inv.SKU, inv.Location}] = inv.Quantity
			log = append(log, fmt.Sprintf("stock %+v", inv))
		case op < 16: // event
			p := randProduct()
			types := []EventType{EventView, EventView, EventCartAdd, EventCartRemove, EventPurchase, EventPurchase, EventReturn, EventScan, EventAdClick}
			ev := Event{Type: types[rng.IntN(len(types))], Customer: customers[rng.IntN(len(customers))], TS: now.UnixMilli()}
			if rng.IntN(2) == 0 {
				ev.SKU = skuOf(p, p.sizes[rng.IntN(len(p.sizes))])
			} else {
				ev.Product = p.id
			}
			if err := e.Apply(&Record{Op: OpEvent, Event: ev}); err != nil {
				fail("event: %v", err)
			}
			ref.applyEvent(ev)
			log = append(log, fmt.Sprintf("event %v %s %s %s", ev.Type, ev.Customer, ev.Product, ev.SKU))
		default: // query
			q := Query{Channel: Channel(rng.IntN(int(numChannels))), K: 1 + rng.IntN(12), Now: now.UnixMilli()}
			if rng.IntN(5) > 0 {
				q.Customer = customers[rng.IntN(len(customers))]
			}
			for _, l := range locs {
				if rng.IntN(3) == 0 {
					q.Locations = append(q.Locations, l)
				}
			}
			if rng.IntN(4) == 0 {
				q.Category = strings.Split(cats[rng.IntN(len(cats))], "/")[0]
			}
			if rng.IntN(4) == 0 {
				q.Exclude = []string{randProduct().id}
			}
			if rng.IntN(3) == 0 {
				q.Context = randProduct().id
			}
			got := e.PicksInto(nil, &q)
			want := ref.picks(e, q)
			log = append(log, fmt.Sprintf("query %+v", q))
			if len(got) != len(want) {
				fail("query %+v: %d picks %v, reference %d %v", q, len(got), ids(got), len(want), want)
			}
			for i := range got {
				g, w := got[i], want[i]
				if g.Item.ID != w.id && math.Abs(g.Score-w.score) > 1e-9 {
					fail("query %+v: pick %d is %s (%.6f), reference %s (%.6f)\nengine %v\nreference %v", q, i, g.Item.ID, g.Score, w.id, w.score, ids(got), want)
				}
				if math.Abs(g.Score-w.score) > 1e-9 || (g.Item.ID == w.id && g.Reason != w.reason) {
					fail("query %+v: pick %d %s score %.9f reason %v, reference %.9f %v", q, i, g.Item.ID, g.Score, g.Reason, w.score, w.reason)
				}
			}
		}
	}
}
