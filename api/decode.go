package api

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

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
	switch op {
	case engine.OpProduct, engine.OpInventory, engine.OpEvent, engine.OpIdentify, engine.OpLocation, engine.OpExclusion:
	default:
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
	r := &d.recs[len(d.recs)-1]
	switch d.op {
	case engine.OpProduct:
		d.product(o, &r.Product)
	case engine.OpInventory:
		d.inventory(o, &r.Inventory)
	case engine.OpEvent:
		d.event(o, &r.Event)
	case engine.OpIdentify:
		d.identify(o, &r.Identify)
	case engine.OpLocation:
		d.location(o, &r.Location)
	case engine.OpExclusion:
		d.exclusion(o, &r.Exclusion)
	}
	switch d.op {
	case engine.OpEvent, engine.OpIdentify, engine.OpExclusion:
		// Optional: a client that retries sends the same id again, and
		// the engine applies it once (see engine.ErrDuplicate).
		if v := o.Get("event_id"); v != nil {
			r.EventID = d.id("event_id", v, true)
			r.Received = d.now
		}
	}
	if d.reason != "" {
		d.recs = d.recs[:len(d.recs)-1]
		d.rejects = append(d.rejects, Reject{Index: idx, Field: d.field, Reason: d.reason})
	}
}

func (d *Decoder) product(o *fastjson.Object, p *engine.Product) {
	var id, title, url, image, price, currency, category, brand, tags, sizeGroup, variants, active *fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "id":
			id = v
		case "title":
			title = v
		case "url":
			url = v
		case "image":
			image = v
		case "price":
			price = v
		case "currency":
			currency = v
		case "category":
			category = v
		case "brand":
			brand = v
		case "tags":
			tags = v
		case "size_group":
			sizeGroup = v
		case "variants":
			variants = v
		case "active":
			active = v
		}
	})
	p.ID = d.id("id", id, true)
	p.Title = d.text("title", title)
	p.URL = d.text("url", url)
	p.Image = d.text("image", image)
	if f, ok := d.number("price", price); ok {
		p.Price = d.inRange("price", f, 0, maxPrice, "must be between 0 and 1000000000")
	}
	p.Currency = d.text("currency", currency)
	p.Category = d.text("category", category)
	p.Brand = d.text("brand", brand)
	p.Tags = d.tags(tags)
	// An empty size_group means a one-size product, as an absent one does.
	if b, ok, _ := stringBytes(sizeGroup); !ok || len(b) > 0 {
		p.SizeGroup = d.id("size_group", sizeGroup, false)
	}
	p.Variants = d.variants(variants, p.ID)
	if d.reason == "" && present(active) {
		switch active.Type() {
		case fastjson.TypeTrue:
		case fastjson.TypeFalse:
			p.Inactive = true
		default:
			d.fail("active", "must be true or false")
		}
	}
}

// tags reads "tags": strings, trimmed, empty ones dropped.
func (d *Decoder) tags(v *fastjson.Value) []string {
	if d.reason != "" || !present(v) {
		return nil
	}
	arr, err := v.Array()
	if err != nil {
		d.fail("tags", "must be an array of strings")
		return nil
	}
	if len(arr) > maxTags {
		d.fail("tags", "must have at most 64 items")
		return nil
	}
	n := 0
	for i, t := range arr {
		b, ok, reason := stringBytes(t)
		if reason == "" && !ok {
			reason = "must be a string"
		}
		if reason == "" {
			reason = checkText(b)
		}
		if reason != "" {
			d.fail(indexedField("tags", i, ""), reason)
			return nil
		}
		if len(bytes.TrimSpace(b)) > 0 {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for _, t := range arr {
		b, _ := t.StringBytes()
		if b = bytes.TrimSpace(b); len(b) > 0 {
			out = append(out, string(b))
		}
	}
	return out
}

// variants reads "variants"; a product without it is one-size: a single
// variant whose SKU is the product id.
func (d *Decoder) variants(v *fastjson.Value, productID string) []engine.Variant {
	if d.reason != "" {
		return nil
	}
	if !present(v) {
		return []engine.Variant{{SKU: productID}}
	}
	arr, err := v.Array()
	if err != nil {
		d.fail("variants", "must be an array of objects")
		return nil
	}
	if len(arr) == 0 {
		d.fail("variants", "must not be empty (omit it for a one-size product)")
		return nil
	}
	if len(arr) > maxVariants {
		d.fail("variants", "must have at most 64 items")
		return nil
	}
	out := make([]engine.Variant, len(arr))
	for i, ev := range arr {
		o, err := ev.Object()
		if err != nil {
			d.fail(indexedField("variants", i, ""), "must be an object")
			return nil
		}
		var sku, size *fastjson.Value
		o.Visit(func(k []byte, v *fastjson.Value) {
			switch string(k) {
			case "sku":
				sku = v
			case "size":
				size = v
			}
		})
		s, reason := idValue(sku, true)
		if reason != "" {
			d.fail(indexedField("variants", i, "sku"), reason)
			return nil
		}
		for j := range i {
			if string(s) == out[j].SKU {
				d.fail(indexedField("variants", i, "sku"), "duplicate sku")
				return nil
			}
		}
		z, reason := idValue(size, false)
		if reason != "" {
			d.fail(indexedField("variants", i, "size"), reason)
			return nil
		}
		out[i] = engine.Variant{SKU: string(s), Size: string(z)}
	}
	return out
}

func (d *Decoder) inventory(o *fastjson.Object, inv *engine.Inventory) {
	var sku, location, quantity *fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "sku":
			sku = v
		case "location":
			location = v
		case "quantity":
			quantity = v
		}
	})
	inv.SKU = d.id("sku", sku, true)
	inv.Location = d.id("location", location, true)
	if d.reason != "" {
		return
	}
	f, ok := d.number("quantity", quantity)
	switch {
	case d.reason != "":
	case !ok:
		d.fail("quantity", "is required")
	case f < 0:
		d.fail("quantity", "must not be negative")
	case f != math.Trunc(f):
		d.fail("quantity", "must be an integer")
	case f > maxQuantity:
		d.fail("quantity", "must be at most 1073741824")
	default:
		inv.Quantity = int64(f)
	}
}

func (d *Decoder) event(o *fastjson.Object, e *engine.Event) {
	var typ, customer, anon, product, sku, channel, location, order, price, ts *fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "type":
			typ = v
		case "customer":
			customer = v
		case "anonymous_id":
			anon = v
		case "product":
			product = v
		case "sku":
			sku = v
		case "channel":
			channel = v
		case "location":
			location = v
		case "order":
			order = v
		case "price":
			price = v
		case "ts":
			ts = v
		}
	})
	b, ok, reason := stringBytes(typ)
	switch {
	case reason != "":
		d.fail("type", reason)
		return
	case !ok:
		d.fail("type", "is required")
		return
	}
	t, ok := engine.ParseEventType(string(b))
	if !ok {
		d.fail("type", unknownEventTypeReason)
		return
	}
	e.Type = t
	e.Customer = d.id("customer", customer, false)
	e.AnonymousID = d.id("anonymous_id", anon, false)
	if d.reason == "" {
		if e.Customer == "" && e.AnonymousID == "" {
			d.fail("customer", "customer or anonymous_id is required")
		} else if e.Customer != "" && e.AnonymousID != "" {
			d.fail("anonymous_id", "give customer or anonymous_id, not both")
		}
	}
	e.Product = d.id("product", product, false)
	e.SKU = d.id("sku", sku, false)
	if d.reason == "" && e.Product == "" && e.SKU == "" {
		d.fail("product", "product or sku is required")
	}
	e.Channel = d.id("channel", channel, false)
	e.Location = d.id("location", location, false)
	e.Order = d.id("order", order, false)
	if f, ok := d.number("price", price); ok {
		e.Price = d.inRange("price", f, 0, maxPrice, "must be between 0 and 1000000000")
	}
	e.TS = d.ts(ts)
}

// ts reads an event time: an RFC 3339 string or unix milliseconds; absent,
// it is the time of receipt.
func (d *Decoder) ts(v *fastjson.Value) int64 { return d.time("ts", v, false) }

// time reads a time field: an RFC 3339 string or unix milliseconds; absent,
// it is the time of receipt unless required.
func (d *Decoder) time(field string, v *fastjson.Value, required bool) int64 {
	if d.reason != "" {
		return 0
	}
	var ms int64
	switch {
	case !present(v) && required:
		d.fail(field, "is required")
		return 0
	case !present(v):
		return d.now
	case v.Type() == fastjson.TypeString:
		b, _ := v.StringBytes()
		// The string only lives for the call: time.Parse keeps no part of
		// it in the Time it returns, and the error is dropped.
		t, err := time.Parse(time.RFC3339Nano, unsafe.String(unsafe.SliceData(b), len(b)))
		if err != nil {
			d.fail(field, "must be an rfc 3339 time or unix milliseconds")
			return 0
		}
		ms = t.UnixMilli()
	case v.Type() == fastjson.TypeNumber:
		f, ok := d.number(field, v)
		if !ok {
			return 0
		}
		if f < minTS || f >= maxTS {
			d.fail(field, "must be between 2000-01-01 and 2100-01-01")
			return 0
		}
		ms = int64(f)
	default:
		d.fail(field, "must be an rfc 3339 time or unix milliseconds")
		return 0
	}
	if ms < minTS || ms >= maxTS {
		d.fail(field, "must be between 2000-01-01 and 2100-01-01")
		return 0
	}
	return ms
}

func (d *Decoder) identify(o *fastjson.Object, id *engine.Identify) {
	var anon, customer, toAnon *fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "anonymous_id":
			anon = v
		case "customer":
			customer = v
		case "to_anonymous_id":
			toAnon = v
		}
	})
	id.AnonymousID = d.id("anonymous_id", anon, true)
	id.Customer = d.id("customer", customer, false)
	id.ToAnonymousID = d.id("to_anonymous_id", toAnon, false)
	if d.reason == "" {
		switch {
		case id.Customer == "" && id.ToAnonymousID == "":
			d.fail("customer", "customer (or to_anonymous_id, to link two anonymous ids) is required")
		case id.Customer != "" && id.ToAnonymousID != "":
			d.fail("to_anonymous_id", "give customer or to_anonymous_id, not both")
		case id.ToAnonymousID == id.AnonymousID:
			d.fail("to_anonymous_id", "must differ from anonymous_id")
		}
	}
}

// exclusion reads {"product": ..., "until": ..., "customer" or
// "anonymous_id" (neither: for everyone)}.
func (d *Decoder) exclusion(o *fastjson.Object, x *engine.Exclusion) {
	var customer, anon, product, until *fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "customer":
			customer = v
		case "anonymous_id":
			anon = v
		case "product":
			product = v
		case "until":
			until = v
		}
	})
	x.Customer = d.id("customer", customer, false)
	x.AnonymousID = d.id("anonymous_id", anon, false)
	if d.reason == "" && x.Customer != "" && x.AnonymousID != "" {
		d.fail("anonymous_id", "give customer or anonymous_id (or neither, for everyone), not both")
	}
	x.Product = d.id("product", product, true)
	x.Until = d.time("until", until, true)
}

func (d *Decoder) location(o *fastjson.Object, l *engine.Location) {
	var id, name, lat, lon *fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "id":
			id = v
		case "name":
			name = v
		case "lat":
			lat = v
		case "lon":
			lon = v
		}
	})
	l.ID = d.id("id", id, true)
	l.Name = d.text("name", name)
	la, hasLat := d.number("lat", lat)
	lo, hasLon := d.number("lon", lon)
	switch {
	case d.reason != "" || !hasLat && !hasLon:
	case !hasLat:
		d.fail("lat", "lat and lon go together")
	case !hasLon:
		d.fail("lon", "lat and lon go together")
	default:
		l.Lat = d.inRange("lat", la, -90, 90, "must be between -90 and 90")
		l.Lon = d.inRange("lon", lo, -180, 180, "must be between -180 and 180")
		l.HasCoord = true
	}
}

// fail records the first fault of the current object; later ones are
// ignored, so that the Reject names the first field at fault in the order
// the decoder checks them (fixed, whatever the order of keys).
func (d *Decoder) fail(field, reason string) {
	if d.reason == "" {
		d.field, d.reason = field, reason
	}
}

// id reads an optional or required id field and copies it out. It does
// nothing once the object has a fault.
func (d *Decoder) id(field string, v *fastjson.Value, required bool) string {
	if d.reason != "" {
		return ""
	}
	b, reason := idValue(v, required)
	if reason != "" {
		d.fail(field, reason)
		return ""
	}
	return intern(b)
}

// text reads an optional free-text field and copies it out.
func (d *Decoder) text(field string, v *fastjson.Value) string {
	if d.reason != "" {
		return ""
	}
	b, ok, reason := stringBytes(v)
	if reason == "" && ok {
		reason = checkText(b)
	}
	if reason != "" {
		d.fail(field, reason)
		return ""
	}
	return string(b)
}

// number reads an optional finite number; ok is false when it is absent or
// faulty.
func (d *Decoder) number(field string, v *fastjson.Value) (f float64, ok bool) {
	if d.reason != "" || !present(v) {
		return 0, false
	}
	if v.Type() != fastjson.TypeNumber {
		d.fail(field, "must be a number")
		return 0, false
	}
	f, err := v.Float64() // checkJSON made sure the text is a JSON number
	if err != nil {
		d.fail(field, "must be a number")
		return 0, false
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		d.fail(field, "must be a finite number")
		return 0, false
	}
	return f, true
}

func (d *Decoder) inRange(field string, f, lo, hi float64, reason string) float64 {
	if f < lo || f > hi {
		d.fail(field, reason)
		return 0
	}
	return f
}

// present reports whether a field is given: absent and null are the same.
func present(v *fastjson.Value) bool {
	return v != nil && v.Type() != fastjson.TypeNull
}

// stringBytes returns the unescaped bytes of a string value, which alias
// the parser's buffer. ok is false when v is absent or null; reason is set
// when v is not a string.
func stringBytes(v *fastjson.Value) (b []byte, ok bool, reason string) {
	if !present(v) {
		return nil, false, ""
	}
	b, err := v.StringBytes()
	if err != nil {
		return nil, false, "must be a string"
	}
	return b, true, ""
}

// idValue returns the bytes of an id value, or why it is not acceptable.
func idValue(v *fastjson.Value, required bool) ([]byte, string) {
	b, ok, reason := stringBytes(v)
	switch {
	case reason != "":
		return nil, reason
	case !ok && required:
		return nil, "is required"
	case !ok:
		return nil, ""
	}
	return b, checkID(b)
}

// checkID returns why b is not an acceptable id, or "".
func checkID(b []byte) string {
	if len(b) == 0 {
		return "must not be empty"
	}
	if len(b) > maxIDLen {
		return "must be at most 256 bytes"
	}
	ascii := true
	for i, c := range b {
		switch {
		case c < 0x20 || c == 0x7f:
			return "must not contain control characters"
		case c == 0xc2 && i+1 < len(b) && b[i+1] >= 0x80 && b[i+1] <= 0x9f: // U+0080..U+009F
			return "must not contain control characters"
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(b) {
		return "must be valid utf-8"
	}
	return ""
}

// checkText returns why b is not acceptable free text, or "".
func checkText(b []byte) string {
	if len(b) > maxTextLen {
		return "must be at most 4096 bytes"
	}
	if !utf8.Valid(b) {
		return "must be valid utf-8"
	}
	return ""
}

// intern copies b into a string, without allocating for the few values
// that recur in almost every record (channels, the online location).
func intern(b []byte) string {
	switch string(b) {
	case "online":
		return "online"
	case "web":
		return "web"
	case "app":
		return "app"
	case "ads":
		return "ads"
	case "email":
		return "email"
	case "screen":
		return "screen"
	case "store":
		return "store"
	case "social":
		return "social"
	}
	return string(b)
}

// checkJSON returns why b is not one valid JSON value (RFC 8259) nested at
// most maxNesting deep, surrounded by optional whitespace, or "" if it is.
// It neither allocates (but on failure) nor recurses.
func checkJSON(b []byte) string {
	const (
		wantValue  = iota // a value starts at b[i]
		wantKey           // an object key starts at b[i]
		afterValue        // a value ended just before b[i]
	)
	var objects uint64 // bit k is set when nesting level k+1 is an object
	depth := 0
	state := wantValue
	i := skipWS(b, 0)
	for {
		if i >= len(b) {
			if state == afterValue && depth == 0 {
				return ""
			}
			return "invalid json: unexpected end of input"
		}
		c := b[i]
		switch state {
		case wantValue:
			switch {
			case c == '{' || c == '[':
				if depth == maxNesting {
					return "invalid json: nested deeper than " + strconv.Itoa(maxNesting) + " levels"
				}
				if c == '{' {
					objects |= 1 << depth
				} else {
					objects &^= 1 << depth
				}
				depth++
				i = skipWS(b, i+1)
				if i < len(b) && (b[i] == '}' && c == '{' || b[i] == ']' && c == '[') {
					depth--
					i = skipWS(b, i+1)
					state = afterValue
				} else if c == '{' {
					state = wantKey
				}
				continue
			case c == '"':
				end, reason := scanJSONString(b, i+1)
				if reason != "" {
					return reason
				}
				i = end
			case c == 't' || c == 'f' || c == 'n':
				lit := "null"
				if c == 't' {
					lit = "true"
				} else if c == 'f' {
					lit = "false"
				}
				if !bytes.HasPrefix(b[i:], []byte(lit)) {
					return unexpectedByte(b, i)
				}
				i += len(lit)
			case c == '-' || c >= '0' && c <= '9':
				j := i + 1
				for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
					j++
				}
				if !isJSONNumber(b[i:j]) {
					return fmt.Sprintf("invalid json: invalid number at byte %d", i)
				}
				i = j
			default:
				return unexpectedByte(b, i)
			}
			state = afterValue
			i = skipWS(b, i)
		case wantKey:
			if c != '"' {
				return unexpectedByte(b, i)
			}
			end, reason := scanJSONString(b, i+1)
			if reason != "" {
				return reason
			}
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return unexpectedByte(b, i)
			}
			i = skipWS(b, i+1)
			state = wantValue
		case afterValue:
			if depth == 0 {
				return unexpectedByte(b, i)
			}
			inObject := objects>>(depth-1)&1 == 1
			switch {
			case c == ',':
				i = skipWS(b, i+1)
				if inObject {
					state = wantKey
				} else {
					state = wantValue
				}
			case c == '}' && inObject || c == ']' && !inObject:
				depth--
				i = skipWS(b, i+1)
			default:
				return unexpectedByte(b, i)
			}
		}
	}
}

// scanJSONString checks the JSON string whose opening quote is just before
// b[i] and returns the index after its closing quote.
func scanJSONString(b []byte, i int) (int, string) {
	for i < len(b) {
		switch c := b[i]; {
		case c == '"':
			return i + 1, ""
		case c == '\\':
			if i+1 >= len(b) {
				return i, "invalid json: unexpected end of input"
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
					return i, fmt.Sprintf("invalid json: invalid escape at byte %d", i)
				}
				i += 6
			default:
				return i, fmt.Sprintf("invalid json: invalid escape at byte %d", i)
			}
		case c < 0x20:
			return i, fmt.Sprintf("invalid json: control character in string at byte %d", i)
		default:
			i++
		}
	}
	return i, "invalid json: unexpected end of input"
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func unexpectedByte(b []byte, i int) string {
	if i >= len(b) {
		return "invalid json: unexpected end of input"
	}
	return fmt.Sprintf("invalid json: unexpected %q at byte %d", b[i:i+1], i)
}

// isJSONNumber reports whether b is a number in the JSON grammar.
func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i == len(b):
		return false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(b)
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// skipWS returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// scanValue returns the end of the JSON value that starts at b[i], finding
// it by structure alone (strings and bracket depth): the value is validated
// later, when it is parsed. ok is false when b ends inside the value.
// It does not recurse, so no nesting depth can exhaust the stack.
func scanValue(b []byte, i int) (end int, ok bool) {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			i++
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(b) {
				return len(b), false
			}
			if depth == 0 {
				return i + 1, true
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i, true // the end of a scalar
			}
			depth--
			if depth == 0 {
				return i + 1, true
			}
		case ',', ' ', '\n', '\r', '\t':
			if depth == 0 {
				return i, true
			}
		}
	}
	return len(b), depth == 0
}

// jsonErrorReason turns a fastjson error into a Reject reason. fastjson
// wraps an error once per nesting level ("cannot parse array: cannot parse
// array value: ..."), which makes 14 KB of text at depth 300: keep the
// innermost error only.
func jsonErrorReason(err error) string {
	msg := strings.TrimPrefix(err.Error(), "cannot parse JSON: ")
	if strings.Contains(msg, "too big depth") {
		return "invalid json: nested deeper than " + strconv.Itoa(fastjson.MaxDepth) + " levels"
	}
	for {
		m := strings.TrimPrefix(msg, "cannot parse array: ")
		m = strings.TrimPrefix(m, "cannot parse array value: ")
		m = strings.TrimPrefix(m, "cannot parse object: ")
		m = strings.TrimPrefix(m, "cannot parse object value: ")
		if m == msg {
			return "invalid json: " + msg
		}
		msg = m
	}
}

// indexedField names a field of an array element: "variants[3].sku", or
// "tags[3]" when sub is empty. It allocates: call it on faults only.
func indexedField(name string, i int, sub string) string {
	s := name + "[" + strconv.Itoa(i) + "]"
	if sub != "" {
		s += "." + sub
	}
	return s
}

// unknownEventTypeReason lists the event types the engine knows.
var unknownEventTypeReason = func() string {
	s := "unknown event type; valid types:"
	for t := engine.EventType(1); ; t++ {
		name := t.String()
		if _, ok := engine.ParseEventType(name); !ok {
			return s
		}
		if t > 1 {
			s += ","
		}
		s += " " + name
	}
}()

// AppendRejectsJSON appends the reply to a write to dst and returns the
// extended buffer:
//
//	{"applied":N,"rejected":[{"index":i,"field":"...","reason":"..."}]}
//
// "rejected" is always present, empty when nothing was rejected.
func AppendRejectsJSON(dst []byte, applied int, rejects []Reject) []byte {
	return AppendWriteReplyJSON(dst, applied, 0, rejects)
}

// AppendWriteReplyJSON appends a write's reply to dst:
// {"applied":N,"duplicates":D,"rejected":[...]}, "duplicates" only when
// some records repeated an event_id already applied.
func AppendWriteReplyJSON(dst []byte, applied, duplicates int, rejects []Reject) []byte {
	dst = append(dst, `{"applied":`...)
	dst = strconv.AppendInt(dst, int64(applied), 10)
	if duplicates > 0 {
		dst = append(dst, `,"duplicates":`...)
		dst = strconv.AppendInt(dst, int64(duplicates), 10)
	}
	dst = append(dst, `,"rejected":[`...)
	for i := range rejects {
		r := &rejects[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"index":`...)
		dst = strconv.AppendInt(dst, int64(r.Index), 10)
		dst = append(dst, `,"field":`...)
		dst = appendJSONString(dst, r.Field)
		dst = append(dst, `,"reason":`...)
		dst = appendJSONString(dst, r.Reason)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// appendJSONString appends s to dst as a quoted JSON string. It escapes
// quotes, backslashes and control characters, and also <, >, &, U+2028 and
// U+2029 so that the output is safe to embed in HTML and JavaScript.
// Invalid UTF-8 is replaced with U+FFFD, so the output is always valid JSON.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			if c == '"' || c == '\\' {
				dst = append(dst, '\\', c)
			} else {
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
