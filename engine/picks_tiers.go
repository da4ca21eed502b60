package engine

import "slices"

// Personal candidates in tiers of their best possible score.
//
// Where a channel's priors are far apart (ads and email lead with the
// cart, then views, then related items; a store screen with what relates
// to the scan), the few candidates of the top tiers usually decide the
// picks: no candidate of a lower tier can score above them. A candidate's
// best possible score is known from its sources alone (its flags and
// relation strength, in the picker's slot set) before its hot record is
// fetched, so the lower tiers are then never loaded, filtered or scored:
// at a million products each would cost a cache miss.
//
// Exactness: the picks are those ranking gives when every personal
// candidate (and every walked one) is considered. Ranking takes the best k
// within the diversity cap, best first; when k candidates already
// considered score above the best any other can (within the cap, as
// personalSuffice counts them), those k come first however many others
// join, and they are the answer.

// personalCand is a personal candidate waiting in its tier.
type personalCand struct {
	p     uint32
	rel   float32
	flags uint8
	tier  uint8
}

// candTier is one tier: the candidates whose best prior is prior.
type candTier struct {
	prior  float64
	maxRel float32
	bound  float64 // the best score any of them can reach
	n      int
	next   int // tierOrder's fill position
}

// maxCandTiers: a candidate's best prior is one of four values (the base
// prior, or the cart's, views' or relations' prior).
const maxCandTiers = 4

// candBound is the highest score a candidate can reach whose best prior
// is prior and whose sources gave it relation strength rel: full affinity,
// full context similarity, full popularity, the boost. walkBound is the
// same for a product no personal source proposed.
func (pk *picker) candBound(prior float64, rel float32) float64 {
	o := pk.opts
	r := float64(rel)
	if pk.ctxNorm > 0 {
		r += o.ContextWeight
	}
	b := prior + o.AffinityWeight + o.RelatedWeight*r + o.PopularityWeight + max(0, pk.repeat)
	if len(pk.boost) > 0 {
		b += o.BoostWeight
	}
	return b
}

// basePrior is the best prior any candidate can earn whatever its
// sources: popular; affinity, if it shares one of the customer's strongest
// facets; related, if similar to the context.
func (pk *picker) basePrior() float64 {
	prior := pk.prior[ReasonPopular]
	if len(pk.topFacets) > 0 {
		prior = max(prior, pk.prior[ReasonAffinity])
	}
	if pk.ctxNorm > 0 {
		prior = max(prior, pk.prior[ReasonRelated])
	}
	return prior
}

// tiersApply reports whether to consider the personal candidates in
// tiers: with the hand-set formula and weights that cannot lower a score
// as its terms grow (candBound's premise), and where the priors a source
// gives lie apart by several times what the other terms can add, so that
// a tier can decide the picks (ads, email, a store screen without a scan;
// on the web, whose priors are close, sorting the candidates into tiers
// cost ~10% of a call and never stopped early). The learned blend's web
// and app picks consider all.
func (pk *picker) tiersApply() bool {
	o := pk.opts
	if pk.learned || o.AffinityWeight < 0 || o.RelatedWeight < 0 || o.PopularityWeight < 0 ||
		o.ContextWeight < 0 || o.BoostWeight < 0 {
		return false
	}
	base := pk.basePrior()
	v := [...]float64{base, max(base, pk.prior[ReasonCart]), max(base, pk.prior[ReasonViewed]), max(base, pk.prior[ReasonRelated])}
	slices.Sort(v[:])
	spread := o.AffinityWeight + o.PopularityWeight + o.RelatedWeight*(1+o.ContextWeight) + o.BoostWeight + max(0, pk.repeat)
	for i := 1; i < len(v); i++ {
		if v[i]-v[i-1] > tierGap*spread {
			return true
		}
	}
	return false
}

// tierGap is how many times what the terms beyond the prior can add two
// priors must lie apart for tiers to pay (tiersApply).
const tierGap = 4

// considerAll considers every personal candidate, in the order proposed.
func (e *Engine) considerAll(pk *picker) {
	e.touch(pk, pk.ids)
	for _, p := range pk.ids {
		s := pk.slots.get(p, pk.epoch)
		e.consider(pk, p, s.flags, s.rel)
	}
}

// considerPersonal considers the personal candidates, a tier at a time,
// best possible score first, and reports whether those considered already
// decide the picks (then nothing else need be considered: no other tier,
// no walk, no fallback).
func (e *Engine) considerPersonal(pk *picker, k int) bool {
	if !pk.tiersApply() {
		e.considerAll(pk)
		return false
	}
	// Each candidate's tier, and each tier's strongest relation.
	base := pk.basePrior()
	pr := pk.prior
	var tiers [maxCandTiers]candTier
	nt := 0
	pk.pending = pk.pending[:0]
	for _, p := range pk.ids {
		s := pk.slots.get(p, pk.epoch)
		prior := base
		if s.flags&flagCart != 0 {
			prior = max(prior, pr[ReasonCart])
		}
		if s.flags&flagViewed != 0 {
			prior = max(prior, pr[ReasonViewed])
		}
		if s.flags&flagRelated != 0 {
			prior = max(prior, pr[ReasonRelated])
		}
		t := 0
		for t < nt && tiers[t].prior != prior {
			t++
		}
		if t == nt {
			tiers[t] = candTier{prior: prior}
			nt++
		}
		tiers[t].n++
		tiers[t].maxRel = max(tiers[t].maxRel, s.rel)
		pk.pending = append(pk.pending, personalCand{p: p, rel: s.rel, flags: s.flags, tier: uint8(t)})
	}
	// Tiers by bound, best first (a handful: insertion sort). The bound
	// is raised a little over the float arithmetic of scoring (relation
	// strength summed in float32), so that it is never below a score.
	for t := range nt {
		b := pk.candBound(tiers[t].prior, tiers[t].maxRel)
		tiers[t].bound = b + 1e-6*(1+max(b, -b))
	}
	var order [maxCandTiers]int
	for t := range nt {
		i := t
		for ; i > 0 && tiers[order[i-1]].bound < tiers[t].bound; i-- {
			order[i] = order[i-1]
		}
		order[i] = t
	}
	// The candidates in tier order (stable within a tier).
	pos := 0
	for _, t := range order[:nt] {
		tiers[t].next = pos
		pos += tiers[t].n
	}
	pk.byTier = slices.Grow(pk.byTier[:0], len(pk.pending))[:len(pk.pending)] // every place filled below
	for _, c := range pk.pending {
		t := &tiers[c.tier]
		pk.byTier[t.next] = c
		t.next++
	}
	walk := pk.walkBound()
	from := 0
	for i, t := range order[:nt] {
		tier := pk.byTier[from : from+tiers[t].n]
		from += tiers[t].n
		var acc uint64
		for _, c := range tier {
			acc += uint64(e.idx.Touch(c.p))
		}
		pk.sink += acc
		for _, c := range tier {
			e.consider(pk, c.p, c.flags, c.rel)
		}
		if i+1 == nt || len(pk.cands) < k {
			continue
		}
		if pk.suffice(k, max(walk, tiers[order[i+1]].bound)) {
			return true
		}
	}
	return false
}
