package engine

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/omnipick/omnipick/index"
	"github.com/omnipick/omnipick/index/binfmt"
)

// Snapshot encoding of an engine, version 2 (frozen; a new layout gets a new
// version and the loader keeps reading the old ones):
//
//	version:byte index-snapshot
//	tops:    nfacets ×(n ×(product:uvarint logscore:f64))
//	global:  n ×(product logscore)
//	excluded: n ×(product:uvarint until:uvarint)             (version 2)
//	related: nproducts ×(n ×(product:uvarint weight:f32))
//	popularity: nproducts ×(logscore:f64)
//	events applied: numEventTypes ×uvarint
//	profiles: nsections ×(n ×profile)
//
// A profile is stored with its id, so a snapshot loads into any number of
// shards. Version 2 appends to each profile: merged_anon:byte, impressions
// n ×(product time), exclusions n ×(product until), campaigns
// n ×(name time n ×product). Version 1 is version 2 without those.
// Version 3 is version 2 followed by the event ids applied within the
// window (see eventIDs.appendSnapshot):
//
//	event ids: latest:uvarint n:uvarint n ×(hash:uvarint receipt:uvarint)
const engineSnapshotVersion = 3

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
	counts   []uint64
	products int
}

// BeginSnapshot starts a snapshot of the engine as it is now. The caller
// must make sure no Apply runs during this call (the durable store holds its
// apply lock); reads may go on. Only one capture runs at a time: finish it
// with WriteTo before beginning another.
func (e *Engine) BeginSnapshot() *Capture {
	e.snapMu.Lock() // released by WriteTo
	c := &Capture{e: e}
	e.mu.RLock()
	c.products = e.idx.Products()
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
		c.pop[p] = e.pop.ls[p].Load()
	}
	e.mu.RUnlock()
	c.counts = make([]uint64, len(e.applied))
	for i := range e.applied {
		c.counts[i] = e.applied[i].Load()
	}

	e.idxSnap.Lock()
	e.idxSnapPending, e.idxSnapBytes = true, nil
	e.idxSnap.Unlock()
	e.rel.snapN = c.products // no event runs now; stripe locks below publish it
	for i := range stripes {
		e.rel.mu[i].Lock()
		e.rel.snapPending[i], e.rel.snapLists[i] = true, nil
		e.rel.mu[i].Unlock()
	}
	for i := range e.shards {
		s := &e.shards[i]
		s.mu.Lock()
		s.snapPending, s.snap = true, nil
		s.mu.Unlock()
	}
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
	write([]byte{engineSnapshotVersion})
	e.mu.RLock()
	e.captureIndexLocked()
	e.mu.RUnlock()
	write(e.idxSnapBytes)
	e.idxSnapBytes = nil
	write(c.head)
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
	b := binfmt.AppendUvarint(make([]byte, 0, 1<<20), uint64(c.products))
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
	for i := range stripes {
		e.rel.snapLists[i] = nil
	}
	b = binfmt.AppendUvarint(b, uint64(c.products))
	for _, bits := range c.pop {
		b = binfmt.AppendFloat(b, math.Float64frombits(bits))
	}
	for _, n := range c.counts {
		b = binfmt.AppendUvarint(b, n)
	}
	b = binfmt.AppendUvarint(b, uint64(len(e.shards)))
	write(b)
	for i := range e.shards {
		s := &e.shards[i]
		s.mu.Lock()
		s.captureLocked()
		sb := s.snap
		s.snap = nil
		s.mu.Unlock()
		write(sb)
	}
	write(c.ids)
	c.ids = nil
	if err != nil {
		return total, fmt.Errorf("cannot write engine snapshot: %w", err)
	}
	return total, nil
}

// captureLocked encodes the shard's profiles if a capture is waiting for
// them. s.mu must be held.
func (s *shard) captureLocked() {
	if !s.snapPending {
		return
	}
	s.snapPending = false
	b := make([]byte, 0, 64+len(s.data)+len(s.refs)*16)
	b = binfmt.AppendUvarint(b, uint64(len(s.custProf)+len(s.anonProf)))
	for kind, d := range []*index.Dict{s.customers, s.anons} {
		slots := s.custProf
		if kind == 1 {
			slots = s.anonProf
		}
		for i, name := range d.All() {
			b = append(b, byte(kind))
			b = binfmt.AppendString(b, name)
			b = s.appendRecordOf(b, slots[i])
		}
	}
	s.snap = b
}

func (pr *profile) appendSnapshot(b []byte) []byte {
	u := func(v uint32) { b = binfmt.AppendUvarint(b, uint64(v)) }
	u(pr.last)
	u(uint32(len(pr.aff)))
	for _, a := range pr.aff {
		u(a.facet)
		b = binfmt.AppendFloat32(b, a.w)
	}
	u(uint32(len(pr.sizes)))
	for _, s := range pr.sizes {
		u(s.group)
		u(s.size)
		u(s.t)
		b = append(b, b2u(s.purchase))
	}
	for _, list := range [][]stamp{pr.purchased, pr.views} {
		u(uint32(len(list)))
		for _, s := range list {
			u(s.p)
			u(s.t)
		}
	}
	u(uint32(len(pr.cart)))
	for _, c := range pr.cart {
		u(c.sku)
		u(c.p)
		u(c.t)
	}
	u(uint32(len(pr.links)))
	for _, l := range pr.links {
		b = binfmt.AppendString(b, l)
	}
	b = binfmt.AppendString(b, pr.mergedTo)
	b = append(b, b2u(pr.mergedAnon))
	for _, list := range [][]stamp{pr.shown, pr.excl} {
		u(uint32(len(list)))
		for _, s := range list {
			u(s.p)
			u(s.t)
		}
	}
	u(uint32(len(pr.camps)))
	for _, c := range pr.camps {
		b = binfmt.AppendString(b, c.name)
		u(c.t)
		u(uint32(len(c.items)))
		for _, p := range c.items {
			u(p)
		}
	}
	return b
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
	e := New(opts)
	r := binfmt.NewReader(data)
	version := r.Byte()
	if version < 1 || version > engineSnapshotVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadSnapshot, version)
	}
	idx, err := index.LoadSnapshot(r)
	if err != nil {
		return nil, err
	}
	e.idx = idx
	e.syncFacets()
	products, facets := uint32(idx.Products()), uint32(idx.Facets())
	bad := func(what string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadSnapshot, fmt.Sprintf(what, args...))
	}
	if n := r.Count(math.MaxInt32); n != len(e.tops) {
		return nil, bad("%d top lists for %d facets", n, len(e.tops))
	}
	for i := range e.tops {
		if err := e.tops[i].loadSnapshot(r, products); err != nil {
			return nil, err
		}
	}
	if err := e.global.loadSnapshot(r, products); err != nil {
		return nil, err
	}
	if version >= 2 {
		n := r.Count(int(products))
		for range n {
			p, until := r.Uint32(), r.Uint32()
			if p >= products {
				return nil, bad("exclusion of product %d", p)
			}
			if e.excluded == nil {
				e.excluded = make(map[uint32]uint32, n)
			}
			e.excluded[p] = until
		}
	}
	e.rel.grow(int(products))
	e.pop.grow(int(products))
	if n := r.Count(math.MaxInt32); n != int(products) {
		return nil, bad("%d relation lists for %d products", n, products)
	}
	for p := range products {
		n := r.Count(math.MaxInt32)
		if n > r.Len()/5 { // an entry takes 5 bytes at the least
			return nil, bad("%d relations of product %d in %d bytes", n, p, r.Len())
		}
		// Lists are stored strongest first: a smaller MaxRelated than when
		// the snapshot was written keeps the strongest, and the rest are
		// read past.
		l := make([]relEntry, 0, min(n, e.opts.MaxRelated))
		for i := range n {
			q, w := r.Uint32(), r.Float32()
			if q >= products || !(w > 0) {
				return nil, bad("relation %d->%d weight %v", p, q, w)
			}
			if i < e.opts.MaxRelated {
				l = append(l, relEntry{p: q, w: w})
			}
		}
		e.rel.set(p, l)
	}
	if n := r.Count(math.MaxInt32); n != int(products) {
		return nil, bad("%d popularity scores for %d products", n, products)
	}
	for p := range products {
		e.pop.ls[p].Store(math.Float64bits(r.Float()))
	}
	for i := range e.applied {
		e.applied[i].Store(r.Uvarint())
	}
	sections := r.Count(math.MaxInt32)
	// What is left is the profiles, spread evenly over the shards by
	// hash: give each arena its share at once.
	for i := range e.shards {
		e.shards[i].reserveLocked(r.Len()/len(e.shards) + r.Len()/len(e.shards)/16)
	}
	for range sections {
		n := r.Count(math.MaxInt32)
		for range n {
			kind, name := r.Byte(), r.String()
			if r.Err() != nil || kind > 1 || name == "" {
				return nil, bad("profile header")
			}
			s, h := e.shardOf(name)
			slot, _ := s.slotLocked(name, h, kind == 1, true)
			pr := &s.scratch
			rest := r.Rest()
			if err := pr.decode(r, version, facets, products, true); err != nil {
				return nil, fmt.Errorf("%w: profile %q: %v", ErrBadSnapshot, name, err)
			}
			if version >= 2 {
				// The arena holds profiles in this very encoding: store
				// the checked bytes as they are, without encoding again.
				s.storeLocked(slot, pr, rest[:len(rest)-r.Len()], 0)
			} else {
				s.writeLocked(slot, pr)
			}
		}
	}
	if version >= 3 {
		if err := e.ids.loadSnapshot(r); err != nil {
			return nil, bad("event ids: %v", err)
		}
	}
	if r.Err() != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, r.Err())
	}
	if r.Len() != 0 {
		return nil, bad("%d trailing bytes", r.Len())
	}
	return e, nil
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

// decode reads a profile written by appendSnapshot (version 1 or 2) into
// pr, replacing its contents but reusing its slices' capacity: once pr has
// grown to the profiles it reads, decoding allocates nothing, strings
// included when they equal those pr holds. With strs unset it stops before
// the campaigns and skips the links and mergedTo, leaving them as they
// were: the picks path needs none of them and copying strings allocates.
// It checks products and facets against the given bounds.
func (pr *profile) decode(r *binfmt.Reader, version byte, facets, products uint32, strs bool) error {
	const maxEntries = 1 << 20
	var err error
	pr.last = r.Uint32()
	pr.aff = resize(pr.aff, r.Count(maxEntries))
	for i := range pr.aff {
		pr.aff[i] = affEntry{facet: r.Uint32(), w: r.Float32()}
		if pr.aff[i].facet >= facets || (i > 0 && pr.aff[i].facet <= pr.aff[i-1].facet) {
			return errors.New("affinity facets out of range or order")
		}
	}
	pr.sizes = resize(pr.sizes, r.Count(maxEntries))
	for i := range pr.sizes {
		pr.sizes[i] = sizeEntry{group: r.Uint32(), size: r.Uint32(), t: r.Uint32(), purchase: r.Bool()}
	}
	if pr.purchased, err = decodeStamps(r, pr.purchased, products); err != nil {
		return err
	}
	if pr.views, err = decodeStamps(r, pr.views, products); err != nil {
		return err
	}
	pr.cart = resize(pr.cart, r.Count(maxEntries))
	for i := range pr.cart {
		pr.cart[i] = cartEntry{sku: r.Uint32(), p: r.Uint32(), t: r.Uint32()}
		if pr.cart[i].p >= products {
			return errors.New("cart product out of range")
		}
	}
	n := r.Count(maxEntries)
	if strs {
		pr.links = resize(pr.links, n)
		for i := range pr.links {
			decodeString(r, &pr.links[i])
		}
		decodeString(r, &pr.mergedTo)
	} else {
		for range n + 1 { // the links, then mergedTo
			r.Bytes()
		}
	}
	pr.mergedAnon = false
	if version < 2 {
		pr.shown, pr.excl, pr.camps = pr.shown[:0], pr.excl[:0], pr.camps[:0]
		return r.Err()
	}
	pr.mergedAnon = r.Bool()
	if pr.shown, err = decodeStamps(r, pr.shown, products); err != nil {
		return err
	}
	if pr.excl, err = decodeStamps(r, pr.excl, products); err != nil {
		return err
	}
	if !strs {
		pr.camps = pr.camps[:0]
		return r.Err()
	}
	pr.camps = resize(pr.camps, r.Count(maxEntries))
	for i := range pr.camps {
		c := &pr.camps[i]
		decodeString(r, &c.name)
		c.t = r.Uint32()
		c.items = resize(c.items, r.Count(MaxK))
		for j := range c.items {
			if c.items[j] = r.Uint32(); c.items[j] >= products {
				return errors.New("campaign product out of range")
			}
		}
	}
	return r.Err()
}

// decodeStamps reads a list of (product, time) pairs into s's array.
func decodeStamps(r *binfmt.Reader, s []stamp, products uint32) ([]stamp, error) {
	s = resize(s, r.Count(1<<20))
	for i := range s {
		s[i] = stamp{p: r.Uint32(), t: r.Uint32()}
		if s[i].p >= products {
			return s, errors.New("product out of range")
		}
	}
	return s, nil
}

// decodeString reads a string into *dst, copying it only when it differs
// from what *dst holds.
func decodeString(r *binfmt.Reader, dst *string) {
	if b := r.Bytes(); *dst != string(b) {
		*dst = string(b)
	}
}

// resize returns s with length n, reusing its array when it has the
// capacity; the elements' old values stay for the caller to overwrite (or
// compare).
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// syncFacets grows the per-facet arrays (facet kinds, top lists) to the
// index's facet count. e.mu must be held exclusively (or e not yet shared).
func (e *Engine) syncFacets() {
	n := e.idx.Facets()
	for f := len(e.weights.kind); f < n; f++ {
		k := uint8(kindCategory)
		switch name := e.idx.FacetName(uint32(f)); {
		case strings.HasPrefix(name, index.FacetBrand):
			k = kindBrand
		case strings.HasPrefix(name, index.FacetTag):
			k = kindTag
		}
		e.weights.kind = append(e.weights.kind, k)
	}
	for len(e.tops) < n {
		e.tops = append(e.tops, topList{})
	}
}
