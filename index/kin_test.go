package index

import (
	"slices"
	"testing"

	"github.com/omnipick/omnipick/internal/binfmt"
)

// TestSiblings checks product groups through upserts, a regrouping and a
// snapshot round trip.
func TestSiblings(t *testing.T) {
	x := New()
	put := func(id, group string) *Item {
		t.Helper()
		it := &Item{ID: id, Category: "c", ProductGroup: group, Variants: []Variant{{SKU: id}}, Active: true}
		if err := x.Upsert(it); err != nil {
			t.Fatal(err)
		}
		return it
	}
	sibs := func(x *Index, id string) []string {
		t.Helper()
		it, _ := x.Item(id)
		var out []string
		if b := x.Siblings(it.Kin); b != nil {
			for _, p := range b.ToArray() {
				out = append(out, x.ItemAt(p).ID)
			}
		}
		slices.Sort(out)
		return out
	}
	if x.HasProductGroups() {
		t.Error("a new index has product groups")
	}
	put("A", "g1")
	put("B", "g1")
	if !x.HasProductGroups() {
		t.Error("no product groups after A and B")
	}
	put("C", "g2")
	put("D", "")
	if got := sibs(x, "A"); !slices.Equal(got, []string{"A", "B"}) {
		t.Errorf("siblings of A: %v", got)
	}
	if got := sibs(x, "D"); got != nil {
		t.Errorf("D has no group, got siblings %v", got)
	}
	put("B", "g2") // regrouped
	if got := sibs(x, "A"); !slices.Equal(got, []string{"A"}) {
		t.Errorf("siblings of A after B left: %v", got)
	}
	if got := sibs(x, "C"); !slices.Equal(got, []string{"B", "C"}) {
		t.Errorf("siblings of C: %v", got)
	}
	y, err := LoadSnapshot(binfmt.NewReader(x.AppendSnapshot(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := sibs(y, "C"); !slices.Equal(got, []string{"B", "C"}) {
		t.Errorf("siblings of C after a snapshot: %v", got)
	}
	if it, _ := y.Item("B"); it.ProductGroup != "g2" {
		t.Errorf("B's group after a snapshot: %q", it.ProductGroup)
	}
	if x.Siblings(0) != nil || x.Siblings(99) != nil {
		t.Error("Siblings of no group or an unknown one is not nil")
	}
}
