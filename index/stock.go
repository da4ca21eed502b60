package index

import (
	"errors"

	"github.com/RoaringBitmap/roaring/v2"
)

// ErrNegativeQuantity rejects a stock level below zero. Like the catalog
// input errors, its text is for the client and carries no prefix.
var ErrNegativeQuantity = errors.New("negative quantity")

// MaxQuantity bounds a stock level; larger values are almost certainly a
// unit mix-up upstream.
const MaxQuantity = 1 << 30

// SetStock sets the absolute quantity of a SKU at a location, registering
// the location if it is new. Bitmaps change only when the quantity crosses
// zero; the cost is O(variants of the SKU's product).
func (x *Index) SetStock(sku, location string, qty int64) error {
	if qty < 0 {
		return ErrNegativeQuantity
	}
	if qty > MaxQuantity {
		qty = MaxQuantity
	}
	sd, ok := x.skus.Lookup(sku)
	if !ok {
		return ErrUnknownSKU
	}
	x.setQty(x.Location(location), sd, qty)
	return nil
}

// setQty sets the quantity of dense SKU sd at dense location l.
func (x *Index) setQty(l, sd uint32, qty int64) {
	ls := &x.locStock[l]
	old := ls.qty[sd]
	if qty == 0 {
		delete(ls.qty, sd)
	} else {
		ls.qty[sd] = int32(qty)
	}
	if (old > 0) == (qty > 0) {
		return
	}
	if l == 0 {
		setBit(&x.onlineSKUs, sd, qty > 0)
	}
	si := x.skuInfo[sd]
	it := x.items[si.product]
	if it == nil || !x.ownsSKU(si.product, sd) {
		return // a SKU dropped from its product: kept, but it shows nowhere
	}
	x.refreshStockBits(l, it, it.Variants[si.variant].SizeKey)
}

// Quantity returns the stock of a dense SKU id at a dense location id.
func (x *Index) Quantity(sku, loc uint32) int32 {
	if int(loc) >= len(x.locStock) {
		return 0
	}
	return x.locStock[loc].qty[sku]
}

// refreshStockBits recomputes the bits of product it at location l for size
// key k and for "any size".
func (x *Index) refreshStockBits(l uint32, it *Item, k uint32) {
	ls := &x.locStock[l]
	inSize, inAny := false, false
	for _, v := range it.Variants {
		if ls.qty[v.Dense] > 0 {
			inAny = true
			if v.SizeKey == k {
				inSize = true
			}
		}
	}
	b := ls.sized(k)
	if inSize {
		if b == nil {
			for int(k) >= len(ls.bySize) {
				ls.bySize = append(ls.bySize, nil)
			}
			b = roaring.New()
			ls.bySize[k] = b
		}
		b.Add(it.Dense)
	} else if b != nil {
		b.Remove(it.Dense)
	}
	if inAny {
		ls.any.Add(it.Dense)
	} else {
		ls.any.Remove(it.Dense)
	}
	setBit(&ls.anyBits, it.Dense, inAny)
	if l == 0 {
		x.setOnline(it.Dense, k, inSize)
	}
}

// InStock reports whether product p is in stock at location l in size key
// size, where AnySize means any size will do. OneSize products are found
// under their one size and under AnySize. It answers from the flat bit
// sets and hot records of stockbits.go where they can tell, else from the
// bitmaps (inStockBitmaps), which say the same.
func (x *Index) InStock(p, l, size uint32) bool {
	if int(l) >= len(x.locStock) {
		return false
	}
	if size == AnySize {
		return hasBit(x.locStock[l].anyBits, p)
	}
	if l == 0 {
		if in, ok := x.inStockOnline(p, size); ok {
			return in
		}
	}
	b := x.locStock[l].sized(size)
	return b != nil && b.Contains(p)
}

// inStockBitmaps is InStock answered from the roaring bitmaps alone: the
// straightforward route, for tests of the fast one.
func (x *Index) inStockBitmaps(p, l, size uint32) bool {
	if int(l) >= len(x.locStock) {
		return false
	}
	ls := &x.locStock[l]
	if size == AnySize {
		return ls.any.Contains(p)
	}
	b := ls.sized(size)
	return b != nil && b.Contains(p)
}

// StockBitmap returns the products in stock at location l in size key size
// (AnySize: in any size), or nil. The bitmap belongs to the index.
func (x *Index) StockBitmap(l, size uint32) *roaring.Bitmap {
	if int(l) >= len(x.locStock) {
		return nil
	}
	if size == AnySize {
		return x.locStock[l].any
	}
	return x.locStock[l].sized(size)
}

// sized returns the bitmap of size key k, or nil.
func (ls *locStock) sized(k uint32) *roaring.Bitmap {
	if int(k) >= len(ls.bySize) {
		return nil
	}
	return ls.bySize[k]
}

// FitMask returns a mask with bit i set when it.Variants[i] is in stock at
// one of locs and fits: its size key is size, or it is one-size, or size is
// AnySize.
func (x *Index) FitMask(it *Item, locs []uint32, size uint32) uint64 {
	var m uint64
	for i, v := range it.Variants {
		if size != AnySize && v.SizeKey != size && v.SizeKey != OneSize {
			continue
		}
		for _, l := range locs {
			if x.skuInStock(v.Dense, l) {
				m |= 1 << uint(i)
				break
			}
		}
	}
	return m
}

// skuInStock reports whether SKU sd has stock at location l: online from
// a flat bit set, elsewhere from the quantities.
func (x *Index) skuInStock(sd, l uint32) bool {
	if l == 0 {
		return hasBit(x.onlineSKUs, sd)
	}
	return int(l) < len(x.locStock) && x.locStock[l].qty[sd] > 0
}
