package profile

import (
	"errors"
	"math"

	"github.com/omnipick/omnipick/internal/binfmt"
)

// The profile encoding, version 2 (frozen: a new layout gets a new version,
// and decode keeps reading the old ones). It is both how the arenas hold
// profiles, read and written on every pick and event, and how engine
// snapshots store them, so a snapshot copies records as they are. Counts
// and ids are uvarints (u), weights little-endian float32 (f32), strings
// a uvarint length and the bytes (s), flags one byte 0 or 1 (b):
//
//	last:u
//	affinity:    n:u n×(facet:u weight:f32)           sorted by facet
//	sizes:       n:u n×(group:u size:u time:u purchase:b)
//	purchases:   n:u n×(product:u time:u)             sorted by product
//	views:       n:u n×(product:u time:u)             oldest first
//	cart:        n:u n×(sku:u product:u time:u)       sku NoSKU: no size chosen
//	links:       n:u n×(anonymous id:s)
//	merged_to:s
//	--- from version 2 on:
//	merged_anon:b
//	impressions: n:u n×(product:u time:u)             oldest first
//	exclusions:  n:u n×(product:u until:u)
//	campaigns:   n:u n×(name:s time:u n:u n×product:u)
//
// Times are unix seconds. Version 1 ends after merged_to.
//
// Version 3 has version 2's layout with every time but last stored as a
// difference, zigzag-encoded (z: a signed varint, small either side of
// 0): views and impressions, kept oldest first, each from the one before
// (the first from last), every other time from last. An absolute time
// takes five bytes; most differences take one to three: the bench
// world's profiles are 17% smaller (282 -> 234 bytes at 10M customers),
// in the arenas and in snapshots.
const Version = 3

// MaxCampaignItems bounds a decoded campaign's products; it equals
// engine.MaxK (a test checks).
const MaxCampaignItems = 100

// appendEncoding appends pr's encoding (version 3) to b.
func (pr *Profile) appendEncoding(b []byte) []byte {
	u := func(v uint32) { b = binfmt.AppendUvarint(b, uint64(v)) }
	last := pr.Last
	since := func(ref, t uint32) { b = binfmt.AppendVarint(b, int64(ref)-int64(t)) }
	u(last)
	u(uint32(len(pr.Aff)))
	for _, a := range pr.Aff {
		u(a.Facet)
		b = binfmt.AppendFloat32(b, a.W)
	}
	u(uint32(len(pr.Sizes)))
	for _, s := range pr.Sizes {
		u(s.Group)
		u(s.Size)
		since(last, s.T)
		b = append(b, b2u(s.Purchase))
	}
	stamps := func(list []Stamp, chained bool) {
		u(uint32(len(list)))
		ref := last
		for _, s := range list {
			u(s.P)
			since(ref, s.T)
			if chained {
				ref = s.T
			}
		}
	}
	stamps(pr.Purchased, false)
	stamps(pr.Views, true)
	u(uint32(len(pr.Cart)))
	for _, c := range pr.Cart {
		u(c.SKU)
		u(c.P)
		since(last, c.T)
	}
	u(uint32(len(pr.Links)))
	for _, l := range pr.Links {
		b = binfmt.AppendString(b, l)
	}
	b = binfmt.AppendString(b, pr.MergedTo)
	b = append(b, b2u(pr.MergedAnon))
	stamps(pr.Shown, true)
	stamps(pr.Excl, false)
	u(uint32(len(pr.Camps)))
	for _, c := range pr.Camps {
		b = binfmt.AppendString(b, c.Name)
		since(last, c.T)
		u(uint32(len(c.Items)))
		for _, p := range c.Items {
			u(p)
		}
	}
	return b
}

// times reads the times of one profile: absolute before version 3, else
// differences from a reference (see Version).
type times struct {
	r        *binfmt.Reader
	relative bool
	bad      bool // a time decoded outside uint32
}

// at reads a time stored against ref.
func (t *times) at(ref uint32) uint32 {
	if !t.relative {
		return t.r.Uint32()
	}
	v := int64(ref) - t.r.Varint()
	if v < 0 || v > math.MaxUint32 {
		t.bad = true
		return 0
	}
	return uint32(v)
}

// decode reads a profile written by appendEncoding (version 1, 2 or 3) into
// pr, replacing its contents but reusing its slices' capacity: once pr has
// grown to the profiles it reads, decoding allocates nothing, strings
// included when they equal those pr holds. With strs unset it stops before
// the campaigns and skips the links and mergedTo, leaving them as they
// were: the picks path needs none of them and copying strings allocates.
// It checks products and facets against the given bounds.
func (pr *Profile) decode(r *binfmt.Reader, version byte, facets, products uint32, strs bool) error {
	const maxEntries = 1 << 20
	var err error
	pr.Last = r.Uint32()
	tm := times{r: r, relative: version >= 3}
	pr.Aff = resize(pr.Aff, r.Count(maxEntries))
	for i := range pr.Aff {
		pr.Aff[i] = AffEntry{Facet: r.Uint32(), W: r.Float32()}
		if pr.Aff[i].Facet >= facets || (i > 0 && pr.Aff[i].Facet <= pr.Aff[i-1].Facet) {
			return errors.New("affinity facets out of range or order")
		}
	}
	pr.Sizes = resize(pr.Sizes, r.Count(maxEntries))
	for i := range pr.Sizes {
		pr.Sizes[i] = SizeEntry{Group: r.Uint32(), Size: r.Uint32(), T: tm.at(pr.Last), Purchase: r.Bool()}
	}
	if pr.Purchased, err = decodeStamps(&tm, pr.Purchased, pr.Last, false, products); err != nil {
		return err
	}
	if pr.Views, err = decodeStamps(&tm, pr.Views, pr.Last, true, products); err != nil {
		return err
	}
	pr.Cart = resize(pr.Cart, r.Count(maxEntries))
	for i := range pr.Cart {
		pr.Cart[i] = CartEntry{SKU: r.Uint32(), P: r.Uint32(), T: tm.at(pr.Last)}
		if pr.Cart[i].P >= products {
			return errors.New("cart product out of range")
		}
	}
	n := r.Count(maxEntries)
	if strs {
		pr.Links = resize(pr.Links, n)
		for i := range pr.Links {
			decodeString(r, &pr.Links[i])
		}
		decodeString(r, &pr.MergedTo)
	} else {
		for range n + 1 { // the links, then mergedTo
			r.Bytes()
		}
	}
	pr.MergedAnon = false
	if version < 2 {
		pr.Shown, pr.Excl, pr.Camps = pr.Shown[:0], pr.Excl[:0], pr.Camps[:0]
		return tm.err()
	}
	pr.MergedAnon = r.Bool()
	if pr.Shown, err = decodeStamps(&tm, pr.Shown, pr.Last, true, products); err != nil {
		return err
	}
	if pr.Excl, err = decodeStamps(&tm, pr.Excl, pr.Last, false, products); err != nil {
		return err
	}
	if !strs {
		pr.Camps = pr.Camps[:0]
		return tm.err()
	}
	pr.Camps = resize(pr.Camps, r.Count(maxEntries))
	for i := range pr.Camps {
		c := &pr.Camps[i]
		decodeString(r, &c.Name)
		c.T = tm.at(pr.Last)
		c.Items = resize(c.Items, r.Count(MaxCampaignItems))
		for j := range c.Items {
			if c.Items[j] = r.Uint32(); c.Items[j] >= products {
				return errors.New("campaign product out of range")
			}
		}
	}
	return tm.err()
}

// decodeStamps reads a list of (product, time) pairs into s's array;
// with chained, each time (version 3) is stored against the one before.
func decodeStamps(tm *times, s []Stamp, last uint32, chained bool, products uint32) ([]Stamp, error) {
	r := tm.r
	s = resize(s, r.Count(1<<20))
	ref := last
	for i := range s {
		s[i] = Stamp{P: r.Uint32(), T: tm.at(ref)}
		if s[i].P >= products {
			return s, errors.New("product out of range")
		}
		if chained {
			ref = s[i].T
		}
	}
	return s, nil
}

// err is the reader's error, or one for a time out of range.
func (t *times) err() error {
	if err := t.r.Err(); err != nil {
		return err
	}
	if t.bad {
		return errors.New("time out of range")
	}
	return nil
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

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// AppendEncoding appends pr's encoding (version Version) to b: how a
// profile travels between stores (engine.Merge records).
func (pr *Profile) AppendEncoding(b []byte) []byte { return pr.appendEncoding(b) }

// Decode reads a whole encoding of version 1 to Version written by
// AppendEncoding into pr, checking facets and products against the given
// bounds.
func (pr *Profile) Decode(b []byte, version byte, facets, products uint32) error {
	if version < 1 || version > Version {
		return errors.New("unknown profile version")
	}
	r := binfmt.NewReader(b)
	if err := pr.decode(r, version, facets, products, true); err != nil {
		return err
	}
	if r.Len() != 0 {
		return errors.New("trailing bytes after the profile")
	}
	return nil
}
