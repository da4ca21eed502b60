package api

import (
	"bytes"
	"math"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fastjson"
)

// This file holds the record decoders, one per kind of write: a table
// (recordKinds) names the fields each kind reads and the function that
// validates them, and one walker (walkFields) collects the fields of every
// object, so that adding a field is a line in a list and a line in a
// function.

// recordKind is how one kind of record is read from a JSON object.
type recordKind struct {
	// fields are the members the kind reads; walkFields puts the value
	// of fields[i] in v[i]. The decode function indexes v with the
	// constants declared beside the list.
	fields []string
	// decode validates v into r, calling d.fail on the first fault.
	decode func(d *Decoder, v fieldValues, r *engine.Record)
}

// fieldValues holds the values of one object's fields, nil when absent.
// It is passed by value: on the stack, its pointers cost no write
// barriers, which in a Decoder field were a tenth of decoding a product.
type fieldValues [maxFields]*fastjson.Value

// recordKinds is indexed by engine.Op; an Op without a decode function
// cannot be written through the API.
var recordKinds = [...]recordKind{
	engine.OpProduct:   {productFields, (*Decoder).product},
	engine.OpInventory: {inventoryFields, (*Decoder).inventory},
	engine.OpEvent:     {eventFields, (*Decoder).event},
	engine.OpIdentify:  {identifyFields, (*Decoder).identify},
	engine.OpLocation:  {locationFields, (*Decoder).location},
	engine.OpExclusion: {exclusionFields, (*Decoder).exclusion},
}

// kindOf returns how records of op are decoded, or nil.
func kindOf(op engine.Op) *recordKind {
	if int(op) >= len(recordKinds) || recordKinds[op].decode == nil {
		return nil
	}
	return &recordKinds[op]
}

// maxFields is the most fields one kind reads.
const maxFields = 14

// walkFields puts in vals[i] the value of o's member named names[i]; vals
// must come in all nil. Other members are ignored; of duplicate keys the
// last counts.
func walkFields(o *fastjson.Object, names []string, vals []*fastjson.Value) {
	o.Visit(func(k []byte, v *fastjson.Value) {
		for i, name := range names {
			if string(k) == name {
				vals[i] = v
				return
			}
		}
	})
}

// Product fields, indexes into fieldValues.
const (
	pID = iota
	pTitle
	pURL
	pImage
	pPrice
	pCurrency
	pCategory
	pBrand
	pTags
	pSizeGroup
	pVariants
	pActive
	pGroup
	pAttributes
)

var productFields = []string{
	pID: "id", pTitle: "title", pURL: "url", pImage: "image", pPrice: "price", pCurrency: "currency",
	pCategory: "category", pBrand: "brand", pTags: "tags", pSizeGroup: "size_group", pVariants: "variants", pActive: "active",
	pGroup:      "group",
	pAttributes: "attributes",
}

func (d *Decoder) product(v fieldValues, r *engine.Record) {
	p := &r.Product
	p.ID = d.id("id", v[pID], true)
	p.Title = d.text("title", v[pTitle])
	p.URL = d.text("url", v[pURL])
	p.Image = d.text("image", v[pImage])
	if f, ok := d.number("price", v[pPrice]); ok {
		p.Price = d.inRange("price", f, 0, maxPrice, "must be between 0 and 1000000000")
	}
	p.Currency = d.text("currency", v[pCurrency])
	p.Category = d.text("category", v[pCategory])
	p.Brand = d.text("brand", v[pBrand])
	p.Tags = d.tags(v[pTags])
	// An empty size_group means a one-size product, as an absent one does.
	if b, ok, _ := stringBytes(v[pSizeGroup]); !ok || len(b) > 0 {
		p.SizeGroup = d.id("size_group", v[pSizeGroup], false)
	}
	// "group" (optional) names the product's family, e.g. the colour-ways
	// of one design (Google's item_group_id); empty is none.
	if b, ok, _ := stringBytes(v[pGroup]); !ok || len(b) > 0 {
		p.Group = d.id("group", v[pGroup], false)
	}
	p.Variants = d.variants(v[pVariants], p.ID)
	p.Attributes = d.attributes(v[pAttributes])
	if active := v[pActive]; d.reason == "" && present(active) {
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

// Variant fields.
const (
	vSKU = iota
	vSize
)

var variantFields = []string{vSKU: "sku", vSize: "size"}

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
		var vals [2]*fastjson.Value
		walkFields(o, variantFields, vals[:])
		s, reason := idValue(vals[vSKU], true)
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
		z, reason := idValue(vals[vSize], false)
		if reason != "" {
			d.fail(indexedField("variants", i, "size"), reason)
			return nil
		}
		out[i] = engine.Variant{SKU: string(s), Size: string(z)}
	}
	return out
}

// Inventory fields.
const (
	invSKU = iota
	invLocation
	invQuantity
)

var inventoryFields = []string{invSKU: "sku", invLocation: "location", invQuantity: "quantity"}

func (d *Decoder) inventory(v fieldValues, r *engine.Record) {
	inv := &r.Inventory
	inv.SKU = d.id("sku", v[invSKU], true)
	inv.Location = d.id("location", v[invLocation], true)
	if d.reason != "" {
		return
	}
	f, ok := d.number("quantity", v[invQuantity])
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

// Event fields.
const (
	evType = iota
	evCustomer
	evAnon
	evProduct
	evSKU
	evChannel
	evLocation
	evOrder
	evPrice
	evTS
	evEventID
)

var eventFields = []string{
	evType: "type", evCustomer: "customer", evAnon: "anonymous_id", evProduct: "product", evSKU: "sku",
	evChannel: "channel", evLocation: "location", evOrder: "order", evPrice: "price", evTS: "ts",
	evEventID: "event_id",
}

// eventID reads the optional "event_id" of an event, identify or
// exclusion: a client that retries sends the same id again, and the
// engine applies the record once (engine.ErrDuplicate). The window runs
// on the time of receipt.
func (d *Decoder) eventID(v *fastjson.Value, r *engine.Record) {
	if present(v) {
		r.EventID = d.id("event_id", v, true)
		r.Received = d.now
	}
}

func (d *Decoder) event(v fieldValues, r *engine.Record) {
	e := &r.Event
	b, ok, reason := stringBytes(v[evType])
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
	e.Customer = d.id("customer", v[evCustomer], false)
	e.AnonymousID = d.id("anonymous_id", v[evAnon], false)
	if d.reason == "" {
		if e.Customer == "" && e.AnonymousID == "" {
			d.fail("customer", "customer or anonymous_id is required")
		} else if e.Customer != "" && e.AnonymousID != "" {
			d.fail("anonymous_id", "give customer or anonymous_id, not both")
		}
	}
	e.Product = d.id("product", v[evProduct], false)
	e.SKU = d.id("sku", v[evSKU], false)
	if d.reason == "" && e.Product == "" && e.SKU == "" {
		d.fail("product", "product or sku is required")
	}
	e.Channel = d.id("channel", v[evChannel], false)
	e.Location = d.id("location", v[evLocation], false)
	e.Order = d.id("order", v[evOrder], false)
	if f, ok := d.number("price", v[evPrice]); ok {
		e.Price = d.inRange("price", f, 0, maxPrice, "must be between 0 and 1000000000")
	}
	e.TS = d.time("ts", v[evTS], false)
	d.eventID(v[evEventID], r)
}

// Identify fields.
const (
	idAnon = iota
	idCustomer
	idToAnon
	idEventID
)

var identifyFields = []string{idAnon: "anonymous_id", idCustomer: "customer", idToAnon: "to_anonymous_id", idEventID: "event_id"}

func (d *Decoder) identify(v fieldValues, r *engine.Record) {
	id := &r.Identify
	id.AnonymousID = d.id("anonymous_id", v[idAnon], true)
	id.Customer = d.id("customer", v[idCustomer], false)
	id.ToAnonymousID = d.id("to_anonymous_id", v[idToAnon], false)
	d.eventID(v[idEventID], r)
	if d.reason != "" {
		return
	}
	switch {
	case id.Customer == "" && id.ToAnonymousID == "":
		d.fail("customer", "customer (or to_anonymous_id, to link two anonymous ids) is required")
	case id.Customer != "" && id.ToAnonymousID != "":
		d.fail("to_anonymous_id", "give customer or to_anonymous_id, not both")
	case id.ToAnonymousID == id.AnonymousID:
		d.fail("to_anonymous_id", "must differ from anonymous_id")
	}
}

// Exclusion fields.
const (
	exCustomer = iota
	exAnon
	exProduct
	exUntil
	exEventID
)

var exclusionFields = []string{exCustomer: "customer", exAnon: "anonymous_id", exProduct: "product", exUntil: "until", exEventID: "event_id"}

// exclusion reads {"product": ..., "until": ..., "customer" or
// "anonymous_id" (neither: for everyone)}.
func (d *Decoder) exclusion(v fieldValues, r *engine.Record) {
	x := &r.Exclusion
	x.Customer = d.id("customer", v[exCustomer], false)
	x.AnonymousID = d.id("anonymous_id", v[exAnon], false)
	if d.reason == "" && x.Customer != "" && x.AnonymousID != "" {
		d.fail("anonymous_id", "give customer or anonymous_id (or neither, for everyone), not both")
	}
	x.Product = d.id("product", v[exProduct], true)
	x.Until = d.time("until", v[exUntil], true)
	d.eventID(v[exEventID], r)
}

// Location fields.
const (
	locID = iota
	locName
	locLat
	locLon
)

var locationFields = []string{locID: "id", locName: "name", locLat: "lat", locLon: "lon"}

func (d *Decoder) location(v fieldValues, r *engine.Record) {
	l := &r.Location
	l.ID = d.id("id", v[locID], true)
	l.Name = d.text("name", v[locName])
	la, hasLat := d.number("lat", v[locLat])
	lo, hasLon := d.number("lon", v[locLon])
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
