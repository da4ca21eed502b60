package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Picks asks what a customer should see now (GET /v1/picks).
func (c *Client) Picks(ctx context.Context, q PicksQuery) (*Picks, error) {
	r := &request{method: http.MethodGet, path: "/v1/picks", query: q.values(), idempotent: !q.Record}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	buf := c.bufs.Get().(*bytes.Buffer)
	defer c.bufs.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, fmt.Errorf("omnipick: cannot read the picks: %w", err)
	}
	parser := c.parsers.Get()
	defer c.parsers.Put(parser)
	p := new(Picks)
	if err := decodePicks(parser, buf.Bytes(), p); err != nil {
		return nil, fmt.Errorf("omnipick: cannot decode the picks: %w", err)
	}
	return p, nil
}

// PicksHTML asks for the picks as an HTML fragment for email templates
// (format=html).
func (c *Client) PicksHTML(ctx context.Context, q PicksQuery) (string, error) {
	v := q.values()
	v.Set("format", "html")
	resp, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/picks", query: v, idempotent: !q.Record})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("omnipick: cannot read the picks fragment: %w", err)
	}
	return string(b), nil
}

func (q *PicksQuery) values() url.Values {
	v := url.Values{}
	set := func(name, value string) {
		if value != "" {
			v.Set(name, value)
		}
	}
	set("customer", q.Customer)
	set("anonymous_id", q.AnonymousID)
	set("channel", q.Channel)
	if q.K > 0 {
		v.Set("k", strconv.Itoa(q.K))
	}
	set("location", strings.Join(q.Locations, ","))
	set("context", q.Context)
	set("category", q.Category)
	set("exclude", strings.Join(q.Exclude, ","))
	set("boost", strings.Join(q.Boost, ","))
	set("bury", strings.Join(q.Bury, ","))
	if len(q.Pins) > 0 {
		pins := make([]string, len(q.Pins))
		for i, p := range q.Pins {
			pins[i] = p.Product + ":" + strconv.Itoa(p.Position)
		}
		v.Set("pin", strings.Join(pins, ","))
	}
	if q.PriceMin > 0 {
		v.Set("price_min", strconv.FormatFloat(q.PriceMin, 'f', -1, 64))
	}
	if q.PriceMax > 0 {
		v.Set("price_max", strconv.FormatFloat(q.PriceMax, 'f', -1, 64))
	}
	set("campaign", q.Campaign)
	if q.Record {
		v.Set("record", "1")
	}
	return v
}

// Customer returns the profile of a customer, or of an anonymous id when
// no customer has that id (GET /v1/customers/{id}). An unknown id is an
// *Error with Status 404.
func (c *Client) Customer(ctx context.Context, id string) (*Profile, error) {
	var p Profile
	if err := c.getJSON(ctx, &request{path: "/v1/customers/" + url.PathEscape(id), idempotent: true}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ScreenPicks returns a store screen's current picks (GET
// /screen/{store}/picks.json); k 0 is the server's default (8).
func (c *Client) ScreenPicks(ctx context.Context, store string, k int) (*ScreenPicks, error) {
	r := &request{path: "/screen/" + url.PathEscape(store) + "/picks.json", idempotent: true}
	if k > 0 {
		r.query = url.Values{"k": {strconv.Itoa(k)}}
	}
	var p ScreenPicks
	if err := c.getJSON(ctx, r, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Audience streams the members of an audience to fn, one at a time, as the
// server sends them (GET /v1/audiences/{name}, NDJSON, zstd). fn's error
// stops the stream and is returned. A stream the server ends early (it
// cannot say so by status once rows are sent) is an error: a nil error
// means fn saw the whole audience.
func (c *Client) Audience(ctx context.Context, q AudienceQuery, fn func(AudienceRow) error) error {
	v := url.Values{}
	if q.MinAge > 0 {
		v.Set("min_age", q.MinAge.String())
	}
	if q.MaxAge > 0 {
		v.Set("max_age", q.MaxAge.String())
	}
	if q.Category != "" {
		v.Set("category", q.Category)
	}
	if q.Days > 0 {
		v.Set("days", strconv.Itoa(q.Days))
	}
	if q.K > 0 {
		v.Set("k", strconv.Itoa(q.K))
	}
	if len(q.Locations) > 0 {
		v.Set("location", strings.Join(q.Locations, ","))
	}
	resp, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/audiences/" + url.PathEscape(q.Name), query: v,
		accept: "zstd, gzip;q=0.5", idempotent: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := decoded(resp)
	if err != nil {
		return err
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var row AudienceRow
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return fmt.Errorf("omnipick: audience %s: bad row: %w", q.Name, err)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("omnipick: audience %s ended early: %w", q.Name, err)
	}
	return nil
}

// ProductFeed returns the catalog feed for ad platforms (GET
// /v1/feeds/products): format "google" (RSS) or "meta" (CSV), stock at any
// of locations (none: online). The caller reads and closes it; a feed the
// server ends early reads as an error, never as a short feed.
func (c *Client) ProductFeed(ctx context.Context, format string, locations ...string) (io.ReadCloser, error) {
	v := url.Values{"format": {format}}
	if len(locations) > 0 {
		v.Set("location", strings.Join(locations, ","))
	}
	resp, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/feeds/products", query: v, accept: "zstd, gzip;q=0.5", idempotent: true})
	if err != nil {
		return nil, err
	}
	body, err := decoded(resp)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	return readCloser{body, resp.Body}, nil
}

// Health reports whether the server is ready (GET /healthz).
func (c *Client) Health(ctx context.Context) error {
	resp, err := c.do(ctx, &request{method: http.MethodGet, path: "/healthz", idempotent: true})
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// decoded undoes the response's Content-Encoding.
func decoded(resp *http.Response) (io.ReadCloser, error) {
	switch resp.Header.Get("Content-Encoding") {
	case "":
		return io.NopCloser(resp.Body), nil
	case "zstd":
		zr, err := zstd.NewReader(resp.Body, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("omnipick: bad zstd answer: %w", err)
		}
		return zr.IOReadCloser(), nil
	case "gzip":
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("omnipick: bad gzip answer: %w", err)
		}
		return zr, nil
	}
	return nil, fmt.Errorf("omnipick: answer in unknown Content-Encoding %q", resp.Header.Get("Content-Encoding"))
}

// readCloser reads the decoded body and closes both it and the response.
type readCloser struct {
	io.ReadCloser
	resp io.Closer
}

func (r readCloser) Close() error {
	err := r.ReadCloser.Close()
	if err2 := r.resp.Close(); err == nil {
		err = err2
	}
	return err
}
