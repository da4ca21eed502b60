package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/omnipick/omnipick/index"
)

// ErrOverloaded is returned by a writer (the durable store) whose queue is
// full: nothing was logged or applied, and the client should retry later.
var ErrOverloaded = errors.New("engine: write queue full")

// Op names the kind of state change a Record carries. Every change to
// Omnipick's state is one Record applied by (*Engine).Apply: HTTP writes,
// WAL replay, evaluation replays and replication all take that one path.
//
// The numeric values are part of the write-ahead log format: frozen.
type Op uint8

const (
	OpProduct   Op = 1 // upsert a product (Record.Product)
	OpInventory Op = 2 // set the stock of one SKU at one location (Record.Inventory)
	OpEvent     Op = 3 // something a customer did (Record.Event)
	OpIdentify  Op = 4 // link an anonymous id to a customer (Record.Identify)
	OpLocation  Op = 5 // register or update a store (Record.Location)
	OpExclusion Op = 6 // keep a product out of picks until a time (Record.Exclusion)
	OpCampaign  Op = 7 // the picks an email campaign showed an actor (Record.Campaign)
	OpErase     Op = 8 // forget an actor and everything about it (Record.Erase)
	OpExpire    Op = 9 // drop anonymous profiles unused since a time (Record.Expire)
	// Derived records (partial.go): what a partitioned cluster's owner of
	// an actor publishes for every node to apply.
	OpSignal Op = 10 // one event's global effect (Record.Signal), applied by every node
	OpMerge  Op = 11 // an anonymous profile's history moving to another partition's actor (Record.Merge)
	OpForget Op = 12 // an erased actor's part in the global signals: its last scans, its basket (Record.Erase)
)

func (o Op) String() string {
	switch o {
	case OpProduct:
		return "product"
	case OpInventory:
		return "inventory"
	case OpEvent:
		return "event"
	case OpIdentify:
		return "identify"
	case OpLocation:
		return "location"
	case OpExclusion:
		return "exclusion"
	case OpCampaign:
		return "campaign"
	case OpErase:
		return "erase"
	case OpExpire:
		return "expire"
	case OpSignal:
		return "signal"
	case OpMerge:
		return "merge"
	case OpForget:
		return "forget"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Record is one state change. Exactly the field named by Op is meaningful.
// Records hold external string ids; the engine maps them to dense ids when
// it applies them, so a Record means the same thing on every node.
type Record struct {
	Op Op
	// EventID, optional on events, identify and exclusions, makes the
	// record idempotent: Apply refuses (ErrDuplicate) a record whose id
	// was applied within Options.EventIDWindow. Received is when the
	// writer got it (unix milliseconds), the clock the window runs on, so
	// that replay decides as the live run did; set with EventID.
	EventID   string
	Received  int64
	Product   Product
	Inventory Inventory
	Event     Event
	Identify  Identify
	Location  Location
	Exclusion Exclusion
	Campaign  Campaign
	Erase     Erase
	Expire    Expire
	Signal    Signal
	Merge     Merge
}

// Expire drops every anonymous profile (a cookie's, a device's) whose last
// activity is before Before (unix milliseconds), and every anonymous link
// created before it that nothing used since: the store writes one now and
// then with Before = now - the anonymous TTL, so that ids an ad platform
// sends once do not stay forever, and replay drops exactly what the live
// run dropped. Customers' profiles never expire.
type Expire struct {
	Before int64
	// AnonymousID, set only in a record a partial engine derived
	// (partial.go), names one anonymous id whose expired profile others
	// were linked into: the engines that do not hold it drop the entry of
	// its links they keep, as its holders dropped it with the profile.
	AnonymousID string
}

// Erase forgets an actor (a customer, or an anonymous id: exactly one is
// set) on request (GDPR Art. 17, CCPA): its profile, the anonymous ids
// linked into it and their links, its impressions, campaigns and
// exclusions. Aggregates it fed (popularity, relations) are anonymous and
// stay. Erasing an anonymous id linked to a customer also unlinks it and
// takes it out of the customer's linked ids; the customer keeps the
// history the link merged in, which is the customer's.
type Erase struct {
	Customer    string
	AnonymousID string
}

// Product is a catalog entry as clients send it.
type Product struct {
	ID        string
	Title     string
	URL       string
	Image     string
	Price     float64
	Currency  string
	Category  string // slash-separated path, e.g. "women/knitwear/sweaters"
	Brand     string
	Tags      []string
	SizeGroup string // e.g. "women-numeric"; empty for one-size products
	Variants  []Variant
	Inactive  bool // "active": false retires the product
	// Group names the product's family, if any: the products of one group
	// are variants of one design (colour-ways, patterns), as Google's
	// item_group_id; hm's product_code. The engine proposes a customer
	// the siblings of what they bought or viewed.
	Group string
	// Attributes are what product feeds carry besides the fields above
	// (color, gender, age_group, material, google_product_category, ...),
	// sorted by key, keys unique (see NormalizeAttributes).
	Attributes []Attribute
}

// Attribute is one product attribute, a key and its value.
type Attribute = index.Attribute

// NormalizeAttributes sorts attrs by key and keeps, of keys given more
// than once, the last value; it reuses attrs' array.
func NormalizeAttributes(attrs []Attribute) []Attribute {
	if len(attrs) < 2 {
		return attrs
	}
	slices.SortStableFunc(attrs, func(a, b Attribute) int { return strings.Compare(a.Key, b.Key) })
	out := attrs[:0]
	for i, a := range attrs {
		if i+1 < len(attrs) && attrs[i+1].Key == a.Key {
			continue // a later value of the same key wins
		}
		out = append(out, a)
	}
	return out
}

// Variant is one SKU of a product. Size is empty for one-size items.
type Variant struct {
	SKU  string
	Size string
}

// Inventory is an absolute stock level of one SKU at one location.
type Inventory struct {
	SKU      string
	Location string
	Quantity int64
}

// EventType is what a customer did. The numeric values are frozen: they are
// written to the write-ahead log.
type EventType uint8

const (
	EventView       EventType = 1
	EventCartAdd    EventType = 2
	EventCartRemove EventType = 3
	EventPurchase   EventType = 4
	EventReturn     EventType = 5
	EventScan       EventType = 6
	EventEmailClick EventType = 7
	EventAdClick    EventType = 8
	EventImpression EventType = 9
	numEventTypes             = 10
)

var eventTypeNames = [numEventTypes]string{
	"", "view", "cart_add", "cart_remove", "purchase", "return", "scan",
	"email_click", "ad_click", "impression",
}

func (t EventType) String() string {
	if int(t) < len(eventTypeNames) && t != 0 {
		return eventTypeNames[t]
	}
	return fmt.Sprintf("event(%d)", uint8(t))
}

// ParseEventType maps an API name ("cart_add") to its EventType.
func ParseEventType(s string) (EventType, bool) {
	for i := 1; i < numEventTypes; i++ {
		if eventTypeNames[i] == s {
			return EventType(i), true
		}
	}
	return 0, false
}

// Event is something a customer (or an anonymous visitor) did.
type Event struct {
	Type        EventType
	Customer    string // the actor: Customer or AnonymousID, not both
	AnonymousID string
	Product     string // the product; may be empty when SKU is given
	SKU         string // carries the size
	Channel     string
	Location    string
	Order       string
	Price       float64
	TS          int64 // unix milliseconds; 0 means "time of receipt", filled in before logging
}

// Identify links an anonymous id to a customer, or to another anonymous id
// (a cookie to a device id): exactly one of Customer and ToAnonymousID is
// set. Chains resolve: cookie -> device -> customer.
type Identify struct {
	AnonymousID   string
	Customer      string
	ToAnonymousID string
}

// Exclusion keeps a product out of picks until a time: for one actor
// (Customer or AnonymousID), or for everyone when both are empty. A later
// exclusion of the same product for the same actor replaces the earlier
// one, so Until at or before now lifts it.
type Exclusion struct {
	Customer    string
	AnonymousID string
	Product     string
	Until       int64 // unix milliseconds
}

// Campaign is what an email campaign showed an actor: its products in
// slot order, as first chosen at TS. Later opens of the same campaign
// within Options.CampaignTTL show the same slots, replacing only those no
// longer eligible (each replacement is another Campaign record with the
// original TS).
type Campaign struct {
	Customer    string
	AnonymousID string
	Name        string
	Products    []string
	TS          int64 // unix milliseconds the campaign's picks were first chosen
}

// Location is a store (or "online") with optional coordinates.
type Location struct {
	ID       string
	Name     string
	Lat, Lon float64
	HasCoord bool
}
