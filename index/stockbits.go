package index

// Derived stock state that answers the picks path's stock questions
// without a roaring search. It is rebuilt from the quantities like the
// bitmaps, so snapshots neither hold nor need it.
//
//   - Stock in any size at each location is also a flat bit set by product
//     (locStock.anyBits): one load per test, where a sparse roaring
//     container costs a binary search of up to 4096 entries. A store
//     screen rejects most of what it considers on this test. It costs
//     products/8 bytes per location (25 MB for 1M products at 200 stores).

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
