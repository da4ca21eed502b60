package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

// FuzzParseAudienceQuery parses arbitrary query strings for both built-in
// audiences as GET /v1/audiences/{name} does, then runs the audience on a
// tiny engine and encodes its rows. Nothing may panic; a query that parses
// must hold values within the documented bounds; one that does not must
// name the parameter at fault. The seed corpus is in
// testdata/fuzz/FuzzParseAudienceQuery/. Run it with
//
//	go test ./api -run XXX -fuzz FuzzParseAudienceQuery -fuzztime 30s
func FuzzParseAudienceQuery(f *testing.F) {
	e := tinyEngine(f)
	params := map[string]bool{"format": true, "k": true, "location": true, "min_age": true, "max_age": true, "category": true, "days": true}
	var args fasthttp.Args
	f.Fuzz(func(t *testing.T, query string) {
		args.Reset()
		args.Parse(query)
		for _, kind := range []engine.AudienceKind{engine.AudienceCartAbandoners, engine.AudienceViewers} {
			req := &audienceRequest{q: engine.AudienceQuery{Kind: kind}}
			field, msg := parseAudienceQuery(req, &args)
			if field != "" || msg != "" {
				if msg == "" || !params[field] {
					t.Fatalf("%s %q: field %q, message %q", kind, query, field, msg)
				}
				continue
			}
			checkAudienceRequest(t, req)
			req.q.Now = testNow + 2*time.Hour.Milliseconds() // the tiny engine's events are stamped testNow
			rows := 0
			err := e.Audience(&req.q, nil, func(batch []engine.Member) error {
				q := engine.Query{Channel: engine.ChannelAds, K: req.k, Locations: req.locations}
				for _, m := range batch {
					q.Customer, q.AnonymousID = m.ID, ""
					if m.Anonymous {
						q.Customer, q.AnonymousID = "", m.ID
					}
					picks := e.PicksInto(nil, &q)
					if len(picks) > req.k {
						t.Fatalf("%d picks for k %d", len(picks), req.k)
					}
					if row := appendAudienceJSON(nil, m, picks, nil); !json.Valid(bytes.TrimSpace(row)) {
						t.Fatalf("row is not JSON: %q", row)
					}
					if _, err := csv.NewReader(bytes.NewReader(appendAudienceCSV(nil, m, picks))).ReadAll(); err != nil {
						t.Fatalf("row is not CSV: %v", err)
					}
					rows++
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%s %q: %v", kind, query, err)
			}
			if query == "" && rows == 0 { // the defaults find the tiny engine's cart and views
				t.Fatalf("%s: no members with the default parameters", kind)
			}
		}
	})
}

// checkAudienceRequest checks the bounds a parsed audience request must
// keep (API.md).
func checkAudienceRequest(t *testing.T, req *audienceRequest) {
	t.Helper()
	if req.k < 1 || req.k > engine.MaxK {
		t.Fatalf("k %d", req.k)
	}
	if req.format != formatNDJSON && req.format != formatCSV {
		t.Fatalf("format %d", req.format)
	}
	if len(req.locations) > maxListItems {
		t.Fatalf("%d locations", len(req.locations))
	}
	for _, l := range req.locations {
		if l == "" || len(l) > maxIDBytes || !utf8.ValidString(l) {
			t.Fatalf("location %q", l)
		}
	}
	q := &req.q
	switch q.Kind {
	case engine.AudienceCartAbandoners:
		if q.MinAge < 0 || q.MaxAge <= 0 || q.MinAge > q.MaxAge || q.MaxAge > maxAudienceAge {
			t.Fatalf("ages %v..%v", q.MinAge, q.MaxAge)
		}
	case engine.AudienceViewers:
		if len(q.Category) > maxIDBytes || !utf8.ValidString(q.Category) {
			t.Fatalf("category %q", q.Category)
		}
		if q.Within < 24*time.Hour || q.Within > maxAudienceDays*24*time.Hour || q.Within%(24*time.Hour) != 0 {
			t.Fatalf("within %v", q.Within)
		}
	}
}
