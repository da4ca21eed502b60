//go:build !race

package index

import "testing"

// TestDictLookupsAllocateNothing: the picks path looks ids up and reads
// names on every request.
func TestDictLookupsAllocateNothing(t *testing.T) {
	d := NewDict()
	for _, s := range []string{"C1", "C2", "cookie-9f2"} {
		d.Intern(s)
	}
	b := []byte("C2")
	n := testing.AllocsPerRun(100, func() {
		if _, ok := d.Lookup("cookie-9f2"); !ok {
			t.Fatal("not found")
		}
		if _, ok := d.LookupBytes(b); !ok {
			t.Fatal("not found")
		}
		if d.Name(1) != "C2" {
			t.Fatal("wrong name")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}
