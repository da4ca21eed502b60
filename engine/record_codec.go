package engine

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/omnipick/omnipick/internal/binfmt"
)

// Record payload encoding, as written to the write-ahead log (the log frames
// each payload with its Op as the record type). Frozen: a new field goes
// behind a new payload version, and old versions stay readable.
//
//	payload   = version:byte(1) body
//	product   = id title url image price:f64 currency category brand
//	            ntags:uvarint tag* size_group nvariants:uvarint (sku size)* inactive:byte
//	inventory = sku location quantity:varint
//	event     = type:byte customer anonymous_id product sku channel location
//	            order price:f64 ts:varint(unix ms)
//	identify  = anonymous_id customer
//	location  = id name has_coord:byte lat:f64 lon:f64
//	exclusion = customer anonymous_id product until:varint(unix ms)
//	campaign  = customer anonymous_id name nproducts:uvarint product* ts:varint(unix ms)
//	erase     = customer anonymous_id
//	expire    = before:varint(unix ms)
//	signal    = type:byte product:uvarint t:uvarint(unix s) weight:f32 rel_weight:f32
//	            nfacets:uvarint facet:uvarint* nanchors:uvarint (product:uvarint weight:f32)*
//	            buyer scan_at scan_product scan_customer scan_anonymous_id scan_ts:varint(unix ms)
//	merge     = anonymous_id target target_anon:byte profile_version:byte profile:(uvarint length, bytes)
//
// (signal and merge, the derived records of partial.go, exist from
// version 1 of their payload on; products and facets are dense ids.)
//
// Version 2 (identify only, written when it links two anonymous ids):
//
//	identify  = anonymous_id customer to_anonymous_id
//
// Version 3 (product only, written when it names a product group): the
// version 1 product followed by
//
//	group
//
// Version 4 (any op, written when the record has an EventID):
//
//	payload   = 4 event_id received:varint(unix ms) body
//
// where the body is identify's of version 2 (with to_anonymous_id), a
// product's of version 3 (with its group, empty or not: Apply refuses an
// event_id on a product, and replay must read what was logged), and the
// version 1 body of the others.
//
// Version 5 (product only, written when it has attributes and no
// EventID): the version 3 product (its group, empty or not) followed by
//
//	nattributes:uvarint (key value)*
//
// Version 6 (expire only, written when it names an anonymous id, which
// only a partial engine's derived record does):
//
//	expire    = before:varint(unix ms) anonymous_id
//
// Strings are uvarint length + bytes.
const (
	recordVersion   = 1
	recordVersionV2 = 2
	recordVersionV3 = 3
	recordVersionV4 = 4
	recordVersionV5 = 5
	recordVersionV6 = 6
)

// ErrBadRecord reports a payload that does not decode.
var ErrBadRecord = errors.New("engine: malformed record payload")

// Decoding limits: generous for real data, small enough that a hostile
// payload cannot make the decoder allocate much.
const (
	maxRecordString = 64 << 10
	maxListLen      = 4096
)

// AppendRecord appends r's payload encoding to dst.
func AppendRecord(dst []byte, r *Record) []byte {
	if r.EventID != "" {
		dst = append(dst, recordVersionV4)
		dst = binfmt.AppendString(dst, r.EventID)
		dst = binfmt.AppendVarint(dst, r.Received)
		switch r.Op {
		case OpIdentify:
			id := &r.Identify
			return binfmt.AppendString(binfmt.AppendString(binfmt.AppendString(dst, id.AnonymousID), id.Customer), id.ToAnonymousID)
		case OpProduct:
			// Only events, identify and exclusions take an id (Apply
			// refuses the others), but the record is logged all the same,
			// and replay must refuse it too: the version 3 body, group and
			// all.
			dst = appendBody(dst, r)
			if r.Product.Group == "" {
				dst = binfmt.AppendString(dst, "")
			}
			return dst
		}
		return appendBody(dst, r)
	}
	if r.Op == OpIdentify && r.Identify.ToAnonymousID != "" {
		id := &r.Identify
		dst = append(dst, recordVersionV2)
		return binfmt.AppendString(binfmt.AppendString(binfmt.AppendString(dst, id.AnonymousID), id.Customer), id.ToAnonymousID)
	}
	switch {
	case r.Op == OpExpire && r.Expire.AnonymousID != "":
		dst = binfmt.AppendVarint(append(dst, recordVersionV6), r.Expire.Before)
		return binfmt.AppendString(dst, r.Expire.AnonymousID)
	case r.Op == OpProduct && len(r.Product.Attributes) > 0:
		dst = appendBody(append(dst, recordVersionV5), r)
		if r.Product.Group == "" {
			dst = binfmt.AppendString(dst, "")
		}
		dst = binfmt.AppendUvarint(dst, uint64(len(r.Product.Attributes)))
		for _, a := range r.Product.Attributes {
			dst = binfmt.AppendString(binfmt.AppendString(dst, a.Key), a.Value)
		}
		return dst
	case r.Op == OpProduct && r.Product.Group != "":
		dst = append(dst, recordVersionV3)
	default:
		dst = append(dst, recordVersion)
	}
	return appendBody(dst, r)
}

// appendBody appends r's body, after its version byte.
func appendBody(dst []byte, r *Record) []byte {
	s := binfmt.AppendString
	switch r.Op {
	case OpProduct:
		p := &r.Product
		dst = s(s(s(s(dst, p.ID), p.Title), p.URL), p.Image)
		dst = binfmt.AppendFloat(dst, p.Price)
		dst = s(s(s(dst, p.Currency), p.Category), p.Brand)
		dst = binfmt.AppendUvarint(dst, uint64(len(p.Tags)))
		for _, t := range p.Tags {
			dst = s(dst, t)
		}
		dst = s(dst, p.SizeGroup)
		dst = binfmt.AppendUvarint(dst, uint64(len(p.Variants)))
		for _, v := range p.Variants {
			dst = s(s(dst, v.SKU), v.Size)
		}
		dst = append(dst, b2u(p.Inactive))
		if p.Group != "" {
			dst = s(dst, p.Group)
		}
	case OpInventory:
		dst = s(s(dst, r.Inventory.SKU), r.Inventory.Location)
		dst = binfmt.AppendVarint(dst, r.Inventory.Quantity)
	case OpEvent:
		ev := &r.Event
		dst = append(dst, byte(ev.Type))
		dst = s(s(s(s(s(s(s(dst, ev.Customer), ev.AnonymousID), ev.Product), ev.SKU), ev.Channel), ev.Location), ev.Order)
		dst = binfmt.AppendFloat(dst, ev.Price)
		dst = binfmt.AppendVarint(dst, ev.TS)
	case OpIdentify:
		dst = s(s(dst, r.Identify.AnonymousID), r.Identify.Customer)
	case OpLocation:
		l := &r.Location
		dst = s(s(dst, l.ID), l.Name)
		dst = append(dst, b2u(l.HasCoord))
		dst = binfmt.AppendFloat(binfmt.AppendFloat(dst, l.Lat), l.Lon)
	case OpExclusion:
		x := &r.Exclusion
		dst = s(s(s(dst, x.Customer), x.AnonymousID), x.Product)
		dst = binfmt.AppendVarint(dst, x.Until)
	case OpCampaign:
		c := &r.Campaign
		dst = s(s(s(dst, c.Customer), c.AnonymousID), c.Name)
		dst = binfmt.AppendUvarint(dst, uint64(len(c.Products)))
		for _, p := range c.Products {
			dst = s(dst, p)
		}
		dst = binfmt.AppendVarint(dst, c.TS)
	case OpErase, OpForget:
		dst = s(s(dst, r.Erase.Customer), r.Erase.AnonymousID)
	case OpExpire:
		dst = binfmt.AppendVarint(dst, r.Expire.Before)
	case OpSignal:
		dst = appendSignal(dst, &r.Signal)
	case OpMerge:
		m := &r.Merge
		dst = s(s(dst, m.AnonymousID), m.Target)
		dst = append(dst, b2u(m.TargetAnon), m.ProfileVersion)
		dst = binfmt.AppendUvarint(dst, uint64(len(m.Profile)))
		dst = append(dst, m.Profile...)
	}
	return dst
}

// appendSignal appends a signal's body.
func appendSignal(dst []byte, g *Signal) []byte {
	u := func(v uint32) { dst = binfmt.AppendUvarint(dst, uint64(v)) }
	dst = append(dst, byte(g.Type))
	u(g.Product)
	u(g.T)
	dst = binfmt.AppendFloat32(binfmt.AppendFloat32(dst, g.Weight), g.RelWeight)
	u(uint32(len(g.Facets)))
	for _, f := range g.Facets {
		u(f)
	}
	u(uint32(len(g.Anchors)))
	for _, a := range g.Anchors {
		u(a.Product)
		dst = binfmt.AppendFloat32(dst, a.Weight)
	}
	s := binfmt.AppendString
	dst = s(s(s(s(s(dst, g.Buyer), g.ScanAt), g.Scan.Product), g.Scan.Customer), g.Scan.AnonymousID)
	return binfmt.AppendVarint(dst, g.Scan.TS)
}

// decodeSignal reads a signal's body into g.
func decodeSignal(rd *binfmt.Reader, g *Signal) {
	g.Type = EventType(rd.Byte())
	g.Product, g.T = rd.Uint32(), rd.Uint32()
	g.Weight, g.RelWeight = rd.Float32(), rd.Float32()
	if n := rd.Count(maxListLen); n > 0 {
		g.Facets = make([]uint32, n)
		for i := range g.Facets {
			g.Facets[i] = rd.Uint32()
		}
	}
	if n := rd.Count(maxSignalAnchors); n > 0 {
		g.Anchors = make([]Anchor, n)
		for i := range g.Anchors {
			g.Anchors[i] = Anchor{Product: rd.Uint32(), Weight: rd.Float32()}
		}
	}
	g.Buyer, g.ScanAt = rd.String(), rd.String()
	g.Scan = Scan{Product: rd.String(), Customer: rd.String(), AnonymousID: rd.String(), TS: rd.Varint()}
}

// maxSignalAnchors is the most anchors a signal holds: the size of
// signalUpdate.anchors, and so the cap of Options.EventAnchors.
const maxSignalAnchors = 64

// maxMergeProfile bounds a merged profile's encoding: a profile at every
// Options limit is far smaller.
const maxMergeProfile = 16 << 20

// DecodeRecord decodes a payload written by AppendRecord for op into r,
// replacing its contents. Strings are copied out of b.
func DecodeRecord(op Op, b []byte, r *Record) error {
	*r = Record{Op: op}
	rd := binfmt.NewReader(b)
	rd.MaxString = maxRecordString
	v := rd.Byte()
	if v == recordVersionV4 {
		r.EventID, r.Received = rd.String(), rd.Varint()
		if r.EventID == "" {
			return fmt.Errorf("%w: version 4 without an event id", ErrBadRecord)
		}
		switch op {
		case OpIdentify:
			v = recordVersionV2
		case OpProduct:
			v = recordVersionV3
		default:
			v = recordVersion
		}
	}
	switch {
	case v == recordVersionV2 && op == OpIdentify:
		r.Identify = Identify{AnonymousID: rd.String(), Customer: rd.String(), ToAnonymousID: rd.String()}
		return finishDecode(op, rd, r)
	case v == recordVersionV6 && op == OpExpire:
		r.Expire = Expire{Before: rd.Varint(), AnonymousID: rd.String()}
		if r.Expire.AnonymousID == "" && rd.Err() == nil {
			return fmt.Errorf("%w: expire: version 6 without an anonymous id", ErrBadRecord)
		}
		return finishDecode(op, rd, r)
	case (v == recordVersionV3 || v == recordVersionV5) && op == OpProduct:
	case v != recordVersion:
		return fmt.Errorf("%w: version %d", ErrBadRecord, v)
	}
	if err := decodeBody(rd, op, v, r); err != nil {
		return err
	}
	return finishDecode(op, rd, r)
}

// decodeBody reads the body of a payload of version v (after the version
// and, in version 4, the event id) for op into r.
func decodeBody(rd *binfmt.Reader, op Op, v byte, r *Record) error {
	switch op {
	case OpProduct:
		if err := decodeProduct(rd, v, r); err != nil {
			return err
		}
	case OpInventory:
		r.Inventory = Inventory{SKU: rd.String(), Location: rd.String(), Quantity: rd.Varint()}
	case OpEvent:
		ev := &r.Event
		ev.Type = EventType(rd.Byte())
		ev.Customer, ev.AnonymousID, ev.Product, ev.SKU = rd.String(), rd.String(), rd.String(), rd.String()
		ev.Channel, ev.Location, ev.Order = rd.String(), rd.String(), rd.String()
		ev.Price = rd.Float()
		ev.TS = rd.Varint()
	case OpIdentify:
		r.Identify = Identify{AnonymousID: rd.String(), Customer: rd.String()}
	case OpLocation:
		l := &r.Location
		l.ID, l.Name = rd.String(), rd.String()
		l.HasCoord = rd.Bool()
		l.Lat, l.Lon = rd.Float(), rd.Float()
	case OpExclusion:
		x := &r.Exclusion
		x.Customer, x.AnonymousID, x.Product = rd.String(), rd.String(), rd.String()
		x.Until = rd.Varint()
	case OpCampaign:
		c := &r.Campaign
		c.Customer, c.AnonymousID, c.Name = rd.String(), rd.String(), rd.String()
		if n := rd.Count(maxListLen); n > 0 {
			c.Products = make([]string, n)
			for i := range c.Products {
				c.Products[i] = rd.String()
			}
		}
		c.TS = rd.Varint()
	case OpErase, OpForget:
		r.Erase = Erase{Customer: rd.String(), AnonymousID: rd.String()}
	case OpExpire:
		r.Expire = Expire{Before: rd.Varint()}
	case OpSignal:
		decodeSignal(rd, &r.Signal)
	case OpMerge:
		m := &r.Merge
		m.AnonymousID, m.Target = rd.String(), rd.String()
		m.TargetAnon, m.ProfileVersion = rd.Bool(), rd.Byte()
		rd.MaxString = maxMergeProfile // a profile may pass a string's bound
		if b := rd.Bytes(); len(b) > 0 {
			m.Profile = slices.Clone(b)
		}
		rd.MaxString = maxRecordString
	default:
		return fmt.Errorf("%w: unknown op %d", ErrBadRecord, op)
	}
	return nil
}

// decodeProduct reads a product payload of version v (1; 3: with a group;
// 5: with a group and attributes) into r.Product.
func decodeProduct(rd *binfmt.Reader, v byte, r *Record) error {
	p := &r.Product
	p.ID, p.Title, p.URL, p.Image = rd.String(), rd.String(), rd.String(), rd.String()
	p.Price = rd.Float()
	p.Currency, p.Category, p.Brand = rd.String(), rd.String(), rd.String()
	if n := rd.Count(maxListLen); n > 0 {
		p.Tags = make([]string, n)
		for i := range p.Tags {
			p.Tags[i] = rd.String()
		}
	}
	p.SizeGroup = rd.String()
	if n := rd.Count(maxListLen); n > 0 {
		p.Variants = make([]Variant, n)
		for i := range p.Variants {
			p.Variants[i] = Variant{SKU: rd.String(), Size: rd.String()}
		}
	}
	p.Inactive = rd.Bool()
	if v == recordVersionV3 {
		if p.Group = rd.String(); p.Group == "" && rd.Err() == nil && r.EventID == "" {
			return fmt.Errorf("%w: product: version 3 with no group", ErrBadRecord)
		}
	}
	if v == recordVersionV5 {
		p.Group = rd.String()
		n := rd.Count(maxListLen)
		if n == 0 && rd.Err() == nil {
			return fmt.Errorf("%w: product: version 5 with no attributes", ErrBadRecord)
		}
		p.Attributes = make([]Attribute, n)
		for i := range p.Attributes {
			p.Attributes[i] = Attribute{Key: rd.String(), Value: rd.String()}
		}
	}
	return nil
}

// finishDecode checks that a payload decoded whole and sane.
func finishDecode(op Op, rd *binfmt.Reader, r *Record) error {
	if err := rd.Err(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadRecord, op, err)
	}
	if rd.Len() != 0 {
		return fmt.Errorf("%w: %s: %d trailing bytes", ErrBadRecord, op, rd.Len())
	}
	if math.IsNaN(r.Product.Price) || math.IsNaN(r.Event.Price) {
		return fmt.Errorf("%w: %s: NaN price", ErrBadRecord, op)
	}
	return nil
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}
