package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

// TestEngineRejectsReachTheClient posts records the decoder accepts and
// the engine refuses, and checks that the reply names the field and gives
// the engine's reason as it is: its sentinel text, with no package name.
func TestEngineRejectsReachTheClient(t *testing.T) {
	s, err := New(Options{Addr: "127.0.0.1:0", Engine: engine.New(engine.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	post := func(path, body string) (int, []byte) {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI(path)
		ctx.Request.Header.SetContentType("application/x-ndjson")
		ctx.Request.SetBodyString(body)
		s.handle(&ctx)
		return ctx.Response.StatusCode(), ctx.Response.Body()
	}
	if status, body := post("/v1/products", `{"id":"P1","variants":[{"sku":"P1-S","size":"S"}]}`); status != 200 {
		t.Fatalf("product: %d %s", status, body)
	}
	for _, tc := range []struct {
		path, body    string
		field, reason string
	}{
		{"/v1/inventory", `{"sku":"nope","location":"online","quantity":1}`, "sku", `unknown sku`},
		{"/v1/products", `{"id":"P2","variants":[{"sku":"P1-S"}]}`, "variants", `sku belongs to another product: "P1-S" is a variant of "P1"`},
		{"/v1/events", `{"type":"view","customer":"c1","product":"P9"}`, "product", `unknown product`},
		{"/v1/events", `{"type":"view","customer":"c1","product":"P1","sku":"X-1"}`, "sku", `unknown sku`},
		{"/v1/identify", `{"anonymous_id":"a1","to_anonymous_id":"a2"}` + "\n" + `{"anonymous_id":"a2","to_anonymous_id":"a1"}`, "to_anonymous_id", `the link would make a cycle of anonymous ids`},
	} {
		status, body := post(tc.path, tc.body)
		var reply struct {
			Rejected []struct{ Field, Reason string }
		}
		if err := json.Unmarshal(body, &reply); err != nil || len(reply.Rejected) != 1 {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, status, body)
			continue
		}
		r := reply.Rejected[0]
		if r.Field != tc.field || !strings.HasPrefix(r.Reason, tc.reason) || strings.Contains(r.Reason, "engine:") || strings.Contains(r.Reason, "index:") {
			t.Errorf("%s %s: rejected on %q for %q, want %q for %q...", tc.path, tc.body, r.Field, r.Reason, tc.field, tc.reason)
		}
	}
}
