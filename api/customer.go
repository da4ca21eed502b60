package api

import (
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

// customerJSON is the GET /v1/customers/{id} body.
type customerJSON struct {
	ID         string         `json:"id"`
	Anonymous  bool           `json:"anonymous,omitempty"`
	MergedInto string         `json:"merged_into,omitempty"`
	Affinities []affinityJSON `json:"affinities"`
	Sizes      []sizeJSON     `json:"sizes"`
	Purchases  []itemAtJSON   `json:"purchases"`
	Cart       []cartJSON     `json:"cart"`
	Views      []itemAtJSON   `json:"views"`
	LinkedIDs  []string       `json:"linked_ids"`
	// MergedIntoAnonymous: merged_into is another anonymous id.
	MergedIntoAnonymous bool           `json:"merged_into_anonymous,omitempty"`
	Impressions         []itemAtJSON   `json:"impressions"`
	Exclusions          []untilJSON    `json:"exclusions"`
	Campaigns           []campaignJSON `json:"campaigns"`
}

type untilJSON struct {
	Product string    `json:"product"`
	Until   time.Time `json:"until"`
}

type campaignJSON struct {
	Campaign string    `json:"campaign"`
	At       time.Time `json:"at"`
	Products []string  `json:"products"`
}

type affinityJSON struct {
	Facet  string  `json:"facet"`
	Weight float64 `json:"weight"`
}

type sizeJSON struct {
	SizeGroup string    `json:"size_group"`
	Size      string    `json:"size"`
	At        time.Time `json:"at"`
	Source    string    `json:"source"`
	Current   bool      `json:"current"`
}

type itemAtJSON struct {
	Product string    `json:"product"`
	At      time.Time `json:"at"`
}

type cartJSON struct {
	Product string    `json:"product"`
	SKU     string    `json:"sku,omitempty"`
	At      time.Time `json:"at"`
}

// handleCustomer serves the profile of a customer, or of an anonymous id
// when ?anonymous=1 (or when no customer has that id).
func (s *Server) handleCustomer(ctx *fasthttp.RequestCtx, idb []byte) {
	if len(idb) > maxIDBytes || !utf8.Valid(idb) {
		writeError(ctx, fasthttp.StatusBadRequest, "id must be valid UTF-8 of at most 256 bytes", "id")
		return
	}
	anon := string(ctx.QueryArgs().Peek("anonymous")) == "1"
	if s.forward(ctx, epCustomer, b2s(idb), anon) {
		return
	}
	id := string(idb)
	v, ok := s.opts.Engine.Profile(id, anon)
	if !ok && !anon {
		v, ok = s.opts.Engine.Profile(id, true)
	}
	if !ok {
		writeError(ctx, fasthttp.StatusNotFound, "no profile for this id", "id")
		return
	}
	out := profileJSON(&v)
	b, err := json.Marshal(out)
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, "cannot encode profile", "")
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// profileJSON is the JSON form of a profile view.
func profileJSON(v *engine.ProfileView) customerJSON {
	out := customerJSON{ID: v.ID, Anonymous: v.Anonymous, MergedInto: v.MergedInto, MergedIntoAnonymous: v.MergedIntoAnonymous, LinkedIDs: v.Links,
		Affinities: []affinityJSON{}, Sizes: []sizeJSON{}, Purchases: []itemAtJSON{}, Cart: []cartJSON{}, Views: []itemAtJSON{},
		Impressions: []itemAtJSON{}, Exclusions: []untilJSON{}, Campaigns: []campaignJSON{}}
	out.Impressions = appendItems(out.Impressions, v.Impressions)
	for _, x := range v.Exclusions {
		out.Exclusions = append(out.Exclusions, untilJSON{Product: x.Product, Until: x.At})
	}
	for _, c := range v.Campaigns {
		out.Campaigns = append(out.Campaigns, campaignJSON{Campaign: c.Name, At: c.At, Products: c.Products})
	}
	if out.LinkedIDs == nil {
		out.LinkedIDs = []string{}
	}
	for _, a := range v.Affinities {
		out.Affinities = append(out.Affinities, affinityJSON{Facet: a.Facet, Weight: round4(a.Weight)})
	}
	for _, sz := range v.Sizes {
		src := "cart"
		if sz.Purchase {
			src = "purchase"
		}
		out.Sizes = append(out.Sizes, sizeJSON{SizeGroup: sz.SizeGroup, Size: sz.Size, At: sz.At, Source: src, Current: sz.Current})
	}
	out.Purchases = appendItems(out.Purchases, v.Purchases)
	out.Views = appendItems(out.Views, v.Views)
	for _, c := range v.Cart {
		out.Cart = append(out.Cart, cartJSON{Product: c.Product, SKU: c.SKU, At: c.At})
	}
	return out
}

func appendItems(dst []itemAtJSON, items []engine.ItemAt) []itemAtJSON {
	for _, it := range items {
		dst = append(dst, itemAtJSON{Product: it.Product, At: it.At})
	}
	return dst
}

func round4(f float64) float64 {
	return float64(int64(f*10000+0.5)) / 10000
}
