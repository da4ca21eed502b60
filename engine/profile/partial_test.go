package profile

import (
	"slices"
	"testing"
)

// TestLinkHeld: a store that holds some actors keeps every link, and
// lets the history travel rather than merge it.
func TestLinkHeld(t *testing.T) {
	lim := Limits{Affinity: 8, Views: 8, Cart: 8, Purchases: 8, Sizes: 8, Impressions: 8, Exclusions: 8, Campaigns: 8, HalfLife: 3600}
	view := func(st *Store, id string, anon bool, p, at uint32) {
		t.Helper()
		if err := st.Edit(id, anon, func(pr *Profile) { pr.Last = at; pr.AddView(p, at, 8) }); err != nil {
			t.Fatal(err)
		}
	}
	read := func(st *Store, id string, anon bool) (Profile, bool) {
		var pr Profile
		ok := st.Read(id, anon, &pr, true)
		return pr, ok
	}
	cases := []struct {
		name      string
		held      []string // nil: every actor
		wantMoved bool     // LinkHeld returns a1's history
		wantView  bool     // C1 holds a1's view after the link
	}{
		{"every actor (Link)", nil, false, true},
		{"anonymous id and customer", []string{"a1", "C1"}, true, false},
		{"anonymous id alone", []string{"a1"}, true, false},
		{"customer alone", []string{"C1"}, false, false},
		{"neither", []string{"x"}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var held func(string) bool
			if tc.held != nil {
				held = func(id string) bool { return slices.Contains(tc.held, id) }
			}
			st := New(4, lim)
			holds := func(id string) bool { return held == nil || held(id) }
			// a0 is linked into a1 first: its id travels with a1's links.
			if _, err := st.LinkHeld("a0", "a1", true, held); err != nil {
				t.Fatal(err)
			}
			if holds("a1") {
				view(st, "a1", true, 7, 100)
			}
			moved, err := st.LinkHeld("a1", "C1", false, held)
			if err != nil {
				t.Fatal(err)
			}
			if (moved != nil) != tc.wantMoved {
				t.Fatalf("moved %v, want %v", moved != nil, tc.wantMoved)
			}
			if to, anon := st.Resolve("a0", true); to != "C1" || anon {
				t.Fatalf("a0 resolves to %q (anon %v), want C1", to, anon)
			}
			c1, ok := read(st, "C1", false)
			if !ok || !slices.Equal(c1.Links, []string{"a0", "a1"}) {
				t.Fatalf("C1: %v, links %v; want links [a0 a1] on every store", ok, c1.Links)
			}
			if got := len(c1.Views) == 1; got != tc.wantView {
				t.Fatalf("C1 has a1's view: %v, want %v", got, tc.wantView)
			}
			if a1, _ := read(st, "a1", true); len(a1.Views) != 0 || a1.MergedTo != "C1" {
				t.Fatalf("a1 after the link: %+v", a1)
			}
			if moved == nil {
				return
			}
			var pr Profile
			if err := pr.Decode(moved, Version, 100, 100); err != nil {
				t.Fatal(err)
			}
			// Without its links: every store added them at the link.
			if len(pr.Views) != 1 || pr.Views[0].P != 7 || len(pr.Links) != 0 {
				t.Fatalf("moved history: %+v", pr)
			}
			// A holder of C1 merges it when the record comes.
			if err := st.Merge("a1", "C1", false, &pr); err != nil {
				t.Fatal(err)
			}
			if c1, _ := read(st, "C1", false); len(c1.Views) != 1 || !slices.Equal(c1.Links, []string{"a0", "a1"}) {
				t.Fatalf("C1 after the merge: %+v", c1)
			}
		})
	}
}

// TestExpireHeld: a store drops the expired profiles it holds, names those
// others were linked into, and keeps the link-only entries of ids it does
// not hold until DropLinks.
func TestExpireHeld(t *testing.T) {
	st := New(2, Limits{Views: 8, HalfLife: 3600})
	held := func(id string) bool { return id != "b" }
	for _, id := range []string{"a", "b", "c"} {
		if err := st.Edit(id, true, func(pr *Profile) { pr.Last = 10 }); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range [][2]string{{"x", "a"}, {"y", "b"}} {
		if _, err := st.LinkHeld(l[0], l[1], true, held); err != nil {
			t.Fatal(err)
		}
	}
	n, linked := st.ExpireHeld(50, held)
	if n != 2 || !slices.Equal(linked, []string{"a"}) {
		t.Fatalf("expired %d, linked %v; want 2 (a, c), [a]", n, linked)
	}
	var pr Profile
	if !st.Read("b", true, &pr, true) || !st.Read("x", true, &pr, true) {
		t.Fatal("the entry of an id not held, or a link, went")
	}
	if st.DropLinks("x") {
		t.Fatal("DropLinks dropped a link")
	}
	if !st.DropLinks("b") || st.Read("b", true, &pr, true) {
		t.Fatal("DropLinks kept b")
	}
}
