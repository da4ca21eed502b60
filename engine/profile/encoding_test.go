package profile

import (
	"math"
	"reflect"
	"testing"

	"github.com/omnipick/omnipick/internal/binfmt"
)

// TestProfileTimes: version 3 stores times as differences (from last, or
// for views and impressions from the entry before), and every uint32 time
// comes back exactly, before or after last, in order or not.
func TestProfileTimes(t *testing.T) {
	const now = 1_780_000_000
	for _, tc := range []struct {
		name string
		last uint32
		ts   []uint32
	}{
		{"recent", now, []uint32{now - 86400, now - 60, now - 59, now}},
		{"out of order", now, []uint32{now, now - 5_000_000, now - 1, now - 4_000_000}},
		{"after last", now, []uint32{now + 1, now + 30*86400, math.MaxUint32}},
		{"last zero", 0, []uint32{0, math.MaxUint32, 1, math.MaxUint32 - 1}},
		{"last max", math.MaxUint32, []uint32{0, math.MaxUint32, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := Profile{Last: tc.last, Camps: []Campaign{}}
			for i, ts := range tc.ts {
				p := uint32(i)
				pr.Sizes = append(pr.Sizes, SizeEntry{Group: p, Size: 1, T: ts})
				pr.Purchased = append(pr.Purchased, Stamp{P: p, T: ts})
				pr.Views = append(pr.Views, Stamp{P: p, T: ts})
				pr.Cart = append(pr.Cart, CartEntry{SKU: p, P: p, T: ts})
				pr.Shown = append(pr.Shown, Stamp{P: p, T: ts})
				pr.Excl = append(pr.Excl, Stamp{P: p, T: ts})
				pr.Camps = append(pr.Camps, Campaign{Name: "c", T: ts, Items: []uint32{p}})
			}
			var got Profile
			r := binfmt.NewReader(pr.appendEncoding(nil))
			if err := got.decode(r, Version, noLimit, noLimit, true); err != nil {
				t.Fatal(err)
			}
			if r.Len() != 0 {
				t.Fatalf("%d bytes left", r.Len())
			}
			if !reflect.DeepEqual(got, pr) {
				t.Fatalf("decoded\n%+v\nwant\n%+v", got, pr)
			}
		})
	}
}

// TestProfileTimeOutOfRange: a difference that puts a time outside uint32
// is an error, not a wrapped time.
func TestProfileTimeOutOfRange(t *testing.T) {
	for _, d := range []int64{1, -(1 << 32)} { // last 0: 0-1 < 0; 0+2^32 > max
		b := binfmt.AppendUvarint(nil, 0) // last
		b = binfmt.AppendUvarint(b, 0)    // no affinity
		b = binfmt.AppendUvarint(b, 1)    // one size
		b = binfmt.AppendUvarint(binfmt.AppendUvarint(b, 0), 0)
		b = append(binfmt.AppendVarint(b, d), 0)
		var pr Profile
		if err := pr.decode(binfmt.NewReader(b), Version, noLimit, noLimit, false); err == nil {
			t.Fatalf("difference %d from last 0 decoded as %d", d, pr.Sizes[0].T)
		}
	}
}

// TestRelativeTimesAreSmaller: a profile of a customer's recent history
// takes fewer bytes than with absolute times (five bytes each).
func TestRelativeTimesAreSmaller(t *testing.T) {
	const now = 1_780_000_000
	pr := Profile{Last: now}
	for i := range 40 {
		p := uint32(1000 + 37*i)
		pr.Views = append(pr.Views, Stamp{P: p, T: now - 3*86400 + uint32(90*i)})
		pr.Shown = append(pr.Shown, Stamp{P: p, T: now - 86400 + uint32(30*i)})
	}
	pr.Purchased = []Stamp{{P: 5, T: now - 20*86400}, {P: 9, T: now - 2*86400}}
	b := pr.appendEncoding(nil)
	times := len(pr.Views) + len(pr.Shown) + len(pr.Purchased)
	absolute := len(b)
	for _, l := range [][]Stamp{pr.Views, pr.Shown, pr.Purchased} {
		for _, s := range l {
			d := int64(pr.Last) - int64(s.T)
			absolute += 5 - len(binfmt.AppendVarint(nil, d))
		}
	}
	if len(b)*4 > absolute*3 {
		t.Fatalf("%d bytes with %d relative times, %d with absolute ones: want a quarter less at least", len(b), times, absolute)
	}
	t.Logf("%d bytes, %d with absolute times", len(b), absolute)
}
