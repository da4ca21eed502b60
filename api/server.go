// Package api is Omnipick's HTTP interface: a thin translation layer that
// parses requests, calls the engine (reads) or the writer (writes), and
// appends responses. The contract is API.md; every error is a JSON body
// {"error": "...", "field": "..."}.
//
// A Server is New(opts) + Start + Stop, so tests run it in-process on a
// random port.
//
// Writes go through a Decoder: decode.go splits a body into objects,
// jsonscan.go checks each one's JSON syntax strictly before fastjson
// parses it, records.go turns it into an engine.Record (one table of
// record kinds, one field walker) with the field checks of fields.go.
// Engine rejects come back as *engine.FieldError and reach the client as
// they are. Every JSON the API writes escapes strings with
// internal/jsonenc, which bench shares.
//
// Access control: with keys configured (Options.WriteKeys, ReadKeys), every
// request except GET /healthz and GET /metrics needs one; without keys the
// server runs open, which New allows only on a loopback address. See
// docs/API.md, "Authentication" and "Limits and overload".
package api

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/store"
	"github.com/omnipick/omnipick/internal/jsonenc"
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
	Addr string // listen address; "127.0.0.1:0" picks a free port
	// Listener, if set, is served instead of listening on Addr: a caller
	// that takes a while to become ready (a cluster node joining its
	// stream) holds its port from the start and fails at once when it is
	// taken.
	Listener net.Listener
	Engine   *engine.Engine // reads
	Writer   Writer         // writes; nil applies straight to Engine (no durability)
	Log      *slog.Logger   // default: discard

	MaxBodyBytes int // request body limit, after decompression too; default 32 MiB
	MaxInFlight  int // requests handled at once before new ones get 503 + Retry-After; default 4096
	// MaxScreenStreams bounds the store screens' event streams open at
	// once (GET /screen/{store}/events); beyond, 503 + Retry-After.
	// Default 1024.
	MaxScreenStreams int

	// WriteKeys allow every request; ReadKeys allow reads only (picks,
	// customer profiles). Keys travel as "Authorization: Bearer <key>" or
	// "X-API-Key: <key>"; several per scope let a key be rotated. With
	// none, the server runs open, and New refuses unless Addr is loopback.
	WriteKeys []string
	ReadKeys  []string

	Now func() time.Time // default time.Now

	// Metrics, if set, is where the server counts; default: NewMetrics().
	// Set it to feed the same registry from outside the server, as
	// cmd/omnipick does with the write-ahead log's fsyncs.
	Metrics *Metrics
	// StoreStats, if set, is called at each scrape of /metrics for the
	// write-ahead log and snapshot figures (store.(*Store).Stats).
	StoreStats func() store.Stats
	// Health, if set, gives the JSON object GET /healthz answers (a cluster
	// node says who it is and what it holds); default {"status":"ok"}.
	Health func() []byte
	// Compact, if set, serves POST /v1/admin/compact
	// (store.(*Store).Compact).
	Compact compactFunc
	// CompactJSON, if set (cluster mode), serves POST /v1/admin/compact
	// instead: it compacts and returns the JSON object to answer.
	CompactJSON func() ([]byte, error)

	// Route, if set (a partitioned cluster node), says where requests
	// about an actor are answered: "" here, else the base URL
	// ("http://10.0.0.2:7070") of the node that owns the actor's
	// partition, which the request is forwarded to and whose answer is
	// relayed. An error (no live owner) answers 503 with Retry-After and a
	// JSON error. It is called on every picks request: it must be cheap
	// and, for "", allocate nothing. See forward.go.
	Route func(actor string, anon bool) (string, error)
	// Owners, if set, returns the base URLs of the OTHER nodes that own
	// partitions now, for the requests that span every actor (audiences):
	// each is asked for the members it owns and the rows are streamed one
	// node after another, after this node's own.
	Owners func() ([]string, error)
	// Owns, if set, reports whether this node owns an actor's partition:
	// with it, an audience asked with scope owned lists only the members
	// this node owns (a standby holds more).
	Owns func(actor string, anon bool) bool
	// ForwardTimeout bounds each step (connect, send, each read) of a
	// request forwarded to an owner; default 3 s. An owner slower than
	// that is answered for with 503.
	ForwardTimeout time.Duration
}

// Server serves the HTTP API. Safe for concurrent use.
type Server struct {
	opts     Options
	srv      *fasthttp.Server
	ln       net.Listener
	done     chan struct{}
	closing  chan struct{} // closed by Stop: long-lived streams end on it
	stopOnce sync.Once
	fresh    *freshConns // connections that have not sent a byte
	serveMu  sync.Mutex
	serveErr error

	decoders sync.Pool // *Decoder
	batches  sync.Pool // *writeBatch
	queries  sync.Pool // *pickRequest
	feeds    feeds

	picksTmpl *template.Template // format=html
	audiences audienceStreams

	keys     []apiKey     // empty: open
	inFlight atomic.Int64 // requests in handle, bounded by MaxInFlight
	metrics  *Metrics

	screenPage       *template.Template // the store kiosk page, parsed once
	screenStreams    atomic.Int64       // event streams open, bounded by MaxScreenStreams
	screenRecomputes atomic.Uint64      // picks computed for event streams
	explorePage      *template.Template // the explorer page, parsed once

	routes [numEndpoints]routeSpec // by endpoint; see route

	items itemJSON // picks' item fields, encoded once per catalog change

	peers peers // connection pools to partition owners (cluster mode)
}

// connsPerInFlight sets fasthttp's connection limit, a backstop above
// MaxInFlight: idle keep-alive connections count against it, and a
// connection over it is refused with a plain-text 503 before any handler.
const connsPerInFlight = 4

// New returns a Server; Start makes it listen. It refuses to serve without
// keys on an address other machines can reach.
func New(opts Options) (*Server, error) {
	if opts.Engine == nil {
		return nil, errors.New("api: Options.Engine is nil")
	}
	if opts.Owners != nil && opts.Owns == nil {
		// This node's rows would hold its standby copies too: members
		// listed twice.
		return nil, errors.New("api: Options.Owners needs Options.Owns, to list only the members this node owns")
	}
	keys, err := checkAccess(opts.Addr, opts.WriteKeys, opts.ReadKeys)
	if err != nil {
		return nil, err
	}
	page, err := newScreenPage()
	if err != nil {
		return nil, err
	}
	explore, err := newExplorePage()
	if err != nil {
		return nil, err
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
	if opts.MaxScreenStreams <= 0 {
		opts.MaxScreenStreams = defaultMaxScreens
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	if opts.ForwardTimeout <= 0 {
		opts.ForwardTimeout = defaultForwardTimeout
	}
	s := &Server{opts: opts, done: make(chan struct{}), closing: make(chan struct{}), keys: keys, fresh: newFreshConns(),
		screenPage: page, explorePage: explore, picksTmpl: newPicksTemplate(), metrics: opts.Metrics}
	s.items.max = maxItemJSONBytes
	s.peers.timeout = opts.ForwardTimeout
	if err := s.metrics.register(s); err != nil {
		return nil, err
	}
	s.routes = newRoutes(s)
	s.decoders.New = func() any { return new(Decoder) }
	s.batches.New = func() any { return new(writeBatch) }
	s.queries.New = func() any { return new(pickRequest) }
	s.srv = &fasthttp.Server{
		Handler:                      s.handle,
		ErrorHandler:                 s.handleParseError,
		Logger:                       fasthttpLogger{opts.Log},
		Name:                         "omnipick",
		MaxRequestBodySize:           opts.MaxBodyBytes,
		Concurrency:                  max(connsPerInFlight*opts.MaxInFlight, 256),
		SecureErrorLogMessage:        true, // errors never quote request bytes (keys travel in headers)
		ReadTimeout:                  30 * time.Second,
		WriteTimeout:                 30 * time.Second,
		IdleTimeout:                  2 * time.Minute,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		DisablePreParseMultipartForm: true,
	}
	return s, nil
}

// Start listens on Options.Addr (or takes Options.Listener) and serves in
// the background.
func (s *Server) Start() error {
	ln := s.opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.opts.Addr); err != nil {
			return fmt.Errorf("cannot listen on %q: %w", s.opts.Addr, err)
		}
	}
	if len(s.keys) == 0 {
		// Belt and braces for New's check: "localhost" may resolve to
		// anything.
		if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
			ln.Close()
			return fmt.Errorf("api: refusing to serve %s without API keys: it is not a loopback address; set write and read keys", ln.Addr())
		}
	}
	s.ln = ln
	go func() {
		err := s.srv.Serve(lingerListener{Listener: ln, fresh: s.fresh})
		s.serveMu.Lock()
		s.serveErr = err
		s.serveMu.Unlock()
		close(s.done)
	}()
	if len(s.keys) == 0 {
		s.opts.Log.Warn("no API keys configured: serving without authentication, reachable from this machine only; set write and read keys before listening on other addresses", "addr", ln.Addr().String())
	} else {
		// How many, never which: keys stay out of logs.
		s.opts.Log.Info("API keys required", "write_keys", len(s.opts.WriteKeys), "read_keys", len(s.opts.ReadKeys))
	}
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
	// Shutdown closes the listener and waits for busy connections; one that
	// never sent a byte would hold it until the read timeout, so close those
	// first (and any accepted from now on: no request of theirs started).
	s.fresh.closeAll()
	// Shutdown also waits for responses being written, and a screen's
	// event stream would be written forever: end the streams first.
	s.stopOnce.Do(func() { close(s.closing) })
	s.audiences.stopping.Store(true)
	if err := s.srv.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("cannot shut down http server: %w", err)
	}
	<-s.done
	s.peers.closeIdle()
	return nil
}

// direct applies writes to the engine without a log: for tests and tools
// that need no durability.
type direct struct{ e *engine.Engine }

func (d direct) Write(recs []engine.Record, errs []error) error {
	d.e.ApplyBatch(recs, errs)
	return nil
}

// bodyOverloaded answers a request over MaxInFlight.
const bodyOverloaded = `{"error":"overloaded: too many requests in flight, retry later"}`

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	path := ctx.Path()
	ep := endpointOf(path)
	s.serve(ctx, ep, path)
	s.metrics.observe(ep, ctx.Response.StatusCode(), time.Since(start))
}

// serve is handle without the request metrics: it bounds the requests in
// flight and routes. Benchmarks call it to measure what metrics cost.
func (s *Server) serve(ctx *fasthttp.RequestCtx, ep endpoint, path []byte) {
	// /healthz and /metrics are cheap and are how operators see an
	// overload: they do not count against MaxInFlight.
	if ep != epHealth && ep != epMetrics {
		n := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		if n > int64(s.opts.MaxInFlight) {
			ctx.Response.Header.Set("Retry-After", "1")
			writeErrorBody(ctx, fasthttp.StatusServiceUnavailable, bodyOverloaded)
			return
		}
	}
	s.route(ctx, ep, path)
}

// endpointOf maps a path to its endpoint; epOther when there is none.
func endpointOf(path []byte) endpoint {
	switch string(path) {
	case "/v1/picks":
		return epPicks
	case "/v1/events":
		return epEvents
	case "/v1/products":
		return epProducts
	case "/v1/inventory":
		return epInventory
	case "/v1/identify":
		return epIdentify
	case "/v1/locations":
		return epLocations
	case "/v1/exclusions":
		return epExclusions
	case "/v1/feeds/products":
		return epFeeds
	case "/v1/admin/compact":
		return epAdminCompact
	case "/healthz":
		return epHealth
	case "/metrics":
		return epMetrics
	case openAPIYAMLPath, openAPIJSONPath:
		return epOpenAPI
	}
	if len(path) > len(customerPrefix) && string(path[:len(customerPrefix)]) == customerPrefix {
		return epCustomer
	}
	if len(path) > len(screenPrefix) && string(path[:len(screenPrefix)]) == screenPrefix {
		return epScreen
	}
	if len(path) > len(audiencePrefix) && string(path[:len(audiencePrefix)]) == audiencePrefix {
		return epAudiences
	}
	if len(path) > len(imagePrefix) && string(path[:len(imagePrefix)]) == imagePrefix {
		return epImages
	}
	if isExplorePath(path) {
		return epExplore
	}
	return epOther
}

const customerPrefix = "/v1/customers/"

func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	writeError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed; use "+allow, "")
}

// handleParseError answers requests fasthttp could not read: a body over
// MaxBodyBytes (by its Content-Length, before reading it, or while reading
// a chunked one), a malformed request line or header, a read timeout.
// fasthttp then closes the connection, which lingers so that the client
// reads the answer (see lingerConn).
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	lingerOnClose(ctx.Conn())
	status := fasthttp.StatusBadRequest
	var small *fasthttp.ErrSmallBuffer
	var nerr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status = fasthttp.StatusRequestEntityTooLarge
		writeError(ctx, status, fmt.Sprintf("request body larger than %d bytes", s.opts.MaxBodyBytes), "body")
	case errors.As(err, &small):
		status = fasthttp.StatusRequestHeaderFieldsTooLarge
		writeError(ctx, status, "request headers too large", "")
	case errors.As(err, &nerr) && nerr.Timeout():
		status = fasthttp.StatusRequestTimeout
		writeError(ctx, status, "request not received in time", "")
	default:
		// SecureErrorLogMessage keeps request bytes out of err.
		writeError(ctx, status, "cannot parse request: "+err.Error(), "")
	}
	s.metrics.observe(epOther, status, 0)
}

// fasthttpLogger sends fasthttp's own messages to the server's log. The
// only one an operator must see is the connection limit being hit; the
// rest are broken client connections, already answered or counted.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, "concurrent connections") || strings.Contains(msg, "accepting new connections") {
		l.log.Warn("http server: " + msg)
		return
	}
	l.log.Debug("http server: " + msg)
}

// writeError sets a JSON error response. It appends into the response's
// own body buffer, so that once fasthttp's pools are warm it allocates
// nothing.
func writeError(ctx *fasthttp.RequestCtx, status int, msg, field string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b := ctx.Response.SwapBody(nil)
	ctx.Response.SwapBody(appendError(b[:0], msg, field, true))
}

// writeErrorBody sets a JSON error response with a fixed body; it does not
// allocate.
func writeErrorBody(ctx *fasthttp.RequestCtx, status int, body string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(body)
}

// appendError appends {"error":msg,"field":field and, when close is set,
// the closing brace.
func appendError(b []byte, msg, field string, close bool) []byte {
	b = append(b, `{"error":`...)
	b = jsonenc.AppendString(b, msg)
	if field != "" {
		b = append(b, `,"field":`...)
		b = jsonenc.AppendString(b, field)
	}
	if close {
		b = append(b, '}')
	}
	return b
}

// CheckAccess returns the error New would give for serving addr with these
// keys (bad keys, or no keys on an address other hosts can reach), so a
// command can refuse before it touches its data folder.
func CheckAccess(addr string, writeKeys, readKeys []string) error {
	_, err := checkAccess(addr, writeKeys, readKeys)
	return err
}

func checkAccess(addr string, writeKeys, readKeys []string) ([]apiKey, error) {
	keys, err := newKeys(writeKeys, readKeys)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 && !loopbackOnly(addr) {
		return nil, fmt.Errorf("api: refusing to serve %q without API keys: anyone who can reach it could read and write everything; "+
			"set write keys and read keys (omnipick serve -write-key/-read-key, or OMNIPICK_WRITE_KEY/OMNIPICK_READ_KEY), "+
			"or listen on a loopback address such as 127.0.0.1:7070", addr)
	}
	return keys, nil
}
