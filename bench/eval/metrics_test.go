package eval

import (
	"math"
	"strings"
	"testing"
)

func set(ids ...string) map[string]struct{} {
	s := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		s[id] = struct{}{}
	}
	return s
}

func list(s string) []string { return strings.Fields(s) }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestHitsAndAveragePrecision(t *testing.T) {
	tests := []struct {
		name    string
		list    string
		targets []string
		k       int
		hits    int
		ap      float64
	}{
		{"hits at 1 and 3", "a x b", []string{"a", "b", "c"}, 3, 2, (1.0/1 + 2.0/3) / 3},
		{"one hit at 3", "x y a", []string{"a", "b", "c"}, 3, 1, (1.0 / 3) / 3},
		{"cut at k, denominator min(|T|, k)", "a b c x", []string{"a", "b", "c"}, 2, 2, (1.0 + 1.0) / 2},
		{"hit past k ignored", "x y a", []string{"a"}, 2, 0, 0},
		{"repeated item counts once", "x a a b", []string{"a", "b"}, 4, 2, (1.0/2 + 2.0/4) / 2},
		{"all hits", "a b", []string{"a", "b"}, 12, 2, 1},
		{"short list", "b", []string{"a", "b", "c", "d"}, 12, 1, 1.0 / 4},
		{"empty list", "", []string{"a"}, 12, 0, 0},
		{"no targets", "a b", nil, 12, 0, 0},
		{"k zero", "a b", []string{"a"}, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, tg := list(tc.list), set(tc.targets...)
			if got := Hits(l, tg, tc.k); got != tc.hits {
				t.Errorf("Hits = %d, want %d", got, tc.hits)
			}
			if got := AveragePrecision(l, tg, tc.k); !near(got, tc.ap) {
				t.Errorf("AveragePrecision = %v, want %v", got, tc.ap)
			}
		})
	}
}

func TestScorer(t *testing.T) {
	s := NewScorer(2, 10)
	s.Add(list("a b x"), set("b"), nil)            // 1 hit at 2 of 1 target: AP 1/2, recall 1
	s.Add(list("c a"), set("x", "y"), set("c"))    // no hit; c was bought
	s.Add(list("d"), set("d", "e", "f"), set("z")) // 1 hit at 1 of 3 targets: AP 1/min(3,2), recall 1/3
	want := Metrics{
		Customers: 3,
		HitRate:   2.0 / 3,
		MAP:       (0.5 + 0 + 0.5) / 3,
		Recall:    (1 + 0 + 1.0/3) / 3,
		Coverage:  4.0 / 10, // a b c d
		MeanLen:   5.0 / 3,
		Rebuy:     1.0 / 5,
	}
	got := s.Metrics()
	if got.Customers != want.Customers || !near(got.HitRate, want.HitRate) || !near(got.MAP, want.MAP) ||
		!near(got.Recall, want.Recall) || !near(got.Coverage, want.Coverage) ||
		!near(got.MeanLen, want.MeanLen) || !near(got.Rebuy, want.Rebuy) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got := NewScorer(12, 0).Metrics(); got != (Metrics{}) {
		t.Errorf("empty scorer: got %+v, want zero metrics", got)
	}
}
