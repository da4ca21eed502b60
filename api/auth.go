package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"strings"

	"github.com/valyala/fasthttp"
)

// access is what a request's key allows.
type access uint8

const (
	accessNone  access = iota // no key, or an unknown one
	accessRead                // a read key: picks, customer profiles
	accessWrite               // a write key: everything a read key allows, and writes
)

// apiKey is a configured key, kept only as its SHA-256 so that comparing it
// with a presented key takes the same time whatever the lengths.
type apiKey struct {
	sum   [sha256.Size]byte
	write int // 1 for a write key, 0 for a read key
}

// newKeys checks the configured keys and returns them hashed. A key must be
// printable ASCII without spaces (so that it travels unchanged in a header)
// and must not be empty.
func newKeys(write, read []string) ([]apiKey, error) {
	keys := make([]apiKey, 0, len(write)+len(read))
	add := func(scope string, list []string, w int) error {
		for i, k := range list {
			if k == "" {
				return fmt.Errorf("api: %s key %d is empty", scope, i+1)
			}
			for j := 0; j < len(k); j++ {
				if k[j] <= ' ' || k[j] > '~' {
					// Say where, never what: the key is a secret.
					return fmt.Errorf("api: %s key %d has a byte that is not printable ASCII at position %d: use letters, digits and punctuation, e.g. the output of 'openssl rand -hex 32'", scope, i+1, j+1)
				}
			}
			keys = append(keys, apiKey{sum: sha256.Sum256([]byte(k)), write: w})
		}
		return nil
	}
	if err := add("write", write, 1); err != nil {
		return nil, err
	}
	if err := add("read", read, 0); err != nil {
		return nil, err
	}
	return keys, nil
}

// access returns what the request's key allows: every request may do
// everything when no key is configured.
//
// The presented key is hashed and compared with every configured key in
// constant time, without stopping at a match, so that neither the time
// taken nor its variation with the key's length tells which key matched or
// how close a guess came. It does not allocate.
func (s *Server) access(ctx *fasthttp.RequestCtx) access {
	if len(s.keys) == 0 {
		return accessWrite
	}
	key, ok := presentedKey(&ctx.Request.Header)
	if !ok {
		return accessNone
	}
	return s.keyAccess(key)
}

// queryAccess is access for a key given as the query parameter "key", for
// clients that cannot set headers (a kiosk's EventSource). The query string
// is never logged.
func (s *Server) queryAccess(ctx *fasthttp.RequestCtx) access {
	if len(s.keys) == 0 {
		return accessWrite
	}
	key := bytes.TrimSpace(ctx.QueryArgs().Peek("key"))
	if len(key) == 0 {
		return accessNone
	}
	return s.keyAccess(key)
}

// keyAccess returns what a presented key allows; see access.
func (s *Server) keyAccess(key []byte) access {
	sum := sha256.Sum256(key)
	match, write := 0, 0
	for i := range s.keys {
		m := subtle.ConstantTimeCompare(sum[:], s.keys[i].sum[:])
		match |= m
		write |= m & s.keys[i].write
	}
	switch {
	case write == 1:
		return accessWrite
	case match == 1:
		return accessRead
	}
	return accessNone
}

// presentedKey returns the key of "Authorization: Bearer <key>" or, when
// that header is absent, of "X-API-Key: <key>". The key views the request
// header: it is valid only inside the handler.
func presentedKey(h *fasthttp.RequestHeader) ([]byte, bool) {
	if auth := h.Peek("Authorization"); len(auth) > 0 {
		const scheme = "bearer "
		if len(auth) <= len(scheme) || !bytes.EqualFold(auth[:len(scheme)], []byte(scheme)) {
			return nil, false
		}
		key := bytes.TrimSpace(auth[len(scheme):])
		return key, len(key) > 0
	}
	key := bytes.TrimSpace(h.Peek("X-API-Key"))
	return key, len(key) > 0
}

// The bodies of the access errors, fixed so that answering a flood of them
// allocates nothing.
const (
	bodyUnauthorized = `{"error":"missing or unknown API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"}`
	bodyForbidden    = `{"error":"this key may only read: writes need a write key"}`
)

func unauthorized(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="omnipick"`)
	writeErrorBody(ctx, fasthttp.StatusUnauthorized, bodyUnauthorized)
}

func forbidden(ctx *fasthttp.RequestCtx) {
	writeErrorBody(ctx, fasthttp.StatusForbidden, bodyForbidden)
}

// loopbackOnly reports whether addr (host:port, as for net.Listen) can only
// be reached from this machine: a loopback IP or "localhost". An empty
// host, an unspecified address (0.0.0.0, ::) or any other host name is not.
// Host names other than localhost are not resolved: what they resolve to
// can change after start-up.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
