package engine

import "math"

// Same-group siblings (issue 11): the other colour-ways of a product a
// customer bought, carted or viewed are what they most often buy next (on
// hm's validation split, item-CF plus siblings beats item-CF alone by
// 0.07 HR@12). Product groups are catalog data (Product.Group), so the
// signal needs no learning: the index keeps each group's products.

// Defaults of the sibling signal, chosen on the validation split and
// confirmed on holdout_dev (docs/ranking.md). The relations' popularity
// normalisation (RelatedPopNorm) is off by default: it won on validation
// (online_retail +0.024 HR@12) but holdout_dev did not confirm it
// (online_retail -0.029, taobao -0.008).
const (
	defaultSiblingWeight     = 1
	defaultSiblingsPerAnchor = 8
)

// addSiblings proposes up to n products of anchor a's product group (other
// than a), each as a related candidate whose relation strength grows by w
// times SiblingWeight: a sibling weighs as much as the anchor's strongest
// learned relation when SiblingWeight is 1. Siblings go in id order; the
// filters (stock, size, bought) come later, as for every candidate.
func (e *Engine) addSiblings(pk *picker, a uint32, w float32, n int) {
	sw := float32(e.opts.SiblingWeight)
	if sw <= 0 || n <= 0 || !e.idx.HasProductGroups() {
		return
	}
	it := e.idx.ItemAt(a)
	if it == nil || it.Kin == 0 {
		return
	}
	b := e.idx.Siblings(it.Kin)
	if b == nil {
		return
	}
	iter := &pk.iter
	iter.Initialize(b)
	for iter.HasNext() && n > 0 {
		p := iter.Next()
		if p == a {
			continue
		}
		if s := pk.propose(p, flagRelated); s != nil {
			s.rel += w * sw
		}
		n--
	}
}

// normalizeRelated divides the weights of pk.rels (an anchor's relations)
// by (1 + popularity)^RelatedPopNorm, in place, and returns the largest.
// The order of pk.rels is kept: addRelated needs only the largest. It runs
// for every relation of every anchor, so it avoids math.Exp2 and math.Pow
// (fastExp2, and a square root for the default exponent): a third of its
// cost was theirs.
func (e *Engine) normalizeRelated(pk *picker) float32 {
	a := e.opts.RelatedPopNorm
	at := float64(pk.now) / e.pop.halfLife
	var top float32
	for i := range pk.rels {
		r := &pk.rels[i]
		r.w = float32(float64(r.w) / e.popNorm(r.p, a, at))
		top = max(top, r.w)
	}
	return top
}

// popNorm returns (1 + product p's popularity at time at, in half-lives)^a.
func (e *Engine) popNorm(p uint32, a, at float64) float64 {
	v := 1.0
	if ls := e.pop.logScore(p); ls != noScore {
		v += fastExp2(ls - at)
	}
	if a == 0.5 {
		return math.Sqrt(v)
	}
	return math.Pow(v, a)
}

// fastExp2 returns 2^x within a relative error of 2e-4 (a degree-5 Taylor
// polynomial of 2^f on [0, 1) scaled by 2^floor(x)): enough for a ranking
// weight, and several times cheaper than math.Exp2. It is 0 below 2^-1022
// and +Inf above 2^1023.
func fastExp2(x float64) float64 {
	switch {
	case x < -1022:
		return 0
	case x >= 1024:
		return math.Inf(1)
	}
	i := math.Floor(x)
	f := x - i
	p := 1 + f*(0.6931471805599453+f*(0.2402265069591007+f*(0.05550410866482158+f*(0.009618129107628477+f*0.0013333558146428443))))
	return p * math.Float64frombits(uint64(int64(i)+1023)<<52)
}
