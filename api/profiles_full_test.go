package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// TestProfileCapIs503: with -max-profiles reached by customers only, a
// write for a new actor answers 503 with Retry-After, saying what was
// applied (the known customer's event in the same body) and what not;
// a new cookie while cookies can make room is applied.
func TestProfileCapIs503(t *testing.T) {
	e := engine.New(engine.Options{Shards: 1, MaxProfiles: 3})
	base := startServer(t, api.Options{Engine: e})
	c := client{t, base}
	c.post("/v1/products", `{"id":"Q1","title":"Q","variants":[{"sku":"Q1"}]}`)
	c.post("/v1/events", `{"type":"view","anonymous_id":"ck-1","product":"Q1"}`,
		`{"type":"view","customer":"c1","product":"Q1"}`, `{"type":"view","customer":"c2","product":"Q1"}`)
	// A new cookie: the old one makes room.
	c.post("/v1/events", `{"type":"view","anonymous_id":"ck-2","product":"Q1"}`)
	c.post("/v1/events", `{"type":"view","customer":"c3","product":"Q1"}`) // ck-2 goes
	status, h, body := request(t, base, "POST", "/v1/events", []byte(strings.Join([]string{
		`{"type":"view","customer":"c1","product":"Q1"}`,
		`{"type":"view","customer":"c-new","product":"Q1"}`}, "\n")), "Content-Type: application/x-ndjson")
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" ||
		!strings.Contains(string(body), `"applied":1`) || !strings.Contains(string(body), `"index":1`) {
		t.Fatalf("a new customer at a cap of customers: %d Retry-After %q %s", status, h.Get("Retry-After"), body)
	}
	if st := e.Stats(); st.Profiles != 3 || st.ProfilesEvicted != 2 {
		t.Fatalf("profiles %d, evicted %d; want 3 and 2", st.Profiles, st.ProfilesEvicted)
	}
	t.Logf("%d %s", status, body)
}
