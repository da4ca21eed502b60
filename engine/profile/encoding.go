package profile

import (
	"errors"

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
//	--- version 2 only:
//	merged_anon:b
//	impressions: n:u n×(product:u time:u)             oldest first
//	exclusions:  n:u n×(product:u until:u)
//	campaigns:   n:u n×(name:s time:u n:u n×product:u)
//
// Times are unix seconds. Version 1 ends after merged_to.
const Version = 2

// MaxCampaignItems bounds a decoded campaign's products; it equals
// engine.MaxK (a test checks).
const MaxCampaignItems = 100

// appendEncoding appends pr's encoding (version 2) to b.
func (pr *Profile) appendEncoding(b []byte) []byte {
	u := func(v uint32) { b = binfmt.AppendUvarint(b, uint64(v)) }
	u(pr.Last)
	u(uint32(len(pr.Aff)))
	for _, a := range pr.Aff {
		u(a.Facet)
		b = binfmt.AppendFloat32(b, a.W)
	}
	u(uint32(len(pr.Sizes)))
	for _, s := range pr.Sizes {
		u(s.Group)
		u(s.Size)
		u(s.T)
		b = append(b, b2u(s.Purchase))
	}
	for _, list := range [][]Stamp{pr.Purchased, pr.Views} {
		u(uint32(len(list)))
		for _, s := range list {
			u(s.P)
			u(s.T)
		}
	}
	u(uint32(len(pr.Cart)))
	for _, c := range pr.Cart {
		u(c.SKU)
		u(c.P)
		u(c.T)
	}
	u(uint32(len(pr.Links)))
	for _, l := range pr.Links {
		b = binfmt.AppendString(b, l)
	}
	b = binfmt.AppendString(b, pr.MergedTo)
	b = append(b, b2u(pr.MergedAnon))
	for _, list := range [][]Stamp{pr.Shown, pr.Excl} {
		u(uint32(len(list)))
		for _, s := range list {
			u(s.P)
			u(s.T)
		}
	}
	u(uint32(len(pr.Camps)))
	for _, c := range pr.Camps {
		b = binfmt.AppendString(b, c.Name)
		u(c.T)
		u(uint32(len(c.Items)))
		for _, p := range c.Items {
			u(p)
		}
	}
	return b
}

// decode reads a profile written by appendEncoding (version 1 or 2) into
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
	pr.Aff = resize(pr.Aff, r.Count(maxEntries))
	for i := range pr.Aff {
		pr.Aff[i] = AffEntry{Facet: r.Uint32(), W: r.Float32()}
		if pr.Aff[i].Facet >= facets || (i > 0 && pr.Aff[i].Facet <= pr.Aff[i-1].Facet) {
			return errors.New("affinity facets out of range or order")
		}
	}
	pr.Sizes = resize(pr.Sizes, r.Count(maxEntries))
	for i := range pr.Sizes {
		pr.Sizes[i] = SizeEntry{Group: r.Uint32(), Size: r.Uint32(), T: r.Uint32(), Purchase: r.Bool()}
	}
	if pr.Purchased, err = decodeStamps(r, pr.Purchased, products); err != nil {
		return err
	}
	if pr.Views, err = decodeStamps(r, pr.Views, products); err != nil {
		return err
	}
	pr.Cart = resize(pr.Cart, r.Count(maxEntries))
	for i := range pr.Cart {
		pr.Cart[i] = CartEntry{SKU: r.Uint32(), P: r.Uint32(), T: r.Uint32()}
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
		return r.Err()
	}
	pr.MergedAnon = r.Bool()
	if pr.Shown, err = decodeStamps(r, pr.Shown, products); err != nil {
		return err
	}
	if pr.Excl, err = decodeStamps(r, pr.Excl, products); err != nil {
		return err
	}
	if !strs {
		pr.Camps = pr.Camps[:0]
		return r.Err()
	}
	pr.Camps = resize(pr.Camps, r.Count(maxEntries))
	for i := range pr.Camps {
		c := &pr.Camps[i]
		decodeString(r, &c.Name)
		c.T = r.Uint32()
		c.Items = resize(c.Items, r.Count(MaxCampaignItems))
		for j := range c.Items {
			if c.Items[j] = r.Uint32(); c.Items[j] >= products {
				return errors.New("campaign product out of range")
			}
		}
	}
	return r.Err()
}

// decodeStamps reads a list of (product, time) pairs into s's array.
func decodeStamps(r *binfmt.Reader, s []Stamp, products uint32) ([]Stamp, error) {
	s = resize(s, r.Count(1<<20))
	for i := range s {
		s[i] = Stamp{P: r.Uint32(), T: r.Uint32()}
		if s[i].P >= products {
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

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}
