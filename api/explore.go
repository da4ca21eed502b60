package api

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

// The explorer: a page for the people who ask "why did she see this?".
//
//	GET /explore                    the page (HTML, self-contained)
//	GET /explore/customer.json?id=  a profile, the picks of every channel with their score parts, the frequency caps in force
//	GET /explore/product.json?id=   a product, its related items, its stock by location and size, its popularity
//	GET /explore/stats.json         request counts and latency histograms from the server's own metrics
//
// All are reads (a read key will do). The page may carry the key as ?key=
// (a browser cannot send a header when it opens a page); the page sends it
// to the JSON endpoints as X-API-Key.

const explorePath = "/explore"

// exploreRelated is how many related items a product view lists.
const exploreRelated = 12

//go:embed explore.html
var exploreHTML string

func newExplorePage() (*template.Template, error) {
	t, err := template.New("explore").Parse(exploreHTML)
	if err != nil {
		return nil, fmt.Errorf("cannot parse explorer page: %w", err)
	}
	return t, nil
}

// isExplorePath reports whether path is the explorer's.
func isExplorePath(path []byte) bool {
	return string(path) == explorePath || bytes.HasPrefix(path, []byte(explorePath+"/"))
}

func (s *Server) handleExplore(ctx *fasthttp.RequestCtx, rest []byte) {
	ctx.Response.Header.Set("Cache-Control", "no-store")
	switch string(rest) {
	case "", "/":
		s.serveExplorePage(ctx)
	case "/customer.json":
		s.serveExploreCustomer(ctx)
	case "/product.json":
		s.serveExploreProduct(ctx)
	case "/stats.json":
		s.serveExploreStats(ctx)
	default:
		writeError(ctx, fasthttp.StatusNotFound, "no such endpoint: the explorer has /explore, /explore/customer.json, /explore/product.json and /explore/stats.json", "")
	}
}

func (s *Server) serveExplorePage(ctx *fasthttp.RequestCtx) {
	var nonce [16]byte
	rand.Read(nonce[:]) // never fails (crypto/rand)
	n := base64.RawStdEncoding.EncodeToString(nonce[:])
	var b bytes.Buffer
	if err := s.explorePage.Execute(&b, struct{ Nonce string }{n}); err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, "cannot render the explorer", "")
		return
	}
	// Self-contained: inline style and script with this response's nonce,
	// pictures from anywhere (catalog images), requests to this server.
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'none'; img-src 'self' https: http: data:; style-src 'nonce-"+n+"'; script-src 'nonce-"+n+"'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	ctx.Response.Header.Set("Referrer-Policy", "no-referrer")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(b.Bytes())
}

// exploreID reads the id parameter.
func exploreID(ctx *fasthttp.RequestCtx) (string, bool) {
	id := ctx.QueryArgs().Peek("id")
	if len(id) == 0 || len(id) > maxIDBytes || !utf8.Valid(id) {
		writeError(ctx, fasthttp.StatusBadRequest, "id must be a non-empty id of at most 256 bytes", "id")
		return "", false
	}
	return string(id), true
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, "cannot encode the answer", "")
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

type exploreCustomer struct {
	ID        string            `json:"id"`
	Anonymous bool              `json:"anonymous"`
	Known     bool              `json:"known"`
	Profile   *customerJSON     `json:"profile"`
	Channels  []exploreChannel  `json:"channels"`
	Caps      []exploreCap      `json:"caps"`
	Titles    map[string]string `json:"titles"` // product id -> title, for every product shown
}

type exploreChannel struct {
	Channel  string        `json:"channel"`
	Location string        `json:"location"`
	Picks    []explorePick `json:"picks"`
}

type explorePick struct {
	Product  string       `json:"product"`
	Title    string       `json:"title"`
	Image    string       `json:"image"`
	Price    float64      `json:"price"`
	Currency string       `json:"currency"`
	Sizes    []string     `json:"sizes"`
	Reason   string       `json:"reason"`
	Score    float64      `json:"score"`
	Parts    exploreParts `json:"parts"`
}

type exploreParts struct {
	Prior      float64 `json:"prior"`
	Affinity   float64 `json:"affinity"`
	Related    float64 `json:"related"`
	Popularity float64 `json:"popularity"`
	Boost      float64 `json:"boost"`
	Category   float64 `json:"category"`
	Buried     bool    `json:"buried"`
	Capped     bool    `json:"capped"`
}

type exploreCap struct {
	Channel string         `json:"channel"`
	Max     int            `json:"max"`
	Window  string         `json:"window"`
	Shown   []exploreShown `json:"shown"` // products shown within the window, most first
}

type exploreShown struct {
	Product string `json:"product"`
	Count   int    `json:"count"`
	Capped  bool   `json:"capped"`
}

// exploreChannels are the columns of the customer view, in order.
var exploreChannels = []engine.Channel{engine.ChannelAds, engine.ChannelEmail, engine.ChannelWeb, engine.ChannelApp, engine.ChannelScreen}

func (s *Server) serveExploreCustomer(ctx *fasthttp.RequestCtx) {
	id, ok := exploreID(ctx)
	if !ok {
		return
	}
	e := s.opts.Engine
	args := ctx.QueryArgs()
	anon := string(args.Peek("anonymous")) == "1"
	v, found := e.Profile(id, anon)
	if !found && !anon {
		if v, found = e.Profile(id, true); found {
			anon = true
		}
	}
	// The screen column shows a store: the one asked, else the first
	// store known, else online.
	store := string(args.Peek("location"))
	if store != "" && !e.KnownLocation(store) {
		writeError(ctx, fasthttp.StatusBadRequest, unknownLocationMsg(e, store), "location")
		return
	}
	if s.forward(ctx, epExplore, id, anon) {
		return
	}
	if store == "" {
		store = "online"
		if ids := e.AppendLocationIDs(nil); len(ids) > 1 {
			store = ids[1]
		}
	}
	out := exploreCustomer{ID: id, Anonymous: anon, Known: found, Titles: map[string]string{}}
	if found {
		p := profileJSON(&v)
		out.Profile = &p
	}
	now := s.opts.Now()
	var picks []engine.Pick
	var parts []engine.ScoreParts
	for _, ch := range exploreChannels {
		q := engine.Query{Channel: ch, K: 8, Now: now.UnixMilli()}
		if anon {
			q.AnonymousID = id
		} else {
			q.Customer = id
		}
		col := exploreChannel{Channel: ch.String(), Location: "online", Picks: []explorePick{}}
		if ch == engine.ChannelScreen {
			q.Locations = []string{store}
			col.Location = store
		}
		picks = e.PicksInto(picks[:0], &q)
		parts = e.ExplainPicks(parts[:0], &q, picks)
		for i, p := range picks {
			it := p.Item
			ep := explorePick{Product: it.ID, Title: it.Title, Image: it.Image, Price: it.Price, Currency: it.Currency,
				Reason: p.Reason.String(), Score: round4(p.Score), Sizes: []string{}}
			for j, v := range it.Variants {
				if p.SizeMask&(1<<uint(j)) != 0 && v.Size != "" {
					ep.Sizes = append(ep.Sizes, v.Size)
				}
			}
			pt := parts[i]
			ep.Parts = exploreParts{Prior: round4(pt.Prior), Affinity: round4(pt.Affinity), Related: round4(pt.Related),
				Popularity: round4(pt.Popularity), Boost: round4(pt.Boost), Category: round4(pt.Category), Buried: pt.Buried, Capped: pt.Capped}
			col.Picks = append(col.Picks, ep)
			out.Titles[it.ID] = it.Title
		}
		out.Channels = append(out.Channels, col)
	}
	opts := e.Options()
	out.Caps = frequencyCaps(opts.FrequencyCaps[:], v.Impressions, now)
	if found {
		for _, l := range [][]engine.ItemAt{v.Purchases, v.Views, v.Impressions} {
			for _, x := range l {
				s.addTitle(out.Titles, x.Product)
			}
		}
		for _, c := range v.Cart {
			s.addTitle(out.Titles, c.Product)
		}
	}
	writeJSON(ctx, out)
}

func (s *Server) addTitle(titles map[string]string, product string) {
	if _, ok := titles[product]; ok {
		return
	}
	if it, ok := s.opts.Engine.Product(product); ok {
		titles[product] = it.Title
	}
}

// frequencyCaps counts, per channel's cap, the impressions within its
// window by product (impressions count on every channel together), and
// marks those at or over the cap: they rank below every item that is not.
func frequencyCaps(caps []engine.FrequencyCap, shown []engine.ItemAt, now time.Time) []exploreCap {
	var out []exploreCap
	for _, ch := range exploreChannels {
		c := caps[ch]
		ec := exploreCap{Channel: ch.String(), Max: c.Max, Window: c.Window.String(), Shown: []exploreShown{}}
		counts := map[string]int{}
		for _, x := range shown {
			if !x.At.Before(now.Add(-c.Window)) {
				counts[x.Product]++
			}
		}
		for p, n := range counts {
			ec.Shown = append(ec.Shown, exploreShown{Product: p, Count: n, Capped: c.Max > 0 && n >= c.Max})
		}
		slices.SortFunc(ec.Shown, func(a, b exploreShown) int {
			if a.Count != b.Count {
				return b.Count - a.Count
			}
			if a.Product < b.Product {
				return -1
			}
			return 1
		})
		out = append(out, ec)
	}
	return out
}

type exploreProduct struct {
	ID         string            `json:"id"`
	Title      string            `json:"title"`
	Category   string            `json:"category"`
	Brand      string            `json:"brand"`
	URL        string            `json:"url"`
	Image      string            `json:"image"`
	Price      float64           `json:"price"`
	Currency   string            `json:"currency"`
	Tags       []string          `json:"tags"`
	Attributes map[string]string `json:"attributes"`
	Active     bool              `json:"active"`
	Sizes      []string          `json:"sizes"`
	Related    []exploreRelItem  `json:"related"`
	Stock      []exploreStockLoc `json:"stock"`
	Popularity explorePopularity `json:"popularity"`
	Titles     map[string]string `json:"titles"`
	Images     map[string]string `json:"images"`
}

type exploreRelItem struct {
	Product  string  `json:"product"`
	Title    string  `json:"title"`
	Image    string  `json:"image"`
	Strength float64 `json:"strength"`
}

type exploreStockLoc struct {
	Location string              `json:"location"`
	Name     string              `json:"name"`
	Sizes    []exploreStockLevel `json:"sizes"`
}

type exploreStockLevel struct {
	Size     string `json:"size"`
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

type explorePopularity struct {
	Value        float64 `json:"value"`
	Relative     float64 `json:"relative"`
	Rank         int     `json:"rank"`
	CategoryRank int     `json:"category_rank"`
	HalfLife     string  `json:"half_life"`
}

func (s *Server) serveExploreProduct(ctx *fasthttp.RequestCtx) {
	id, ok := exploreID(ctx)
	if !ok {
		return
	}
	e := s.opts.Engine
	it, ok := e.Product(id)
	if !ok {
		writeError(ctx, fasthttp.StatusNotFound, "unknown product", "id")
		return
	}
	out := exploreProduct{ID: it.ID, Title: it.Title, Category: it.Category, Brand: it.Brand, URL: it.URL, Image: it.Image,
		Price: it.Price, Currency: it.Currency, Tags: it.Tags, Attributes: map[string]string{}, Active: it.Active,
		Sizes: []string{}, Related: []exploreRelItem{}, Stock: []exploreStockLoc{}}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	for _, a := range it.Attributes {
		out.Attributes[a.Key] = a.Value
	}
	for _, v := range it.Variants {
		if v.Size != "" {
			out.Sizes = append(out.Sizes, v.Size)
		}
	}
	rel, _ := e.Related(id, exploreRelated)
	for _, r := range rel {
		ri := exploreRelItem{Product: r.Product, Strength: round4(r.Strength)}
		if other, ok := e.Product(r.Product); ok {
			ri.Title, ri.Image = other.Title, other.Image
		}
		out.Related = append(out.Related, ri)
	}
	stock, _ := e.Stock(id)
	for _, l := range stock {
		if n := len(out.Stock); n == 0 || out.Stock[n-1].Location != l.Location {
			out.Stock = append(out.Stock, exploreStockLoc{Location: l.Location, Name: l.LocationName})
		}
		last := &out.Stock[len(out.Stock)-1]
		last.Sizes = append(last.Sizes, exploreStockLevel{Size: l.Size, SKU: l.SKU, Quantity: l.Quantity})
	}
	pop, _ := e.PopularityOf(id)
	out.Popularity = explorePopularity{Value: round4(pop.Value), Relative: round4(pop.Relative), Rank: pop.Rank, CategoryRank: pop.CategoryRank,
		HalfLife: e.Options().PopularityHalfLife.String()}
	writeJSON(ctx, out)
}

// exploreStats is what the live panel reads: cumulative counts, so that
// the page computes rates and latency quantiles from the difference
// between two reads.
type exploreStats struct {
	At        int64             `json:"at"` // unix milliseconds
	Endpoints []exploreEndpoint `json:"endpoints"`
	Bounds    []float64         `json:"bounds"` // the latency buckets' upper bounds, seconds
}

type exploreEndpoint struct {
	Endpoint string   `json:"endpoint"`
	Requests uint64   `json:"requests"`
	Errors   uint64   `json:"errors"`  // 5xx
	Count    uint64   `json:"count"`   // latency observations
	Sum      float64  `json:"sum"`     // seconds
	Buckets  []uint64 `json:"buckets"` // cumulative, by Bounds
}

func (s *Server) serveExploreStats(ctx *fasthttp.RequestCtx) {
	mfs, err := s.metrics.reg.Gather()
	if err != nil {
		s.opts.Log.Warn("explore: cannot gather every metric", "err", err)
	}
	byName := map[string]*exploreEndpoint{}
	get := func(name string) *exploreEndpoint {
		ep := byName[name]
		if ep == nil {
			ep = &exploreEndpoint{Endpoint: name, Buckets: make([]uint64, len(latencyBuckets))}
			byName[name] = ep
		}
		return ep
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "omnipick_http_requests_total":
			for _, m := range mf.GetMetric() {
				var ep, status string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "endpoint":
						ep = l.GetValue()
					case "status":
						status = l.GetValue()
					}
				}
				n := uint64(m.GetCounter().GetValue())
				x := get(ep)
				x.Requests += n
				if len(status) == 3 && status[0] == '5' {
					x.Errors += n
				}
			}
		case "omnipick_http_request_duration_seconds":
			for _, m := range mf.GetMetric() {
				var ep string
				for _, l := range m.GetLabel() {
					if l.GetName() == "endpoint" {
						ep = l.GetValue()
					}
				}
				x := get(ep)
				h := m.GetHistogram()
				x.Count += h.GetSampleCount()
				x.Sum += h.GetSampleSum()
				for i, b := range h.GetBucket() {
					if i < len(x.Buckets) && !math.IsInf(b.GetUpperBound(), 1) {
						x.Buckets[i] += b.GetCumulativeCount()
					}
				}
			}
		}
	}
	out := exploreStats{At: s.opts.Now().UnixMilli(), Bounds: latencyBuckets, Endpoints: []exploreEndpoint{}}
	for _, name := range endpointNames {
		if ep := byName[name]; ep != nil {
			out.Endpoints = append(out.Endpoints, *ep)
		}
	}
	writeJSON(ctx, out)
}
