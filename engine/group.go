package engine

import (
	"math"
	"slices"
)

// Same-group siblings (issue 11): the other colour-ways of a product a
// customer bought, carted or viewed are what they most often buy next (on
// hm's validation split, item-CF plus siblings beats item-CF alone by
// 0.07 HR@12). Product groups are catalog data (Product.Group), so the
// signal needs no learning: the index keeps each group's products.

// Defaults of the sibling signal and of the relations' normalisation,
// chosen on the validation split (docs/ranking.md).
const (
	defaultSiblingWeight     = 1
	defaultSiblingsPerAnchor = 8
	defaultRelatedPopNorm    = 0.5
)

// setSiblingDefaults fills the sibling and normalisation options: zero
// takes the default, a negative SiblingWeight or RelatedPopNorm turns the
// signal off.
func (o *Options) setSiblingDefaults() {
	if o.RelatedPopNorm == 0 {
		o.RelatedPopNorm = defaultRelatedPopNorm
	}
	if o.SiblingWeight == 0 {
		o.SiblingWeight = defaultSiblingWeight
	}
	if o.SiblingsPerAnchor <= 0 {
		o.SiblingsPerAnchor = defaultSiblingsPerAnchor
	}
}

// addSiblings proposes up to n products of anchor a's product group (other
// than a), each as a related candidate whose relation strength grows by w
// times SiblingWeight: a sibling weighs as much as the anchor's strongest
// learned relation when SiblingWeight is 1. Siblings go in id order; the
// filters (stock, size, bought) come later, as for every candidate.
func (e *Engine) addSiblings(pk *picker, a uint32, w float32, n int) {
	sw := float32(e.opts.SiblingWeight)
	if sw <= 0 || n <= 0 {
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
		pk.propose(p, flagRelated)
		if int(p) < len(pk.slots) {
			pk.slots[p].rel += w * sw
		}
		n--
	}
}

// normalizeRelated divides the weights of pk.rels (an anchor's relations,
// strongest first) by (1 + popularity)^RelatedPopNorm and re-sorts them,
// strongest first, ties to the smaller id.
func (e *Engine) normalizeRelated(pk *picker) {
	a := e.opts.RelatedPopNorm
	for i := range pk.rels {
		r := &pk.rels[i]
		v := e.pop.valueAt(e.pop.logScore(r.p), pk.now)
		r.w = float32(float64(r.w) / math.Pow(1+v, a))
	}
	slices.SortFunc(pk.rels, func(x, y relEntry) int {
		switch {
		case x.w > y.w:
			return -1
		case x.w < y.w:
			return 1
		}
		return cmpU32(x.p, y.p)
	})
}
