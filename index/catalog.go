// Package index holds Omnipick's catalog and stock: dense ids for products,
// SKUs, locations and facets, facet postings and per-size stock as roaring
// bitmaps, and, derived from the same quantities for the picks path, flat
// bit sets and per-product online size masks (stockbits.go). It knows
// nothing of HTTP, customers or ranking.
//
// It owns the dictionaries of ids, items, postings, size groups and stock
// levels, and the index snapshot format (snapshot.go). It may import
// internal/binfmt and roaring, never engine or anything above it.
//
// An Index is not safe for concurrent use and takes no locks. Its owner
// serialises writes and may share reads, for example under a sync.RWMutex
// (engine's Engine.mu): every method that does not change the index is a
// read. A Dict likewise.
package index

import (
	"errors"
	"fmt"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"
)

// Facet name prefixes: one facet space holds category prefixes, brands and
// tags so a customer's affinity vector can weigh them together.
const (
	FacetCategory = "c:"
	FacetBrand    = "b:"
	FacetTag      = "t:"
)

// OneSize is the size key of variants without a size. Every customer
// "wears" it.
const OneSize uint32 = 0

// AnySize, given as a customer's size for a size group, means the size is
// unknown: any size in stock will do.
const AnySize uint32 = ^uint32(0)

// Errors returned for catalog input that cannot be applied. Their texts
// are written for the client that sent the input, so they carry no package
// prefix: the engine wraps them in an engine.FieldError naming the field,
// and the API shows the text as it is.
var (
	ErrUnknownProduct  = errors.New("unknown product")
	ErrUnknownSKU      = errors.New("unknown sku")
	ErrSKUOwned        = errors.New("sku belongs to another product")
	ErrNoVariants      = errors.New("product has no variants")
	ErrTooManyVariants = errors.New("product has more than 64 variants")
	ErrDuplicateSKU    = errors.New("sku listed twice")
)

// MaxVariants bounds the variants of one product, so a pick can describe
// its fitting sizes in a 64-bit mask.
const MaxVariants = 64

// Item is one product as the catalog holds it. Items are immutable once
// upserted: an upsert installs a new *Item, so a reader may keep an *Item
// (in a pick, say) after releasing the index's lock.
type Item struct {
	ID        string
	Title     string
	URL       string
	Image     string
	Price     float64
	Currency  string
	Category  string
	Brand     string
	Tags      []string
	SizeGroup string
	Variants  []Variant
	Active    bool
	// ProductGroup names the product's family (colour-ways of one design,
	// Google's item_group_id); "" for none.
	ProductGroup string
	// Attributes are what feeds carry besides the fields above (color,
	// gender, age_group, material, google_product_category, ...), sorted
	// by key, keys unique.
	Attributes []Attribute

	// Filled in by Upsert.
	Dense  uint32   // dense product id
	Group  uint32   // dense size-group id; 0 for one-size products
	Leaf   uint32   // facet id of the full category path
	Facets []uint32 // facet ids: every category prefix, the brand, the tags
	Kin    uint32   // dense product group id (see Siblings); 0 for none
}

// Attribute is one product attribute: a key and its value.
type Attribute struct {
	Key, Value string
}

// Attr returns the value of the attribute key, or "".
func (it *Item) Attr(key string) string {
	for _, a := range it.Attributes {
		if a.Key == key {
			return a.Value
		}
	}
	return ""
}

// Variant is one SKU of an Item.
type Variant struct {
	SKU  string
	Size string // empty for one-size

	// Filled in by Upsert.
	Dense   uint32 // dense SKU id
	SizeKey uint32 // dense (size group, size) id; OneSize when Size is empty
}

type skuInfo struct {
	product uint32
	variant uint8 // index into the owning item's Variants
}

// locStock is the stock of one location.
type locStock struct {
	qty    map[uint32]int32  // sku -> quantity (absent: 0)
	bySize []*roaring.Bitmap // by size key: products in stock in that size; nil: none yet
	any    *roaring.Bitmap   // products with any SKU in stock
	name   string            // the name a store was registered with; "" when none
	// anyBits is any as a flat bit set by product (see stockbits.go).
	anyBits []uint64
}

// Index is the catalog and the stock. See the package doc for concurrency.
type Index struct {
	products *Dict
	items    []*Item // by dense product id; nil for ids known only by reference
	// hot holds, by dense product id, what ranking reads of a product,
	// packed in one cache line: filtering and scoring a candidate then
	// costs one fetch, not the *Item and its Facets array from wherever
	// the heap put them (at a million products, two cache misses a
	// candidate).
	hot       []Hot
	skus      *Dict
	skuInfo   []skuInfo
	locations *Dict
	locStock  []locStock
	facets    *Dict
	postings  []*roaring.Bitmap // by facet id
	groups    *Dict             // size groups; "" (one-size) is 0
	members   []*roaring.Bitmap // by size group: its products
	sizeKeys  *Dict             // group + "\x00" + size; "" (one-size) is OneSize
	sizeNames []string          // by size key: the size alone
	active    *roaring.Bitmap
	kin       kins // product groups

	// Derived for the picks path (stockbits.go): by size key, its
	// ordinal within its size group and the group; by size group, the
	// ordinals given; by SKU, in stock online.
	sizeOrd    []uint8
	sizeGroup  []uint32
	groupSizes []uint8
	onlineSKUs []uint64
}

// New returns an empty index with the "online" location registered.
func New() *Index {
	x := &Index{
		products:  NewDict(),
		skus:      NewDict(),
		locations: NewDict(),
		facets:    NewDict(),
		groups:    NewDict(),
		sizeKeys:  NewDict(),
		active:    roaring.New(),
		kin:       newKins(),
	}
	x.groups.Intern("")
	x.members = append(x.members, roaring.New())
	x.sizeKeys.Intern("")
	x.sizeNames = append(x.sizeNames, "")
	x.addSizeKey(OneSize, 0)
	x.Location("online")
	return x
}

// Location returns the dense id of a location, registering it if new.
func (x *Index) Location(id string) uint32 {
	d, isNew := x.locations.Intern(id)
	if isNew {
		x.locStock = append(x.locStock, newLocStock())
	}
	return d
}

func newLocStock() locStock {
	return locStock{qty: make(map[uint32]int32), any: roaring.New()}
}

func newBitmap() *roaring.Bitmap { return roaring.New() }

// LookupLocation returns the dense id of a known location.
func (x *Index) LookupLocation(id string) (uint32, bool) { return x.locations.Lookup(id) }

// LocationName returns the external id of a dense location id.
func (x *Index) LocationName(d uint32) string { return x.locations.Name(d) }

// SetLocationDisplayName sets the name a location was registered with
// (POST /v1/locations), e.g. "Omnipick Berlin" for store-berlin-1.
func (x *Index) SetLocationDisplayName(d uint32, name string) {
	if int(d) < len(x.locStock) {
		x.locStock[d].name = name
	}
}

// LocationDisplayName returns the registered name of a location, or "".
func (x *Index) LocationDisplayName(d uint32) string {
	if int(d) < len(x.locStock) {
		return x.locStock[d].name
	}
	return ""
}

// Locations is the number of known locations.
func (x *Index) Locations() int { return x.locations.Len() }

// Item returns the current catalog entry of a product id.
func (x *Index) Item(id string) (*Item, bool) {
	d, ok := x.products.Lookup(id)
	if !ok || x.items[d] == nil {
		return nil, false
	}
	return x.items[d], true
}

// ItemAt returns the catalog entry of a dense product id, or nil.
func (x *Index) ItemAt(d uint32) *Item {
	if int(d) >= len(x.items) {
		return nil
	}
	return x.items[d]
}

// Products is one more than the largest dense product id.
func (x *Index) Products() int { return len(x.items) }

// HotFacets is how many facets a Hot record holds inline; a product with
// more (many tags) has NFacets == HotSpill and its Item.Facets is read.
// Eight cover a three-level category, a brand and four tags.
const (
	HotFacets = 8
	HotSpill  = 0xff
)

// Hot is what ranking reads of a product, in 64 bytes.
type Hot struct {
	Price   float64
	Group   uint32 // dense size-group id
	Leaf    uint32 // facet id of the full category path
	Active  bool
	Known   bool  // the product is in the catalog (not only referenced)
	NFacets uint8 // facets inline, or HotSpill
	_       uint8
	online  uint64 // by size ordinal (stockbits.go): in stock online in that size
	Facets  [HotFacets]uint32
}

// hotOf returns it's hot record, without stock: the caller refreshes
// stock bits after (or a snapshot load sets them from the quantities).
func (x *Index) hotOf(it *Item) Hot {
	h := Hot{Price: it.Price, Group: it.Group, Leaf: it.Leaf, Active: it.Active, Known: true}
	if len(it.Facets) > HotFacets {
		h.NFacets = HotSpill
		return h
	}
	h.NFacets = uint8(copy(h.Facets[:], it.Facets))
	return h
}

// Hot returns product p's hot record (see Index.hot); its Known is false
// for an unknown product.
func (x *Index) Hot(p uint32) Hot {
	if int(p) >= len(x.hot) {
		return Hot{}
	}
	return x.hot[p]
}

// Touch reads a word of product p's hot record and returns it, for a
// caller that loads the records of many candidates before it uses them:
// independent loads let the CPU overlap their cache misses, where the
// dependent work of filtering one candidate after another would wait for
// each in turn.
func (x *Index) Touch(p uint32) uint32 {
	if int(p) >= len(x.hot) {
		return 0
	}
	return x.hot[p].Group
}

// SKUs is the number of known SKUs.
func (x *Index) SKUs() int { return x.skus.Len() }

// SKU resolves a SKU id to its item and variant index.
func (x *Index) SKU(id string) (*Item, int, bool) {
	d, ok := x.skus.Lookup(id)
	if !ok {
		return nil, 0, false
	}
	si := x.skuInfo[d]
	it := x.items[si.product]
	if it == nil || int(si.variant) >= len(it.Variants) || it.Variants[si.variant].Dense != d {
		return nil, 0, false // the SKU was dropped from its product
	}
	return it, int(si.variant), true
}

// Facet returns the dense id of a facet name ("c:women/knitwear", "b:nordic").
func (x *Index) Facet(name string) (uint32, bool) { return x.facets.Lookup(name) }

// FacetName returns the name of a dense facet id.
func (x *Index) FacetName(f uint32) string { return x.facets.Name(f) }

// Facets is the number of known facets.
func (x *Index) Facets() int { return x.facets.Len() }

// Posting returns the products carrying facet f. The bitmap belongs to the
// index: read it under the index's read lock, never modify it.
func (x *Index) Posting(f uint32) *roaring.Bitmap { return x.postings[f] }

// Active returns the bitmap of active products (same rules as Posting).
func (x *Index) Active() *roaring.Bitmap { return x.active }

// Group returns the dense id of a size group name.
func (x *Index) Group(name string) (uint32, bool) { return x.groups.Lookup(name) }

// GroupName returns the name of a dense size-group id.
func (x *Index) GroupName(g uint32) string { return x.groups.Name(g) }

// Groups is the number of size groups, one-size (0) included.
func (x *Index) Groups() int { return x.groups.Len() }

// GroupMembers returns the products of size group g (same rules as Posting).
func (x *Index) GroupMembers(g uint32) *roaring.Bitmap { return x.members[g] }

// SizeName returns the size (e.g. "8") of a size key.
func (x *Index) SizeName(k uint32) string { return x.sizeNames[k] }

// SizeKey returns the size key of a size within a size group, if known.
func (x *Index) SizeKey(group, size string) (uint32, bool) {
	if size == "" {
		return OneSize, true
	}
	return x.sizeKeys.Lookup(sizeKeyName(group, size))
}

func sizeKeyName(group, size string) string { return group + "\x00" + size }

func (x *Index) facet(name string) uint32 {
	f, _ := x.facets.Intern(name)
	for int(f) >= len(x.postings) {
		x.postings = append(x.postings, roaring.New())
	}
	return f
}

// CategoryFacets appends the facet names of every prefix of a category path
// ("women/knitwear/sweaters" -> "c:women", "c:women/knitwear", ...).
func CategoryFacets(dst []string, category string) []string {
	for i := 0; i < len(category); i++ {
		if category[i] == '/' {
			dst = append(dst, FacetCategory+category[:i])
		}
	}
	if category != "" {
		dst = append(dst, FacetCategory+category)
	}
	return dst
}

// NormalizeCategory trims slashes and spaces around a category path and its
// segments, and lowercases it, so "Women/ Knitwear/" and "women/knitwear"
// are one category.
func NormalizeCategory(c string) string {
	parts := strings.Split(strings.ToLower(c), "/")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "/")
}

// Upsert installs it as the current version of product it.ID, replacing
// any previous version: postings, size keys and stock bits follow, so the
// index is as if the old version had never been there. it must not be
// modified afterwards. The returned error says which input is at fault; on
// error the index is unchanged.
func (x *Index) Upsert(it *Item) error { return x.upsert(it, true) }

// upsert is Upsert; without refresh it leaves the stock bitmaps alone,
// for a snapshot load, whose stock quantities come after the items and
// set the bits themselves (refreshing every item at every location there
// took a third of a million-product restart).
func (x *Index) upsert(it *Item, refresh bool) error {
	// Validate before changing anything.
	if err := x.validate(it); err != nil {
		return err
	}
	pd, _ := x.products.Intern(it.ID)
	for int(pd) >= len(x.items) { // restored dictionaries may run ahead of items
		x.items = append(x.items, nil)
	}
	oldKin := uint32(0)
	if old := x.items[pd]; old != nil {
		x.unindex(pd, old)
		oldKin = old.Kin
	}
	it.Dense = pd
	it.Kin = x.kin.set(pd, oldKin, it.ProductGroup)
	it.Category = NormalizeCategory(it.Category)
	it.Group, _ = x.groups.Intern(it.SizeGroup)
	for int(it.Group) >= len(x.members) {
		x.members = append(x.members, roaring.New())
	}
	x.setFacets(it)
	x.internVariants(it)
	x.items[pd] = it
	for int(pd) >= len(x.hot) {
		x.hot = append(x.hot, Hot{})
	}
	x.hot[pd] = x.hotOf(it)

	for _, f := range it.Facets {
		x.postings[f].Add(pd)
	}
	x.members[it.Group].Add(pd)
	if it.Active {
		x.active.Add(pd)
	} else {
		x.active.Remove(pd)
	}
	if !refresh {
		return nil
	}
	for l := range x.locStock {
		for i := range it.Variants {
			x.refreshStockBits(uint32(l), it, it.Variants[i].SizeKey)
		}
	}
	return nil
}

// validate checks an item's variants: some, not too many, no SKU twice
// and none that another product's current item lists.
func (x *Index) validate(it *Item) error {
	if len(it.Variants) == 0 {
		return ErrNoVariants
	}
	if len(it.Variants) > MaxVariants {
		return ErrTooManyVariants
	}
	pd, known := x.products.Lookup(it.ID)
	for i, v := range it.Variants {
		for j := 0; j < i; j++ {
			if it.Variants[j].SKU == v.SKU {
				return fmt.Errorf("%w: %q", ErrDuplicateSKU, v.SKU)
			}
		}
		if sd, ok := x.skus.Lookup(v.SKU); ok && int(sd) < len(x.skuInfo) {
			owner := x.skuInfo[sd].product
			if (!known || owner != pd) && x.ownsSKU(owner, sd) {
				return fmt.Errorf("%w: %q is a variant of %q", ErrSKUOwned, v.SKU, x.products.Name(owner))
			}
		}
	}
	return nil
}

// unindex takes product pd's old item out of the postings, size group and
// stock bitmaps.
func (x *Index) unindex(pd uint32, old *Item) {
	for _, f := range old.Facets {
		x.postings[f].Remove(pd)
	}
	x.members[old.Group].Remove(pd)
	for l := range x.locStock {
		ls := &x.locStock[l]
		ls.any.Remove(pd)
		setBit(&ls.anyBits, pd, false)
		for _, v := range old.Variants {
			if b := ls.sized(v.SizeKey); b != nil {
				b.Remove(pd)
			}
		}
	}
}

// setFacets gives an item its facet ids: category prefixes (the last is
// its leaf), brand, tags.
func (x *Index) setFacets(it *Item) {
	var names [16]string
	fn := CategoryFacets(names[:0], it.Category)
	it.Facets = make([]uint32, 0, len(fn)+1+len(it.Tags))
	for _, n := range fn {
		it.Facets = append(it.Facets, x.facet(n))
	}
	if len(fn) > 0 {
		it.Leaf = it.Facets[len(fn)-1]
	} else {
		it.Leaf = x.facet(FacetCategory)
	}
	if it.Brand != "" {
		it.Facets = append(it.Facets, x.facet(FacetBrand+strings.ToLower(it.Brand)))
	}
	for _, t := range it.Tags {
		f := x.facet(FacetTag + strings.ToLower(t))
		if !containsU32(it.Facets, f) {
			it.Facets = append(it.Facets, f)
		}
	}
}

// internVariants gives an item's variants their SKU and size key ids and
// records which product and variant each SKU is.
func (x *Index) internVariants(it *Item) {
	for i := range it.Variants {
		v := &it.Variants[i]
		v.Dense, _ = x.skus.Intern(v.SKU)
		for int(v.Dense) >= len(x.skuInfo) {
			x.skuInfo = append(x.skuInfo, skuInfo{})
		}
		x.skuInfo[v.Dense] = skuInfo{product: it.Dense, variant: uint8(i)}
		v.SizeKey = OneSize
		if v.Size != "" {
			k, isNew := x.sizeKeys.Intern(sizeKeyName(it.SizeGroup, v.Size))
			for int(k) >= len(x.sizeNames) {
				x.sizeNames = append(x.sizeNames, v.Size)
			}
			if isNew {
				x.addSizeKey(k, it.Group)
			}
			v.SizeKey = k
		}
	}
}

// ownsSKU reports whether product p's current item lists SKU s.
func (x *Index) ownsSKU(p, s uint32) bool {
	if int(p) >= len(x.items) {
		return false
	}
	it := x.items[p]
	if it == nil {
		return false
	}
	for _, v := range it.Variants {
		if v.Dense == s {
			return true
		}
	}
	return false
}

func containsU32(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// FacetBytes is Facet for a name held in a byte slice; it does not allocate.
func (x *Index) FacetBytes(name []byte) (uint32, bool) { return x.facets.LookupBytes(name) }
