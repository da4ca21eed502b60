package engine

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
func sampleProfile(n int) profile {
	u := uint32(n)
	pr := profile{last: 1000 + u}
	for i := range n {
		v := uint32(i)
		pr.aff = append(pr.aff, affEntry{facet: 3*v + 1, w: float32(i) + 0.5})
		pr.purchased = append(pr.purchased, stamp{p: 2 * v, t: 100 + v})
		pr.views = append(pr.views, stamp{p: v + 7, t: 200 + v})
		pr.cart = append(pr.cart, cartEntry{sku: v, p: v + 1, t: 300 + v})
		pr.shown = append(pr.shown, stamp{p: v, t: 400 + v})
		pr.excl = append(pr.excl, stamp{p: v + 3, t: 500 + v})
		pr.links = append(pr.links, fmt.Sprint("cookie-", i))
		if i < 3 {
			pr.sizes = append(pr.sizes, sizeEntry{group: v, size: v + 1, t: 600 + v, purchase: i%2 == 0})
			pr.camps = append(pr.camps, campaign{name: fmt.Sprint("camp-", i), t: 700 + v, items: []uint32{v, v + 1, 1 << 20}})
		}
	}
	return pr
}

func TestProfileDecode(t *testing.T) {
	merged := profile{mergedTo: "device-7", mergedAnon: true}
	for _, tc := range []struct {
		name  string
		pr    profile
		dirty profile // what the scratch held before
	}{
		{"empty into empty", profile{}, profile{}},
		{"empty into used", profile{}, sampleProfile(9)},
		{"full into empty", sampleProfile(5), profile{}},
		{"small into large", sampleProfile(2), sampleProfile(40)},
		{"large into small", sampleProfile(40), sampleProfile(2)},
		{"merged", merged, sampleProfile(3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.pr.appendSnapshot(nil)
			for _, strs := range []bool{true, false} {
				got := tc.dirty
				var r binfmt.Reader
				r.Reset(want)
				if err := got.decode(&r, engineSnapshotVersion, noLimit, noLimit, strs); err != nil {
					t.Fatal(err)
				}
				if !strs {
					// Left out: compare with them put back.
					if len(got.camps) != 0 {
						t.Fatalf("strs unset: %d campaigns decoded", len(got.camps))
					}
					got.links, got.mergedTo, got.camps = tc.pr.links, tc.pr.mergedTo, tc.pr.camps
				}
				if b := got.appendSnapshot(nil); !bytes.Equal(b, want) {
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
	var scratch profile
	for slot, w := range want {
		s.readLocked(uint32(slot), &scratch, true)
		if b := scratch.appendSnapshot(nil); !bytes.Equal(b, w) {
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
				want[i] = (&profile{}).appendSnapshot(nil)
			}
			checkShard(t, s, want)
			for _, n := range tc.sizes {
				for i := range want {
					pr := s.editLocked(uint32(i))
					if n < 0 {
						pr.reset()
						pr.mergedTo, pr.mergedAnon = fmt.Sprint("C", i%3), i%2 == 0
					} else {
						*pr = sampleProfile(n + i%3)
					}
					s.writeLocked(uint32(i), pr)
					want[i] = pr.appendSnapshot(nil)
					if to, anon := s.mergedLocked(uint32(i)); to != pr.mergedTo || anon != pr.mergedAnon {
						t.Fatalf("merged to %q (anon %v), want %q (%v)", to, anon, pr.mergedTo, pr.mergedAnon)
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
			var scratch profile
			b.SetBytes(int64(s.refs[slot].n))
			b.ReportAllocs()
			for b.Loop() {
				s.readLocked(slot, &scratch, false)
			}
		})
	}
}
