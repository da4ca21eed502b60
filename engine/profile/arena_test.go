package profile

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"testing"

	"github.com/omnipick/omnipick/index"
	"github.com/omnipick/omnipick/internal/binfmt"
)

// sampleProfile returns a profile with every field set, sized by n.
func sampleProfile(n int) Profile {
	u := uint32(n)
	pr := Profile{Last: 1000 + u}
	for i := range n {
		v := uint32(i)
		pr.Aff = append(pr.Aff, AffEntry{Facet: 3*v + 1, W: float32(i) + 0.5})
		pr.Purchased = append(pr.Purchased, Stamp{P: 2 * v, T: 100 + v})
		pr.Views = append(pr.Views, Stamp{P: v + 7, T: 200 + v})
		pr.Cart = append(pr.Cart, CartEntry{SKU: v, P: v + 1, T: 300 + v})
		pr.Shown = append(pr.Shown, Stamp{P: v, T: 400 + v})
		pr.Excl = append(pr.Excl, Stamp{P: v + 3, T: 500 + v})
		pr.Links = append(pr.Links, fmt.Sprint("cookie-", i))
		if i < 3 {
			pr.Sizes = append(pr.Sizes, SizeEntry{Group: v, Size: v + 1, T: 600 + v, Purchase: i%2 == 0})
			pr.Camps = append(pr.Camps, Campaign{Name: fmt.Sprint("camp-", i), T: 700 + v, Items: []uint32{v, v + 1, 1 << 20}})
		}
	}
	return pr
}

func TestProfileDecode(t *testing.T) {
	merged := Profile{MergedTo: "device-7", MergedAnon: true}
	for _, tc := range []struct {
		name  string
		pr    Profile
		dirty Profile // what the scratch held before
	}{
		{"empty into empty", Profile{}, Profile{}},
		{"empty into used", Profile{}, sampleProfile(9)},
		{"full into empty", sampleProfile(5), Profile{}},
		{"small into large", sampleProfile(2), sampleProfile(40)},
		{"large into small", sampleProfile(40), sampleProfile(2)},
		{"merged", merged, sampleProfile(3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.pr.appendEncoding(nil)
			for _, strs := range []bool{true, false} {
				got := tc.dirty
				var r binfmt.Reader
				r.Reset(want)
				if err := got.decode(&r, Version, noLimit, noLimit, strs); err != nil {
					t.Fatal(err)
				}
				if !strs {
					// Left out: compare with them put back.
					if len(got.Camps) != 0 {
						t.Fatalf("strs unset: %d campaigns decoded", len(got.Camps))
					}
					got.Links, got.MergedTo, got.Camps = tc.pr.Links, tc.pr.MergedTo, tc.pr.Camps
				}
				if b := got.appendEncoding(nil); !bytes.Equal(b, want) {
					t.Fatalf("strs=%v: decoded profile encodes as\n%x\nwant\n%x", strs, b, want)
				}
			}
		})
	}
}

// testShard returns a shard as New makes it, compacting at minGarbage.
func testShard(minGarbage int) *shard {
	return &shard{customers: index.NewDict(), anons: index.NewDict(), targets: index.NewDict(), minGarbage: minGarbage}
}

// checkShard fails unless every slot reads back as want's encoding and the
// shard's accounting adds up.
func checkShard(t *testing.T, s *shard, want [][]byte) {
	t.Helper()
	encoded := 0
	var scratch Profile
	for slot, w := range want {
		s.readLocked(uint32(slot), &scratch, true)
		if b := scratch.appendEncoding(nil); !bytes.Equal(b, w) {
			t.Fatalf("slot %d reads back as %x, want %x", slot, b, w)
		}
		if b := s.appendRecordOf(nil, uint32(slot)); !bytes.Equal(b, w) {
			t.Fatalf("slot %d record is %x, want %x", slot, b, w)
		}
		encoded += int(s.refs[slot].n)
	}
	if encoded != s.encoded {
		t.Fatalf("encoded = %d, profiles hold %d", s.encoded, encoded)
	}
	// Records lie inside the arena, each in its own room.
	refs := slices.Clone(s.refs)
	slices.SortFunc(refs, func(a, b profRef) int { return cmp.Compare(a.off, b.off) })
	end := 0
	for _, r := range refs {
		if r.room == 0 {
			continue
		}
		off := int(r.off) * recAlign
		if r.n > r.room || off < end || off+int(r.room) > len(s.data) {
			t.Fatalf("record at %d (%d bytes in %d) overlaps %d or passes the arena's %d", off, r.n, r.room, end, len(s.data))
		}
		end = off + int(r.room)
	}
}

func TestShardArena(t *testing.T) {
	for _, tc := range []struct {
		name       string
		minGarbage int
		profiles   int
		sizes      []int // each round rewrites every profile at the next size
		compacts   bool
	}{
		{"grow in place and move", 1 << 30, 20, []int{0, 1, 2, 3, 5, 8, 13}, false},
		{"shrink in place", 1 << 30, 20, []int{30, 10, 1, 0}, false},
		{"shrink and compact", 0, 20, []int{30, 10, 1, 0}, true},
		{"compacts", 0, 50, []int{1, 4, 16, 64, 16, 64, 2}, true},
		{"merged and back", 0, 10, []int{-1, 3, -1, 0}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testShard(tc.minGarbage)
			want := make([][]byte, tc.profiles)
			for i := range want {
				slot, _ := s.slotLocked(fmt.Sprint("C", i), uint64(i), false, true)
				if int(slot) != i {
					t.Fatalf("slot %d for profile %d", slot, i)
				}
				want[i] = (&Profile{}).appendEncoding(nil)
			}
			checkShard(t, s, want)
			for _, n := range tc.sizes {
				for i := range want {
					pr := s.editLocked(uint32(i))
					if n < 0 {
						pr.reset()
						pr.MergedTo, pr.MergedAnon = fmt.Sprint("C", i%3), i%2 == 0
					} else {
						*pr = sampleProfile(n + i%3)
					}
					s.writeLocked(uint32(i), pr)
					want[i] = pr.appendEncoding(nil)
					if to, anon := s.mergedLocked(uint32(i)); to != pr.MergedTo || anon != pr.MergedAnon {
						t.Fatalf("merged to %q (anon %v), want %q (%v)", to, anon, pr.MergedTo, pr.MergedAnon)
					}
				}
				checkShard(t, s, want)
			}
			if compacted := s.compactions > 0; compacted != tc.compacts {
				t.Fatalf("%d compactions, want some: %v", s.compactions, tc.compacts)
			}
		})
	}
}

// BenchmarkProfileRead is what the arena adds to a picks call: decoding a
// profile (without strings) into the picker's scratch. Profile sizes are
// entries per list: 20 is a typical customer of the bench world, 200 a
// heavy one.
func BenchmarkProfileRead(b *testing.B) {
	for _, n := range []int{20, 200} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := testShard(defaultMinGarbage)
			slot, _ := s.slotLocked("C1", 1, false, true)
			pr := sampleProfile(n)
			s.writeLocked(slot, &pr)
			var scratch Profile
			b.SetBytes(int64(s.refs[slot].n))
			b.ReportAllocs()
			for b.Loop() {
				s.readLocked(slot, &scratch, false)
			}
		})
	}
}

// TestProfileReadsAllocateNothing: once a scratch profile has grown, reading
// a profile into it allocates nothing, with its strings (equal to those it
// holds) or without.
func TestProfileReadsAllocateNothing(t *testing.T) {
	s := testShard(defaultMinGarbage)
	for i := range 2 {
		slot, _ := s.slotLocked(fmt.Sprint("C", i), uint64(i), false, true)
		pr := sampleProfile(10 * (i + 1))
		s.writeLocked(slot, &pr)
	}
	var scratch Profile
	for _, strs := range []bool{false, true} {
		s.readLocked(1, &scratch, strs) // grow
		if n := testing.AllocsPerRun(100, func() {
			s.readLocked(0, &scratch, strs)
			s.readLocked(1, &scratch, strs)
		}); n != 0 && !strs {
			t.Fatalf("strs=%v: %v allocations per read", strs, n)
		}
		// With strings, the smaller profile's differ from the larger's, so
		// only reading one profile again and again allocates nothing.
		if n := testing.AllocsPerRun(100, func() { s.readLocked(1, &scratch, strs) }); n != 0 {
			t.Fatalf("strs=%v: %v allocations per read", strs, n)
		}
	}
}
