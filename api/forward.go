package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Forwarding in a partitioned cluster (docs/API.md, "Cluster"). A node
// holds the profiles of the partitions it owns; a read about an actor that
// another node owns is sent there and its answer relayed, so an
// acknowledged write is seen by the next read on any node. Forwarding
// happens in the handlers, after the key, the method and the parameters
// are checked here (bad input is answered by the node asked, without a
// hop), and before anything is computed.
//
// A forwarded request carries forwardedHeader and is always answered
// where it lands: at most one hop, never a loop, even while two nodes
// disagree about an owner for a moment.

// forwardedHeader marks a request a node forwarded (or a peer's audience
// request): answer it here.
const forwardedHeader = "X-Omnipick-Forwarded"

// defaultForwardTimeout bounds a forwarded request's connect, write and
// read, each: an owner that does not answer in it is treated as down.
const defaultForwardTimeout = 3 * time.Second

// maxForwardedBody bounds an owner's answer a node buffers to relay.
const maxForwardedBody = 64 << 20

// forwardRetryAfter is the Retry-After of a 503 for an owner that cannot
// be reached: ownership moves to a standby within seconds.
const forwardRetryAfter = "1"

// peers holds one connection pool per owner node, made on first use. Safe
// for concurrent use.
type peers struct {
	timeout time.Duration
	mu      sync.RWMutex
	quick   map[string]*fasthttp.HostClient // by base URL: buffered answers, ReadTimeout bounds each
	stream  *http.Client                    // streamed answers (audiences), made on first use; see streamClient
}

// streamClient returns the client of the peers' audience streams. It is
// net/http's, not fasthttp's: fasthttp v1.74's streamed body reads a
// chunked answer cut at a chunk boundary as a clean end (readHexInt
// takes EOF before a chunk size for the end), so a peer that failed
// midway would look like a short audience; net/http reports
// io.ErrUnexpectedEOF. A stream runs for minutes, so instead of a
// deadline for the whole answer each read has the timeout (idleConn).
func (p *peers) streamClient() *http.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stream == nil {
		t := p.timeout
		d := &net.Dialer{Timeout: t}
		p.stream = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return idleConn{Conn: c, idle: t}, nil
			},
			DisableCompression:    true, // rows come plain; this node compresses
			ResponseHeaderTimeout: t,
			TLSHandshakeTimeout:   t,
			IdleConnTimeout:       time.Minute,
			MaxIdleConnsPerHost:   4,
		}}
	}
	return p.stream
}

// errBadOwner is returned for an owner URL a node cannot send to.
var errBadOwner = errors.New("bad owner URL")

// client returns the pool for base ("http://10.0.0.2:7070").
func (p *peers) client(base string) (*fasthttp.HostClient, error) {
	p.mu.RLock()
	hc := p.quick[base]
	p.mu.RUnlock()
	if hc != nil {
		return hc, nil
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w %q: want http://host:port", errBadOwner, base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	t := p.timeout
	hc = &fasthttp.HostClient{
		Addr:                     addr,
		IsTLS:                    u.Scheme == "https",
		Name:                     "omnipick-forward",
		NoDefaultUserAgentHeader: true, // the client's User-Agent travels as it came
		DisablePathNormalizing:   true, // the path goes as the client sent it
		MaxConns:                 1024,
		MaxConnWaitTimeout:       t,
		MaxIdleConnDuration:      time.Minute,
		MaxResponseBodySize:      maxForwardedBody,
		// One retry covers a keep-alive connection the owner closed
		// while idle; more would only stretch a down owner's 503.
		MaxIdemponentCallAttempts: 2,
		WriteTimeout:              t,
		ReadTimeout:               t,
		Dial:                      func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, t) },
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quick == nil {
		p.quick = map[string]*fasthttp.HostClient{}
	}
	if old := p.quick[base]; old != nil {
		return old, nil
	}
	p.quick[base] = hc
	return hc, nil
}

// closeIdle closes the pools' idle connections (when the server stops).
func (p *peers) closeIdle() {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, hc := range p.quick {
		hc.CloseIdleConnections()
	}
	if p.stream != nil {
		p.stream.CloseIdleConnections()
	}
}

// idleConn moves its read deadline on before every read, so that a
// streamed answer fails after idle without a byte, however long it runs.
// (A pooled idle connection's deadline passes, harmlessly: the next use
// reads again, which moves it on.)
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c idleConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// schemeOf is the URL scheme of hc's owner.
func schemeOf(hc *fasthttp.HostClient) string {
	if hc.IsTLS {
		return "https"
	}
	return "http"
}

// forwarded reports whether another node forwarded this request.
func forwarded(ctx *fasthttp.RequestCtx) bool {
	return len(ctx.Request.Header.Peek(forwardedHeader)) > 0
}

// forward answers the request from the owner of actor when Options.Route
// names another node, and reports whether the request is answered (by the
// owner's answer, or a 503 when it cannot be had). With no Route, no actor,
// a forwarded request or an actor owned here it does nothing and
// allocates nothing.
func (s *Server) forward(ctx *fasthttp.RequestCtx, ep endpoint, actor string, anon bool) bool {
	if s.opts.Route == nil || actor == "" || forwarded(ctx) {
		return false
	}
	owner, err := s.opts.Route(actor, anon)
	if err != nil {
		s.metrics.observeForward(ep, forwardNoOwner, 0)
		ctx.Response.Header.Set("Retry-After", forwardRetryAfter)
		writeError(ctx, fasthttp.StatusServiceUnavailable, "no live owner for this actor's partition, retry later: "+err.Error(), "")
		return true
	}
	if owner == "" {
		return false
	}
	s.relay(ctx, ep, owner)
	return true
}

// relay sends the request to owner as it came (method, path, query,
// headers with the key, body), marked forwarded, and answers with the
// owner's status, headers and body, buffered: every forwarded answer is
// one JSON or HTML document.
func (s *Server) relay(ctx *fasthttp.RequestCtx, ep endpoint, owner string) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	ctx.Request.CopyTo(req)
	req.Header.ResetConnectionClose() // the client's connection, not ours to the owner
	if err := s.askOwner(ep, owner, req, resp); err != nil {
		s.opts.Log.Warn("cannot forward to the partition's owner", "owner", owner, "err", err)
		ctx.Response.Header.Set("Retry-After", forwardRetryAfter)
		writeError(ctx, fasthttp.StatusServiceUnavailable, "cannot reach "+owner+", the owner of this actor's partition, retry later: "+err.Error(), "")
		return
	}
	resp.Header.CopyTo(&ctx.Response.Header)
	ctx.Response.Header.ResetConnectionClose()
	ctx.Response.SetBody(resp.Body())
}

// askOwner sends req (its path and query, headers and body set) to owner,
// marked forwarded, and counts how that went for ep: failed when no answer
// came, whatever the answer's status.
func (s *Server) askOwner(ep endpoint, owner string, req *fasthttp.Request, resp *fasthttp.Response) error {
	hc, err := s.peers.client(owner)
	if err != nil {
		s.metrics.observeForward(ep, forwardFailed, 0)
		return err
	}
	req.URI().SetScheme(schemeOf(hc))
	req.SetHost(hc.Addr)
	req.Header.Set(forwardedHeader, "1")
	start := time.Now()
	err = hc.Do(req, resp)
	outcome := forwardOK
	if err != nil {
		outcome = forwardFailed
	}
	s.metrics.observeForward(ep, outcome, time.Since(start))
	return err
}

// ownerPicks sends GET uri to owner with key (none when "") and appends
// its answer's body to dst; any status but 200 is an error.
func (s *Server) ownerPicks(dst []byte, ep endpoint, owner, uri, key string) ([]byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(uri)
	if key != "" {
		req.Header.Set(peerKeyHeader, key)
	}
	if err := s.askOwner(ep, owner, req, resp); err != nil {
		return dst, err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return dst, fmt.Errorf("%s answered %d: %.200s", owner, resp.StatusCode(), resp.Body())
	}
	return append(dst, resp.Body()...), nil
}

// requestAuth is the request's key, read as route read it (presentedKey)
// and copied, for requests to a peer made after the handler returns: the
// key its headers present or, when it sent no key header, a key given in
// the query (a kiosk's stream). A key header presentedKey cannot read (a
// Basic Authorization, say) rules the query's key out: a client that sent
// key headers is represented to the owner by them alone.
func requestAuth(ctx *fasthttp.RequestCtx) string {
	h := &ctx.Request.Header
	if key, ok := presentedKey(h); ok {
		return string(key)
	}
	if len(h.Peek("Authorization")) > 0 || len(h.Peek(peerKeyHeader)) > 0 {
		return ""
	}
	return string(bytes.TrimSpace(ctx.QueryArgs().Peek("key")))
}

// peerAuth is the key the request's headers present, copied: a stream
// asks peers after the handler has returned. "" when they present none.
func peerAuth(h *fasthttp.RequestHeader) string {
	key, _ := presentedKey(h)
	return string(key)
}

// peerKeyHeader carries the key to a peer, which reads it with
// presentedKey as this node did.
const peerKeyHeader = "X-API-Key"

// cutFirstLine returns b after its first '\n', and whether there was one.
func cutFirstLine(b []byte) ([]byte, bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, false
	}
	return b[i+1:], true
}
