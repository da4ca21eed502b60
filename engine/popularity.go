package engine

import (
	"math"
	"sync/atomic"
)

// popularity keeps a time-decayed count per product as its value at a
// reference time: val = v(t) * 2^((t - ref)/halfLife) for the decayed
// count v at any time t, ref in half-lives since the epoch. The decay is
// thus one factor common to every product: comparing values compares
// counts at any common time, nothing is re-decayed as time passes, and a
// picks call turns a value into the count now with one multiplication by
// its decayDown(): no exp per candidate, where the log-scores kept before
// (log2 v(t) + t/halfLife, the same thing with the decay as an offset)
// cost an Exp2 per candidate to turn back into a count. Each value is a float64
// updated with compare-and-swap; 0 means none (the product never seen, or
// its count fell to nothing).
//
// ref is an integer, moved forward only by rebase, under the engine's
// write lock, when events get more than maxPopOffset half-lives past it
// (values would otherwise grow without bound): every value and top-list
// score is then multiplied by an exact power of two, so their order is
// kept and the same records in the same order give the same values.
type popularity struct {
	val      []atomic.Uint64 // float64 bits; grows only under the engine's write lock
	ref      atomic.Uint64   // float64 bits; written only under the engine's write lock
	halfLife float64         // seconds
}

// maxPopOffset bounds how far past ref an event may be, in half-lives,
// before the reference moves: 2^64 times the largest count stays far from
// overflowing, and the reference moves once every 64 half-lives of time.
const maxPopOffset = 64

// minPopValue is the count at or below which a product's popularity is
// dropped (a negative weight, a return, took it to nothing).
const minPopValue = 1e-9

func (p *popularity) grow(n int) {
	if n <= len(p.val) {
		return
	}
	val := make([]atomic.Uint64, n+n/4+16)
	for i := range p.val {
		val[i].Store(p.val[i].Load())
	}
	p.val = val
}

func (p *popularity) refHL() float64 { return math.Float64frombits(p.ref.Load()) }

// at returns time t (unix seconds) in half-lives since the epoch.
func (p *popularity) at(t uint32) float64 { return float64(t) / p.halfLife }

// offset returns time t in half-lives since the reference. It subtracts
// in seconds first: t/halfLife alone is a large number (hundreds of
// thousands for a one-hour half-life), whose rounding would cost the
// offset, and every count, a relative error near 1e-11.
func (p *popularity) offset(t uint32) float64 {
	return (float64(t) - p.refHL()*p.halfLife) / p.halfLife
}

// needsRebase reports whether an event at time t is too far past the
// reference (see rebase).
func (p *popularity) needsRebase(t uint32) bool {
	return p.offset(t) > maxPopOffset
}

// rebase moves the reference to the whole half-life at or before time t
// and scales every value by the same exact power of two. It returns the
// factor for the top lists' scores. The engine's write lock must be held.
func (p *popularity) rebase(t uint32) (shift int) {
	ref := p.refHL()
	next := math.Floor(p.at(t))
	if !(next > ref) {
		return 0
	}
	shift = int(next - ref)
	for i := range p.val {
		if bits := p.val[i].Load(); bits != 0 {
			p.val[i].Store(math.Float64bits(math.Ldexp(math.Float64frombits(bits), -shift)))
		}
	}
	p.ref.Store(math.Float64bits(next))
	return shift
}

// add adds w (may be negative) at time t (seconds) and returns the new
// value (0: none).
func (p *popularity) add(d uint32, w float64, t uint32) float64 {
	if int(d) >= len(p.val) {
		return 0
	}
	g := math.Exp2(p.offset(t)) // the value of a count of 1 at time t
	for {
		old := p.val[d].Load()
		v := math.Float64frombits(old) + w*g
		if !(v > minPopValue*g) {
			v = 0
		}
		if p.val[d].CompareAndSwap(old, math.Float64bits(v)) {
			return v
		}
	}
}

// value returns product d's value at the reference time (0 if none).
func (p *popularity) value(d uint32) float64 {
	if int(d) >= len(p.val) {
		return 0
	}
	return math.Float64frombits(p.val[d].Load())
}

// decayDown returns the factor that turns a value into the count at time
// now: a value times it is the decayed count then.
func (p *popularity) decayDown(now uint32) float64 {
	return math.Exp2(-p.offset(now))
}

// noScore is "no popularity" in the log-scores of snapshots before
// version 5.
const noScore = -math.MaxFloat64

// fromLogScores sets every value from the log-scores of snapshots before
// version 5 (ls = log2 v(t) + t/halfLife, noScore for none), choosing a
// reference near the largest, and returns the conversion for their top
// lists' scores. Called on an engine not yet shared.
func (p *popularity) fromLogScores(ls []float64) func(float64) float64 {
	top := noScore
	for _, s := range ls {
		top = max(top, s)
	}
	ref := 0.0
	if top != noScore {
		ref = math.Floor(top)
	}
	p.ref.Store(math.Float64bits(ref))
	conv := func(s float64) float64 {
		if s == noScore {
			return 0
		}
		return math.Exp2(s - ref)
	}
	for d, s := range ls {
		p.val[d].Store(math.Float64bits(conv(s)))
	}
	return conv
}

// rebasePopularity moves popularity's reference up to time t and rescales
// the top lists by the same power of two (see popularity). It takes the
// engine's write lock: events call it, rarely, before taking it shared.
func (e *Engine) rebasePopularity(t uint32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.pop.needsRebase(t) { // another event moved it meanwhile
		return
	}
	shift := e.pop.rebase(t)
	if shift == 0 {
		return
	}
	for i := range e.tops {
		e.tops[i].rescale(shift)
	}
	e.global.rescale(shift)
}
