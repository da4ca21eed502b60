package index

import (
	"errors"
	"fmt"
	"slices"

	"github.com/omnipick/omnipick/internal/binfmt"
)

// Snapshot encoding of an index: the dictionaries in dense-id order (so
// every dense id, which profiles and relations refer to, comes back the
// same), the items, the SKU owners and the stock quantities. Bitmaps are
// derived, so they are rebuilt rather than stored. Version 1, frozen;
// version 2 appends each item's product group after its active flag;
// version 3 then each item's attributes (nattributes (key value)*) and,
// at the end, each location's registered name. Every version is read.
const (
	snapshotVersion1 = 1
	snapshotVersion2 = 2
	snapshotVersion  = 3
)

// ErrBadSnapshot reports an index snapshot that does not decode.
var ErrBadSnapshot = errors.New("index: malformed snapshot")

// maxSnapshotCount bounds every count in a snapshot (ids, items, entries).
const maxSnapshotCount = 1 << 30

// AppendSnapshot appends the index's snapshot encoding to dst.
func (x *Index) AppendSnapshot(dst []byte) []byte {
	dst = append(dst, snapshotVersion)
	for _, d := range []*Dict{x.products, x.skus, x.locations, x.facets, x.groups, x.sizeKeys} {
		dst = binfmt.AppendUvarint(dst, uint64(d.Len()))
		for _, n := range d.All() {
			dst = binfmt.AppendString(dst, n)
		}
	}
	for _, n := range x.sizeNames {
		dst = binfmt.AppendString(dst, n)
	}
	dst = binfmt.AppendUvarint(dst, uint64(len(x.items)))
	for _, it := range x.items {
		if it == nil {
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, 1)
		for _, s := range []string{it.Title, it.URL, it.Image, it.Currency, it.Category, it.Brand, it.SizeGroup} {
			dst = binfmt.AppendString(dst, s)
		}
		dst = binfmt.AppendFloat(dst, it.Price)
		dst = binfmt.AppendUvarint(dst, uint64(len(it.Tags)))
		for _, t := range it.Tags {
			dst = binfmt.AppendString(dst, t)
		}
		dst = binfmt.AppendUvarint(dst, uint64(len(it.Variants)))
		for _, v := range it.Variants {
			dst = binfmt.AppendUvarint(dst, uint64(v.Dense))
			dst = binfmt.AppendString(dst, v.Size)
		}
		dst = append(dst, b2u(it.Active))
		dst = binfmt.AppendString(dst, it.ProductGroup)
		dst = binfmt.AppendUvarint(dst, uint64(len(it.Attributes)))
		for _, a := range it.Attributes {
			dst = binfmt.AppendString(binfmt.AppendString(dst, a.Key), a.Value)
		}
	}
	dst = binfmt.AppendUvarint(dst, uint64(len(x.skuInfo)))
	for _, si := range x.skuInfo {
		dst = binfmt.AppendUvarint(dst, uint64(si.product))
		dst = append(dst, si.variant)
	}
	skus := make([]uint32, 0, 1024)
	for l := range x.locStock {
		ls := &x.locStock[l]
		skus = skus[:0]
		for sku := range ls.qty {
			skus = append(skus, sku)
		}
		slices.Sort(skus) // maps iterate at random; snapshots of one state are identical
		dst = binfmt.AppendUvarint(dst, uint64(len(skus)))
		for _, sku := range skus {
			dst = binfmt.AppendUvarint(dst, uint64(sku))
			dst = binfmt.AppendUvarint(dst, uint64(ls.qty[sku]))
		}
	}
	for l := range x.locStock {
		dst = binfmt.AppendString(dst, x.locStock[l].name)
	}
	return dst
}

// LoadSnapshot rebuilds an index from its snapshot encoding, read from r.
func LoadSnapshot(r *binfmt.Reader) (*Index, error) {
	version := r.Byte()
	if version != snapshotVersion && version != snapshotVersion2 && version != snapshotVersion1 {
		return nil, fmt.Errorf("%w: version %d", ErrBadSnapshot, version)
	}
	x := New()
	loadItems := func(r *binfmt.Reader) error { return x.loadItems(r, version) }
	loadNames := func(r *binfmt.Reader) error {
		if version >= snapshotVersion {
			x.loadLocationNames(r)
		}
		return nil
	}
	for _, load := range []func(*binfmt.Reader) error{x.loadDicts, loadItems, x.loadSKUOwners, x.loadStock, loadNames} {
		if err := load(r); err != nil {
			return nil, err
		}
	}
	if r.Err() != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, r.Err())
	}
	return x, nil
}

// loadDicts reads the dictionaries and sizes the per-id tables after them.
func (x *Index) loadDicts(r *binfmt.Reader) error {
	fresh := func() *Dict { return NewDict() }
	x.products, x.skus, x.locations, x.facets, x.groups, x.sizeKeys = fresh(), fresh(), fresh(), fresh(), fresh(), fresh()
	x.locStock, x.members, x.sizeNames = nil, nil, nil
	for _, d := range []*Dict{x.products, x.skus, x.locations, x.facets, x.groups, x.sizeKeys} {
		n := r.Count(maxSnapshotCount)
		for i := 0; i < n && r.Err() == nil; i++ {
			if id, isNew := d.Intern(r.String()); !isNew || id != uint32(i) {
				return fmt.Errorf("%w: duplicate id in dictionary", ErrBadSnapshot)
			}
		}
	}
	if r.Err() != nil {
		return fmt.Errorf("%w: dictionaries: %w", ErrBadSnapshot, r.Err())
	}
	for range x.sizeKeys.Len() {
		x.sizeNames = append(x.sizeNames, r.String())
	}
	x.indexSizeKeys()
	for range x.locations.Len() {
		x.locStock = append(x.locStock, newLocStock())
	}
	x.postings = x.postings[:0]
	for range x.facets.Len() {
		x.postings = append(x.postings, newBitmap())
	}
	for range x.groups.Len() {
		x.members = append(x.members, newBitmap())
	}
	if x.groups.Len() == 0 || x.groups.Name(0) != "" || x.sizeKeys.Len() == 0 || x.sizeKeys.Name(0) != "" ||
		x.locations.Len() == 0 || x.locations.Name(0) != "online" {
		return fmt.Errorf("%w: reserved ids missing", ErrBadSnapshot)
	}
	return nil
}

// loadItems reads the items, one per product id, and indexes them.
func (x *Index) loadItems(r *binfmt.Reader, version byte) error {
	n := r.Count(maxSnapshotCount)
	if n != x.products.Len() {
		return fmt.Errorf("%w: %d items for %d products", ErrBadSnapshot, n, x.products.Len())
	}
	for d := 0; d < n && r.Err() == nil; d++ {
		if r.Byte() == 0 {
			continue
		}
		it, err := x.readItem(r, uint32(d))
		if err != nil {
			return err
		}
		if version >= snapshotVersion2 {
			it.ProductGroup = r.String()
		}
		if version >= snapshotVersion {
			if na := r.Count(maxSnapshotCount); na > 0 {
				it.Attributes = make([]Attribute, na)
				for i := range it.Attributes {
					it.Attributes[i] = Attribute{Key: r.String(), Value: r.String()}
				}
			}
		}
		if r.Err() != nil {
			break
		}
		if err := x.upsert(it, false); err != nil {
			return fmt.Errorf("%w: item %q: %w", ErrBadSnapshot, it.ID, err)
		}
	}
	return nil
}

// readItem reads the item of product d, as version 1 wrote it.
func (x *Index) readItem(r *binfmt.Reader, d uint32) (*Item, error) {
	it := &Item{ID: x.products.Name(d)}
	it.Title, it.URL, it.Image, it.Currency, it.Category, it.Brand, it.SizeGroup =
		r.String(), r.String(), r.String(), r.String(), r.String(), r.String(), r.String()
	it.Price = r.Float()
	if nt := r.Count(maxSnapshotCount); nt > 0 {
		it.Tags = make([]string, nt)
		for i := range it.Tags {
			it.Tags[i] = r.String()
		}
	}
	nv := r.Count(MaxVariants)
	it.Variants = make([]Variant, nv)
	for i := range it.Variants {
		sd := r.Uint32()
		if int(sd) >= x.skus.Len() {
			return nil, fmt.Errorf("%w: item %q: sku id %d out of range", ErrBadSnapshot, it.ID, sd)
		}
		it.Variants[i] = Variant{SKU: x.skus.Name(sd), Size: r.String()}
	}
	it.Active = r.Bool()
	return it, nil
}

// loadSKUOwners reads which product and variant each SKU id belongs to.
func (x *Index) loadSKUOwners(r *binfmt.Reader) error {
	ns := r.Count(maxSnapshotCount)
	if r.Err() == nil && ns != x.skus.Len() {
		return fmt.Errorf("%w: %d sku owners for %d skus", ErrBadSnapshot, ns, x.skus.Len())
	}
	x.skuInfo = slices.Grow(x.skuInfo[:0], ns)[:ns]
	for i := 0; i < ns && r.Err() == nil; i++ {
		p, v := r.Uint32(), r.Byte()
		if int(p) >= len(x.items) {
			return fmt.Errorf("%w: sku %d owned by unknown product %d", ErrBadSnapshot, i, p)
		}
		// A current variant must point at itself; a dropped SKU keeps its
		// last owner but no item lists it.
		if it := x.items[p]; x.ownsSKU(p, uint32(i)) && (int(v) >= len(it.Variants) || it.Variants[v].Dense != uint32(i)) {
			return fmt.Errorf("%w: sku %d: variant %d of %q is another sku", ErrBadSnapshot, i, v, it.ID)
		}
		x.skuInfo[i] = skuInfo{product: p, variant: v}
	}
	return nil
}

// loadStock reads each location's stock levels.
func (x *Index) loadStock(r *binfmt.Reader) error {
	for l := range x.locStock {
		nq := r.Count(maxSnapshotCount)
		for range nq {
			sd, q := r.Uint32(), r.Uvarint()
			if r.Err() != nil {
				break
			}
			if int(sd) >= x.skus.Len() || q == 0 || q > MaxQuantity {
				return fmt.Errorf("%w: stock entry sku %d quantity %d", ErrBadSnapshot, sd, q)
			}
			x.setQty(uint32(l), sd, int64(q))
		}
	}
	return nil
}

// loadLocationNames reads the names locations were registered with
// (version 3).
func (x *Index) loadLocationNames(r *binfmt.Reader) {
	for l := range x.locStock {
		x.locStock[l].name = r.String()
	}
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}
