package api

import (
	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

// handlerFunc serves one endpoint; arg is the path after the endpoint's
// prefix (the customer id, the store, the audience name), or the whole
// path where the handler needs it.
type handlerFunc func(ctx *fasthttp.RequestCtx, arg []byte)

// routeSpec is how an endpoint is reached: which key it needs and which
// methods it answers. route reads it; nothing else decides access.
type routeSpec struct {
	open  bool   // no key needed (health, metrics, pictures)
	strip int    // bytes of the path before the handler's arg
	allow string // methods named by a 405's Allow header
	// read answers GET and HEAD with any key; write answers POST (DELETE
	// when onDelete) and needs a write key.
	read, write handlerFunc
	onDelete    bool
}

// newRoutes builds the table route dispatches through, once per Server.
// An endpoint with neither handler (epOther) answers 404 once its key is
// checked.
func newRoutes(s *Server) [numEndpoints]routeSpec {
	var r [numEndpoints]routeSpec
	get := func(h handlerFunc) routeSpec { return routeSpec{allow: "GET", read: h} }
	r[epHealth] = routeSpec{open: true, allow: "GET", read: func(ctx *fasthttp.RequestCtx, _ []byte) {
		ctx.SetContentType("application/json")
		if s.opts.Health != nil {
			ctx.SetBody(s.opts.Health())
			return
		}
		ctx.SetBodyString(`{"status":"ok"}`)
	}}
	r[epMetrics] = routeSpec{open: true, allow: "GET", read: func(ctx *fasthttp.RequestCtx, _ []byte) { s.handleMetrics(ctx) }}
	// Pictures are open: email clients and ad platforms' crawlers fetch
	// them without a key (see images.go).
	r[epImages] = routeSpec{open: true, strip: len(imagePrefix), allow: "GET", read: s.handleImage}
	r[epPicks] = get(func(ctx *fasthttp.RequestCtx, _ []byte) { s.handlePicks(ctx) })
	r[epCustomer] = routeSpec{strip: len(customerPrefix), allow: "GET, DELETE", read: s.handleCustomer, write: s.handleErase, onDelete: true}
	r[epAdminCompact] = routeSpec{allow: "POST", write: func(ctx *fasthttp.RequestCtx, _ []byte) { s.handleCompact(ctx) }}
	r[epScreen] = routeSpec{strip: len(screenPrefix), allow: "GET", read: s.handleScreen}
	r[epAudiences] = routeSpec{strip: len(audiencePrefix), allow: "GET", read: s.handleAudience}
	r[epExplore] = routeSpec{strip: len(explorePath), allow: "GET", read: s.handleExplore}
	r[epFeeds] = get(func(ctx *fasthttp.RequestCtx, _ []byte) { s.handleFeed(ctx) })
	r[epOpenAPI] = get(serveOpenAPI)
	for ep, op := range writeOps {
		if op != 0 {
			r[ep] = routeSpec{allow: "POST", write: func(ctx *fasthttp.RequestCtx, _ []byte) { s.handleWrite(ctx, op) }}
		}
	}
	return r
}

// writeOps maps write endpoints to the records they carry.
var writeOps = [numEndpoints]engine.Op{
	epEvents:     engine.OpEvent,
	epProducts:   engine.OpProduct,
	epInventory:  engine.OpInventory,
	epIdentify:   engine.OpIdentify,
	epLocations:  engine.OpLocation,
	epExclusions: engine.OpExclusion,
}

// route checks the request's key and method and dispatches it to ep's
// handler. Every endpoint but the open ones needs a key (when keys are
// configured), also to learn that a path does not exist. The method is
// checked before the key's scope: a wrong method is 405 whatever the key.
func (s *Server) route(ctx *fasthttp.RequestCtx, ep endpoint, path []byte) {
	r := &s.routes[ep]
	acc := accessWrite
	if !r.open {
		acc = s.access(ctx)
		if acc == accessNone && (ep == epScreen || ep == epExplore && string(path) == explorePath) {
			// A kiosk's EventSource cannot set headers: its page and
			// stream may carry the key in the query string instead. So
			// may the explorer's page, opened by a browser (its script
			// sends the key as a header).
			acc = s.queryAccess(ctx)
		}
		if acc == accessNone {
			unauthorized(ctx)
			return
		}
	}
	if r.read == nil && r.write == nil {
		writeError(ctx, fasthttp.StatusNotFound, "no such endpoint", "")
		return
	}
	var h handlerFunc
	switch {
	case r.read != nil && (ctx.IsGet() || ctx.IsHead()):
		h = r.read
	case r.write != nil && (r.onDelete && ctx.IsDelete() || !r.onDelete && ctx.IsPost()):
		if acc != accessWrite {
			forbidden(ctx)
			return
		}
		h = r.write
	default:
		methodNotAllowed(ctx, r.allow)
		return
	}
	h(ctx, path[r.strip:])
}
