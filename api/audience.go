package api

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/internal/jsonenc"
	"github.com/valyala/fasthttp"
)

const audiencePrefix = "/v1/audiences/"

// Audience parameter bounds.
const (
	maxAudienceAge  = 365 * 24 * time.Hour
	maxAudienceDays = 365
	// audienceRetryAfter is the Retry-After of a refused stream, in
	// seconds: streams last minutes, so retrying in one would not help.
	audienceRetryAfter = "10"
)

// audienceStreams is the server's state for audience streams: pooled
// compressors (a zstd encoder costs a few hundred KiB to build) and the
// count of streams running, which outlive their handler and so escape
// MaxInFlight. Safe for concurrent use.
type audienceStreams struct {
	gz   sync.Pool // *gzip.Writer
	zs   sync.Pool // *zstd.Encoder
	open atomic.Int64
	// peerOpen counts the streams a peer asked for (cluster mode), apart:
	// each is part of a stream its node admitted already, and refusing it
	// would fail that stream midway (two clients at two nodes, each node
	// asking the other, would otherwise fill both nodes' slots).
	peerOpen atomic.Int64
	stopping atomic.Bool // set by Server.Stop: streams abort at their next batch
}

// maxOpen bounds the streams running at once: each keeps one core busy
// ranking picks, so more than the cores only slows them all down.
func (a *audienceStreams) maxOpen() int64 { return int64(max(2, runtime.GOMAXPROCS(0))) }

// audienceFormat is a stream's row format.
type audienceFormat uint8

const (
	formatNDJSON audienceFormat = iota
	formatCSV
)

// audienceRequest is one parsed audience request. Unlike pickRequest it
// owns its strings: the stream runs after the handler has returned and
// the request's buffers are reused.
type audienceRequest struct {
	q         engine.AudienceQuery
	k         int
	locations []string
	format    audienceFormat
	coding    contentCoding

	// Cluster mode (see forward.go). owned: list only the members this
	// node owns (scope=owned, what a peer asks). owners: the other
	// owners, asked in turn after this node's rows at peerURI with the
	// request's key auth ("" for none).
	owned   bool
	owners  []string
	peerURI string
	auth    string
}

// handleAudience streams the members of audience name, each with their ads
// picks, as NDJSON or CSV, compressed per Accept-Encoding.
func (s *Server) handleAudience(ctx *fasthttp.RequestCtx, name []byte) {
	kind, ok := engine.ParseAudience(string(name))
	if !ok {
		writeError(ctx, fasthttp.StatusNotFound, "no such audience; built-in audiences are cart_abandoners and viewers", "name")
		return
	}
	req := &audienceRequest{q: engine.AudienceQuery{Kind: kind}}
	if field, msg := parseAudienceQuery(req, ctx.QueryArgs()); field != "" {
		writeError(ctx, fasthttp.StatusBadRequest, msg, field)
		return
	}
	if refuseUnknownLocation(ctx, s.opts.Engine, req.locations) {
		return
	}
	req.coding = negotiateCoding(ctx.Request.Header.Peek("Accept-Encoding"))
	peer := forwarded(ctx) // a peer asking: never fanned out again, and held to the peers' stream limit
	if s.opts.Owners != nil && !req.owned && !peer {
		owners, err := s.opts.Owners()
		if err != nil {
			s.metrics.observeForward(epAudiences, forwardNoOwner, 0)
			ctx.Response.Header.Set("Retry-After", forwardRetryAfter)
			writeError(ctx, fasthttp.StatusServiceUnavailable, "cannot list the partitions' owners, retry later: "+err.Error(), "")
			return
		}
		// This node's own rows first, then each other owner's: every
		// member once, from the node that holds its profile.
		req.owned, req.owners = true, owners
		args := fasthttp.AcquireArgs()
		ctx.QueryArgs().CopyTo(args)
		args.Set("scope", "owned")
		req.peerURI = audiencePrefix + string(name) + "?" + args.String()
		fasthttp.ReleaseArgs(args)
		req.auth = peerAuth(&ctx.Request.Header)
	}

	h := &ctx.Response.Header
	h.Set("Vary", "Accept-Encoding")
	h.Set("Cache-Control", "no-store") // rows hold customer ids
	switch req.format {
	case formatCSV:
		ctx.SetContentType("text/csv; charset=utf-8")
	default:
		ctx.SetContentType("application/x-ndjson")
	}
	switch req.coding {
	case codingGzip:
		h.Set("Content-Encoding", "gzip")
	case codingZstd:
		h.Set("Content-Encoding", "zstd")
	}
	if ctx.IsHead() {
		return
	}
	a := &s.audiences
	open := &a.open
	if peer {
		open = &a.peerOpen
	}
	if open.Add(1) > a.maxOpen() || a.stopping.Load() {
		open.Add(-1)
		h.Del("Content-Encoding")
		ctx.Response.Header.Set("Retry-After", audienceRetryAfter)
		writeError(ctx, fasthttp.StatusServiceUnavailable, "overloaded: too many audience streams running, retry later", "")
		return
	}
	// The connection, not the ctx, goes to the stream: it outlives the
	// handler, and the stream touches it only before it ends the body.
	conn := ctx.Conn()
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer open.Add(-1)
		if err := s.streamAudience(w, conn, req); err != nil {
			// The status is sent: the only way left to say "incomplete"
			// is to end the connection without the last chunk.
			abortStream(conn)
			s.opts.Log.Debug("audience stream ended early", "audience", kind.String(), "err", err)
		}
	})
}

// errStopping ends streams when the server stops.
var errStopping = errors.New("server stopping")

// abortStream makes every further write on conn fail, so the response
// never gets its terminating chunk and the client sees a truncated body
// (or no answer, when the stream failed before the status went out), not
// a short audience. A deadline alone is not enough: the stream runs from
// SetBodyStreamWriter on, beside the handler, and fasthttp sets the
// response's write deadline after the handler returns, which may undo one
// set by a stream that failed at once (a peer refusing a connection).
// The connection is closed too; fasthttp's own close of it then fails
// harmlessly.
func abortStream(conn net.Conn) {
	conn.SetWriteDeadline(time.Unix(1, 0)) //nolint:errcheck // best effort: the stream failed already
	conn.Close()                           //nolint:errcheck // as above
}

// streamAudience writes the audience to w. Memory is one batch of members,
// one batch of picks and the compressor's window, whatever the audience's
// size.
func (s *Server) streamAudience(w *bufio.Writer, conn net.Conn, req *audienceRequest) error {
	a := &s.audiences
	out, finish, release, err := a.encoder(w, req.coding)
	if err != nil {
		return err
	}
	defer release()

	q := engine.Query{Channel: engine.ChannelAds, K: req.k, Locations: req.locations}
	picks := make([]engine.Pick, 0, engine.MaxK)
	row := make([]byte, 0, 4<<10)
	if req.format == formatCSV {
		row = append(row, "customer,anonymous_id,products\n"...)
	}
	timeout := s.srv.WriteTimeout
	owns := s.opts.Owns
	if !req.owned {
		owns = nil
	}
	err = s.opts.Engine.Audience(&req.q, nil, func(batch []engine.Member) error {
		if a.stopping.Load() {
			return errStopping
		}
		// fasthttp gives the whole response WriteTimeout; a stream of
		// millions of rows takes minutes. Each batch moves the deadline
		// on, so the limit is WriteTimeout without progress: a client
		// that stops reading still loses the connection.
		if timeout > 0 {
			if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
				return fmt.Errorf("cannot extend write deadline: %w", err)
			}
		}
		for _, m := range batch {
			if owns != nil && !owns(m.ID, m.Anonymous) {
				continue // a standby's copy: its owner lists it
			}
			q.Customer, q.AnonymousID = m.ID, ""
			if m.Anonymous {
				q.Customer, q.AnonymousID = "", m.ID
			}
			picks = s.opts.Engine.PicksInto(picks[:0], &q)
			if req.format == formatCSV {
				row = appendAudienceCSV(row, m, picks)
			} else {
				row = appendAudienceJSON(row, m, picks, &s.items)
			}
			clear(picks) // do not pin old catalog items
			if len(row) >= 2<<10 {
				if _, err := out.Write(row); err != nil {
					return fmt.Errorf("cannot write audience rows: %w", err)
				}
				row = row[:0]
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot stream audience %s: %w", req.q.Kind, err)
	}
	if len(row) > 0 {
		if _, err := out.Write(row); err != nil {
			return fmt.Errorf("cannot write audience rows: %w", err)
		}
	}
	if len(req.owners) > 0 && cap(row) < 32<<10 {
		row = make([]byte, 32<<10) // the peers' rows are copied through it
	}
	for _, owner := range req.owners {
		// What is ready goes out before a peer is asked (the peer may be
		// slow to start): the client sees progress, and the status.
		if err := w.Flush(); err != nil {
			return fmt.Errorf("cannot write audience rows: %w", err)
		}
		if err := s.streamPeerAudience(out, conn, owner, req, row[:cap(row)]); err != nil {
			return fmt.Errorf("cannot stream audience %s from %s: %w", req.q.Kind, owner, err)
		}
	}
	if finish != nil {
		if err := finish(); err != nil {
			return fmt.Errorf("cannot end compressed audience: %w", err)
		}
	}
	return nil
}

// encoder returns the writer of an audience's body over w in coding, the
// function that ends its compressed stream (nil for none) and the one
// that returns the encoder to its pool.
func (a *audienceStreams) encoder(w io.Writer, coding contentCoding) (out io.Writer, finish func() error, release func(), err error) {
	switch coding {
	case codingGzip:
		gz, _ := a.gz.Get().(*gzip.Writer)
		if gz == nil {
			gz, _ = gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level: no error
		}
		gz.Reset(w)
		return gz, gz.Close, func() { a.gz.Put(gz) }, nil
	case codingZstd:
		zs, _ := a.zs.Get().(*zstd.Encoder)
		if zs == nil {
			zs, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
			if err != nil {
				return nil, nil, nil, fmt.Errorf("cannot start zstd encoder: %w", err)
			}
		}
		zs.Reset(w)
		return zs, zs.Close, func() { a.zs.Put(zs) }, nil
	}
	return w, nil, func() {}, nil
}

// streamPeerAudience asks owner for the audience's members it owns
// (scope=owned, uncompressed) and copies its rows to out, through buf,
// without the CSV header this node wrote already. A peer that cannot be
// asked, refuses, or ends early fails the whole stream: its rows would be
// missing.
func (s *Server) streamPeerAudience(out io.Writer, conn net.Conn, owner string, req *audienceRequest, buf []byte) error {
	start := time.Now()
	failed := func(err error) error {
		s.metrics.observeForward(epAudiences, forwardFailed, time.Since(start))
		return err
	}
	preq, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(owner, "/")+req.peerURI, nil)
	if err != nil {
		return failed(fmt.Errorf("%w %q: %w", errBadOwner, owner, err))
	}
	preq.Header.Set(forwardedHeader, "1")
	if req.auth != "" {
		preq.Header.Set(peerKeyHeader, req.auth)
	}
	resp, err := s.peers.streamClient().Do(preq)
	if err != nil {
		return failed(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return failed(fmt.Errorf("peer answered %s", resp.Status))
	}
	s.metrics.observeForward(epAudiences, forwardOK, time.Since(start))
	header := req.format == formatCSV // still to skip
	timeout := s.srv.WriteTimeout
	for {
		if s.audiences.stopping.Load() {
			return errStopping
		}
		n, rerr := resp.Body.Read(buf)
		chunk := buf[:n]
		if header && n > 0 {
			// The header line is short: it ends in the first read but
			// for a pathological split, handled by skipping on.
			rest, ok := cutFirstLine(chunk)
			if ok {
				header = false
			}
			chunk = rest
		}
		if len(chunk) > 0 {
			if timeout > 0 {
				if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
					return fmt.Errorf("cannot extend write deadline: %w", err)
				}
			}
			if _, err := out.Write(chunk); err != nil {
				return fmt.Errorf("cannot write audience rows: %w", err)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("peer stream failed: %w", rerr)
		}
	}
}

// parseAudienceQuery fills req from the query string. On bad input it
// returns the parameter at fault and a message.
func parseAudienceQuery(req *audienceRequest, args *fasthttp.Args) (field, msg string) {
	switch sc := string(args.Peek("scope")); sc {
	case "", "all":
	case "owned":
		req.owned = true
	default:
		return "scope", "scope must be all or owned (only the members whose partition this node owns)"
	}
	switch f := string(args.Peek("format")); f {
	case "", "ndjson":
		req.format = formatNDJSON
	case "csv":
		req.format = formatCSV
	default:
		return "format", "format must be ndjson or csv"
	}
	req.k = 10
	if kb := args.Peek("k"); len(kb) > 0 {
		k, err := strconv.Atoi(string(kb))
		if err != nil || k < 1 || k > engine.MaxK {
			return "k", "k must be a whole number from 1 to 100"
		}
		req.k = k
	}
	locs, bad := splitList(nil, args.Peek("location"))
	if bad {
		return "location", "location must be at most 100 comma-separated ids of at most 256 bytes each"
	}
	for _, l := range locs {
		req.locations = append(req.locations, strings.Clone(l)) // locs view the request
	}

	q := &req.q
	switch q.Kind {
	case engine.AudienceCartAbandoners:
		var ok bool
		if q.MinAge, ok = parseAge(args.Peek("min_age"), time.Hour); !ok {
			return "min_age", "min_age must be a duration such as 90m or 2h, or a number of hours, from 0 to 8760h"
		}
		if q.MaxAge, ok = parseAge(args.Peek("max_age"), 7*24*time.Hour); !ok || q.MaxAge == 0 {
			return "max_age", "max_age must be a duration such as 48h, or a number of hours, above 0 and at most 8760h"
		}
		if q.MinAge > q.MaxAge {
			return "min_age", "min_age must not exceed max_age"
		}
	case engine.AudienceViewers:
		cat := args.Peek("category")
		if len(cat) > maxIDBytes || !utf8.Valid(cat) {
			return "category", "category must be valid UTF-8 of at most 256 bytes"
		}
		q.Category = string(cat)
		days := 7
		if db := args.Peek("days"); len(db) > 0 {
			d, err := strconv.Atoi(string(db))
			if err != nil || d < 1 || d > maxAudienceDays {
				return "days", "days must be a whole number from 1 to 365"
			}
			days = d
		}
		q.Within = time.Duration(days) * 24 * time.Hour
	}
	return "", ""
}

// parseAge reads a Go duration ("90m", "2h") or a number of hours ("2",
// "1.5"); empty gives def. It accepts 0 to maxAudienceAge.
func parseAge(b []byte, def time.Duration) (time.Duration, bool) {
	if len(b) == 0 {
		return def, true
	}
	s := string(b)
	d, err := time.ParseDuration(s)
	if err != nil {
		h, ferr := strconv.ParseFloat(s, 64)
		// h <= maxHours also refuses NaN.
		if ferr != nil || !(h >= 0 && h <= maxAudienceAge.Hours()) {
			return 0, false
		}
		d = time.Duration(h * float64(time.Hour))
	}
	return d, d >= 0 && d <= maxAudienceAge
}

// appendAudienceJSON appends one NDJSON row: the member's id and their
// picks, compact (no score, category or brand: an ad needs what it shows
// and where it links).
func appendAudienceJSON(dst []byte, m engine.Member, picks []engine.Pick, items *itemJSON) []byte {
	if m.Anonymous {
		dst = append(dst, `{"anonymous_id":`...)
	} else {
		dst = append(dst, `{"customer":`...)
	}
	dst = jsonenc.AppendString(dst, m.ID)
	dst = append(dst, `,"picks":[`...)
	for i := range picks {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendPickJSON(dst, &picks[i], false, items)
	}
	return append(dst, "]}\n"...)
}

// appendAudienceCSV appends one CSV row, customer,anonymous_id,products,
// with the product ids ';'-joined in rank order. One row per member is
// what custom-audience uploads take: they match people, one line each.
func appendAudienceCSV(dst []byte, m engine.Member, picks []engine.Pick) []byte {
	if !m.Anonymous {
		dst = appendCSVField(dst, m.ID)
	}
	dst = append(dst, ',')
	if m.Anonymous {
		dst = appendCSVField(dst, m.ID)
	}
	dst = append(dst, ',')
	// The products field is quoted as a whole when any id needs it.
	quote := false
	for i := range picks {
		quote = quote || csvNeedsQuotes(picks[i].Item.ID)
	}
	if quote {
		dst = append(dst, '"')
	}
	for i := range picks {
		if i > 0 {
			dst = append(dst, ';')
		}
		dst = appendCSVEscaped(dst, picks[i].Item.ID, quote)
	}
	if quote {
		dst = append(dst, '"')
	}
	return append(dst, '\n')
}

// appendCSVField appends s as an RFC 4180 field, quoted when it holds a
// comma, a quote, a line break or leading or trailing space.
func appendCSVField(dst []byte, s string) []byte {
	if !csvNeedsQuotes(s) {
		return append(dst, s...)
	}
	dst = append(dst, '"')
	dst = appendCSVEscaped(dst, s, true)
	return append(dst, '"')
}

func csvNeedsQuotes(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == ' ' || s[0] == '\t' || s[len(s)-1] == ' ' || s[len(s)-1] == '\t' {
		return true
	}
	return strings.ContainsAny(s, ",\"\r\n")
}

// appendCSVEscaped appends s, doubling quotes when it is inside a quoted
// field.
func appendCSVEscaped(dst []byte, s string, quoted bool) []byte {
	if !quoted {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, s[i])
	}
	return dst
}
