package load

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/omnipick/omnipick/bench/world"
)

func TestParseMix(t *testing.T) {
	f := func(in string, want Mix, wantErr string) {
		t.Helper()
		got, err := ParseMix(in)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("ParseMix(%q): error %v, want one containing %q", in, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Errorf("ParseMix(%q): %v", in, err)
			return
		}
		for k := range got {
			if d := got[k] - want[k]; d > 1e-9 || d < -1e-9 {
				t.Errorf("ParseMix(%q) = %v, want %v", in, got, want)
				return
			}
		}
	}
	f("picks=0.9,events=0.1", Mix{Ads: 0.25, Email: 0.15, Screen: 0.15, ScreenKnown: 0.15, Web: 0.2, Events: 0.1}, "")
	f("picks=1", Mix{Ads: 0.25 / 0.9, Email: 0.15 / 0.9, Screen: 0.15 / 0.9, ScreenKnown: 0.15 / 0.9, Web: 0.2 / 0.9}, "")
	f(" ads=3 , events=1 ", Mix{Ads: 3, Events: 1}, "")
	f("screen_known=1", Mix{ScreenKnown: 1}, "")
	f("picks=1,ads=1", Mix{}, "one or the other")
	f("ads", Mix{}, "kind=weight")
	f("bogus=1", Mix{}, "unknown kind")
	f("ads=-1", Mix{}, ">= 0")
	f("ads=NaN", Mix{}, ">= 0")
	f("ads=0", Mix{}, "no positive weight")
	f("", Mix{}, "no positive weight")
	if s := DefaultMix().String(); s != "ads=0.25,email=0.15,screen=0.15,screen_known=0.15,web=0.2,events=0.1" {
		t.Errorf("DefaultMix().String() = %q", s)
	}
}

// TestDemoWorldIDs checks that -world demo draws from exactly the ids of
// internal/demo, which `make run` serves.
func TestDemoWorldIDs(t *testing.T) {
	w, err := WorldOf(world.Demo())
	if err != nil {
		t.Fatal(err)
	}
	ids := func(file, field string) []string {
		t.Helper()
		fh, err := os.Open(filepath.Join("..", "..", "internal", "demo", file))
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		var out []string
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			if s, ok := m[field].(string); ok {
				out = append(out, s)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	var all []string
	for i := 1; i <= w.Customers; i++ {
		all = append(all, w.CustomerID(i))
	}
	for _, c := range ids("events.ndjson", "customer") {
		if _, ok := slices.BinarySearch(all, c); !ok {
			t.Fatalf("demo customer %q is outside the load world (%s)", c, describeWorld(w))
		}
	}
	all = all[:0]
	for i := 1; i <= w.Products; i++ {
		all = append(all, w.ProductID(i))
	}
	if got := ids("products.ndjson", "id"); !slices.Equal(got, all) {
		t.Fatalf("demo products %d (%s..), load world %s", len(got), got[0], describeWorld(w))
	}
	stores := ids("locations.ndjson", "id")
	stores = slices.DeleteFunc(stores, func(s string) bool { return s == "online" })
	if got := slices.Sorted(slices.Values(w.Stores)); !slices.Equal(got, stores) {
		t.Fatalf("stores %v, demo has %v", got, stores)
	}

	b, err := WorldOf(world.Bench())
	if err != nil {
		t.Fatal(err)
	}
	if b.CustomerID(1) != "C00000001" || b.ProductID(1_000_000) != "P1000000" || len(b.Stores) != 199 || b.Stores[0] != "store-berlin-1" {
		t.Fatalf("bench world: %s, first store %q", describeWorld(b), b.Stores[0])
	}
}

// TestPopularity checks that draws stay in range, reach every id of a
// small space, and are skewed: a few ids take a large share.
func TestPopularity(t *testing.T) {
	for _, s := range []float64{0, 0.8, 1, 1.5} {
		for _, n := range []int{1, 7, 300, 10_000} {
			p := newPopularity(n, s, 42)
			counts := make([]int, n+1)
			const draws = 200_000
			for i := range draws {
				x := p.number((float64(i) + 0.5) / draws)
				if x < 1 || x > uint64(n) {
					t.Fatalf("s=%v n=%d: draw %d out of range", s, n, x)
				}
				counts[x]++
			}
			if n <= 300 && slices.Contains(counts[1:], 0) {
				t.Errorf("s=%v n=%d: some ids are never drawn", s, n)
			}
			slices.Sort(counts)
			top := counts[len(counts)-1]
			switch {
			case s == 0 && n > 1 && float64(top) > 1.2*draws/float64(n):
				t.Errorf("s=0 n=%d: not uniform: top id drawn %d times of %d", n, top, draws)
			case s >= 0.8 && n >= 300 && float64(top) < 10*draws/float64(n):
				t.Errorf("s=%v n=%d: not skewed: top id drawn %d times of %d", s, n, top, draws)
			}
		}
	}
}
