package eval

import (
	"reflect"
	"testing"

	"github.com/omnipick/omnipick/engine"
)

// feed applies a catalog of ids and then purchases to m. A purchase is
// {actor, item, ts}; an actor starting with "~" is anonymous.
func feed(t *testing.T, m Recommender, catalog []string, buys [][3]any) {
	t.Helper()
	for _, id := range catalog {
		r := product(id, "", "c", 0, "")
		if err := m.Apply(&r); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range buys {
		actor, item, ts := b[0].(string), b[1].(string), int64(b[2].(int))
		var r engine.Record
		if actor[0] == '~' {
			r = event(engine.EventPurchase, "", actor[1:], item, "web", "", 0, ts)
		} else {
			r = event(engine.EventPurchase, actor, "", item, "web", "", 0, ts)
		}
		if err := m.Apply(&r); err != nil {
			t.Fatal(err)
		}
	}
}

type query struct {
	customer string
	k        int
	asOf     int64
	want     []string
}

func check(t *testing.T, m Recommender, qs []query) {
	t.Helper()
	dst := []string{"keep"}
	for _, q := range qs {
		got := m.Recommend(q.customer, q.k, q.asOf, dst[:1])
		if got[0] != "keep" {
			t.Errorf("%s: Recommend overwrote dst[0]", m.Name())
		}
		if !reflect.DeepEqual(got[1:], q.want) && !(len(got) == 1 && len(q.want) == 0) {
			t.Errorf("%s: Recommend(%q, %d, %d) = %q, want %q", m.Name(), q.customer, q.k, q.asOf, got[1:], q.want)
		}
		dst = got
	}
}

func TestPopularity(t *testing.T) {
	m := NewPopularity()
	feed(t, m, []string{"a", "b", "c", "d", "e"}, [][3]any{
		{"u1", "c", 1}, {"u1", "c", 2}, {"u2", "c", 3}, {"u2", "b", 4}, {"~g", "b", 5}, {"u3", "d", 6},
		{"u3", "zz", 7}, // not in the catalog: never recommended
	})
	// Counts: c 3, b 2, d 1, a 0, e 0 (ties by id).
	check(t, m, []query{
		{"nobody", 3, 0, []string{"c", "b", "d"}},
		{"u1", 3, 0, []string{"b", "d", "a"}},
		{"u2", 10, 0, []string{"d", "a", "e"}},
		{"u3", 0, 0, nil},
		{"g", 1, 0, []string{"c"}}, // an anonymous id is not a customer
	})
	// Retiring a product removes it.
	r := product("c", "", "c", 0, "")
	r.Product.Inactive = true
	if err := m.Apply(&r); err != nil {
		t.Fatal(err)
	}
	check(t, m, []query{{"nobody", 2, 0, []string{"b", "d"}}})
}

func TestLastDayPopularity(t *testing.T) {
	m := NewLastDayPopularity()
	const asOf = 10 * Day
	feed(t, m, []string{"a", "b", "c", "d"}, [][3]any{
		{"u1", "a", 1}, {"u2", "a", 2}, {"u3", "a", 3}, // old: only global
		{"u1", "d", asOf - Day - 1}, // just outside the window
		{"u1", "b", asOf - Day},     // the window's first instant
		{"u2", "c", asOf - 2},
		{"u3", "c", asOf - 1},
	})
	check(t, m, []query{
		// Window: c 2, b 1; then global: a 3, d 1.
		{"x", 4, asOf, []string{"c", "b", "a", "d"}},
		{"u1", 4, asOf, []string{"c"}}, // u1 bought a, b and d
		// An earlier asOf sees another window, [asOf-Day-1, asOf-1): b, c and
		// d once each, by global count then id.
		{"x", 4, asOf - 1, []string{"c", "b", "d", "a"}},
	})
}

func TestCoOccurrence(t *testing.T) {
	m := NewCoOccurrence()
	feed(t, m, []string{"A", "B", "C", "D", "E", "F"}, [][3]any{
		{"u1", "A", 1}, {"u1", "B", 2}, {"u1", "C", 3},
		{"u2", "A", 4}, {"u2", "B", 5}, {"u2", "B", 6},
		{"u3", "A", 7}, {"u3", "D", 8},
		{"~g", "B", 9}, {"~g", "E", 10},
		{"u4", "F", 11},
	})
	// Counts: A 3, B 4, C 1, D 1, E 1, F 1. For u2 (bought A, B): u1 overlaps
	// 2 (C scores 2), u3 overlaps 1 (D: 1), g overlaps 1 (E: 1); D and E tie
	// and go by popularity then id.
	check(t, m, []query{
		{"u2", 2, 0, []string{"C", "D"}},
		{"u2", 5, 0, []string{"C", "D", "E", "F"}},
		// u4's F co-occurs with nothing: popularity.
		{"u4", 3, 0, []string{"B", "A", "C"}},
		{"nobody", 2, 0, []string{"B", "A"}},
		// u3 (A, D): u1 and u2 overlap 1 each: B scores 2, C 1.
		{"u3", 3, 0, []string{"B", "C", "E"}},
	})
}

func TestBestK(t *testing.T) {
	better := func(a, b uint32) bool { return a > b }
	f := func(cands []uint32, k int, want []uint32) {
		t.Helper()
		if got := bestK(nil, cands, k, better); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("bestK(%v, %d) = %v, want %v", cands, k, got, want)
		}
	}
	f([]uint32{3, 1, 4, 1, 5, 9, 2, 6}, 3, []uint32{9, 6, 5})
	f([]uint32{1, 2}, 5, []uint32{2, 1})
	f(nil, 3, nil)
	f([]uint32{1, 2}, 0, nil)
}

// TestItemCF checks cosine normalisation and same-group siblings on a case
// computed by hand.
func TestItemCF(t *testing.T) {
	buys := [][3]any{
		{"q", "A", 1},
		{"u1", "A", 2}, {"u1", "B", 3},
		{"u2", "A", 4}, {"u2", "C", 5},
		{"u3", "C", 6}, {"u4", "C", 7}, {"u5", "C", 8},
	}
	catalog := []string{"A", "B", "C", "D", "E"}
	// Raw co-occurrence with q's A: B 1 (u1), C 1 (u2): a tie that the
	// best seller C wins.
	raw := NewCoOccurrence()
	feed(t, raw, catalog, buys)
	check(t, raw, []query{{"q", 2, 0, []string{"C", "B"}}})
	// Cosine: buyers A = {q, u1, u2}, B = {u1}, C = {u2, u3, u4, u5}:
	// B 1/sqrt(3*1) = 0.577, C 1/sqrt(3*4) = 0.289.
	cf := NewItemCF(false)
	feed(t, cf, catalog, buys)
	check(t, cf, []query{{"q", 3, 0, []string{"B", "C", "D"}}})
	// D is in A's product group: it adds 1 and leads; E is in none.
	grp := NewItemCF(true)
	for _, id := range catalog {
		r := product(id, "", "c", 0, "")
		if id == "A" || id == "D" {
			r.Product.Group = "g1"
		}
		if err := grp.Apply(&r); err != nil {
			t.Fatal(err)
		}
	}
	feed(t, grp, nil, buys)
	check(t, grp, []query{{"q", 4, 0, []string{"D", "B", "C", "E"}}, {"nobody", 2, 0, []string{"C", "A"}}})
	if cf.Name() != "itemcf" || grp.Name() != "itemcf-group" {
		t.Errorf("names %q, %q", cf.Name(), grp.Name())
	}
}

// TestWeekPopularity checks the 7-day window's edges.
func TestWeekPopularity(t *testing.T) {
	m := NewWeekPopularity()
	asOf := int64(10 * Day)
	feed(t, m, []string{"a", "b", "c"}, [][3]any{
		{"u1", "a", int(asOf - 7*Day - 1)}, {"u2", "a", int(asOf - 7*Day - 1)}, // just outside
		{"u1", "b", int(asOf - 7*Day)}, // first instant inside
		{"u2", "c", int(asOf - 1)}, {"u3", "c", int(asOf - 1)},
	})
	check(t, m, []query{{"x", 3, asOf, []string{"c", "b", "a"}}})
	if m.Name() != "popularity-7d" {
		t.Errorf("name %q", m.Name())
	}
}
