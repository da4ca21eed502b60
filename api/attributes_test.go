package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/omnipick/omnipick/api"
)

// TestProductAttributes: products carry feed attributes; bad ones reject
// the product naming the attribute; an upsert replaces them as a whole;
// the feeds and the explorer show them.
func TestProductAttributes(t *testing.T) {
	base := startServer(t, api.Options{WriteKeys: []string{writeKey1}, ReadKeys: []string{readKey1}})
	auth := "Authorization: Bearer " + writeKey1
	product := func(attrs string) string {
		return `{"id":"SW1","title":"Merino sweater","url":"https://shop.example/p/SW1","image":"/img/SW1.svg","price":59,"currency":"EUR","category":"women/knitwear","brand":"Nordic",` +
			`"size_group":"women-numeric","variants":[{"sku":"SW1-8","size":"8"}]` + attrs + `}`
	}
	many := make([]string, 33)
	for i := range many {
		many[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	for _, tc := range []struct {
		attrs  string
		status int
		field  string
	}{
		{`,"attributes":"navy"`, 400, "attributes"},
		{`,"attributes":{"Color":"navy"}`, 400, "attributes.Color"},
		{`,"attributes":{"color":7}`, 400, "attributes.color"},
		{`,"attributes":{"color":"  "}`, 400, "attributes.color"},
		{`,"attributes":{"gender":"woman"}`, 400, "attributes.gender"},
		{`,"attributes":{"age_group":"grown-up"}`, 400, "attributes.age_group"},
		{`,"attributes":{"material":"` + strings.Repeat("x", 1001) + `"}`, 400, "attributes.material"},
		{`,"attributes":{` + strings.Join(many, ",") + `}`, 400, "attributes"},
		{`,"attributes":null`, 200, ""},
		{`,"attributes":{}`, 200, ""},
		{`,"attributes":{"gender":"female","color":"navy","age_group":"adult","material":" merino wool ","google_product_category":"1604","color":"red"}`, 200, ""},
	} {
		st, _, b := request(t, base, "POST", "/v1/products", []byte(product(tc.attrs)), auth)
		var e struct{ Error, Field string }
		json.Unmarshal(b, &e)
		if st != tc.status || e.Field != tc.field {
			t.Errorf("attributes %.80s: %d %s; want %d naming %q", tc.attrs, st, b, tc.status, tc.field)
		}
	}
	request(t, base, "POST", "/v1/inventory", []byte(`{"sku":"SW1-8","location":"online","quantity":2}`), auth)
	c := feedClient{client: client{t, base}, key: readKey1}
	g := c.google("")["SW1-8"]
	if g.Color != "red" || g.Gender != "female" || g.AgeGroup != "adult" || g.Material != "merino wool" || g.GoogleProductCategory != "1604" {
		t.Errorf("google item: %+v; want the last color, trimmed values", g)
	}
	if m := c.meta("")["SW1-8"]; m["color"] != "red" || m["gender"] != "female" || m["pattern"] != "" {
		t.Errorf("meta row: %v", m)
	}
	_, _, b := request(t, base, "GET", "/explore/product.json?id=SW1", nil, "X-API-Key: "+readKey1)
	var p struct{ Attributes map[string]string }
	if json.Unmarshal(b, &p); p.Attributes["color"] != "red" || len(p.Attributes) != 5 {
		t.Errorf("explorer product: %s", b)
	}
	// An upsert without attributes drops them.
	request(t, base, "POST", "/v1/products", []byte(product("")), auth)
	if g := c.google("")["SW1-8"]; g.Color != "" || g.Gender != "" {
		t.Errorf("after an upsert without attributes: %+v", g)
	}
}
