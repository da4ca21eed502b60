package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/omnipick/omnipick/engine/profile"
	"github.com/omnipick/omnipick/index"
	"github.com/omnipick/omnipick/internal/binfmt"
)

// The snapshot encoding of an engine, version 2 (frozen: a new layout gets
// a new version, and LoadSnapshot keeps reading the old ones). Counts and
// ids are uvarints (u), scores little-endian float64 (f64), weights
// float32 (f32):
//
//	version:byte
//	index:      the index snapshot (index/snapshot.go; versioned itself)
//	tops:       nfacets:u  nfacets×(n:u n×(product:u logscore:f64))
//	global:     n:u n×(product:u logscore:f64)
//	excluded:   n:u n×(product:u until:u)                  version 2 only
//	related:    nproducts:u nproducts×(n:u n×(product:u weight:f32))
//	popularity: nproducts:u nproducts×(logscore:f64)
//	applied:    numEventTypes×(count:u)
//	profiles:   nsections:u nsections×section
//
// A section is one profile shard's profiles, each with its id, so a
// snapshot loads into any number of shards; engine/profile/capture.go
// draws it, and engine/profile/encoding.go the profile encoding. The
// profile encoding's version follows the snapshot's (profileVersion):
// version 1 snapshots hold version 1 profiles, versions 2 to 6 version 2
// profiles, version 7 version 3 profiles (times stored as differences).
//
// Version 3 is version 2 followed by the event ids applied within the
// window (see eventIDs.appendSnapshot):
//
//	event ids:  latest:u n:u n×(hash:u receipt:u)
//
// Version 4 is version 3 followed by the learned blend (blend.go); an
// older snapshot loads with the blend as New sets it, as if it had learned
// nothing:
//
//	blend:      steps:u n:u n×(weight:f64)
//
// Version 5 keeps popularity as values at a reference time (popularity.go)
// instead of log-scores: the top lists' scores are those values, and the
// popularity section starts with the reference, in half-lives since the
// epoch. Older snapshots' log-scores are converted on load:
//
//	popularity: ref:f64 nproducts:u nproducts×(value:f64)
//
// Version 6 is version 5 followed by the user-neighbour signal's baskets
// and buyers (neighbours.appendSnapshot); an older snapshot loads with
// none, as if no customer had bought anything while it was on.
//
// Version 7 holds what version 6 does in length-prefixed parts, so that a
// restart loads the index, the relations and every profile section at
// the same time, on GOMAXPROCS goroutines, and can start on a part as
// soon as its bytes are in (snapshot_load.go), instead of decoding each
// to find the next. The counts the index holds come first, so the parts
// after it are checked without it. A part is len:u and len bytes:
//
//	version:byte
//	products:u  facets:u       the index's counts
//	index:      part           the index snapshot
//	head:       part           tops, global, excluded
//	relations:  part           nproducts:u nproducts×(n:u n×(product:u weight:f32))
//	popularity: part           popularity (as version 5), applied
//	profiles:   nsections:u nsections×part (a section each)
//	tail:       part           event ids, blend, neighbours
//
// and its profile sections hold profile encoding version 3 (times stored
// as differences: a profile a third smaller, in the arenas too).
const engineSnapshotVersion = 7

// ErrBadSnapshot reports a snapshot that does not decode.
var ErrBadSnapshot = errors.New("engine: malformed snapshot")

// Capture is a snapshot being taken. BeginSnapshot records at once only
// what is small (top lists, popularity, counters) and marks the rest as
// waited for: the index, each relation stripe and each profile shard is
// encoded later, by WriteTo or, if a write reaches it first, by that write
// just before it changes anything. So the snapshot is the state at one
// point in the write order while writes are held up only for the small
// part, and reads not at all.
type Capture struct {
	e        *Engine
	head     []byte // version, top lists, global list
	ids      []byte // the event ids, captured at once: they are small
	pop      []uint64
	popRef   float64
	counts   []uint64
	blend    features
	steps    uint64
	nb       []byte // the neighbour signal, captured at once
	products int
	facets   int
}

// BeginSnapshot starts a snapshot of the engine as it is now. The caller
// must make sure no Apply runs during this call (the durable store holds its
// apply lock); reads may go on. Only one capture runs at a time: finish it
// with WriteTo before beginning another.
func (e *Engine) BeginSnapshot() *Capture {
	e.snapMu.Lock() // released by WriteTo
	c := &Capture{e: e}
	e.mu.RLock()
	c.products, c.facets = e.idx.Products(), e.idx.Facets()
	b := make([]byte, 0, 64<<10)
	b = binfmt.AppendUvarint(b, uint64(len(e.tops)))
	for i := range e.tops {
		b = e.tops[i].appendSnapshot(b)
	}
	b = e.global.appendSnapshot(b)
	b = binfmt.AppendUvarint(b, uint64(len(e.excluded)))
	excl := make([]uint32, 0, len(e.excluded))
	for p := range e.excluded {
		excl = append(excl, p)
	}
	slices.Sort(excl) // the same state, the same bytes
	for _, p := range excl {
		b = binfmt.AppendUvarint(binfmt.AppendUvarint(b, uint64(p)), uint64(e.excluded[p]))
	}
	c.head = b
	c.ids = e.ids.appendSnapshot(nil)
	c.pop = make([]uint64, c.products)
	for p := range c.pop {
		c.pop[p] = e.pop.val[p].Load()
	}
	c.popRef = e.pop.refHL()
	e.mu.RUnlock()
	c.counts = make([]uint64, len(e.applied))
	for i := range e.applied {
		c.counts[i] = e.applied[i].Load()
	}
	c.blend, c.steps = e.blend.load()
	c.nb = e.nb.appendSnapshot(nil)

	e.idxSnap.Lock()
	e.idxSnapPending, e.idxSnapBytes = true, nil
	e.idxSnap.Unlock()
	e.rel.snapN = c.products // no event runs now; stripe locks below publish it
	for i := range stripes {
		e.rel.mu[i].Lock()
		e.rel.snapPending[i], e.rel.snapLists[i] = true, nil
		e.rel.mu[i].Unlock()
	}
	e.profiles.BeginCapture()
	return c
}

// captureIndexLocked encodes the index if a capture waits for it. Catalog
// writes call it holding e.mu exclusively, WriteTo holding it shared.
func (e *Engine) captureIndexLocked() {
	e.idxSnap.Lock()
	if e.idxSnapPending {
		e.idxSnapPending = false
		e.idxSnapBytes = e.idx.AppendSnapshot(make([]byte, 0, 1<<20))
	}
	e.idxSnap.Unlock()
}

// WriteTo writes the whole snapshot to w and ends the capture. Safe to run
// concurrently with writes and reads.
func (c *Capture) WriteTo(w io.Writer) (int64, error) {
	e := c.e
	defer e.snapMu.Unlock()
	var total int64
	var err error
	write := func(b []byte) {
		if err == nil {
			var n int
			n, err = w.Write(b)
			total += int64(n)
		}
	}
	var lenBuf [binary.MaxVarintLen64]byte
	partLen := func(n int) { write(binfmt.AppendUvarint(lenBuf[:0], uint64(n))) }
	part := func(b []byte) {
		partLen(len(b))
		write(b)
	}
	e.mu.RLock()
	e.captureIndexLocked()
	e.mu.RUnlock()
	b := []byte{engineSnapshotVersion}
	write(binfmt.AppendUvarint(binfmt.AppendUvarint(b, uint64(c.products)), uint64(c.facets)))
	part(e.idxSnapBytes)
	e.idxSnapBytes = nil
	part(c.head)
	c.head = nil

	// Relations, in product order, from the stripes' captured lists. The
	// outer slice grows under e.mu, so hold it shared while copying.
	e.mu.RLock()
	for i := range stripes {
		e.rel.mu[i].Lock()
		e.rel.captureLocked(i)
		e.rel.mu[i].Unlock()
	}
	e.mu.RUnlock()
	// Their length first, counted without encoding them: they are up to a
	// GiB at a million products, too much to hold twice.
	n := uvarintLen(uint64(c.products))
	for p := range c.products {
		l := e.rel.snapLists[p%stripes][p/stripes]
		n += uvarintLen(uint64(len(l)))
		for _, r := range l {
			n += uvarintLen(uint64(r.p)) + 4
		}
	}
	partLen(n)
	b = binfmt.AppendUvarint(make([]byte, 0, 1<<20), uint64(c.products))
	for p := range c.products {
		l := e.rel.snapLists[p%stripes][p/stripes]
		b = binfmt.AppendUvarint(b, uint64(len(l)))
		for _, r := range l {
			b = binfmt.AppendFloat32(binfmt.AppendUvarint(b, uint64(r.p)), r.w)
		}
		if len(b) > 1<<20 {
			write(b)
			b = b[:0]
		}
	}
	write(b)
	for i := range stripes {
		e.rel.snapLists[i] = nil
	}
	b = binfmt.AppendFloat(b[:0], c.popRef)
	b = binfmt.AppendUvarint(b, uint64(c.products))
	for _, bits := range c.pop {
		b = binfmt.AppendFloat(b, math.Float64frombits(bits))
	}
	for _, n := range c.counts {
		b = binfmt.AppendUvarint(b, n)
	}
	part(b)
	partLen(e.profiles.Shards())
	for i := range e.profiles.Shards() {
		part(e.profiles.TakeCapture(i))
	}
	b = binfmt.AppendUvarint(binfmt.AppendUvarint(b[:0], c.steps), uint64(len(c.blend)))
	for _, w := range c.blend {
		b = binfmt.AppendFloat(b, w)
	}
	partLen(len(c.ids) + len(b) + len(c.nb))
	write(c.ids)
	write(b)
	write(c.nb)
	c.ids, c.nb = nil, nil
	if err != nil {
		return total, fmt.Errorf("cannot write engine snapshot: %w", err)
	}
	return total, nil
}

func (t *topList) appendSnapshot(b []byte) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	b = binfmt.AppendUvarint(b, uint64(len(t.ids)))
	for i, id := range t.ids {
		b = binfmt.AppendFloat(binfmt.AppendUvarint(b, uint64(id)), t.scores[i])
	}
	return b
}

// LoadSnapshot returns an engine holding the state a snapshot encoded.
func LoadSnapshot(opts Options, data []byte) (*Engine, error) {
	r := binfmt.NewReader(data)
	version := r.Byte()
	if version < 1 || version > engineSnapshotVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadSnapshot, version)
	}
	if version >= 7 {
		return LoadSnapshotArriving(opts, data, nil) // its parts, all there
	}
	e := New(opts)
	idx, err := index.LoadSnapshot(r)
	if err != nil {
		return nil, err
	}
	e.idx = idx
	e.syncFacets()
	products, facets := uint32(idx.Products()), uint32(idx.Facets())
	if err := e.loadTops(r, version, products); err != nil {
		return nil, err
	}
	e.rel.grow(int(products))
	e.pop.grow(int(products))
	if err := e.loadRelations(r, products); err != nil {
		return nil, err
	}
	if err := e.loadPopularity(r, version, products); err != nil {
		return nil, err
	}
	for i := range e.applied {
		e.applied[i].Store(r.Uvarint())
	}
	sections := r.Count(math.MaxInt32)
	// What is left is the profiles, spread evenly over the shards by
	// hash: give each arena its share at once.
	e.profiles.Reserve(r.Len(), sections)
	for range sections {
		if err := e.profiles.LoadSection(r, profileVersion(version), facets, products); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
	}
	if version >= 3 {
		if err := e.ids.loadSnapshot(r); err != nil {
			return nil, badSnapshot("event ids: %v", err)
		}
	}
	if version >= 4 {
		if err := e.loadBlend(r); err != nil {
			return nil, err
		}
	}
	if version >= 6 {
		if err := e.nb.loadSnapshot(r, products); err != nil {
			return nil, err
		}
	}
	if r.Err() != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, r.Err())
	}
	if r.Len() != 0 {
		return nil, badSnapshot("%d trailing bytes", r.Len())
	}
	return e, nil
}

// profileVersion is the profile encoding a snapshot of the given version
// holds: the arenas' own from version 7 on, so those load as they are.
func profileVersion(snapshot byte) byte {
	switch {
	case snapshot == 1:
		return 1
	case snapshot < 7:
		return 2
	}
	return profile.Version
}

func badSnapshot(what string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSnapshot, fmt.Sprintf(what, args...))
}

// loadTops reads the top lists and, from version 2, the global exclusions.
func (e *Engine) loadTops(r *binfmt.Reader, version byte, products uint32) error {
	if n := r.Count(math.MaxInt32); n != len(e.tops) {
		return badSnapshot("%d top lists for %d facets", n, len(e.tops))
	}
	for i := range e.tops {
		if err := e.tops[i].loadSnapshot(r, products); err != nil {
			return err
		}
	}
	if err := e.global.loadSnapshot(r, products); err != nil {
		return err
	}
	if version < 2 {
		return nil
	}
	n := r.Count(int(products))
	for range n {
		p, until := r.Uint32(), r.Uint32()
		if p >= products {
			return badSnapshot("exclusion of product %d", p)
		}
		if e.excluded == nil {
			e.excluded = make(map[uint32]uint32, n)
		}
		e.excluded[p] = until
	}
	return nil
}

// loadPopularity reads the popularity values, or before version 5 the
// log-scores, which it converts with the top lists' scores.
func (e *Engine) loadPopularity(r *binfmt.Reader, version byte, products uint32) error {
	ref := 0.0
	if version >= 5 {
		if ref = r.Float(); math.IsNaN(ref) || math.IsInf(ref, 0) || ref != math.Floor(ref) {
			return badSnapshot("popularity reference %v", ref)
		}
	}
	if n := r.Count(math.MaxInt32); n != int(products) {
		return badSnapshot("%d popularity scores for %d products", n, products)
	}
	if version >= 5 {
		e.pop.ref.Store(math.Float64bits(ref))
		for p := range products {
			v := r.Float()
			if !(v >= 0) || math.IsInf(v, 0) {
				return badSnapshot("popularity %v of product %d", v, p)
			}
			e.pop.val[p].Store(math.Float64bits(v))
		}
		return nil
	}
	ls := make([]float64, products)
	for p := range ls {
		ls[p] = r.Float()
	}
	conv := e.pop.fromLogScores(ls)
	for i := range e.tops {
		e.tops[i].convert(conv)
	}
	e.global.convert(conv)
	return nil
}

// loadBlend reads the learned blend (version 4).
func (e *Engine) loadBlend(r *binfmt.Reader) error {
	steps := r.Uvarint()
	if n := r.Count(math.MaxInt32); n != numFeatures {
		return badSnapshot("%d blend weights for %d features", n, numFeatures)
	}
	var w features
	for i := range w {
		if w[i] = r.Float(); math.IsNaN(w[i]) || math.IsInf(w[i], 0) {
			return badSnapshot("blend weight %d is %v", i, w[i])
		}
	}
	e.blend.set(w, steps)
	return nil
}

// loadRelations reads every product's relation list.
func (e *Engine) loadRelations(r *binfmt.Reader, products uint32) error {
	if n := r.Count(math.MaxInt32); n != int(products) {
		return badSnapshot("%d relation lists for %d products", n, products)
	}
	for p := range products {
		n := r.Count(math.MaxInt32)
		if n > r.Len()/5 { // an entry takes 5 bytes at the least
			return badSnapshot("%d relations of product %d in %d bytes", n, p, r.Len())
		}
		// Lists are stored strongest first: a smaller MaxRelated than when
		// the snapshot was written keeps the strongest, and the rest are
		// read past. Each is decoded straight into its list's block (as
		// relations.set lays it out): a million products' lists, no
		// temporaries.
		k := min(n, e.opts.MaxRelated)
		var l relList
		if k > 0 {
			l = make(relList, k, 2*k)
		}
		ws := l.ws()
		for i := range n {
			q, w := r.Uint32(), r.Float32()
			if q >= products || !(w > 0) {
				return badSnapshot("relation %d->%d weight %v", p, q, w)
			}
			if i < k {
				l[i], ws[i] = q, math.Float32bits(w)
			}
		}
		e.rel.lists[p] = l
	}
	return nil
}

// convert maps the list's scores through conv (log-scores to values) and
// keeps it ordered.
func (t *topList) convert(conv func(float64) float64) {
	n := 0
	for i, s := range t.scores {
		if s = conv(s); s != 0 {
			t.ids[n], t.scores[n] = t.ids[i], s
			n++
		}
	}
	t.ids, t.scores = t.ids[:n], t.scores[:n]
	t.resort()
}

func (t *topList) loadSnapshot(r *binfmt.Reader, products uint32) error {
	n := r.Count(math.MaxInt32)
	t.ids, t.scores = make([]uint32, 0, n), make([]float64, 0, n)
	for range n {
		id, s := r.Uint32(), r.Float()
		if id >= products || math.IsNaN(s) {
			return fmt.Errorf("%w: top list entry %d", ErrBadSnapshot, id)
		}
		t.ids, t.scores = append(t.ids, id), append(t.scores, s)
	}
	return r.Err()
}

// syncFacets grows the per-facet arrays (facet kinds, top lists) to the
// index's facet count. e.mu must be held exclusively (or e not yet shared).
func (e *Engine) syncFacets() {
	n := e.idx.Facets()
	for f := len(e.weights.Kind); f < n; f++ {
		k := uint8(profile.KindCategory)
		switch name := e.idx.FacetName(uint32(f)); {
		case strings.HasPrefix(name, index.FacetBrand):
			k = profile.KindBrand
		case strings.HasPrefix(name, index.FacetTag):
			k = profile.KindTag
		}
		e.weights.Kind = append(e.weights.Kind, k)
	}
	for len(e.tops) < n {
		e.tops = append(e.tops, topList{})
	}
}
