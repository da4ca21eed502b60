package api

import (
	"bytes"
	"strconv"
)

// contentCoding is a streamed response's Content-Encoding (feeds,
// audiences).
type contentCoding uint8

const (
	codingIdentity contentCoding = iota
	codingGzip
	codingZstd
)

var codingNames = [...]string{codingIdentity: "", codingGzip: "gzip", codingZstd: "zstd"}

// negotiateCoding picks the response coding from an Accept-Encoding
// header (RFC 9110 section 12.5.3): zstd or gzip, whichever has the higher
// q-value, zstd on a tie (it compresses faster at a like ratio). "*"
// stands for gzip only: a client that says "anything" rarely means zstd.
// Without the header, or when nothing we offer is acceptable, the body
// goes uncompressed: refusing with 406 would help no ad platform.
func negotiateCoding(h []byte) contentCoding {
	gz, zs, star := -1.0, -1.0, -1.0 // -1: not mentioned
	for len(h) > 0 {
		var part []byte
		part, h, _ = bytes.Cut(h, []byte{','})
		name, params, _ := bytes.Cut(part, []byte{';'})
		q := 1.0
		for len(params) > 0 {
			var p []byte
			p, params, _ = bytes.Cut(params, []byte{';'})
			k, v, _ := bytes.Cut(bytes.TrimSpace(p), []byte{'='})
			if bytes.EqualFold(bytes.TrimSpace(k), []byte("q")) {
				f, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
				if err != nil || !(f >= 0 && f <= 1) {
					f = 0
				}
				q = f
			}
		}
		switch name = bytes.TrimSpace(name); {
		case bytes.EqualFold(name, []byte("zstd")):
			zs = q
		case bytes.EqualFold(name, []byte("gzip")) || bytes.EqualFold(name, []byte("x-gzip")):
			gz = max(gz, q)
		case string(name) == "*":
			star = q
		}
	}
	if gz < 0 {
		gz = star
	}
	switch {
	case zs > 0 && zs >= gz:
		return codingZstd
	case gz > 0:
		return codingGzip
	}
	return codingIdentity
}
