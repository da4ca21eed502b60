package api

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fastjson"
)

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
