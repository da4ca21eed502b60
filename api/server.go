// Package api is Omnipick's HTTP interface: a thin translation layer that
// parses requests, calls the engine (reads) or the writer (writes), and
// appends responses. The contract is API.md; every error is a JSON body
// {"error": "...", "field": "..."}.
//
// A Server is New(opts) + Start + Stop, so tests run it in-process on a
// random port.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

// Writer makes writes durable and applies them, in one order. Write returns
// once every record is durable (or rejected): errs[i] is the engine's
// verdict on recs[i] (nil: applied). The returned error means the writer
// itself failed (disk full, shutting down): nothing was acknowledged. An
// error wrapping engine.ErrOverloaded becomes a 503 with Retry-After.
type Writer interface {
	Write(recs []engine.Record, errs []error) error
}

// Options configure a Server.
type Options struct {
	Addr   string         // listen address; "127.0.0.1:0" picks a free port
	Engine *engine.Engine // reads
	Writer Writer         // writes; nil applies straight to Engine (no durability)
	Log    *slog.Logger   // default: discard

	MaxBodyBytes int // request body limit, after decompression too; default 32 MiB
	MaxInFlight  int // concurrent requests before 503; default 4096

	Now func() time.Time // default time.Now
}

// Server serves the HTTP API. Safe for concurrent use.
type Server struct {
	opts     Options
	srv      *fasthttp.Server
	ln       net.Listener
	done     chan struct{}
	serveMu  sync.Mutex
	serveErr error

	decoders sync.Pool // *Decoder
	batches  sync.Pool // *writeBatch
	queries  sync.Pool // *pickRequest

	stats stats
}

// New returns a Server; Start makes it listen.
func New(opts Options) (*Server, error) {
	if opts.Engine == nil {
		return nil, errors.New("api: Options.Engine is nil")
	}
	if opts.Writer == nil {
		opts.Writer = direct{opts.Engine}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 32 << 20
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 4096
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, done: make(chan struct{})}
	s.decoders.New = func() any { return new(Decoder) }
	s.batches.New = func() any { return new(writeBatch) }
	s.queries.New = func() any { return new(pickRequest) }
	s.srv = &fasthttp.Server{
		Handler:                      s.handle,
		ErrorHandler:                 s.handleParseError,
		Name:                         "omnipick",
		MaxRequestBodySize:           opts.MaxBodyBytes,
		Concurrency:                  opts.MaxInFlight,
		ReadTimeout:                  30 * time.Second,
		WriteTimeout:                 30 * time.Second,
		IdleTimeout:                  2 * time.Minute,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		DisablePreParseMultipartForm: true,
	}
	return s, nil
}

// Start listens on Options.Addr and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %q: %w", s.opts.Addr, err)
	}
	s.ln = ln
	go func() {
		err := s.srv.Serve(ln)
		s.serveMu.Lock()
		s.serveErr = err
		s.serveMu.Unlock()
		close(s.done)
	}()
	s.opts.Log.Info("listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the address the server listens on (after Start).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Stop stops accepting connections and waits for in-flight requests to
// finish, or for ctx to end.
func (s *Server) Stop(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	if err := s.srv.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("cannot shut down http server: %w", err)
	}
	<-s.done
	return nil
}

// direct applies writes to the engine without a log: for tests and tools
// that need no durability.
type direct struct{ e *engine.Engine }

func (d direct) Write(recs []engine.Record, errs []error) error {
	for i := range recs {
		errs[i] = d.e.Apply(&recs[i])
	}
	return nil
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	ep := s.route(ctx)
	s.stats.observe(ep, ctx.Response.StatusCode(), time.Since(start))
}

// route dispatches a request and returns the endpoint it reached, for
// metrics.
func (s *Server) route(ctx *fasthttp.RequestCtx) endpoint {
	path := ctx.Path()
	get, post := ctx.IsGet() || ctx.IsHead(), ctx.IsPost()
	switch string(path) {
	case "/v1/picks":
		if !get {
			return methodNotAllowed(ctx, epPicks, "GET")
		}
		s.handlePicks(ctx)
		return epPicks
	case "/v1/events":
		return s.routeWrite(ctx, post, epEvents, engine.OpEvent)
	case "/v1/products":
		return s.routeWrite(ctx, post, epProducts, engine.OpProduct)
	case "/v1/inventory":
		return s.routeWrite(ctx, post, epInventory, engine.OpInventory)
	case "/v1/identify":
		return s.routeWrite(ctx, post, epIdentify, engine.OpIdentify)
	case "/v1/locations":
		return s.routeWrite(ctx, post, epLocations, engine.OpLocation)
	case "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
		return epHealth
	case "/metrics":
		if !get {
			return methodNotAllowed(ctx, epMetrics, "GET")
		}
		s.handleMetrics(ctx)
		return epMetrics
	}
	if len(path) > len("/v1/customers/") && string(path[:len("/v1/customers/")]) == "/v1/customers/" {
		if !get {
			return methodNotAllowed(ctx, epCustomer, "GET")
		}
		s.handleCustomer(ctx, path[len("/v1/customers/"):])
		return epCustomer
	}
	writeError(ctx, fasthttp.StatusNotFound, "no such endpoint", "")
	return epOther
}

func (s *Server) routeWrite(ctx *fasthttp.RequestCtx, post bool, ep endpoint, op engine.Op) endpoint {
	if !post {
		return methodNotAllowed(ctx, ep, "POST")
	}
	s.handleWrite(ctx, op)
	return ep
}

func methodNotAllowed(ctx *fasthttp.RequestCtx, ep endpoint, allow string) endpoint {
	ctx.Response.Header.Set("Allow", allow)
	writeError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed; use "+allow, "")
	return ep
}

// handleParseError answers requests fasthttp could not read.
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.opts.MaxBodyBytes), "body")
		return
	}
	writeError(ctx, fasthttp.StatusBadRequest, "cannot parse request: "+err.Error(), "")
}

// writeError sets a JSON error response.
func writeError(ctx *fasthttp.RequestCtx, status int, msg, field string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(appendError(nil, msg, field, true))
}

// appendError appends {"error":msg,"field":field and, when close is set,
// the closing brace.
func appendError(b []byte, msg, field string, close bool) []byte {
	b = append(b, `{"error":`...)
	b = appendJSONString(b, msg)
	if field != "" {
		b = append(b, `,"field":`...)
		b = appendJSONString(b, field)
	}
	if close {
		b = append(b, '}')
	}
	return b
}
