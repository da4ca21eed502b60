package api_test

import (
	"slices"
	"strings"
	"testing"
)

// TestDemoFeedsApparelAttributes: every apparel item of the demo's feeds
// carries what Merchant Center requires of apparel in its main markets
// (color, gender, age_group, and size for sized items) with values it
// accepts, and the picture the server draws, linked absolutely; Meta's
// catalog carries the same columns.
func TestDemoFeedsApparelAttributes(t *testing.T) {
	base, e := demoServer(t)
	c := feedClient{client: client{t, base}, key: readKey1}
	g := c.google("")
	if len(g) < 3000 {
		t.Fatalf("the demo's Google feed has %d items", len(g))
	}
	apparel := 0
	for sku, it := range g {
		if !strings.HasPrefix(it.GoogleProductCategory, "Apparel & Accessories") {
			continue
		}
		apparel++
		p, _ := e.Product(it.ItemGroupID)
		sized := p != nil && p.SizeGroup != ""
		if it.Color == "" || !slices.Contains([]string{"male", "female", "unisex"}, it.Gender) ||
			!slices.Contains([]string{"newborn", "infant", "toddler", "kids", "adult"}, it.AgeGroup) ||
			it.Material == "" || it.Brand == "" || (sized && (it.Size == nil || *it.Size == "")) {
			t.Errorf("apparel item %s lacks what Merchant Center requires: %+v", sku, it)
		}
		if !strings.HasPrefix(it.ImageLink, base+"/img/") {
			t.Errorf("item %s: image_link %q, want the server's own picture", sku, it.ImageLink)
		}
	}
	if apparel != len(g) {
		t.Errorf("%d of the demo's %d items are apparel, want all", apparel, len(g))
	}
	m := c.meta("")
	if len(m) != len(g) {
		t.Fatalf("meta rows %d, google items %d", len(m), len(g))
	}
	for sku, r := range m {
		for _, col := range []string{"color", "gender", "age_group", "material", "google_product_category"} {
			if r[col] == "" {
				t.Errorf("meta row %s: empty %s", sku, col)
			}
		}
	}
}
