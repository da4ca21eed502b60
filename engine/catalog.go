package engine

import (
	"errors"
	"fmt"

	"github.com/omnipick/omnipick/index"
)

// ErrUnknownLocation is returned for a location id the engine has never
// seen (neither registered nor named by inventory). A client input error:
// no package prefix (see FieldError).
var ErrUnknownLocation = errors.New("unknown location")

// CatalogChunk is how many dense product ids a catalog walk should visit
// per AppendCatalog call: enough to amortise taking the read lock, few
// enough that a waiting catalog or stock write is held up for well under a
// millisecond.
const CatalogChunk = 1024

// CatalogItem is an active product with its live availability.
type CatalogItem struct {
	// Item is the catalog entry as it was when the chunk was read. Items
	// are immutable (an upsert installs a new one), so it stays valid
	// after AppendCatalog returns and the lock is released.
	Item *index.Item
	// InStock has bit i set when Item.Variants[i] has stock at one of the
	// asked locations.
	InStock uint64
}

// ResolveLocations appends to dst the dense ids of location ids, for
// AppendCatalog; none means "online". An unknown id is an error (a
// *FieldError on "location" that names it): unlike picks, where an unknown
// location simply holds no stock, a feed that silently lists everything as
// out of stock because of a typo would take a shop's ads down. Dense
// location ids never change, so the result stays valid for the engine's
// life.
func (e *Engine) ResolveLocations(dst []uint32, ids []string) ([]uint32, error) {
	if len(ids) == 0 {
		return append(dst, 0), nil // "online" is always location 0
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, id := range ids {
		d, ok := e.idx.LookupLocation(id)
		if !ok {
			return dst, fieldErr("location", fmt.Errorf("%w %q", ErrUnknownLocation, id))
		}
		dst = append(dst, d)
	}
	return dst, nil
}

// AppendCatalog appends to dst the active products whose dense ids lie in
// [from, from+n), in id order, each with the variants in stock at any of
// locs (dense ids from ResolveLocations), and returns the extended slice
// and the id to continue from. more is false once the walk has passed the
// last product.
//
// It holds the engine's read lock for this one chunk only, so a walk over
// a million products never starves writers; the price is that the walk is
// not a snapshot: a product changed during the walk shows as it was when
// its chunk was read, and products added during it may or may not appear.
// Nothing is called back under the lock: the caller does its slow work
// (encoding, network writes) after AppendCatalog returns.
func (e *Engine) AppendCatalog(dst []CatalogItem, from uint32, n int, locs []uint32) (out []CatalogItem, next uint32, more bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	total := uint32(e.idx.Products())
	end := total
	if n >= 0 && uint64(from)+uint64(n) < uint64(total) {
		end = from + uint32(n)
	}
	for p := from; p < end; p++ {
		it := e.idx.ItemAt(p)
		if it == nil || !it.Active {
			continue // known only by reference, or retired
		}
		dst = append(dst, CatalogItem{Item: it, InStock: e.idx.FitMask(it, locs, index.AnySize)})
	}
	return dst, max(end, from), end < total
}

// Product returns the catalog entry of a product id, retired ones
// included (Item.Active false); ok is false for an id the catalog does
// not hold. Items are immutable (an upsert installs a new one), so the
// result stays valid after the call.
func (e *Engine) Product(id string) (it *index.Item, ok bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	it, ok = e.idx.Item(id)
	return it, ok && it != nil
}
