package engine

import (
	"math"
	"sync"
)

// The blend the engine fits itself (issue 11, item 4; Options.Blend, off
// by default: docs/ranking.md says why): at each purchase applied, the
// candidates web picks would have proposed to that customer
// just before are scored with the current weights, the bought product is
// the positive, the others are negatives, and a pairwise logistic model
// (BPR: maximise log sigmoid(score(bought) - score(other)), averaged over
// the others) takes one SGD step. Web and app picks then score
// candidates with the learned weights instead of the hand-set priors and
// weights, once the model has learned from BlendMinPurchases purchases.
// Ads, email and the store screen keep their tiered priors: their
// contract puts the cart first, whatever a model learns.
//
// Features of one candidate, each the hand-set score's own term, so the
// hand-set web ranking is one point of the model's space and the model
// starts there (initialWeights):
const (
	featCart       = iota // in the cart (0/1)
	featViewed            // viewed lately (0/1)
	featRelated           // proposed by a relation, a sibling or the context (0/1)
	featTopFacet          // shares one of the customer's strongest facets (0/1)
	featAffinity          // the customer's affinity to its facets, normalised to [0, 1]
	featRelation          // relation strength relative to each anchor's strongest, summed
	featPopularity        // log popularity relative to the most popular product, [0, 1]
	numFeatures
)

// features is one candidate's feature vector; also the model's weights.
type features [numFeatures]float64

func (x *features) dot(w *features) float64 {
	s := 0.0
	for i := range x {
		s += w[i] * x[i]
	}
	return s
}

// blend is the learned model: its weights and how many purchases it has
// learned from. Its lock is a leaf (lock order 5): steps take it in the
// order Apply is called, which engine/store makes the log's order, so
// the same log gives the same weights bit for bit (float64, one fixed
// order of operations, no maps, no goroutines).
type blend struct {
	mu    sync.Mutex
	w     features
	steps uint64 // purchases learned from
}

// initialWeights is the hand-set web ranking as blend weights: the
// sources' priors over the popular prior, and the term weights.
func initialWeights(o *Options) features {
	p := &o.Priors[ChannelWeb]
	base := p[ReasonPopular]
	return features{
		featCart:       p[ReasonCart] - base,
		featViewed:     p[ReasonViewed] - base,
		featRelated:    p[ReasonRelated] - base,
		featTopFacet:   p[ReasonAffinity] - base,
		featAffinity:   o.AffinityWeight,
		featRelation:   o.RelatedWeight,
		featPopularity: o.PopularityWeight,
	}
}

// load returns the weights and the step count.
func (b *blend) load() (features, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w, b.steps
}

// set replaces the weights and the step count (snapshot loading).
func (b *blend) set(w features, steps uint64) {
	b.mu.Lock()
	b.w, b.steps = w, steps
	b.mu.Unlock()
}

// step takes one pairwise SGD step at rate lr: pos is the bought
// candidate's features, negs the others'. For each negative j, with
// d = w·(pos - x_j), the gradient of log sigmoid(d) is
// sigmoid(-d)·(pos - x_j); the step adds lr times their mean. It reports
// whether it stepped (there was a negative).
func (b *blend) step(pos *features, negs []features, lr float64) bool {
	if len(negs) == 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sp := pos.dot(&b.w)
	var g features
	for j := range negs {
		d := sp - negs[j].dot(&b.w)
		s := 1 / (1 + math.Exp(d)) // sigmoid(-d)
		for i := range g {
			g[i] += s * (pos[i] - negs[j][i])
		}
	}
	f := lr / float64(len(negs))
	for i := range b.w {
		b.w[i] += f * g[i]
	}
	b.steps++
	return true
}

// BlendState is the learned blend as it stands: its weights, by feature
// (cart, viewed, related, top facet, affinity, relation, popularity), and
// how many purchases it has learned from.
type BlendState struct {
	Weights []float64
	Steps   uint64
}

// Blend returns the learned blend's state.
func (e *Engine) Blend() BlendState {
	w, n := e.blend.load()
	return BlendState{Weights: w[:], Steps: n}
}

// learnedBound is walkBound for the learned blend: the highest score a
// product no personal source proposed can have. Each term counts at its
// largest value when its weight is positive and not at all otherwise:
// such a product is neither in the cart nor viewed, shares a strongest
// facet only if the customer has some, is related only through the
// context (similarity times ContextWeight at most), and its affinity and
// popularity are at most 1.
func (pk *picker) learnedBound() float64 {
	w := &pk.w
	b := max(0, w[featAffinity]) + max(0, w[featPopularity])
	if len(pk.topFacets) > 0 {
		b += max(0, w[featTopFacet])
	}
	if pk.ctxNorm > 0 {
		b += max(0, w[featRelated]) + max(0, w[featRelation]*pk.opts.ContextWeight)
	}
	if len(pk.boost) > 0 {
		b += pk.opts.BoostWeight
	}
	return b + max(0, pk.repeat)
}

// blendK is how many picks the learning step's candidates are gathered
// for, and blendNegatives how many of the best others it learns against:
// the places a purchase's product competes for on a page.
const (
	blendK         = 12
	blendNegatives = 4 * blendK
)

// blendExamples gathers the learning step's examples for a purchase of
// product bought by the event's customer at ts: the candidates web picks
// would have proposed just before (with the weights in use then), bought
// as the positive and the best blendNegatives others (neither buried nor
// capped) as negatives. It returns a picker holding them in examples,
// the positive first, for blendStep; or nil when the purchase teaches
// nothing (its product was not a candidate: filtered, or nothing
// proposed it; or no other was). e.mu must be held (shared).
func (e *Engine) blendExamples(ev *Event, bought uint32) *picker {
	q := Query{Customer: ev.Customer, AnonymousID: ev.AnonymousID, Channel: ChannelWeb, K: blendK, Now: ev.TS}
	pk := e.pickers.Get().(*picker)
	pk.begin(e, &q)
	if !e.gather(pk, &q, blendK, true) {
		e.pickers.Put(pk)
		return nil
	}
	cands := pk.cands
	if len(cands) > blendNegatives+1 {
		selectBest(cands, blendNegatives+1)
		cands = cands[:blendNegatives+1]
	}
	// The examples come in the candidates' order, which the state decides
	// (quickselect is deterministic): so does the step's sum.
	pk.examples = append(pk.examples[:0], features{})
	found := false
	for _, c := range cands {
		if c.score <= -buryPenalty/2 {
			continue // demoted: no page shows it
		}
		p := c.item.Dense
		h := e.idx.Hot(p)
		flags, rel := pk.sourceOf(p)
		var x features
		pk.terms(e, p, &h, c.item, flags, rel, &x)
		if p == bought {
			pk.examples[0], found = x, true
			continue
		}
		pk.examples = append(pk.examples, x)
	}
	if !found || len(pk.examples) < 2 {
		e.pickers.Put(pk)
		return nil
	}
	return pk
}

// blendStep takes the learning step on the examples blendExamples
// gathered, if the purchase was applied, and returns the picker to the
// pool. Apply calls it once the purchase is applied, so a refused record
// teaches nothing.
func (e *Engine) blendStep(pk *picker, applied bool) {
	if pk == nil {
		return
	}
	if applied {
		e.blend.step(&pk.examples[0], pk.examples[1:], e.opts.BlendRate)
	}
	e.pickers.Put(pk)
}
