package engine

import (
	"slices"
	"strings"
	"time"

	"github.com/omnipick/omnipick/engine/profile"
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
	pr := new(profile.Profile) // of its own: the view shares nothing with the engine
	if !e.profiles.Read(id, anon, pr, true) {
		return ProfileView{}, false
	}
	v := ProfileView{ID: id, Anonymous: anon, MergedInto: pr.MergedTo, MergedIntoAnonymous: pr.MergedAnon, Links: slices.Clone(pr.Links)}
	now := secs(e.nowMS())
	cp := profile.Profile{Last: pr.Last, Aff: slices.Clone(pr.Aff)}
	cp.DecayTo(now, e.opts.AffinityHalfLife.Seconds())
	for _, a := range cp.Aff {
		v.Affinities = append(v.Affinities, FacetWeight{Facet: facetLabel(e.idx.FacetName(a.Facet)), Weight: float64(a.W)})
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
	for _, sz := range pr.Sizes {
		v.Sizes = append(v.Sizes, SizeView{
			SizeGroup: e.idx.GroupName(sz.Group), Size: e.idx.SizeName(sz.Size),
			At: at(sz.T), Purchase: sz.Purchase, Current: pr.Wear(sz.Group) == sz.Size,
		})
	}
	name := func(p uint32) string {
		if it := e.idx.ItemAt(p); it != nil {
			return it.ID
		}
		return ""
	}
	for _, s := range pr.Purchased {
		v.Purchases = append(v.Purchases, ItemAt{Product: name(s.P), At: at(s.T)})
	}
	slices.SortFunc(v.Purchases, func(a, b ItemAt) int { return b.At.Compare(a.At) })
	for _, c := range pr.Cart {
		line := CartLine{Product: name(c.P), At: at(c.T)}
		if c.SKU != profile.NoSKU {
			line.SKU = e.skuName(c.P, c.SKU)
		}
		v.Cart = append(v.Cart, line)
	}
	for i := len(pr.Views) - 1; i >= 0; i-- {
		v.Views = append(v.Views, ItemAt{Product: name(pr.Views[i].P), At: at(pr.Views[i].T)})
	}
	for i := len(pr.Shown) - 1; i >= 0; i-- {
		v.Impressions = append(v.Impressions, ItemAt{Product: name(pr.Shown[i].P), At: at(pr.Shown[i].T)})
	}
	for _, x := range pr.Excl {
		if x.T > now {
			v.Exclusions = append(v.Exclusions, ItemAt{Product: name(x.P), At: at(x.T)})
		}
	}
	for _, c := range pr.Camps {
		cv := CampaignView{Name: c.Name, At: at(c.T)}
		for _, p := range c.Items {
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
