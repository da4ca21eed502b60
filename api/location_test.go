package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/omnipick/omnipick/api"
)

// TestPicksUnknownLocation: a typo in location is a 400 naming the field
// and the known locations, never an empty answer a store screen would show
// silently; a known location answers, and a customer nobody knows still
// gets (non-personal) picks.
func TestPicksUnknownLocation(t *testing.T) {
	c := client{t, startServer(t, api.Options{})}
	c.post("/v1/locations", `{"id":"store-berlin-1","name":"Berlin Mitte"}`, `{"id":"store-hamburg-1","name":"Hamburg"}`)
	c.post("/v1/products", `{"id":"P1","title":"Hat","price":19,"category":"women/accessories/hats","variants":[{"sku":"P1"}]}`)
	c.post("/v1/inventory", `{"sku":"P1","location":"online","quantity":3}`, `{"sku":"P1","location":"store-berlin-1","quantity":2}`)
	c.post("/v1/events", `{"type":"purchase","customer":"someone","product":"P1"}`)
	for _, tc := range []struct {
		query  string
		status int
		naming string // the unknown id the message names
	}{
		{"channel=screen&location=store-nowhere", 400, "store-nowhere"},
		{"channel=screen&location=store-berlin-1,store-nowhere", 400, "store-nowhere"},
		{"customer=someone&channel=ads&location=Store-Berlin-1", 400, "Store-Berlin-1"},
		{"channel=screen&location=store-berlin-1", 200, ""},
		{"channel=screen&location=store-hamburg-1", 200, ""}, // registered, no stock: known, just empty
		{"channel=web&location=online", 200, ""},
		{"customer=nobody-knows-her&channel=web", 200, ""},
		{"anonymous_id=cookie-new&channel=ads&location=store-berlin-1", 200, ""},
	} {
		t.Run(tc.query, func(t *testing.T) {
			status, body := c.do("GET", "/v1/picks?"+tc.query, "", "")
			if status != tc.status {
				t.Fatalf("status %d %s, want %d", status, body, tc.status)
			}
			if tc.status == 200 {
				return
			}
			var e struct{ Error, Field string }
			if err := json.Unmarshal(body, &e); err != nil || e.Field != "location" {
				t.Fatalf("body %s: want a JSON error naming field location", body)
			}
			for _, s := range []string{`"` + tc.naming + `"`, "online", "store-berlin-1", "store-hamburg-1"} {
				if !strings.Contains(e.Error, s) {
					t.Errorf("error %q does not name %s", e.Error, s)
				}
			}
		})
	}
	for _, path := range []string{"/v1/audiences/cart_abandoners?location=store-nowhere", "/v1/audiences/viewers?location=online,store-nowhere"} {
		status, body := c.do("GET", path, "", "")
		var e struct{ Error, Field string }
		if json.Unmarshal(body, &e); status != 400 || e.Field != "location" || !strings.Contains(e.Error, "store-berlin-1") {
			t.Errorf("GET %s: %d %s; want 400 naming location and the known ones", path, status, body)
		}
	}
	// An unknown customer is not an error: popular picks, in stock.
	ps := c.picks("customer=nobody-knows-her&channel=web&k=3")
	if len(ps) != 1 || ps[0].Product != "P1" || ps[0].Reason != "popular" {
		t.Errorf("picks for an unknown customer: %+v, want P1 popular", ps)
	}
}
