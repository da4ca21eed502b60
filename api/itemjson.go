package api

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/omnipick/omnipick/index"
	"github.com/omnipick/omnipick/internal/jsonenc"
)

// itemJSON keeps each catalog item's JSON fields, encoded once, for picks
// answers: the title, URLs, category and brand of an item are the same in
// every answer that shows it, and escaping them cost more than the rest of
// a pick (BenchmarkEncodePicks). An item is encoded on its first pick
// after it was created or changed: a catalog write makes a new
// *index.Item, so a fragment made from another is stale and is made again.
// Safe for concurrent use; a nil *itemJSON encodes every time.
type itemJSON struct {
	slots atomic.Pointer[[]atomic.Pointer[itemFragment]] // by dense product id
	grow  sync.Mutex                                     // one growth of slots at a time
	bytes atomic.Int64                                   // fragment bytes held
	max   int64                                          // past it, items are encoded every time
}

// maxItemJSONBytes bounds the fragments kept: about 250 bytes an item, so
// a few hundred thousand items, the picked part of a large catalog.
const maxItemJSONBytes = 96 << 20

// itemFragment is it's fields from `{"product":` to the image (b[:short])
// and then the category and brand (b: what full picks add).
type itemFragment struct {
	it    *index.Item
	b     []byte
	short int
}

// appendItem appends the fields of it that a pick shows, as
// appendItemFields does, from its fragment.
func (c *itemJSON) appendItem(dst []byte, it *index.Item, full bool) []byte {
	f := c.fragment(it)
	if f == nil {
		return appendItemFields(dst, it, full)
	}
	if full {
		return append(dst, f.b...)
	}
	return append(dst, f.b[:f.short]...)
}

// fragment returns it's fragment, made now if need be; nil when c is nil
// or full.
func (c *itemJSON) fragment(it *index.Item) *itemFragment {
	if c == nil {
		return nil
	}
	slots := c.slots.Load()
	var slot *atomic.Pointer[itemFragment]
	if slots != nil && int(it.Dense) < len(*slots) {
		slot = &(*slots)[it.Dense]
		if f := slot.Load(); f != nil && f.it == it {
			return f
		}
	}
	if c.bytes.Load() >= c.max {
		return nil
	}
	f := &itemFragment{it: it}
	f.b = appendItemFields(nil, it, false)
	f.short = len(f.b)
	f.b = appendItemFull(f.b, it)
	if slot == nil {
		slot = c.slot(it.Dense)
	}
	if old := slot.Swap(f); old != nil {
		c.bytes.Add(-int64(len(old.b)))
	}
	c.bytes.Add(int64(len(f.b)))
	return f
}

// slot returns the slot of dense id d, growing the slots to hold it. A
// fragment stored in the old slots while they are copied may be lost: it
// is made again on its next pick.
func (c *itemJSON) slot(d uint32) *atomic.Pointer[itemFragment] {
	c.grow.Lock()
	defer c.grow.Unlock()
	old := c.slots.Load()
	if old != nil && int(d) < len(*old) {
		return &(*old)[d]
	}
	n := max(int(d)+1, 1024)
	if old != nil {
		n = max(n, 2*len(*old))
	}
	slots := make([]atomic.Pointer[itemFragment], n)
	if old != nil {
		for i := range *old {
			slots[i].Store((*old)[i].Load())
		}
	}
	c.slots.Store(&slots)
	return &slots[d]
}

// appendItemFields appends an item's fields as a pick shows them, from
// `{"product":` to its image, and with full also its category and brand.
func appendItemFields(dst []byte, it *index.Item, full bool) []byte {
	dst = append(dst, `{"product":`...)
	dst = jsonenc.AppendString(dst, it.ID)
	dst = append(dst, `,"title":`...)
	dst = jsonenc.AppendString(dst, it.Title)
	dst = append(dst, `,"price":`...)
	dst = strconv.AppendFloat(dst, it.Price, 'f', -1, 64)
	if it.Currency != "" {
		dst = append(dst, `,"currency":`...)
		dst = jsonenc.AppendString(dst, it.Currency)
	}
	dst = append(dst, `,"url":`...)
	dst = jsonenc.AppendString(dst, it.URL)
	dst = append(dst, `,"image":`...)
	dst = jsonenc.AppendString(dst, it.Image)
	if full {
		dst = appendItemFull(dst, it)
	}
	return dst
}

// appendItemFull appends what a full pick adds: category and brand.
func appendItemFull(dst []byte, it *index.Item) []byte {
	dst = append(dst, `,"category":`...)
	dst = jsonenc.AppendString(dst, it.Category)
	if it.Brand != "" {
		dst = append(dst, `,"brand":`...)
		dst = jsonenc.AppendString(dst, it.Brand)
	}
	return dst
}
