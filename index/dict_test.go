package index

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

func TestDictNames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		names []string
	}{
		{"empty first", []string{"", "a", "bc"}},
		{"empty between", []string{"a", "", "", "bc"}},
		{"duplicates", []string{"x", "y", "x", "", ""}},
		{"long", []string{string(make([]byte, 1<<16)), "tail"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDict()
			want := map[string]uint32{}
			var order []string
			for _, s := range tc.names {
				id, isNew := d.Intern(s)
				if w, seen := want[s]; seen {
					if isNew || id != w {
						t.Fatalf("Intern(%q) again = %d, %v; want %d, false", s, id, isNew, w)
					}
					continue
				}
				if !isNew || id != uint32(len(order)) {
					t.Fatalf("Intern(%q) = %d, %v; want %d, true", s, id, isNew, len(order))
				}
				want[s] = id
				order = append(order, s)
			}
			if d.Len() != len(order) {
				t.Fatalf("Len = %d, want %d", d.Len(), len(order))
			}
			for id, s := range d.All() {
				if s != order[id] || d.Name(id) != s {
					t.Errorf("name %d = %q, want %q", id, s, order[id])
				}
				if got, ok := d.Lookup(s); !ok || got != id {
					t.Errorf("Lookup(%q) = %d, %v", s, got, ok)
				}
			}
		})
	}
}

// TestDictNamesOutliveGrowth checks that a string returned by Name keeps
// its value while the arena grows (and moves) under it, and that Intern
// copies its argument rather than keeping it.
func TestDictNamesOutliveGrowth(t *testing.T) {
	d := NewDict()
	buf := []byte("first")
	d.Intern(unsafe.String(&buf[0], len(buf)))
	copy(buf, "XXXXX") // the caller reuses its buffer
	first := d.Name(0)
	for i := range 100000 {
		d.Intern(fmt.Sprint("id-", i))
	}
	if first != "first" || d.Name(0) != "first" {
		t.Fatalf("name 0 became %q (returned earlier: %q)", d.Name(0), first)
	}
	if id, ok := d.Lookup("first"); !ok || id != 0 {
		t.Fatalf("Lookup(first) = %d, %v", id, ok)
	}
}

// TestDictInternHashed: InternHashed is Intern with the hash given.
func TestDictInternHashed(t *testing.T) {
	d := NewDict()
	for i := range 100 {
		s := fmt.Sprint("id-", i)
		if id, isNew := d.InternHashed(xxhash.Sum64String(s), s); !isNew || id != uint32(i) {
			t.Fatalf("%s: id %d new %v, want %d", s, id, isNew, i)
		}
	}
	if id, isNew := d.Intern("id-7"); isNew || id != 7 {
		t.Fatalf("id-7 again: %d new %v", id, isNew)
	}
	if id, ok := d.Lookup("id-99"); !ok || id != 99 {
		t.Fatalf("id-99: %d %v", id, ok)
	}
}
