package api_test

import (
	"errors"
	"testing"

	"github.com/omnipick/omnipick/api"
	apiclient "github.com/omnipick/omnipick/api/client"
	"github.com/omnipick/omnipick/engine/store"
)

// TestEraseAndCompactOverHTTP: a customer forgotten through the client is
// gone on the next request, and a compaction answers what it wrote.
func TestEraseAndCompactOverHTTP(t *testing.T) {
	st, _, err := store.Open(store.Options{Dir: t.TempDir(), NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the server stops
	c := newTyped(t, startServer(t, api.Options{Engine: st.Engine(), Writer: st, Compact: st.Compact}))
	c.putProducts(apiclient.Product{ID: "P1", Title: "One", Price: 5})
	c.putEvents(apiclient.Event{Type: apiclient.View, Customer: "ann", Product: "P1"},
		apiclient.Event{Type: apiclient.View, AnonymousID: "cookie-1", Product: "P1"})
	if p := c.profile("ann"); len(p.Views) != 1 {
		t.Fatalf("ann before: %+v", p)
	}
	ctx := t.Context()
	if err := c.api.Erase(ctx, "ann", false); err != nil {
		t.Fatal(err)
	}
	if err := c.api.Erase(ctx, "cookie-1", true); err != nil {
		t.Fatal(err)
	}
	var ce *apiclient.Error
	for _, id := range []string{"ann", "cookie-1"} {
		if _, err := c.api.Customer(ctx, id); !errors.As(err, &ce) || ce.Status != 404 {
			t.Fatalf("%s after erasure: %v", id, err)
		}
	}
	if err := c.api.Erase(ctx, "nobody", false); !errors.As(err, &ce) || ce.Status != 404 || ce.Field != "id" {
		t.Fatalf("erasing an unknown id: %v", err)
	}
	res, err := c.api.Compact(ctx)
	if err != nil || res.Snapshot == "" || res.Seq == 0 {
		t.Fatalf("compact: %+v %v", res, err)
	}
}
