package api

import (
	"bytes"
	"fmt"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fastjson"
)

// Limits on write bodies. They are part of the API contract: a value outside
// them is rejected with a Reject that names the field.
const (
	maxIDLen    = 256     // ids: product, sku, customer, anonymous_id, location, order, size, size_group, channel
	maxTextLen  = 4096    // every other string: title, url, image, name, ...
	maxVariants = 64      // variants per product
	maxTags     = 64      // tags per product
	maxPrice    = 1e9     // prices are 0..maxPrice
	maxQuantity = 1 << 30 // stock levels are integers 0..maxQuantity

	minTS = 946684800000  // 2000-01-01T00:00:00Z in unix milliseconds
	maxTS = 4102444800000 // 2100-01-01T00:00:00Z in unix milliseconds

	// maxNesting is how deep objects and arrays may nest in one input
	// object (the API needs 3: product, variants, variant). It must stay
	// at most 64: checkJSON keeps its stack in a uint64.
	maxNesting = 64

	// maxRetainedParse is the largest object a Decoder keeps parser buffers
	// for after Decode returns; a larger one drops them so that a pooled
	// Decoder does not pin the memory of one huge request.
	maxRetainedParse = 1 << 20
)

// Reject is one input object that could not be accepted.
type Reject struct {
	Index  int    // position of the object in the body, 0-based: array element, or NDJSON line not counting blank lines
	Field  string // JSON field at fault, dotted for nested ("variants[1].sku"); "" for the whole object
	Reason string // human-readable, lowercase
}

// Decoder turns write bodies into engine records, validating every field.
//
// A Decoder is not safe for concurrent use. It is meant to be pooled
// (sync.Pool): it reuses its JSON parser and scratch buffers across calls.
// The zero value is ready to use.
type Decoder struct {
	p fastjson.Parser

	// State of the current Decode call, cleared before it returns.
	op        engine.Op
	now       int64
	recs      []engine.Record
	rejects   []Reject
	maxParsed int
	field     string // the first fault of the current object, if reason != ""
	reason    string
}

// Decode decodes body, a batch of objects for op, appending one record per
// accepted object to recs and one Reject per refused object to rejects, and
// returns both slices. Together they hold exactly one entry per object of
// the body, in body order.
//
// body is a JSON array of objects, a single JSON object (a batch of one) or
// NDJSON (one object a line, blank lines skipped); ndjson says what the
// client declared. Decoding is lenient about the declaration: a body that
// starts with '[' is an array and a body that is one object is a batch of
// one, whatever the declaration, and a body declared JSON that holds
// several objects is read as NDJSON. Each object must be strict JSON
// (RFC 8259) nested at most 64 deep; unknown fields are ignored, null is
// the same as absent, and of duplicate keys the last counts. Events
// without "ts" are stamped with now (unix milliseconds).
//
// The error is non-nil only when the body cannot be split into objects at
// all (empty JSON body, top level neither array nor object, broken array
// syntax); recs and rejects are then returned at their original lengths.
// A malformed object or line is a Reject and never blocks the others.
//
// Decode appends: pass recs[:0] and rejects[:0] to reuse the backing arrays
// of a previous call. Every string and slice inside the returned records is
// freshly allocated and owned by the caller (the engine may keep them): none
// aliases body or the Decoder, so body may be reused as soon as Decode
// returns.
func (d *Decoder) Decode(op engine.Op, body []byte, ndjson bool, now int64, recs []engine.Record, rejects []Reject) ([]engine.Record, []Reject, error) {
	if kindOf(op) == nil {
		return recs, rejects, fmt.Errorf("cannot decode records of kind %s", op)
	}
	nRecs, nRejects := len(recs), len(rejects)
	d.op, d.now, d.recs, d.rejects = op, now, recs, rejects
	err := d.decodeBody(body, ndjson)
	recs, rejects = d.recs, d.rejects
	d.recs, d.rejects, d.field, d.reason = nil, nil, "", ""
	if d.maxParsed > maxRetainedParse {
		d.p = fastjson.Parser{}
	}
	d.maxParsed = 0
	if err != nil {
		return recs[:nRecs], rejects[:nRejects], err
	}
	return recs, rejects, nil
}

func (d *Decoder) decodeBody(body []byte, ndjson bool) error {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	i := skipWS(body, 0)
	switch {
	case i == len(body):
		if ndjson {
			return nil
		}
		return fmt.Errorf("empty body")
	case body[i] == '[':
		return d.decodeArray(body, i+1)
	case body[i] == '{':
		// One object, maybe pretty-printed over several lines, whatever
		// the declaration; else NDJSON, also when declared JSON. Only the
		// first object is scanned: NDJSON costs one extra pass over its
		// first line.
		end, ok := scanValue(body, i)
		if ok && skipWS(body, end) == len(body) {
			d.decodeObject(0, body[i:end])
			return nil
		}
		if !ok && !ndjson {
			return fmt.Errorf("invalid json: unexpected end of body")
		}
		d.decodeLines(body)
		return nil
	case ndjson:
		d.decodeLines(body)
		return nil
	default:
		return fmt.Errorf("body must be a json array or object")
	}
}

// decodeArray decodes the elements of a JSON array whose '[' ends just
// before body[i]. It splits the array itself and parses one element at a
// time, so that the parser's memory stays the size of one object and a
// malformed element is a Reject rather than a failure of the whole body.
func (d *Decoder) decodeArray(body []byte, i int) error {
	i = skipWS(body, i)
	if i < len(body) && body[i] == ']' {
		i++
	} else {
		for idx := 0; ; idx++ {
			i = skipWS(body, i)
			end, ok := scanValue(body, i)
			if !ok {
				return fmt.Errorf("invalid json array: element %d is not terminated", idx)
			}
			if end == i {
				return fmt.Errorf("invalid json array: missing element %d", idx)
			}
			d.decodeObject(idx, body[i:end])
			i = skipWS(body, end)
			if i == len(body) {
				return fmt.Errorf("invalid json array: missing ']'")
			}
			if body[i] == ']' {
				i++
				break
			}
			if body[i] != ',' {
				return fmt.Errorf("invalid json array: missing ',' or ']' after element %d", idx)
			}
			i++
		}
	}
	if skipWS(body, i) != len(body) {
		return fmt.Errorf("invalid json array: unexpected data after ']'")
	}
	return nil
}

// decodeLines decodes body as NDJSON, one object a line. Lines end with LF
// or CRLF; blank lines are skipped and not counted.
func (d *Decoder) decodeLines(body []byte) {
	for idx := 0; len(body) > 0; {
		line := body
		if n := bytes.IndexByte(body, '\n'); n >= 0 {
			line, body = body[:n], body[n+1:]
		} else {
			body = nil
		}
		if skipWS(line, 0) == len(line) {
			continue
		}
		d.decodeObject(idx, line)
		idx++
	}
}

// decodeObject decodes the object at position idx of the body from raw and
// appends either a record or a Reject.
func (d *Decoder) decodeObject(idx int, raw []byte) {
	// fastjson accepts some invalid JSON (NaN, raw control characters in
	// strings, bad escapes), and its error path costs a fmt.Errorf per
	// nesting level, about 1 µs per byte of a hostile line: check the
	// syntax first, in one pass that neither allocates nor recurses, so
	// that fastjson only ever sees valid JSON.
	if reason := checkJSON(raw); reason != "" {
		d.rejects = append(d.rejects, Reject{Index: idx, Reason: reason})
		return
	}
	d.maxParsed = max(d.maxParsed, len(raw))
	v, err := d.p.ParseBytes(raw)
	if err != nil { // unreachable unless checkJSON and fastjson disagree
		d.rejects = append(d.rejects, Reject{Index: idx, Reason: jsonErrorReason(err)})
		return
	}
	o, err := v.Object()
	if err != nil {
		d.rejects = append(d.rejects, Reject{Index: idx, Reason: "must be a json object"})
		return
	}
	d.field, d.reason = "", ""
	d.recs = append(d.recs, engine.Record{Op: d.op})
	k := kindOf(d.op)
	var fields fieldValues
	walkFields(o, k.fields, fields[:len(k.fields)])
	k.decode(d, fields, &d.recs[len(d.recs)-1])
	if d.reason != "" {
		d.recs = d.recs[:len(d.recs)-1]
		d.rejects = append(d.rejects, Reject{Index: idx, Field: d.field, Reason: d.reason})
	}
}
