package world

import (
	"strconv"
	"time"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/internal/jsonenc"
)

// AppendRecordJSON appends r as one JSON object in the shape the HTTP API
// accepts (see API.md): a product for POST /v1/products, a stock level for
// /v1/inventory, an event for /v1/events, a link for /v1/identify, a store
// for /v1/locations. No newline is appended. Empty optional fields are
// left out; a product's "active" appears only when it is false, an event's
// "ts" only when it is set. A record with an unknown Op appends nothing.
// Non-finite numbers, which JSON cannot carry, are written as null.
func AppendRecordJSON(dst []byte, r *engine.Record) []byte {
	switch r.Op {
	case engine.OpProduct:
		return appendProduct(dst, &r.Product)
	case engine.OpInventory:
		in := &r.Inventory
		dst = append(dst, `{"sku":`...)
		dst = jsonenc.AppendString(dst, in.SKU)
		dst = append(dst, `,"location":`...)
		dst = jsonenc.AppendString(dst, in.Location)
		dst = append(dst, `,"quantity":`...)
		dst = strconv.AppendInt(dst, in.Quantity, 10)
		return append(dst, '}')
	case engine.OpEvent:
		return appendEvent(dst, &r.Event)
	case engine.OpIdentify:
		dst = append(dst, `{"anonymous_id":`...)
		dst = jsonenc.AppendString(dst, r.Identify.AnonymousID)
		dst = append(dst, `,"customer":`...)
		dst = jsonenc.AppendString(dst, r.Identify.Customer)
		return append(dst, '}')
	case engine.OpLocation:
		l := &r.Location
		dst = append(dst, `{"id":`...)
		dst = jsonenc.AppendString(dst, l.ID)
		if l.Name != "" {
			dst = append(dst, `,"name":`...)
			dst = jsonenc.AppendString(dst, l.Name)
		}
		if l.HasCoord {
			dst = append(dst, `,"lat":`...)
			dst = jsonenc.AppendFloat(dst, l.Lat)
			dst = append(dst, `,"lon":`...)
			dst = jsonenc.AppendFloat(dst, l.Lon)
		}
		return append(dst, '}')
	}
	return dst
}

func appendProduct(dst []byte, p *engine.Product) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonenc.AppendString(dst, p.ID)
	dst = appendField(dst, "title", p.Title)
	dst = appendField(dst, "url", p.URL)
	dst = appendField(dst, "image", p.Image)
	dst = append(dst, `,"price":`...)
	dst = jsonenc.AppendFloat(dst, p.Price)
	dst = appendField(dst, "currency", p.Currency)
	dst = appendField(dst, "category", p.Category)
	dst = appendField(dst, "brand", p.Brand)
	dst = append(dst, `,"tags":[`...)
	for i, t := range p.Tags {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonenc.AppendString(dst, t)
	}
	dst = append(dst, ']')
	dst = appendField(dst, "size_group", p.SizeGroup)
	dst = append(dst, `,"variants":[`...)
	for i := range p.Variants {
		v := &p.Variants[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"sku":`...)
		dst = jsonenc.AppendString(dst, v.SKU)
		dst = appendField(dst, "size", v.Size)
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	if p.Inactive {
		dst = append(dst, `,"active":false`...)
	}
	if len(p.Attributes) > 0 {
		dst = append(dst, `,"attributes":{`...)
		for i, a := range p.Attributes {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonenc.AppendString(dst, a.Key)
			dst = append(dst, ':')
			dst = jsonenc.AppendString(dst, a.Value)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func appendEvent(dst []byte, e *engine.Event) []byte {
	dst = append(dst, `{"type":`...)
	dst = jsonenc.AppendString(dst, e.Type.String())
	dst = appendField(dst, "customer", e.Customer)
	dst = appendField(dst, "anonymous_id", e.AnonymousID)
	dst = appendField(dst, "product", e.Product)
	dst = appendField(dst, "sku", e.SKU)
	dst = appendField(dst, "channel", e.Channel)
	dst = appendField(dst, "location", e.Location)
	dst = appendField(dst, "order", e.Order)
	if e.Price != 0 {
		dst = append(dst, `,"price":`...)
		dst = jsonenc.AppendFloat(dst, e.Price)
	}
	if e.TS != 0 {
		dst = append(dst, `,"ts":"`...)
		dst = appendTimestamp(dst, e.TS)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// appendField appends ,"name":"value" unless value is empty. name must
// not need escaping.
func appendField(dst []byte, name, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return jsonenc.AppendString(dst, value)
}

// appendTimestamp appends unix milliseconds ms as RFC 3339 in UTC, with
// three fractional digits only when the milliseconds are not zero:
// "2026-09-01T10:00:00Z", "2026-09-01T10:00:00.250Z". Years outside
// 0000..9999 fall back to package time. It formats by hand because
// time.Time.AppendFormat took a fifth of the time of encoding an event.
func appendTimestamp(dst []byte, ms int64) []byte {
	const minMs, maxMs = -62167219200000, 253402300800000 // 0000-01-01, 10000-01-01
	if ms < minMs || ms >= maxMs {
		t := time.UnixMilli(ms).UTC()
		if ms%1000 == 0 {
			return t.AppendFormat(dst, time.RFC3339)
		}
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	}
	days, msOfDay := ms/86400000, ms%86400000
	if msOfDay < 0 {
		days, msOfDay = days-1, msOfDay+86400000
	}
	// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day := doy - (153*mp+2)/5 + 1
	month := mp + 3
	if month > 12 {
		month -= 12
	}
	year := yoe + era*400
	if month <= 2 {
		year++
	}
	sec := msOfDay / 1000
	dst = append(dst,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+month/10), byte('0'+month%10), '-', byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+sec/36000), byte('0'+sec/3600%10), ':',
		byte('0'+sec/600%6), byte('0'+sec/60%10), ':',
		byte('0'+sec%60/10), byte('0'+sec%10))
	if m := msOfDay % 1000; m != 0 {
		dst = append(dst, '.', byte('0'+m/100), byte('0'+m/10%10), byte('0'+m%10))
	}
	return append(dst, 'Z')
}
