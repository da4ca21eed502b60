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

// maxSiblingScan bounds how many members of one product group addSiblings
// reads to choose the most popular: colour-ways are a few to a few dozen,
// and a catalog that files hundreds of products under one group should not
// make every pick read them all.
const maxSiblingScan = 256

// addSiblings proposes the n most popular products of anchor a's product
// group (other than a; ties go to the smaller id), each as a related
// candidate whose relation strength grows by w times SiblingWeight: a
// sibling weighs as much as the anchor's strongest learned relation when
// SiblingWeight is 1. The filters (stock, size, bought) come later, as for
// every candidate.
//
// Popular first, not id first: a colour-way that sells is the one a
// customer buys next (validation, both folds: hm +0.0048 and +0.0046
// HR@12, the other sets unchanged; docs/ranking.md). Only the first
// maxSiblingScan members of a group are read.
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
	top := pk.sibs[:0]
	iter := &pk.iter
	iter.Initialize(b)
	for read := 0; iter.HasNext() && read < maxSiblingScan; read++ {
		p := iter.Next()
		if p == a {
			continue
		}
		top = offerSibling(top, n, p, float32(e.pop.value(p)))
	}
	for _, r := range top {
		if s := pk.propose(r.p, flagRelated); s != nil {
			s.rel += w * sw
		}
	}
	pk.sibs = top[:0]
}

// offerSibling keeps in top (at most n entries, most popular first) the
// product p of popularity v if it belongs there. Members arrive in id
// order, so a tie keeps the earlier, smaller id ahead.
func offerSibling(top []relEntry, n int, p uint32, v float32) []relEntry {
	if len(top) == n && v <= top[n-1].w {
		return top
	}
	i := len(top)
	if i < n {
		top = append(top, relEntry{})
	} else {
		i = n - 1
	}
	for i > 0 && top[i-1].w < v {
		top[i] = top[i-1]
		i--
	}
	top[i] = relEntry{p: p, w: v}
	return top
}

// normalizeRelated divides the weights of pk.rels (an anchor's relations)
// by (1 + popularity)^RelatedPopNorm, in place, and returns the largest.
// The order of pk.rels is kept: addRelated needs only the largest. It runs
// for every relation of every anchor, so it avoids math.Exp2 and math.Pow
// (popularity's values need only the call's decay factor, and the default
// exponent is a square root).
func (e *Engine) normalizeRelated(pk *picker) float32 {
	a := e.opts.RelatedPopNorm
	var top float32
	for i := range pk.rels {
		r := &pk.rels[i]
		r.w = float32(float64(r.w) / e.popNorm(r.p, a, pk.popDecay))
		top = max(top, r.w)
	}
	return top
}

// popNorm returns (1 + product p's popularity now)^a, decay being the
// call's popularity.decayDown.
func (e *Engine) popNorm(p uint32, a, decay float64) float64 {
	v := 1 + e.pop.value(p)*decay
	if a == 0.5 {
		return math.Sqrt(v)
	}
	return math.Pow(v, a)
}
