// Package client is a Go client for Omnipick's HTTP API, written on its
// OpenAPI document (api/openapi.yaml, served at /openapi.yaml): typed
// requests and answers, writes batched as NDJSON (zstd- or gzip-encoded),
// retries with backoff that never apply a write twice, context deadlines,
// and read and write keys.
//
//	c, err := client.New(client.Options{BaseURL: "http://127.0.0.1:7070", WriteKey: key})
//	res, err := c.Events(ctx, []client.Event{{Type: client.CartAdd, Customer: "C42", SKU: "P200-8"}})
//	picks, err := c.Picks(ctx, client.PicksQuery{Customer: "C42", Channel: "ads", K: 8})
//
// A Client is safe for concurrent use; make one per server and reuse it
// (it keeps connections open).
//
// Retries. A request is retried, after an exponential backoff with jitter
// (or the server's Retry-After, when not longer than Retry.Max), when the
// server is overloaded (503 with Retry-After) or times out reading it
// (408), when a proxy in front of it fails (502, 504), and, for requests
// that are safe to repeat, when the connection fails. Every write is safe to repeat: products, stock,
// stores and exclusions are absolute, and events, links and exclusions
// carry an event_id (filled in here when empty) that the server applies
// once. Picks with Record set are repeated only when the server said it
// recorded nothing. Every other 4xx is returned at once, and so is a
// Retry-After longer than Retry.Max (Error.RetryAfter says when to come
// back) or than the context's deadline allows.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fastjson"
)

// Compression is how write bodies are encoded.
type Compression uint8

const (
	Zstd Compression = iota // the default: fastest at a like ratio
	Gzip
	NoCompression
)

// Retry sets how failed requests are retried.
type Retry struct {
	Attempts int           // tries in all, the first included; 1: no retry
	Base     time.Duration // the first backoff; each next one doubles
	Max      time.Duration // the longest backoff; a longer Retry-After is returned, not waited for
}

// Options configure a Client. Only BaseURL is required.
type Options struct {
	BaseURL  string // "http://127.0.0.1:7070"
	ReadKey  string // for reads; empty: WriteKey
	WriteKey string // for writes (and reads when ReadKey is empty); empty: ReadKey, which the server refuses (403)

	// HTTPClient sends the requests; default: one with keep-alive
	// connections enough for concurrent use (64 per host). Set its
	// Timeout, or give each call a context with a deadline.
	HTTPClient *http.Client
	// Retry; zero: DefaultRetry().
	Retry Retry
	// Compression of write bodies; default Zstd.
	Compression Compression
	// MaxBatchBytes bounds one write body, before compression; a larger
	// write is sent as several bodies, in order. Default 4 MiB (the
	// server takes 32 MiB).
	MaxBatchBytes int
}

// DefaultRetry returns the retry policy of a zero Options.Retry: 4 tries,
// backoff from 100 ms doubling up to 5 s.
func DefaultRetry() Retry {
	return Retry{Attempts: 4, Base: 100 * time.Millisecond, Max: 5 * time.Second}
}

// Client talks to one Omnipick server. Safe for concurrent use.
type Client struct {
	base      string
	readAuth  string // "Bearer <key>", or ""
	writeAuth string
	http      *http.Client
	retry     Retry
	coding    Compression
	maxBatch  int
	zw        *zstd.Encoder // EncodeAll is safe for concurrent use
	bufs      sync.Pool     // *bytes.Buffer: answers being read
	parsers   fastjson.ParserPool
}

// New returns a Client for the server at opts.BaseURL.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: BaseURL %q must be an http(s) URL such as http://127.0.0.1:7070", opts.BaseURL)
	}
	c := &Client{base: strings.TrimSuffix(opts.BaseURL, "/"), http: opts.HTTPClient, retry: opts.Retry,
		coding: opts.Compression, maxBatch: opts.MaxBatchBytes}
	if opts.WriteKey != "" {
		c.writeAuth = "Bearer " + opts.WriteKey
	}
	c.readAuth = c.writeAuth
	if opts.ReadKey != "" {
		c.readAuth = "Bearer " + opts.ReadKey
	}
	if c.writeAuth == "" { // the server then says why a write is refused (403)
		c.writeAuth = c.readAuth
	}
	if c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		c.http = &http.Client{Transport: t}
	}
	if c.retry.Attempts <= 0 {
		c.retry = DefaultRetry()
	}
	c.bufs.New = func() any { return new(bytes.Buffer) }
	if c.maxBatch <= 0 {
		c.maxBatch = 4 << 20
	}
	if c.coding == Zstd {
		if c.zw, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1)); err != nil {
			return nil, fmt.Errorf("client: cannot start zstd: %w", err)
		}
	}
	return c, nil
}

// Error is an answer of the server other than success: its status and
// its JSON error body.
type Error struct {
	Status  int
	Message string // the body's "error"
	Field   string // the input field at fault, when one is
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration

	rejected []Reject // a write's 400 when nothing could be applied
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("omnipick: %d: %s (field %s)", e.Status, e.Message, e.Field)
	}
	return fmt.Sprintf("omnipick: %d: %s", e.Status, e.Message)
}

// request is one call: what to send, and whether sending it twice is safe.
type request struct {
	method, path string
	query        url.Values
	write        bool   // the write key; else the read key
	body         []byte // already encoded
	ctype        string
	encoding     string
	accept       string // Accept-Encoding
	// idempotent: retried on connection failures too, which may have
	// reached the server.
	idempotent bool
}

// do sends r, retrying per the policy, and returns the response of the
// last attempt with a 2xx status (its body for the caller to close), or an
// error: *Error for an answer of the server.
func (c *Client) do(ctx context.Context, r *request) (*http.Response, error) {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		resp, err := c.once(ctx, r, u)
		if err == nil && resp.StatusCode/100 == 2 {
			return resp, nil
		}
		var wait time.Duration
		retry := false
		if err != nil {
			// A request that never left (no connection) is safe to send
			// again; one that may have reached the server only when
			// idempotent.
			retry = ctx.Err() == nil && (r.idempotent || notSent(err))
			lastErr = err
		} else {
			e := errorOf(resp)
			lastErr = e
			switch e.Status {
			case http.StatusServiceUnavailable:
				retry, wait = e.RetryAfter > 0, e.RetryAfter
			case http.StatusRequestTimeout, http.StatusBadGateway, http.StatusGatewayTimeout:
				retry = true
			}
		}
		// A Retry-After longer than the longest backoff is the caller's to
		// schedule (Error.RetryAfter): retrying sooner would only be
		// refused again.
		if !retry || attempt+1 >= c.retry.Attempts || wait > c.retry.Max {
			return nil, lastErr
		}
		if err := c.sleep(ctx, attempt, wait); err != nil {
			return nil, fmt.Errorf("%w (giving up: %w)", lastErr, err)
		}
	}
}

// once sends one attempt.
func (c *Client) once(ctx context.Context, r *request, u string) (*http.Response, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("omnipick: %w", err)
	}
	auth := c.readAuth
	if r.write {
		auth = c.writeAuth
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	if r.encoding != "" {
		req.Header.Set("Content-Encoding", r.encoding)
	}
	if r.accept != "" {
		req.Header.Set("Accept-Encoding", r.accept)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("omnipick: %s %s: %w", r.method, r.path, err)
	}
	return resp, nil
}

// notSent reports whether err means the request never reached the server.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// sleep waits before retry attempt+1: the server's Retry-After when it
// gave one, else a backoff with full jitter; it ends early with ctx, or at
// once when ctx's deadline comes before the wait would.
func (c *Client) sleep(ctx context.Context, attempt int, retryAfter time.Duration) error {
	d := retryAfter
	if d <= 0 {
		ceil := c.retry.Base << min(attempt, 30)
		if ceil <= 0 || ceil > c.retry.Max {
			ceil = c.retry.Max
		}
		d = mathrand.N(ceil) + 1
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.DeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errorOf reads an error answer and closes its body.
func errorOf(resp *http.Response) *Error {
	defer drain(resp)
	e := &Error{Status: resp.StatusCode}
	var body struct {
		Error    string   `json:"error"`
		Field    string   `json:"field"`
		Rejected []Reject `json:"rejected"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Message, e.Field, e.rejected = body.Error, body.Field, body.Rejected
	} else {
		e.Message = strings.TrimSpace(string(b))
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// getJSON sends a GET and decodes a JSON answer into v.
func (c *Client) getJSON(ctx context.Context, r *request, v any) error {
	r.method = http.MethodGet
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return c.decode(resp, v, "GET "+r.path)
}

// decode reads a JSON answer to its end (so that the connection is
// reused) and unmarshals it into v. Reading the whole body into a pooled
// buffer, then json.Unmarshal, is about a third faster than a
// json.Decoder, which scans the input twice.
func (c *Client) decode(resp *http.Response, v any, what string) error {
	buf := c.bufs.Get().(*bytes.Buffer)
	defer c.bufs.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return fmt.Errorf("omnipick: cannot read the answer of %s: %w", what, err)
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil { // copies what it keeps: buf may be reused
		return fmt.Errorf("omnipick: cannot decode the answer of %s: %w", what, err)
	}
	return nil
}

// drain reads what is left of a body and closes it: a body closed unread
// closes its connection, and the next request would pay for a new one.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// newEventID returns a random id for an object that has none: 128 bits,
// so that ids from many clients never collide.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// BaseURL is the server's address, as given in Options.
func (c *Client) BaseURL() string { return c.base }
