package client_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/api/client"
	"github.com/omnipick/omnipick/engine"
)

// recommend is the README's example of the client ("Go client"); a test
// keeps the two the same, and Example runs it against a real server.
func recommend(ctx context.Context, baseURL, writeKey string) error {
	c, err := client.New(client.Options{BaseURL: baseURL, WriteKey: writeKey})
	if err != nil {
		return err
	}
	cart := []client.Event{{Type: client.CartAdd, Customer: "sarah", SKU: "TOUR-LG-8", Channel: "web"}}
	if _, err := c.Events(ctx, cart); err != nil {
		return err
	}
	picks, err := c.Picks(ctx, client.PicksQuery{Customer: "sarah", Channel: "ads", K: 3})
	if err != nil {
		return err
	}
	for _, p := range picks.Picks {
		fmt.Println(p.Product, p.Reason, p.Sizes)
	}
	return nil
}

func Example() {
	// A server in this process, with the README tour's catalog.
	srv, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: engine.New(engine.Options{}), WriteKeys: []string{writeKey}})
	if err != nil || srv.Start() != nil {
		fmt.Println("cannot start a server:", err)
		return
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
	}()
	base := "http://" + srv.Addr()
	ctx := context.Background()
	c, _ := client.New(client.Options{BaseURL: base, WriteKey: writeKey})
	c.Products(ctx, []client.Product{
		{ID: "TOUR-SW", Title: "Merino sweater", Price: 59, Category: "women/knitwear/sweaters", SizeGroup: "women-numeric",
			Variants: []client.Variant{{SKU: "TOUR-SW-8", Size: "8"}, {SKU: "TOUR-SW-10", Size: "10"}}},
		{ID: "TOUR-LG", Title: "Studio leggings", Price: 39, Category: "women/leggings", SizeGroup: "women-numeric",
			Variants: []client.Variant{{SKU: "TOUR-LG-8", Size: "8"}, {SKU: "TOUR-LG-10", Size: "10"}}},
		{ID: "TOUR-HAT", Title: "Bobble hat", Price: 19, Category: "women/accessories/hats"},
	})
	c.Inventory(ctx, []client.Inventory{{SKU: "TOUR-SW-8", Location: "online", Quantity: 4}, {SKU: "TOUR-LG-8", Location: "online", Quantity: 6},
		{SKU: "TOUR-LG-10", Location: "online", Quantity: 2}, {SKU: "TOUR-HAT", Location: "online", Quantity: 9}})

	if err := recommend(ctx, base, writeKey); err != nil {
		fmt.Println(err)
	}
	// Output:
	// TOUR-LG cart [8]
	// TOUR-HAT affinity []
	// TOUR-SW affinity [8]
}

// TestReadmeShowsTheExample: the README's Go example is recommend's body.
func TestReadmeShowsTheExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(src), "func recommend(ctx context.Context, baseURL, writeKey string) error {\n")
	body, _, _ = strings.Cut(body, "\treturn nil\n}\n")
	var want []string
	for line := range strings.Lines(body) {
		want = append(want, strings.TrimPrefix(line, "\t"))
	}
	if !bytes.Contains(readme, []byte("```go\n"+strings.Join(want, "")+"```")) {
		t.Fatalf("README.md has no ```go block with recommend's body (api/client/example_test.go):\n%s", strings.Join(want, ""))
	}
}
