package api

import (
	"bytes"
	"slices"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fastjson"
)

// A product's "attributes": an object of text values that product feeds
// carry (see docs/API.md, "Writes" and "Product feeds").
const (
	maxAttributes     = 32
	maxAttributeKey   = 64
	maxAttributeValue = 1000
)

// attributeValues lists the values feeds accept for the attributes whose
// values Merchant Center checks; any value is accepted for the others.
var attributeValues = map[string][]string{
	"gender":    {"male", "female", "unisex"},
	"age_group": {"newborn", "infant", "toddler", "kids", "adult"},
}

// attributes reads "attributes". A bad key or value fails the product
// with field "attributes.KEY" (or "attributes" for the object itself).
func (d *Decoder) attributes(v *fastjson.Value) []engine.Attribute {
	if d.reason != "" || !present(v) {
		return nil
	}
	o, err := v.Object()
	if err != nil {
		d.fail("attributes", "must be an object of text values, e.g. {\"color\": \"navy\", \"gender\": \"female\"}")
		return nil
	}
	if o.Len() > maxAttributes {
		d.fail("attributes", "must have at most 32 attributes")
		return nil
	}
	var out []engine.Attribute
	o.Visit(func(k []byte, val *fastjson.Value) {
		if d.reason != "" {
			return
		}
		field := "attributes." + string(k)
		if !validAttributeKey(k) {
			d.fail(field, "keys are 1 to 64 characters of a-z, 0-9 and _")
			return
		}
		b, ok, reason := stringBytes(val)
		if reason == "" && !ok {
			reason = "must be a string"
		}
		if reason == "" {
			reason = checkText(b)
		}
		b = bytes.TrimSpace(b)
		if reason == "" && (len(b) == 0 || len(b) > maxAttributeValue) {
			reason = "must be non-empty text of at most 1000 bytes"
		}
		if allowed, checked := attributeValues[string(k)]; reason == "" && checked && !slices.Contains(allowed, string(b)) {
			reason = "must be one of " + joinQuoted(allowed)
		}
		if reason != "" {
			d.fail(field, reason)
			return
		}
		out = append(out, engine.Attribute{Key: string(k), Value: string(b)})
	})
	if d.reason != "" {
		return nil
	}
	return engine.NormalizeAttributes(out)
}

func validAttributeKey(k []byte) bool {
	if len(k) == 0 || len(k) > maxAttributeKey {
		return false
	}
	for _, c := range k {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func joinQuoted(s []string) string {
	var b []byte
	for i, x := range s {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(append(append(b, '"'), x...), '"')
	}
	return string(b)
}
