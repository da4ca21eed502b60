package cluster

import (
	"testing"
	"time"
)

func TestStallWatch(t *testing.T) {
	t0 := time.Unix(1_000, 0)
	type tick struct {
		at            time.Duration // since t0
		applied, last uint64
		want          bool
	}
	cases := []struct {
		name  string
		ticks []tick
	}{
		{"caught up: never stalled", []tick{{0, 5, 5, false}, {10 * time.Second, 5, 5, false}}},
		{"progressing: never stalled", []tick{{0, 1, 9, false}, {2 * time.Second, 2, 9, false}, {4 * time.Second, 3, 9, false}, {6 * time.Second, 4, 9, false}}},
		{"behind and still for 3 s: stalled once per period", []tick{
			{0, 4, 9, false}, {2 * time.Second, 4, 9, false}, {3 * time.Second, 4, 9, true},
			{4 * time.Second, 4, 9, false}, {6 * time.Second, 4, 9, true}}},
		{"the end moves but nothing is applied", []tick{{0, 4, 5, false}, {1 * time.Second, 4, 7, false}, {3 * time.Second, 4, 9, true}}},
		{"caught up after a stall restarts the clock", []tick{
			{0, 4, 9, false}, {3 * time.Second, 4, 9, true}, {4 * time.Second, 9, 9, false},
			{5 * time.Second, 9, 12, false}, {7 * time.Second, 9, 12, false}, {8 * time.Second, 9, 12, true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w stallWatch
			for i, tk := range tc.ticks {
				if got := w.stalled(t0.Add(tk.at), tk.applied, tk.last, 3*time.Second); got != tk.want {
					t.Fatalf("tick %d (%v, applied %d, last %d): stalled %v, want %v", i, tk.at, tk.applied, tk.last, got, tk.want)
				}
			}
		})
	}
}
