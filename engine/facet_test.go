package engine

import (
	"strings"
	"testing"

	"github.com/omnipick/omnipick/index"
)

func TestAppendIndexFacet(t *testing.T) {
	for _, c := range []struct {
		f    Facet
		want string // "" when not ok
	}{
		{Facet{FacetCategory, "women/knitwear"}, "c:women/knitwear"},
		{Facet{FacetCategory, "/Women/ Knitwear/"}, "c:women/knitwear"},
		{Facet{FacetCategory, "/"}, ""},
		{Facet{FacetCategory, " / a //B\t/ c d /"}, "c:a/b/c d"},
		{Facet{FacetCategory, "Öl/ Ärmel "}, "c:" + index.NormalizeCategory("Öl/ Ärmel ")},
		{Facet{FacetBrand, "Nordic"}, "b:nordic"},
		{Facet{FacetBrand, "ÉCLAIR Ünd Co"}, "b:" + strings.ToLower("ÉCLAIR Ünd Co")},
		{Facet{FacetTag, "Wool"}, "t:wool"},
		{Facet{FacetTag, "bad\xffUTF"}, "t:" + strings.ToLower("bad\xffUTF")},
		{Facet{FacetTag, ""}, ""},
		{Facet{0, "x"}, ""},
		{Facet{FacetTag + 1, "x"}, ""},
	} {
		got, ok := appendIndexFacet([]byte("x"), c.f)
		if ok != (c.want != "") || ok && string(got) != "x"+c.want {
			t.Errorf("appendIndexFacet(%+v) = %q, %v; want %q", c.f, got, ok, c.want)
		}
	}
	// The names are the index's: a brand and a tag of an upserted item are
	// found under them.
	x := index.New()
	it := &index.Item{ID: "P1", Category: "Women/Knitwear", Brand: "Nordic", Tags: []string{"Wool"}, Variants: []index.Variant{{SKU: "P1"}}}
	if err := x.Upsert(it); err != nil {
		t.Fatal(err)
	}
	var pk picker
	for _, f := range []Facet{{FacetCategory, "women"}, {FacetCategory, "WOMEN/knitwear"}, {FacetBrand, "NORDIC"}, {FacetTag, "wool"}} {
		if _, ok := pk.lookupFacet(x, f); !ok {
			t.Errorf("lookupFacet(%+v): not found", f)
		}
	}
	if _, ok := pk.lookupFacet(x, Facet{FacetBrand, "women"}); ok {
		t.Error("a category found as a brand")
	}
	if n := testing.AllocsPerRun(100, func() {
		pk.lookupFacet(x, Facet{FacetBrand, "NÖRDIC"})
		pk.lookupFacet(x, Facet{FacetCategory, "/Women/ Knitwear/"})
	}); n != 0 {
		t.Errorf("lookupFacet allocates %v times", n)
	}
}

func TestFacetKind(t *testing.T) {
	for k := FacetCategory; k <= FacetTag; k++ {
		if got, ok := ParseFacetKind(k.String()); !ok || got != k {
			t.Errorf("ParseFacetKind(%q) = %v, %v", k.String(), got, ok)
		}
	}
	for _, s := range []string{"", "unknown", "Category", "colour"} {
		if _, ok := ParseFacetKind(s); ok {
			t.Errorf("ParseFacetKind(%q) is ok", s)
		}
	}
	if FacetKind(0).String() != "unknown" || FacetKind(9).String() != "unknown" {
		t.Error("String of an unknown kind")
	}
}

// FuzzAppendCategory checks the allocation-free category normalization
// against the catalog's own.
func FuzzAppendCategory(f *testing.F) {
	for _, c := range []string{"", "/", "Women/Knitwear", " a // b ", "a\t/\vb", "Öl/x", "\xff/A"} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, c string) {
		if got, want := string(appendCategory(nil, c)), index.NormalizeCategory(c); got != want {
			t.Fatalf("appendCategory(%q) = %q, want %q", c, got, want)
		}
	})
}
