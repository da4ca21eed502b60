package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/omnipick/omnipick/engine"
)

// The seed corpora live in testdata/fuzz/FuzzDecode*/: realistic bodies
// from the API doc and hostile ones (deep nesting, broken arrays, invalid
// UTF-8, NaN and huge numbers, control characters). Run one target with
//
//	go test ./api -run XXX -fuzz FuzzDecodeEvents -fuzztime 20s

func FuzzDecodeProducts(f *testing.F)   { fuzzDecode(f, engine.OpProduct) }
func FuzzDecodeInventory(f *testing.F)  { fuzzDecode(f, engine.OpInventory) }
func FuzzDecodeEvents(f *testing.F)     { fuzzDecode(f, engine.OpEvent) }
func FuzzDecodeIdentify(f *testing.F)   { fuzzDecode(f, engine.OpIdentify) }
func FuzzDecodeLocations(f *testing.F)  { fuzzDecode(f, engine.OpLocation) }
func FuzzDecodeExclusions(f *testing.F) { fuzzDecode(f, engine.OpExclusion) }

// fuzzDecode decodes arbitrary bytes as JSON and as NDJSON and checks that
// Decode never panics, that every record it returns is valid
// (checkDecoded), that it finds as many objects as the body has, that it
// does not depend on the Decoder's previous use, and that the records do
// not alias the body.
func fuzzDecode(f *testing.F, op engine.Op) {
	var d Decoder // shared across inputs, as a pooled Decoder is
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ndjson := range []bool{false, true} {
			in := bytes.Clone(body)
			recs, rejects, err := d.Decode(op, in, ndjson, testNow, nil, nil)
			trimmed := bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
			first := byte(0)
			if i := skipWS(trimmed, 0); i < len(trimmed) {
				first = trimmed[i]
			}
			if err != nil {
				if len(recs) != 0 || len(rejects) != 0 {
					t.Fatalf("error %v with %d records and %d rejects", err, len(recs), len(rejects))
				}
				if ndjson && first != '[' {
					t.Fatalf("ndjson body not starting with '[': error %v", err)
				}
				if json.Valid(body) && (first == '[' || first == '{') {
					t.Fatalf("valid JSON array or object: error %v", err)
				}
				continue
			}
			checkDecoded(t, op, recs, rejects)
			n := len(recs) + len(rejects)

			// Count objects independently of the decoder.
			lines := 0
			for line := range bytes.SplitSeq(trimmed, []byte("\n")) {
				if skipWS(line, 0) < len(line) {
					lines++
				}
			}
			switch {
			case first == '[':
			case first == '{':
				if n != 1 && n != lines {
					t.Fatalf("body starting with '{': %d objects, want 1 or %d lines", n, lines)
				}
			case ndjson && n != lines:
				t.Fatalf("ndjson: %d objects, want %d non-blank lines", n, lines)
			}
			if first != '[' && n == lines {
				// One object a line: a line is "invalid json" exactly when
				// encoding/json finds it invalid or it nests too deep.
				k, j := 0, 0
				for line := range bytes.SplitSeq(trimmed, []byte("\n")) {
					if skipWS(line, 0) == len(line) {
						continue
					}
					for j < len(rejects) && rejects[j].Index < k {
						j++
					}
					gotInvalid := j < len(rejects) && rejects[j].Index == k && strings.HasPrefix(rejects[j].Reason, "invalid json")
					wantInvalid := !json.Valid(line) || nesting(line) > maxNesting
					if n == 1 {
						wantInvalid = !json.Valid(trimmed) || nesting(trimmed) > maxNesting
					}
					if gotInvalid != wantInvalid {
						t.Fatalf("line %d %q: invalid json %v, encoding/json says %v (rejects %+v)", k, line, gotInvalid, wantInvalid, rejects)
					}
					k++
				}
			}
			if json.Valid(body) {
				dec := json.NewDecoder(bytes.NewReader(body))
				dec.UseNumber()
				var top any
				if err := dec.Decode(&top); err != nil {
					t.Fatalf("encoding/json: %v", err)
				}
				want := 1
				if a, ok := top.([]any); ok {
					want = len(a)
				}
				if n != want {
					t.Fatalf("valid JSON with %d objects: decoded %d records, %d rejects", want, len(recs), len(rejects))
				}
			}

			// The records own their memory: scribbling over the body and
			// reusing the Decoder on another input changes nothing, and
			// decoding again gives the same answer.
			for i := range in {
				in[i] = '"'
			}
			d.Decode(op, in, ndjson, testNow, nil, nil)
			recs2, rejects2, err2 := d.Decode(op, body, ndjson, testNow, nil, nil)
			if err2 != nil || !reflect.DeepEqual(recs, recs2) || !reflect.DeepEqual(rejects, rejects2) {
				t.Fatalf("decoding twice differs:\n%+v %+v\n%+v %+v %v", recs, rejects, recs2, rejects2, err2)
			}

			if out := AppendRejectsJSON(nil, len(recs), rejects); !json.Valid(out) {
				t.Fatalf("AppendRejectsJSON produced invalid JSON: %s", out)
			}
		}
	})
}

// nesting returns how deep arrays and objects nest in valid JSON b.
func nesting(b []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '[', '{':
			depth++
			deepest = max(deepest, depth)
		case ']', '}':
			depth--
		}
	}
	return deepest
}
