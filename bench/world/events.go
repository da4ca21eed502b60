package world

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/omnipick/omnipick/engine"
)

// Channels as events name them.
const (
	chWeb uint8 = iota
	chApp
	chSocial
	chMarketplace
	chStore
	chEmail
	chAds
	numChannels
)

var channelNames = [numChannels]string{"web", "app", "social", "marketplace", "store", "email", "ads"}

// Time limits that bound how far ahead of its hour a visit can schedule
// events; the bucket ring is sized from them.
const (
	maxGapMs        = 3 * 60 * 1000 // between two events of a visit
	maxVisitEvents  = 40            // runOnline and runStore stay well below
	maxFollowUpDays = 7
	maxReturnDays   = 14
	horizonMs       = msPerHour + 2*maxVisitEvents*maxGapMs + (maxFollowUpDays+maxReturnDays)*msPerDay
	ringSlices      = int(horizonMs/msPerHour) + 2
)

// Share of the day's traffic per UTC hour (the shops are in Central Europe).
var hourWeight = [24]float64{
	0.5, 0.3, 0.2, 0.2, 0.3, 0.6, 1.2, 2.0, 2.6, 3.0, 3.3, 3.6,
	3.8, 3.8, 3.6, 3.6, 3.9, 4.4, 5.0, 5.4, 5.0, 3.8, 2.4, 1.2,
}

// Store opening hours in UTC: 08:00 to 20:00 local.
const storeOpen, storeClose = 6, 18

// eventGen generates the events hour by hour ("slices"). Visits starting
// in slice s are generated from an RNG seeded with (seed, s) and their
// events pushed to the bucket of the hour they fall in; once slice s is
// generated, nothing can land in it any more, so it is sorted and emitted.
type eventGen struct {
	*world
	pcg *rand.PCG
	r   *rand.Rand

	start, end int64 // ms
	slices     int
	counts     []int32 // visits starting in each slice
	orderMult  uint64  // order numbers are slice*orderMult + visit + 1
	permA      uint64  // customer permutation: c = (i*permA + permB) % Customers
	permB      uint64

	slice int       // the slice being generated
	next  uint32    // next visit number in this slice
	cur   []event   // events of the current slice
	tmp   []event   // scratch for sortHour
	ring  [][]event // events for later slices, by slice % len(ring)
	catW  [numDepts][numMissions + 1][]catWeight
	// catAny: every category with products, for a department that has
	// none in a small world.
	catAny []catWeight
	cart   []item
}

type catWeight struct {
	cat uint8
	cum float64
}

type item struct {
	p uint32
	v uint8
}

// missionBrowse is a visit without a mission: any category of the
// department, weighted by its share of the catalog.
const missionBrowse = int(numMissions)

func newEventGen(w *world) *eventGen {
	g := &eventGen{
		world:  w,
		pcg:    rand.NewPCG(0, 0),
		start:  w.cfg.Start.UnixMilli(),
		slices: w.cfg.Days * 24,
		ring:   make([][]event, ringSlices),
	}
	g.r = rand.New(g.pcg)
	g.end = g.start + int64(w.cfg.Days)*msPerDay

	// Visits per hour: daily and weekly rhythm, rising towards winter.
	cum := make([]float64, g.slices)
	total := 0.0
	for s := range g.slices {
		t := w.cfg.Start.UTC().Add(time.Duration(s) * time.Hour)
		wgt := hourWeight[t.Hour()] * (1 + 0.5*float64(s)/float64(g.slices))
		if wd := t.Weekday(); wd == 0 || wd == 6 {
			wgt *= 1.25
		}
		total += wgt
		cum[s] = total
	}
	visits := math.Round(float64(w.cfg.Customers) * w.cfg.SessionsPerCustomer)
	g.counts = make([]int32, g.slices)
	prev, most := 0.0, int32(0)
	for s := range g.slices {
		at := math.Round(visits * cum[s] / total)
		g.counts[s] = int32(at - prev)
		most = max(most, g.counts[s])
		prev = at
	}
	// A slice holds its visits and at most one follow-up for each.
	g.orderMult = 1000
	for g.orderMult <= 2*uint64(most)+1 {
		g.orderMult *= 10
	}

	if n := uint64(w.cfg.Customers); n > 0 {
		g.permA = max(1, uint64(float64(n)*0.618)|1)
		for gcd(g.permA, n) != 1 {
			g.permA += 2
		}
		g.permB = w.seed % n
	}

	// Categories without products (a world of a few products) are never
	// picked: a visit would have nothing to look at.
	anySum := 0.0
	for ci := range categories {
		if len(w.cat.byCat[ci]) > 0 {
			anySum += categories[ci].weight
			g.catAny = append(g.catAny, catWeight{uint8(ci), anySum})
		}
	}
	for d := range numDepts {
		for m := range numMissions + 1 {
			var list []catWeight
			sum := 0.0
			for ci := range categories {
				c := &categories[ci]
				if c.dept != d || len(w.cat.byCat[ci]) == 0 {
					continue
				}
				wgt := c.weight
				if m < numMissions {
					if c.missions&(1<<m) == 0 {
						continue
					}
					// Within a mission every category is as likely: the
					// hat matters as much as the coat.
					wgt = 1
				}
				sum += wgt
				list = append(list, catWeight{uint8(ci), sum})
			}
			g.catW[d][m] = list
		}
	}
	return g
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// emitEvents generates and emits all events, hour by hour.
func (w *world) emitEvents(r *engine.Record, emit func(*engine.Record) error) error {
	g := newEventGen(w)
	var scratch [24]byte
	for s := range g.slices {
		// Events earlier hours scheduled for this one come first, then the
		// visits starting now.
		b := &g.ring[s%len(g.ring)]
		g.cur = append(g.cur[:0], *b...)
		*b = (*b)[:0]
		g.generate(s)
		g.tmp = sortHour(g.cur, g.tmp, g.start+int64(s)*msPerHour)
		for i := range g.cur {
			w.eventRecord(r, &g.cur[i], &scratch)
			if err := emit(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// push files e under the hour it falls in. Events after the end of the
// world are dropped.
func (g *eventGen) push(e event) {
	if e.ts >= g.end {
		return
	}
	s := int((e.ts - g.start) / msPerHour)
	switch {
	case s == g.slice:
		g.cur = append(g.cur, e)
	case s > g.slice && s-g.slice < len(g.ring):
		b := &g.ring[s%len(g.ring)]
		*b = append(*b, e)
	default:
		// The ring is sized from the constants that bound a visit.
		panic("world: internal error: event outside the scheduling horizon")
	}
}

// generate creates the visits that start in slice s.
func (g *eventGen) generate(s int) {
	g.slice, g.next = s, 0
	g.pcg.Seed(mix(g.seed, tagSlice), uint64(s))
	r := g.r
	sliceStart := g.start + int64(s)*msPerHour
	dayFrac := float64(s) / float64(g.slices)
	for range g.counts[s] {
		v := visit{ts: sliceStart + r.Int64N(msPerHour)}
		if g.cfg.Customers == 0 || r.Float64() < g.cfg.AnonymousShare {
			v.anon = true
			v.actor = uint32(r.Uint64())
			v.pr = g.profile(mix(g.seed^tagCookie, uint64(v.actor)), true)
		} else {
			v.actor = g.pickCustomer()
			v.pr = g.profile(mix(g.seed^tagCustomer, uint64(v.actor)), false)
		}
		g.pickMission(&v, dayFrac)
		g.pickChannel(&v)
		g.run(&v)
	}
}

// pickCustomer picks who visits. Activity is uneven: the most active
// twentieth of the customers make about a fifth of the visits, the most
// active fifth about half. The permutation scatters them over the ids.
func (g *eventGen) pickCustomer() uint32 {
	r, n := g.r, uint64(g.cfg.Customers)
	var i uint64
	switch u := r.Float64(); {
	case u < 0.15:
		i = r.Uint64N(max(1, n/20))
	case u < 0.45:
		i = r.Uint64N(max(1, n/5))
	default:
		i = r.Uint64N(n)
	}
	return uint32((i*g.permA + g.permB) % n)
}

// profile is what stays the same about a shopper across visits, derived
// from the hash of their id.
type profile struct {
	h       uint64
	dept    dept  // own department: women or men
	kids    bool  // also shops for a child
	store   int   // home store location index; 0: does not shop in stores
	primary uint8 // chWeb or chApp
	winter  float64
	sport   float64
}

func (g *eventGen) profile(h uint64, anon bool) profile {
	p := profile{h: h, dept: deptWomen, primary: chWeb}
	if unit(mix(h, 1)) < 0.4 {
		p.dept = deptMen
	}
	p.kids = unit(mix(h, 2)) < 0.3
	if !anon && g.cfg.Stores > 0 && unit(mix(h, 3)) < 0.45 {
		p.store = 1 + int(mix(h, 4)%uint64(g.cfg.Stores))
	}
	if unit(mix(h, 5)) < 0.4 {
		p.primary = chApp
	}
	p.winter = 0.4 * unit(mix(h, 6))
	p.sport = 0.4 * unit(mix(h, 7))
	return p
}

// size is the variant a shopper takes in size group sg. One body per
// department (the shopper, a partner, a child), so sizes agree across
// groups: a women's M goes with a 10 and a 38 shoe, more or less.
func size(h uint64, sg uint8) uint8 {
	if sg == sgOne {
		return 0
	}
	g := &sizeGroups[sg]
	hs := mix(h, tagSize)
	body := (unit(mix(hs, uint64(g.dept)*2)) + unit(mix(hs, uint64(g.dept)*2+1))) / 2
	body += (unit(mix(hs, 16+uint64(sg))) - 0.5) * 0.25
	n := len(g.sizes)
	return uint8(min(max(int(body*float64(n)), 0), n-1))
}

// visit is one session: a shopper, a department, a mission, a channel.
type visit struct {
	ts      int64
	key     uint64 // visit number within the slice
	actor   uint32
	anon    bool
	pr      profile
	dept    dept
	mission int
	channel uint8
	loc     int    // store visits: the store
	skip    uint64 // follow-ups: categories bought in the first visit
	follow  bool
}

func (g *eventGen) pickMission(v *visit, dayFrac float64) {
	r := g.r
	v.dept = v.pr.dept
	switch u := r.Float64(); {
	case v.pr.kids && u < 0.3:
		v.dept = deptKids
	case u < 0.38:
		v.dept = deptMen - v.pr.dept // a gift for a partner
	}
	var wgt [numMissions + 1]float64
	wgt[missionWinter] = 0.1 + 0.5*dayFrac + v.pr.winter
	wgt[missionSport] = 0.15 + v.pr.sport
	wgt[missionBasics] = 0.3
	wgt[missionOccasion] = 0.2
	wgt[missionBrowse] = 0.2
	sum := 0.0
	for _, x := range wgt {
		sum += x
	}
	x := r.Float64() * sum
	v.mission = missionBrowse
	for m, w := range wgt {
		if x < w {
			v.mission = m
			break
		}
		x -= w
	}
}

func (g *eventGen) pickChannel(v *visit) {
	r := g.r
	hour := int((v.ts / msPerHour) % 24)
	u := r.Float64()
	if v.anon {
		switch {
		case u < 0.5:
			v.channel = chWeb
		case u < 0.65:
			v.channel = chApp
		case u < 0.85:
			v.channel = chSocial
		default:
			v.channel = chAds
		}
		return
	}
	if v.pr.store != 0 && hour >= storeOpen && hour < storeClose {
		if u < 0.35 {
			v.channel = chStore
			v.loc = v.pr.store
			if r.Float64() < 0.15 {
				v.loc = 1 + r.IntN(g.cfg.Stores)
			}
			return
		}
		u = r.Float64()
	}
	switch {
	case u < 0.5:
		v.channel = v.pr.primary
	case u < 0.6:
		v.channel = chApp + chWeb - v.pr.primary
	case u < 0.7:
		v.channel = chSocial
	case u < 0.78:
		v.channel = chMarketplace
	case u < 0.9:
		v.channel = chEmail
	default:
		v.channel = chAds
	}
}

// pickCat picks a category for v, avoiding what a follow-up's first visit
// already bought.
func (g *eventGen) pickCat(v *visit) uint8 {
	list := g.catW[v.dept][v.mission]
	if len(list) == 0 {
		list = g.catW[v.dept][missionBrowse]
	}
	if len(list) == 0 {
		list = g.catAny
	}
	var c uint8
	for range 4 {
		x := g.r.Float64() * list[len(list)-1].cum
		i, _ := slices.BinarySearchFunc(list, x, func(cw catWeight, x float64) int {
			return cmp.Compare(cw.cum, x)
		})
		c = list[min(i, len(list)-1)].cat
		if v.skip&(1<<c) == 0 {
			break
		}
	}
	return c
}

// pickFrom picks from a most-popular-first list with a steep power law:
// the top 1% of a list gets about a fifth of the attention.
func (g *eventGen) pickFrom(list []uint32) uint32 {
	u := g.r.Float64()
	return list[min(int(u*u*u*float64(len(list))), len(list)-1)]
}

// step advances the visit's clock by lo..hi seconds.
func (g *eventGen) step(v *visit, lo, hi int64) {
	v.ts += lo*1000 + g.r.Int64N((hi-lo)*1000)
}

// event is what v does next on channel ch; variant is noVariant for
// events that name only the product.
func (g *eventGen) event(v *visit, typ engine.EventType, ch uint8, p uint32, variant uint8) event {
	e := event{ts: v.ts, actor: v.actor, product: p, typ: typ, channel: ch, variant: variant}
	if v.anon {
		e.flags = flagAnon
	}
	if ch == chStore {
		e.loc = uint16(v.loc)
	}
	return e
}

func (g *eventGen) add(v *visit, typ engine.EventType, ch uint8, p uint32, variant uint8) {
	g.push(g.event(v, typ, ch, p, variant))
}

// addSale adds a purchase in order and, maybe, its return days later.
func (g *eventGen) addSale(v *visit, ch uint8, it item, order uint64) {
	r := g.r
	e := g.event(v, engine.EventPurchase, ch, it.p, it.v)
	e.order, e.cents = order, g.cat.cents[it.p]
	if r.Float64() < 0.15 { // on sale
		e.cents = pricePoint(float64(e.cents) / 100 * (0.7 + 0.1*float64(r.IntN(2))))
	}
	g.push(e)
	share := g.cfg.ReturnShare
	if ch == chStore {
		share /= 3
	}
	if r.Float64() < share {
		e.typ = engine.EventReturn
		e.ts += 2*msPerDay + r.Int64N((maxReturnDays-2)*msPerDay)
		g.push(e)
	}
}

// run generates visit v's events.
func (g *eventGen) run(v *visit) {
	v.key = uint64(g.next)
	g.next++
	if v.channel == chStore {
		g.runStore(v)
	} else {
		g.runOnline(v)
	}
}

func (g *eventGen) orderNumber(v *visit) uint64 {
	return uint64(g.slice)*g.orderMult + v.key + 1
}

// runOnline: an entry click, views, cart adds, maybe a checkout, maybe a
// cart removal, and for winter and sport missions maybe a follow-up.
func (g *eventGen) runOnline(v *visit) {
	r, c := g.r, g.cat
	ch := v.channel
	first := uint32(noProduct)
	switch ch {
	case chEmail, chAds:
		typ := engine.EventEmailClick
		if ch == chAds {
			typ = engine.EventAdClick
		}
		first = g.pickFrom(c.byCat[g.pickCat(v)])
		g.add(v, typ, ch, first, noVariant)
		ch = v.pr.primary
		if v.anon {
			ch = chWeb
		}
	}
	views := 1 + r.IntN(4) + r.IntN(4)
	if v.mission != missionBrowse {
		views += 2
	}
	cartP, buyP := 0.3, 0.45
	if v.follow {
		cartP, buyP = 0.6, 0.8
	}
	if v.anon {
		buyP = 0.15
	}
	g.cart = g.cart[:0]
	for i := range views {
		p := first
		if i > 0 || p == noProduct {
			p = g.pickFrom(c.byCat[g.pickCat(v)])
		}
		g.step(v, 5, 90)
		g.add(v, engine.EventView, ch, p, noVariant)
		if ch == chSocial {
			if r.Float64() < 0.5 {
				continue
			}
			ch = v.pr.primary // clicked through to the shop
		}
		if len(g.cart) < 4 && r.Float64() < cartP && !slices.ContainsFunc(g.cart, func(it item) bool { return it.p == p }) {
			vi := size(v.pr.h, c.group[p])
			if c.stock(p, vi, locOnline) > 0 {
				g.step(v, 10, 60)
				g.add(v, engine.EventCartAdd, ch, p, vi)
				g.cart = append(g.cart, item{p, vi})
			}
		}
	}
	if len(g.cart) == 0 {
		return
	}
	if r.Float64() >= buyP {
		if r.Float64() < 0.25 {
			it := g.cart[r.IntN(len(g.cart))]
			g.step(v, 10, 120)
			g.add(v, engine.EventCartRemove, ch, it.p, it.v)
		}
		return
	}
	g.step(v, 60, 180)
	order := g.orderNumber(v)
	var bought uint64
	for _, it := range g.cart {
		if r.Float64() < 0.9 {
			g.addSale(v, ch, it, order)
			bought |= 1 << c.cat[it.p]
		} else if r.Float64() < 0.5 {
			g.add(v, engine.EventCartRemove, ch, it.p, it.v)
		}
	}
	g.followUp(v, bought)
}

// runStore: scans of what the store carries, and a purchase at the till.
func (g *eventGen) runStore(v *visit) {
	r, c := g.r, g.cat
	g.cart = g.cart[:0]
	scans := 1 + r.IntN(4)
	for range scans {
		list := c.storeList(v.loc, g.pickCat(v))
		if len(list) == 0 {
			continue
		}
		p := g.pickFrom(list)
		g.step(v, 30, 180)
		g.add(v, engine.EventScan, chStore, p, noVariant)
		vi := size(v.pr.h, c.group[p])
		if r.Float64() < 0.5 && c.stock(p, vi, v.loc) > 0 &&
			!slices.ContainsFunc(g.cart, func(it item) bool { return it.p == p }) {
			g.cart = append(g.cart, item{p, vi})
		}
	}
	if len(g.cart) == 0 {
		return
	}
	g.step(v, 60, 180)
	order := g.orderNumber(v)
	var bought uint64
	for _, it := range g.cart {
		g.addSale(v, chStore, it, order)
		bought |= 1 << c.cat[it.p]
	}
	g.followUp(v, bought)
}

// followUp maybe schedules a second visit one to seven days after a winter
// or sport purchase, shopping the same mission for what is still missing.
func (g *eventGen) followUp(v *visit, bought uint64) {
	if v.follow || bought == 0 || (v.mission != int(missionWinter) && v.mission != int(missionSport)) {
		return
	}
	if g.r.Float64() >= g.cfg.FollowUpShare {
		return
	}
	f := visit{
		ts:      v.ts + msPerDay + g.r.Int64N((maxFollowUpDays-1)*msPerDay),
		actor:   v.actor,
		anon:    v.anon,
		pr:      v.pr,
		dept:    v.dept,
		mission: v.mission,
		skip:    bought,
		follow:  true,
	}
	if f.ts >= g.end {
		return
	}
	g.pickChannel(&f)
	g.run(&f)
}

const noProduct = math.MaxUint32
