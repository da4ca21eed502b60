package api

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/internal/jsonenc"
	"github.com/valyala/fasthttp"
)

// maxIDBytes bounds every id a client sends.
const maxIDBytes = 256

// maxListItems bounds comma-separated parameters (location, exclude).
const maxListItems = 100

// pickRequest is the pooled state of one picks request. Its strings view
// the request's buffers: it is valid only inside the handler.
type pickRequest struct {
	q     engine.Query
	picks []engine.Pick
	out   []byte

	campaign string // email campaign: stable picks (see engine.CampaignPicksInto)
	record   bool   // record the picks as impressions
	html     bool   // answer an HTML fragment instead of JSON
	recs     []engine.Record
	errs     []error
}

// b2s views b as a string without copying. The string is valid only while
// b is unchanged: here, for the rest of the request handler.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (s *Server) handlePicks(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	pr := s.queries.Get().(*pickRequest)
	defer s.queries.Put(pr)
	pr.q.Reset()
	pr.campaign, pr.record, pr.html = "", false, false
	if field, msg := parsePickRequest(pr, ctx.QueryArgs()); field != "" {
		writeError(ctx, fasthttp.StatusBadRequest, msg, field)
		return
	}
	if refuseUnknownLocation(ctx, s.opts.Engine, pr.q.Locations) {
		return
	}
	if s.forward(ctx, epPicks, queryActor(&pr.q), pr.q.Customer == "") {
		return
	}
	defer clear(pr.picks) // drop item pointers so pooled requests do not pin old catalog entries
	if pr.campaign == "" {
		pr.picks = s.opts.Engine.PicksInto(pr.picks[:0], &pr.q)
	} else {
		var rec *engine.Record
		pr.picks, rec = s.opts.Engine.CampaignPicksInto(pr.picks[:0], &pr.q, pr.campaign)
		if rec != nil {
			pr.recs = append(pr.recs[:0], *rec)
		}
	}
	if pr.record {
		pr.recs = appendImpressions(pr.recs, &pr.q, pr.picks, s.opts.Now().UnixMilli())
	}
	if len(pr.recs) > 0 && !s.writeSideEffects(ctx, pr) {
		return
	}
	took := time.Since(start)
	if pr.html {
		s.writePicksHTML(ctx, &pr.q, pr.picks)
		return
	}
	pr.out = appendPicksJSON(pr.out[:0], &pr.q, pr.picks, took, &s.items)
	ctx.SetContentType("application/json")
	ctx.SetBody(pr.out)
}

// queryActor is the actor a query is about: its customer or anonymous id
// (parsePickQuery refuses both), "" for none.
func queryActor(q *engine.Query) string {
	if q.Customer != "" {
		return q.Customer
	}
	return q.AnonymousID
}

// refuseUnknownLocation answers 400 naming the first of locs the engine
// does not know, and the known ones, and reports whether it did: a typo
// would otherwise answer nothing at all, silently (a store screen showing
// nothing, an empty feed or audience).
func refuseUnknownLocation(ctx *fasthttp.RequestCtx, e *engine.Engine, locs []string) bool {
	for _, l := range locs {
		if !e.KnownLocation(l) {
			writeError(ctx, fasthttp.StatusBadRequest, unknownLocationMsg(e, l), "location")
			return true
		}
	}
	return false
}

// unknownLocationMsg says that location id is unknown and names the known
// ones (the first maxLocationHint of them).
func unknownLocationMsg(e *engine.Engine, id string) string {
	known := e.AppendLocationIDs(nil)
	more := ""
	if len(known) > maxLocationHint {
		more = fmt.Sprintf(" and %d more", len(known)-maxLocationHint)
		known = known[:maxLocationHint]
	}
	return fmt.Sprintf("unknown location %q: known locations are %s%s (register a store with POST /v1/locations or send inventory for it)",
		id, strings.Join(known, ", "), more)
}

// maxLocationHint is how many known locations an error message names.
const maxLocationHint = 20

// appendImpressions appends an impression event for every pick, so that
// frequency caps count what this answer showed.
func appendImpressions(dst []engine.Record, q *engine.Query, picks []engine.Pick, now int64) []engine.Record {
	customer, anon := strings.Clone(q.Customer), strings.Clone(q.AnonymousID)
	for _, p := range picks {
		dst = append(dst, engine.Record{Op: engine.OpEvent, Event: engine.Event{
			Type: engine.EventImpression, Customer: customer, AnonymousID: anon,
			Product: p.Item.ID, Channel: q.Channel.String(), TS: now,
		}})
	}
	return dst
}

// writeSideEffects makes a picks request's records durable (a campaign's
// slots, impressions) before the picks are shown. It answers the request
// itself and returns false when they cannot be stored: the caller asked
// for them, and a cap or a campaign that silently forgot would be wrong.
func (s *Server) writeSideEffects(ctx *fasthttp.RequestCtx, pr *pickRequest) bool {
	defer func() { pr.recs = pr.recs[:0] }()
	pr.errs = pr.errs[:0]
	for range pr.recs {
		pr.errs = append(pr.errs, nil)
	}
	if err := s.opts.Writer.Write(pr.recs, pr.errs); err != nil {
		ctx.Response.Header.Set("Retry-After", "1")
		if errors.Is(err, engine.ErrOverloaded) {
			writeError(ctx, fasthttp.StatusServiceUnavailable, "overloaded: cannot record these picks now, retry later", "")
			return false
		}
		s.opts.Log.Error("cannot store picks side effects", "err", err)
		writeError(ctx, fasthttp.StatusServiceUnavailable, "cannot record these picks: "+err.Error(), "")
		return false
	}
	for i, err := range pr.errs {
		if err != nil { // the engine refused its own records: a bug, not the client's fault
			s.opts.Log.Error("picks side effect rejected", "op", pr.recs[i].Op.String(), "err", err)
		}
	}
	for i := range pr.recs {
		s.metrics.countApplied(pr.recs[i].Op, pr.recs[i:i+1], pr.errs[i:i+1])
	}
	return true
}

// parsePickRequest parses what PicksInto needs, then the parameters the
// handler acts on.
func parsePickRequest(pr *pickRequest, args *fasthttp.Args) (field, msg string) {
	if field, msg = parsePickQuery(&pr.q, args); field != "" {
		return field, msg
	}
	var bad bool
	if pr.q.Boost, bad = appendFacets(pr.q.Boost[:0], args.Peek("boost")); bad {
		return "boost", facetListMsg("boost")
	}
	if pr.q.Bury, bad = appendFacets(pr.q.Bury[:0], args.Peek("bury")); bad {
		return "bury", facetListMsg("bury")
	}
	if pr.q.Pins, bad = appendPins(pr.q.Pins[:0], args.Peek("pin")); bad {
		return "pin", "pin must be comma-separated product:position pairs, positions from 1 to 100, at most 100 of them"
	}
	for _, b := range []struct {
		name string
		dst  *float64
	}{{"price_min", &pr.q.PriceMin}, {"price_max", &pr.q.PriceMax}} {
		v := args.Peek(b.name)
		if len(v) == 0 {
			continue
		}
		f, err := strconv.ParseFloat(b2s(v), 64)
		if err != nil || !(f >= 0 && f <= maxPrice) {
			return b.name, b.name + " must be a number from 0 to 1000000000"
		}
		*b.dst = f
	}
	if pr.q.PriceMax > 0 && pr.q.PriceMin > pr.q.PriceMax {
		return "price_min", "price_min must not exceed price_max"
	}
	if c := args.Peek("campaign"); len(c) > 0 {
		if len(c) > maxIDBytes || !utf8.Valid(c) {
			return "campaign", "campaign must be valid UTF-8 of at most 256 bytes"
		}
		if pr.q.Customer == "" && pr.q.AnonymousID == "" {
			return "campaign", "campaign picks are kept per person: give customer or anonymous_id"
		}
		pr.campaign = b2s(c)
	}
	switch r := b2s(args.Peek("record")); r {
	case "", "0", "false":
	case "1", "true":
		if pr.q.Customer == "" && pr.q.AnonymousID == "" {
			return "record", "impressions are counted per person: give customer or anonymous_id"
		}
		pr.record = true
	default:
		return "record", "record must be 1 or 0"
	}
	switch f := b2s(args.Peek("format")); f {
	case "", "json":
	case "html":
		pr.html = true
	default:
		return "format", "format must be json or html"
	}
	return "", ""
}

func facetListMsg(name string) string {
	return name + " must be at most 100 comma-separated category:PATH, brand:NAME or tag:NAME items"
}

// appendFacets parses "category:women/knitwear,brand:Nordic,tag:wool" into
// facet references appended to facets. The names are views into b; the
// engine matches them as the catalog spells them (case, slashes).
func appendFacets(facets []engine.Facet, b []byte) ([]engine.Facet, bool) {
	if len(b) == 0 {
		return facets, false
	}
	if !utf8.Valid(b) {
		return facets, true
	}
	for item := range bytes.SplitSeq(b, []byte{','}) {
		if len(item) == 0 {
			continue
		}
		kind, name, ok := bytes.Cut(item, []byte{':'})
		if !ok || len(name) == 0 || len(name) > maxIDBytes || len(facets) == maxListItems {
			return facets, true
		}
		k, ok := engine.ParseFacetKind(b2s(kind))
		if !ok {
			return facets, true
		}
		facets = append(facets, engine.Facet{Kind: k, Name: b2s(name)})
	}
	return facets, false
}

// appendPins parses "P1:1,P2:3" (product:position) into pins. The product
// is everything before the last colon, so ids may hold colons.
func appendPins(pins []engine.Pin, b []byte) ([]engine.Pin, bool) {
	if len(b) == 0 {
		return pins, false
	}
	if !utf8.Valid(b) {
		return pins, true
	}
	for item := range bytes.SplitSeq(b, []byte{','}) {
		if len(item) == 0 {
			continue
		}
		i := bytes.LastIndexByte(item, ':')
		if i <= 0 || i > maxIDBytes || len(pins) == maxListItems {
			return pins, true
		}
		pos, err := strconv.Atoi(b2s(item[i+1:]))
		if err != nil || pos < 1 || pos > engine.MaxK {
			return pins, true
		}
		pins = append(pins, engine.Pin{Product: b2s(item[:i]), Pos: pos})
	}
	return pins, false
}

// parsePickQuery fills q from the query string. On bad input it returns
// the parameter at fault and a message.
func parsePickQuery(q *engine.Query, args *fasthttp.Args) (field, msg string) {
	id := func(name string) (string, bool) {
		b := args.Peek(name)
		if len(b) > maxIDBytes || !utf8.Valid(b) {
			return "", false
		}
		return b2s(b), true
	}
	var ok bool
	if q.Customer, ok = id("customer"); !ok {
		return "customer", "customer must be valid UTF-8 of at most 256 bytes"
	}
	if q.AnonymousID, ok = id("anonymous_id"); !ok {
		return "anonymous_id", "anonymous_id must be valid UTF-8 of at most 256 bytes"
	}
	if q.Customer != "" && q.AnonymousID != "" {
		return "anonymous_id", "give customer or anonymous_id, not both"
	}
	if ch := args.Peek("channel"); len(ch) > 0 {
		c, ok := engine.ParseChannel(b2s(ch))
		if !ok {
			return "channel", "channel must be one of ads, email, screen, web, app"
		}
		q.Channel = c
	}
	if kb := args.Peek("k"); len(kb) > 0 {
		k, err := strconv.Atoi(b2s(kb))
		if err != nil || k < 1 || k > engine.MaxK {
			return "k", "k must be a whole number from 1 to 100"
		}
		q.K = k
	}
	if q.Context, ok = id("context"); !ok {
		return "context", "context must be a product id of at most 256 bytes"
	}
	if q.Category, ok = id("category"); !ok {
		return "category", "category must be valid UTF-8 of at most 256 bytes"
	}
	var bad bool
	if q.Locations, bad = splitList(q.Locations[:0], args.Peek("location")); bad {
		return "location", "location must be at most 100 comma-separated ids of at most 256 bytes each"
	}
	if q.Exclude, bad = splitList(q.Exclude[:0], args.Peek("exclude")); bad {
		return "exclude", "exclude must be at most 100 comma-separated product ids of at most 256 bytes each"
	}
	return "", ""
}

// splitList appends the non-empty comma-separated items of b to dst.
func splitList(dst []string, b []byte) ([]string, bool) {
	if !utf8.Valid(b) {
		return dst, true
	}
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != ',' {
			i++
		}
		if item := b[:i]; len(item) > 0 {
			if len(item) > maxIDBytes || len(dst) == maxListItems {
				return dst, true
			}
			dst = append(dst, b2s(item))
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return dst, false
}

// AppendPicksJSON appends the picks response of API.md to dst. It does not
// allocate beyond growing dst.
func AppendPicksJSON(dst []byte, q *engine.Query, picks []engine.Pick, took time.Duration) []byte {
	return appendPicksJSON(dst, q, picks, took, nil)
}

// appendPicksJSON is AppendPicksJSON with the items' fields from items
// (nil: encoded every time).
func appendPicksJSON(dst []byte, q *engine.Query, picks []engine.Pick, took time.Duration, items *itemJSON) []byte {
	dst = append(dst, '{')
	if q.Customer != "" {
		dst = append(dst, `"customer":`...)
		dst = jsonenc.AppendString(dst, q.Customer)
		dst = append(dst, ',')
	} else if q.AnonymousID != "" {
		dst = append(dst, `"anonymous_id":`...)
		dst = jsonenc.AppendString(dst, q.AnonymousID)
		dst = append(dst, ',')
	}
	dst = append(dst, `"channel":"`...)
	dst = append(dst, q.Channel.String()...)
	dst = append(dst, `","took_us":`...)
	dst = strconv.AppendInt(dst, took.Microseconds(), 10)
	dst = append(dst, `,"picks":[`...)
	for i := range picks {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendPickJSON(dst, &picks[i], true, items)
	}
	return append(dst, "]}"...)
}

// appendPickJSON appends one pick as a JSON object: what an ad or a page
// shows (product, title, price, currency, url, image, sizes in stock that
// fit, reason), and with full set also category, brand and score. The
// item's fields come from items (itemjson.go; nil: encoded here).
func appendPickJSON(dst []byte, p *engine.Pick, full bool, items *itemJSON) []byte {
	it := p.Item
	dst = items.appendItem(dst, it, full)
	dst = append(dst, `,"sizes":[`...)
	n := 0
	for j, v := range it.Variants {
		if p.SizeMask&(1<<uint(j)) == 0 || v.Size == "" {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = jsonenc.AppendString(dst, v.Size)
		n++
	}
	dst = append(dst, `],"reason":"`...)
	dst = append(dst, p.Reason.String()...)
	if !full {
		return append(dst, `"}`...)
	}
	dst = append(dst, `","score":`...)
	dst = strconv.AppendFloat(dst, p.Score, 'f', 4, 64)
	return append(dst, '}')
}
