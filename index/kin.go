package index

import "github.com/RoaringBitmap/roaring/v2"

// kins holds the product groups (Item.ProductGroup): which products are
// variants of one design, so that a customer who bought or viewed one can
// be shown its siblings. Dense ids are derived (rebuilt by upserts on a
// snapshot load), never stored or referred to outside the index.
type kins struct {
	names   *Dict             // "" (no group) is 0
	members []*roaring.Bitmap // by dense group: its products
}

func newKins() kins {
	k := kins{names: NewDict()}
	k.names.Intern("")
	k.members = append(k.members, roaring.New())
	return k
}

// set moves product pd from group old to the group named name and returns
// the new group's dense id; 0 (no group) holds nobody.
func (k *kins) set(pd, old uint32, name string) uint32 {
	if old != 0 {
		k.members[old].Remove(pd)
	}
	if name == "" {
		return 0
	}
	g, isNew := k.names.Intern(name)
	if isNew {
		k.members = append(k.members, roaring.New())
	}
	k.members[g].Add(pd)
	return g
}

// Siblings returns the products of product group kin (an Item's Kin),
// including retired ones and the product itself; nil for 0 (no group) or
// an unknown id. The bitmap is the index's: read it under the index's read
// lock, never change it.
func (x *Index) Siblings(kin uint32) *roaring.Bitmap {
	if kin == 0 || int(kin) >= len(x.kin.members) {
		return nil
	}
	return x.kin.members[kin]
}

// HasProductGroups reports whether any product was ever given a product
// group: picks skip the sibling lookups of a catalog without groups.
func (x *Index) HasProductGroups() bool { return x.kin.names.Len() > 1 }
