package index

import "strings"

// Derived stock state that answers the picks path's two stock questions
// without a roaring search or a map lookup. It is rebuilt from the
// quantities like the bitmaps, so snapshots neither hold nor need it.
//
//   - Online stock per size sits in each product's hot record (Hot.online):
//     bit o is set when the product has a variant in stock online whose
//     size key has ordinal o within its size group (OneSize is ordinal 0).
//     The common query, online in the customer's size, is then one AND on
//     the cache line ranking loads anyway.
//   - Stock in any size at each location is also a flat bit set by product
//     (locStock.anyBits): one load per test, where a sparse roaring
//     container costs a binary search of up to 4096 entries. A store
//     screen rejects most of what it considers on this test. It costs
//     products/8 bytes per location (25 MB for 1M products at 200 stores).
//   - Online stock per SKU is a flat bit set by SKU (Index.onlineSKUs), so
//     FitMask's online test needs no map lookup.

// noOrdinal marks a size key beyond a group's first maxOrdinal sizes: it
// has no bit in the online masks, and InStock asks the bitmaps for it.
const (
	maxOrdinal = 63
	noOrdinal  = 0xff
)

// addSizeKey records size key k (the next one) of size group g: its
// group and its ordinal within the group.
func (x *Index) addSizeKey(k, g uint32) {
	for int(g) >= len(x.groupSizes) {
		x.groupSizes = append(x.groupSizes, 0)
	}
	ord := uint8(noOrdinal)
	if k != OneSize && x.groupSizes[g] < maxOrdinal {
		x.groupSizes[g]++
		ord = x.groupSizes[g]
	} else if k == OneSize {
		ord = 0
	}
	for int(k) >= len(x.sizeOrd) {
		x.sizeOrd = append(x.sizeOrd, noOrdinal)
		x.sizeGroup = append(x.sizeGroup, 0)
	}
	x.sizeOrd[k], x.sizeGroup[k] = ord, g
}

// indexSizeKeys gives the size keys of restored dictionaries their groups
// and ordinals, in dense order as they were first given.
func (x *Index) indexSizeKeys() {
	x.sizeOrd, x.sizeGroup, x.groupSizes = x.sizeOrd[:0], x.sizeGroup[:0], x.groupSizes[:0]
	x.addSizeKey(OneSize, 0)
	for k := 1; k < x.sizeKeys.Len(); k++ {
		name := x.sizeKeys.Name(uint32(k))
		g, ok := x.groups.Lookup(name[:max(0, strings.IndexByte(name, 0))])
		if !ok { // cannot happen for a snapshot this package wrote
			g = 0
		}
		x.addSizeKey(uint32(k), g)
		if !ok {
			x.sizeOrd[k] = noOrdinal
		}
	}
}

// onlineBit returns the bit of size key k in a product's online mask.
func (x *Index) onlineBit(k uint32) (uint64, bool) {
	if int(k) >= len(x.sizeOrd) || x.sizeOrd[k] > maxOrdinal {
		return 0, false
	}
	return 1 << x.sizeOrd[k], true
}

// setOnline sets or clears size key k's bit in product p's online mask.
func (x *Index) setOnline(p, k uint32, in bool) {
	b, ok := x.onlineBit(k)
	if !ok || int(p) >= len(x.hot) {
		return
	}
	if in {
		x.hot[p].online |= b
	} else {
		x.hot[p].online &^= b
	}
}

// inStockOnline answers InStock for location 0 and a size key (not
// AnySize) from product p's hot record; ok is false when it cannot tell.
func (x *Index) inStockOnline(p, size uint32) (in, ok bool) {
	if int(p) >= len(x.hot) {
		return false, true
	}
	h := &x.hot[p]
	// Exact for every size with an ordinal, whatever other sizes the
	// product has: a size without one is asked of the bitmaps.
	b, ok := x.onlineBit(size)
	if !ok {
		return false, false
	}
	// A product's variants have size keys of its own group or OneSize.
	return h.online&b != 0 && (size == OneSize || x.sizeGroup[size] == h.Group), true
}

// setBit sets or clears bit i of bits, growing it to set.
func setBit(bits *[]uint64, i uint32, on bool) {
	w := int(i / 64)
	if w >= len(*bits) {
		if !on {
			return
		}
		*bits = append(*bits, make([]uint64, w+1-len(*bits)+len(*bits)/4)...)
	}
	if on {
		(*bits)[w] |= 1 << (i % 64)
	} else {
		(*bits)[w] &^= 1 << (i % 64)
	}
}

func hasBit(bits []uint64, i uint32) bool {
	w := int(i / 64)
	return w < len(bits) && bits[w]&(1<<(i%64)) != 0
}
