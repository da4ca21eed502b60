package engine

import (
	"math/rand/v2"
	"testing"
)

// TestSlotSetMatchesMap: random puts and gets over calls (epochs) of
// different sizes, past several doublings and an epoch wrap, agree with a
// map cleared per call, and a slot keeps what was written to it.
func TestSlotSetMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var s slotSet
	epoch := uint32(0)
	for call := range 300 {
		epoch++
		if call == 200 {
			epoch = 1 // as after a wrap: stale slots must not match
		}
		s.reset(epoch)
		want := map[uint32]uint8{}
		n := rng.IntN(1 << uint(1+rng.IntN(14))) // up to 16k keys: several doublings
		for range n {
			p := uint32(rng.IntN(1 << 20))
			if rng.IntN(2) == 0 {
				p = uint32(rng.IntN(64)) // dense keys: long probe runs
			}
			sl, isNew := s.put(p, epoch)
			if _, had := want[p]; had == isNew {
				t.Fatalf("call %d: put(%d) isNew %v, map had it %v", call, p, isNew, had)
			}
			if sl.p != p {
				t.Fatalf("call %d: put(%d) returned slot of %d", call, p, sl.p)
			}
			sl.flags++
			want[p]++
		}
		for range 200 {
			p := uint32(rng.IntN(1 << 20))
			if rng.IntN(2) == 0 {
				p = uint32(rng.IntN(64))
			}
			sl := s.get(p, epoch)
			if f, ok := want[p]; ok != (sl != nil) || (ok && sl.flags != f) {
				t.Fatalf("call %d: get(%d) = %+v, map has %d %v", call, p, sl, f, ok)
			}
		}
		if s.n != len(want) {
			t.Fatalf("call %d: %d slots, map %d", call, s.n, len(want))
		}
	}
}
