package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/klauspost/compress/gzip"
)

// Products upserts products.
func (c *Client) Products(ctx context.Context, ps []Product) (WriteResult, error) {
	return write(ctx, c, "/v1/products", ps)
}

// Inventory sets stock levels (absolute).
func (c *Client) Inventory(ctx context.Context, inv []Inventory) (WriteResult, error) {
	return write(ctx, c, "/v1/inventory", inv)
}

// Locations registers stores.
func (c *Client) Locations(ctx context.Context, ls []Location) (WriteResult, error) {
	return write(ctx, c, "/v1/locations", ls)
}

// Events records what customers did, in order. Events without an EventID
// get one, written into evs, before the first attempt: a retry resends the
// same ids, and the server applies each id once.
func (c *Client) Events(ctx context.Context, evs []Event) (WriteResult, error) {
	return write(ctx, c, "/v1/events", withEventIDs(evs, func(e *Event) *string { return &e.EventID }))
}

// Identify links anonymous ids to customers or to other anonymous ids.
// Links without an EventID get one, as in Events.
func (c *Client) Identify(ctx context.Context, ids []Identify) (WriteResult, error) {
	return write(ctx, c, "/v1/identify", withEventIDs(ids, func(l *Identify) *string { return &l.EventID }))
}

// Exclusions keeps products out of picks until a time. Exclusions without
// an EventID get one, as in Events.
func (c *Client) Exclusions(ctx context.Context, xs []Exclusion) (WriteResult, error) {
	return write(ctx, c, "/v1/exclusions", withEventIDs(xs, func(x *Exclusion) *string { return &x.EventID }))
}

// withEventIDs gives every object without an event id a random one, in
// place, and returns objs.
func withEventIDs[T any](objs []T, id func(*T) *string) []T {
	for i := range objs {
		if p := id(&objs[i]); *p == "" {
			*p = newEventID()
		}
	}
	return objs
}

// write sends objs as NDJSON bodies of at most MaxBatchBytes each, one
// after the other, and adds up the replies. An object the server refuses
// is in the result's Rejected, not an error; the error is for a body that
// was not applied at all (the result then holds what the bodies before it
// applied).
func write[T any](ctx context.Context, c *Client, path string, objs []T) (WriteResult, error) {
	var res WriteResult
	var body bytes.Buffer
	first := 0 // index in objs of the body's first object
	flush := func(next int) error {
		if body.Len() == 0 {
			return nil
		}
		reply, err := c.post(ctx, path, body.Bytes())
		if err != nil {
			return fmt.Errorf("%w (objects %d to %d not applied)", err, first, next-1)
		}
		res.Applied += reply.Applied
		res.Duplicates += reply.Duplicates
		for _, r := range reply.Rejected {
			r.Index += first
			res.Rejected = append(res.Rejected, r)
		}
		body.Reset()
		first = next
		return nil
	}
	for i := range objs {
		line, err := json.Marshal(&objs[i])
		if err != nil {
			return res, fmt.Errorf("omnipick: cannot encode object %d: %w", i, err)
		}
		if body.Len() > 0 && body.Len()+len(line)+1 > c.maxBatch {
			if err := flush(i); err != nil {
				return res, err
			}
		}
		body.Write(line)
		body.WriteByte('\n')
	}
	return res, flush(len(objs))
}

// writeReply is the answer to a write: 200, or 400 when nothing in the body
// could be applied (then with the error's fields too).
type writeReply struct {
	Applied    int      `json:"applied"`
	Duplicates int      `json:"duplicates"`
	Rejected   []Reject `json:"rejected"`
}

// post sends one NDJSON body, encoded, and reads the reply.
func (c *Client) post(ctx context.Context, path string, ndjson []byte) (writeReply, error) {
	r := &request{method: http.MethodPost, path: path, write: true, ctype: "application/x-ndjson", idempotent: true}
	switch c.coding {
	case Zstd:
		r.body, r.encoding = c.zw.EncodeAll(ndjson, make([]byte, 0, len(ndjson)/4+64)), "zstd"
	case Gzip:
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed) // a valid level: no error
		zw.Write(ndjson)
		zw.Close()
		r.body, r.encoding = b.Bytes(), "gzip"
	default:
		r.body = ndjson
	}
	var reply writeReply
	resp, err := c.do(ctx, r)
	if err != nil {
		// Every object rejected is a 400 carrying the reply: not an error
		// of the write, each object has its verdict.
		var e *Error
		if errors.As(err, &e) && e.Status == http.StatusBadRequest && e.rejected != nil {
			return writeReply{Rejected: e.rejected}, nil
		}
		return reply, err
	}
	defer resp.Body.Close()
	err = c.decode(resp, &reply, "POST "+path)
	return reply, err
}

// Erase forgets a customer, or with anonymous an anonymous id (DELETE
// /v1/customers/{id}): the profile, the ids linked into it, its
// impressions, campaigns and exclusions. An unknown id is an *Error with
// Status 404. Erasing twice is safe, so a lost answer is retried.
func (c *Client) Erase(ctx context.Context, id string, anonymous bool) error {
	r := &request{method: http.MethodDelete, path: "/v1/customers/" + url.PathEscape(id), write: true, idempotent: true}
	if anonymous {
		r.query = url.Values{"anonymous": {"1"}}
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// CompactResult is what POST /v1/admin/compact did.
type CompactResult struct {
	Snapshot           string `json:"snapshot"` // the snapshot file written
	Seq                uint64 `json:"seq"`      // the last log record it holds
	RemovedSnapshots   int    `json:"removed_snapshots"`
	RemovedWALSegments int    `json:"removed_wal_segments"`
	TookMS             int64  `json:"took_ms"`
}

// Compact has the server snapshot now and delete the log and snapshots
// the new one makes unneeded (after an erasure, no file holds the id any
// more). It answers once done.
func (c *Client) Compact(ctx context.Context) (*CompactResult, error) {
	resp, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/admin/compact", write: true, idempotent: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var res CompactResult
	if err := c.decode(resp, &res, "POST /v1/admin/compact"); err != nil {
		return nil, err
	}
	return &res, nil
}
