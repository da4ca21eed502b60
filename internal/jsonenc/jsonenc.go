// Package jsonenc holds the JSON output encoding shared by the HTTP API
// (picks, errors, write replies, audiences, screens) and bench (the NDJSON
// it feeds the API): one string encoder, so that every JSON Omnipick
// writes escapes the same way.
//
// Functions append to a caller's buffer and allocate nothing beyond
// growing it.
package jsonenc

import (
	"math"
	"strconv"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// plain marks the bytes AppendString copies as they are: printable ASCII
// but the quote, the backslash and the three HTML specials <, >, &.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// AppendString appends s to dst as a quoted JSON string and returns the
// extended buffer. It escapes quotes and backslashes (\" and \\), control
// characters and <, >, & (as \u00XX), and U+2028 and U+2029, so that the
// output is also safe to embed in HTML and JavaScript. Invalid UTF-8 bytes
// become U+FFFD, as encoding/json does, so the output is always valid JSON.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			if c == '"' || c == '\\' {
				dst = append(dst, '\\', c)
			} else {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendFloat appends f as a JSON number in the shortest form that reads
// back exactly; NaN and the infinities, which JSON cannot carry, as null.
func AppendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}
