package client_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/omnipick/omnipick/api/client"
	"github.com/valyala/fasthttp"
)

// BenchmarkPicks measures what the client costs per request on top of the
// HTTP call it makes, against one in-process server on loopback:
//
//	raw-fasthttp: a fasthttp.Client with a prepared request, body unread
//	raw-nethttp:  net/http, the transport the client uses, body read
//	client:       client.Picks, URL built and the answer decoded into Picks
//
// go test ./api/client -run XXX -bench Picks -count 5
func BenchmarkPicks(b *testing.B) {
	base := startServer(b, nil, nil)
	c := newClient(b, client.Options{BaseURL: base, WriteKey: writeKey})
	ctx := b.Context()
	var ps []client.Product
	var inv []client.Inventory
	for i := range 200 {
		id := fmt.Sprint("P", i)
		ps = append(ps, client.Product{ID: id, Title: "Product " + id, Price: 10 + float64(i), Currency: "EUR", Category: fmt.Sprint("women/c", i%10),
			URL: "https://shop.example/p/" + id, Image: "https://shop.example/i/" + id + ".jpg", SizeGroup: "n", Variants: []client.Variant{{SKU: id + "-8", Size: "8"}}})
		inv = append(inv, client.Inventory{SKU: id + "-8", Location: "online", Quantity: 5})
	}
	if _, err := c.Products(ctx, ps); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Inventory(ctx, inv); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Events(ctx, []client.Event{{Type: client.CartAdd, Customer: "sarah", SKU: "P7-8"}, {Type: client.View, Customer: "sarah", Product: "P12"}}); err != nil {
		b.Fatal(err)
	}
	const query = "/v1/picks?customer=sarah&channel=ads&k=10"
	q := client.PicksQuery{Customer: "sarah", Channel: "ads", K: 10}

	b.Run("raw-fasthttp", func(b *testing.B) {
		fc := &fasthttp.Client{}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(base + query)
		req.Header.Set("Authorization", "Bearer "+writeKey)
		b.ReportAllocs()
		for b.Loop() {
			if err := fc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Fatal(err, resp.StatusCode())
			}
		}
	})
	b.Run("raw-nethttp", func(b *testing.B) {
		hc := &http.Client{}
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequestWithContext(ctx, "GET", base+query, nil)
			req.Header.Set("Authorization", "Bearer "+writeKey)
			resp, err := hc.Do(req)
			if err != nil || resp.StatusCode != 200 {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.Run("client", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := c.Picks(ctx, q)
			if err != nil || len(p.Picks) != 10 {
				b.Fatal(err)
			}
		}
	})
}

// canned answers every request with one recorded answer, without a
// network: what is left is the work of the code above the transport.
type canned struct{ body []byte }

func (c canned) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(c.body)), Request: req}, nil
}

// BenchmarkPicksOverhead isolates what the client does per request beyond
// net/http's own work (building the URL and headers, retry bookkeeping,
// decoding the answer into Picks): both sides send through a transport
// that answers at once with a real answer recorded from a server, so the
// difference is the client's overhead, free of the network and the
// machine's noise.
//
// go test ./api/client -run XXX -bench PicksOverhead -count 5
func BenchmarkPicksOverhead(b *testing.B) {
	base := startServer(b, nil, nil)
	c := newClient(b, client.Options{BaseURL: base, WriteKey: writeKey})
	ctx := b.Context()
	var ps []client.Product
	var inv []client.Inventory
	for i := range 20 {
		id := fmt.Sprint("P", i)
		ps = append(ps, client.Product{ID: id, Title: "Product " + id, Price: 10 + float64(i), Currency: "EUR", Category: fmt.Sprint("women/c", i%10),
			URL: "https://shop.example/p/" + id, Image: "https://shop.example/i/" + id + ".jpg", SizeGroup: "n", Variants: []client.Variant{{SKU: id + "-8", Size: "8"}}})
		inv = append(inv, client.Inventory{SKU: id + "-8", Location: "online", Quantity: 5})
	}
	if _, err := c.Products(ctx, ps); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Inventory(ctx, inv); err != nil {
		b.Fatal(err)
	}
	const query = "/v1/picks?customer=sarah&channel=ads&k=10"
	req, _ := http.NewRequestWithContext(ctx, "GET", base+query, nil)
	req.Header.Set("Authorization", "Bearer "+writeKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	b.Logf("answer: %d bytes", len(answer))
	hc := &http.Client{Transport: canned{answer}}

	b.Run("nethttp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequestWithContext(ctx, "GET", base+query, nil)
			req.Header.Set("Authorization", "Bearer "+writeKey)
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.Run("client", func(b *testing.B) {
		cc := newClient(b, client.Options{BaseURL: base, WriteKey: writeKey, HTTPClient: hc})
		q := client.PicksQuery{Customer: "sarah", Channel: "ads", K: 10}
		b.ReportAllocs()
		for b.Loop() {
			if p, err := cc.Picks(ctx, q); err != nil || len(p.Picks) != 10 {
				b.Fatal(err)
			}
		}
	})
}
