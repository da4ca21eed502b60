package engine

import (
	"slices"
	"strings"
	"time"

	"github.com/omnipick/omnipick/index"
)

// ProfileView is a profile as the engine sees it, with external ids, for
// debugging and support. Built on request; it shares nothing with the
// engine.
type ProfileView struct {
	ID         string
	Anonymous  bool
	MergedInto string // for an anonymous id merged into a customer
	Affinities []FacetWeight
	Sizes      []SizeView
	Purchases  []ItemAt
	Cart       []CartLine
	Views      []ItemAt
	Links      []string // anonymous ids merged into this customer
	// MergedIntoAnonymous: MergedInto is another anonymous id (a chain).
	MergedIntoAnonymous bool
	Impressions         []ItemAt // most recent first
	Exclusions          []ItemAt // At is when the exclusion ends
	Campaigns           []CampaignView
}

// CampaignView is what an email campaign showed, first chosen At.
type CampaignView struct {
	Name     string
	At       time.Time
	Products []string
}

// FacetWeight is one affinity, decayed to the time of the request.
type FacetWeight struct {
	Facet  string // "category:women/knitwear", "brand:nordic", "tag:winter"
	Weight float64
}

// SizeView is a size the customer is known to wear.
type SizeView struct {
	SizeGroup string
	Size      string
	At        time.Time
	Purchase  bool // learned from a purchase rather than a cart add
	Current   bool // the size picks filter on for this group
}

// ItemAt is a product with a time.
type ItemAt struct {
	Product string
	At      time.Time
}

// CartLine is one line of the cart.
type CartLine struct {
	Product string
	SKU     string // empty when no size was chosen
	At      time.Time
}

// Profile returns the view of a customer (anon false) or anonymous id.
func (e *Engine) Profile(id string, anon bool) (ProfileView, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s, h := e.shardOf(id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	slot, ok := s.slotLocked(id, h, anon, false)
	if !ok {
		return ProfileView{}, false
	}
	pr := new(profile) // of its own: the view's strings outlive the lock
	s.readLocked(slot, pr, true)
	v := ProfileView{ID: id, Anonymous: anon, MergedInto: pr.mergedTo, MergedIntoAnonymous: pr.mergedAnon, Links: slices.Clone(pr.links)}
	now := secs(e.nowMS())
	cp := profile{last: pr.last, aff: slices.Clone(pr.aff)}
	cp.decayTo(now, e.opts.AffinityHalfLife.Seconds())
	for _, a := range cp.aff {
		v.Affinities = append(v.Affinities, FacetWeight{Facet: facetLabel(e.idx.FacetName(a.facet)), Weight: float64(a.w)})
	}
	slices.SortFunc(v.Affinities, func(a, b FacetWeight) int {
		if a.Weight != b.Weight {
			if a.Weight > b.Weight {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Facet, b.Facet)
	})
	for _, sz := range pr.sizes {
		v.Sizes = append(v.Sizes, SizeView{
			SizeGroup: e.idx.GroupName(sz.group), Size: e.idx.SizeName(sz.size),
			At: at(sz.t), Purchase: sz.purchase, Current: pr.wear(sz.group) == sz.size,
		})
	}
	name := func(p uint32) string {
		if it := e.idx.ItemAt(p); it != nil {
			return it.ID
		}
		return ""
	}
	for _, s := range pr.purchased {
		v.Purchases = append(v.Purchases, ItemAt{Product: name(s.p), At: at(s.t)})
	}
	slices.SortFunc(v.Purchases, func(a, b ItemAt) int { return b.At.Compare(a.At) })
	for _, c := range pr.cart {
		line := CartLine{Product: name(c.p), At: at(c.t)}
		if c.sku != noSKU {
			line.SKU = e.skuName(c.p, c.sku)
		}
		v.Cart = append(v.Cart, line)
	}
	for i := len(pr.views) - 1; i >= 0; i-- {
		v.Views = append(v.Views, ItemAt{Product: name(pr.views[i].p), At: at(pr.views[i].t)})
	}
	for i := len(pr.shown) - 1; i >= 0; i-- {
		v.Impressions = append(v.Impressions, ItemAt{Product: name(pr.shown[i].p), At: at(pr.shown[i].t)})
	}
	for _, x := range pr.excl {
		if x.t > now {
			v.Exclusions = append(v.Exclusions, ItemAt{Product: name(x.p), At: at(x.t)})
		}
	}
	for _, c := range pr.camps {
		cv := CampaignView{Name: c.name, At: at(c.t)}
		for _, p := range c.items {
			cv.Products = append(cv.Products, name(p))
		}
		v.Campaigns = append(v.Campaigns, cv)
	}
	return v, true
}

func (e *Engine) skuName(p, sku uint32) string {
	if it := e.idx.ItemAt(p); it != nil {
		for _, v := range it.Variants {
			if v.Dense == sku {
				return v.SKU
			}
		}
	}
	return ""
}

func at(t uint32) time.Time { return time.Unix(int64(t), 0).UTC() }

func facetLabel(name string) string {
	switch {
	case strings.HasPrefix(name, index.FacetCategory):
		return "category:" + name[len(index.FacetCategory):]
	case strings.HasPrefix(name, index.FacetBrand):
		return "brand:" + name[len(index.FacetBrand):]
	case strings.HasPrefix(name, index.FacetTag):
		return "tag:" + name[len(index.FacetTag):]
	}
	return name
}
