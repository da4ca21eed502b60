package client

import "time"

// The types below mirror the schemas of api/openapi.yaml (same names);
// the comments give the meaning, the document the limits.

// Product is a catalog entry (POST /v1/products).
type Product struct {
	ID       string   `json:"id"`
	Title    string   `json:"title,omitempty"`
	URL      string   `json:"url,omitempty"`
	Image    string   `json:"image,omitempty"`
	Price    float64  `json:"price,omitempty"`
	Currency string   `json:"currency,omitempty"`
	Category string   `json:"category,omitempty"` // "women/knitwear/sweaters"
	Brand    string   `json:"brand,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	// SizeGroup is the sizing system of the variants' sizes; empty for
	// one-size products.
	SizeGroup string `json:"size_group,omitempty"`
	// Attributes are what product feeds carry: color, gender, age_group,
	// material, pattern, google_product_category, ...
	Attributes map[string]string `json:"attributes,omitempty"`
	// Group names the product's family: the colour-ways of one design
	// share it, and a customer who saw one is shown its siblings.
	Group string `json:"group,omitempty"`
	// Variants are the SKUs; none makes a one-size product whose SKU is
	// the product id.
	Variants []Variant `json:"variants,omitempty"`
	// Active false retires the product; nil leaves it active.
	Active *bool `json:"active,omitempty"`
}

// Variant is one SKU of a product; Size is empty for one-size.
type Variant struct {
	SKU  string `json:"sku"`
	Size string `json:"size,omitempty"`
}

// Inventory is an absolute stock level (POST /v1/inventory).
type Inventory struct {
	SKU      string `json:"sku"`
	Location string `json:"location"` // "online" or a store id
	Quantity int64  `json:"quantity"`
}

// Location registers a store (POST /v1/locations). Lat and Lon go
// together; nil leaves the store without coordinates.
type Location struct {
	ID   string   `json:"id"`
	Name string   `json:"name,omitempty"`
	Lat  *float64 `json:"lat,omitempty"`
	Lon  *float64 `json:"lon,omitempty"`
}

// Event types (EventType in the document).
const (
	View       = "view"
	CartAdd    = "cart_add"
	CartRemove = "cart_remove"
	Purchase   = "purchase"
	Return     = "return"
	Scan       = "scan"
	EmailClick = "email_click"
	AdClick    = "ad_click"
	Impression = "impression"
)

// Event is something a customer did (POST /v1/events): exactly one of
// Customer and AnonymousID; Product or SKU (the SKU carries the size).
type Event struct {
	// EventID makes the event idempotent: the server applies an event id
	// once, so a retried batch is never counted twice. The client fills
	// it with a random id when empty, before the first attempt; set it
	// yourself (an order line, a message id) to deduplicate across
	// processes too.
	EventID     string    `json:"event_id,omitempty"`
	Type        string    `json:"type"`
	Customer    string    `json:"customer,omitempty"`
	AnonymousID string    `json:"anonymous_id,omitempty"`
	Product     string    `json:"product,omitempty"`
	SKU         string    `json:"sku,omitempty"`
	Channel     string    `json:"channel,omitempty"`
	Location    string    `json:"location,omitempty"` // the store of a purchase or scan
	Order       string    `json:"order,omitempty"`
	Price       float64   `json:"price,omitempty"`
	TS          time.Time `json:"ts,omitzero"` // zero: the time of receipt
}

// Identify links an anonymous id to a customer, or to another anonymous
// id (POST /v1/identify): exactly one of Customer and ToAnonymousID.
type Identify struct {
	EventID       string `json:"event_id,omitempty"` // as Event.EventID
	AnonymousID   string `json:"anonymous_id"`
	Customer      string `json:"customer,omitempty"`
	ToAnonymousID string `json:"to_anonymous_id,omitempty"`
}

// Exclusion keeps Product out of picks until Until, for one actor or (with
// neither Customer nor AnonymousID) for everyone (POST /v1/exclusions).
type Exclusion struct {
	EventID     string    `json:"event_id,omitempty"` // as Event.EventID
	Customer    string    `json:"customer,omitempty"`
	AnonymousID string    `json:"anonymous_id,omitempty"`
	Product     string    `json:"product"`
	Until       time.Time `json:"until"`
}

// WriteResult is the outcome of a write, over all the bodies the client
// sent for it.
type WriteResult struct {
	Applied int // objects applied
	// Duplicates counts objects whose event_id the server had applied
	// before (a retry of a write whose answer was lost): acknowledged, not
	// applied again.
	Duplicates int
	// Rejected lists the objects refused, with Index their position in the
	// slice given to the write method.
	Rejected []Reject
}

// Reject is one object the server refused, and why.
type Reject struct {
	Index  int    `json:"index"`
	Field  string `json:"field"` // "variants[1].sku"; empty for the whole object
	Reason string `json:"reason"`
}

// PicksQuery asks GET /v1/picks. Zero values are left out (the server's
// defaults apply).
type PicksQuery struct {
	Customer    string // who; unknown ids get non-personal picks
	AnonymousID string
	Channel     string   // web (default), app, ads, email, screen
	K           int      // how many, 1..100 (default 10)
	Locations   []string // in stock at any of these (default online)
	Context     string   // a product being looked at or scanned
	Category    string   // a category prefix
	Exclude     []string // product ids never to return
	Boost       []string // "category:PATH", "brand:NAME", "tag:NAME"
	Bury        []string // as Boost
	Pins        []Pin
	PriceMin    float64
	PriceMax    float64
	Campaign    string // stable email picks for this campaign
	Record      bool   // count the picks as impressions (frequency caps)
}

// Pin places Product at Position (1-based) when it passes the hard filters.
type Pin struct {
	Product  string
	Position int
}

// Picks is the answer of GET /v1/picks.
type Picks struct {
	Customer    string `json:"customer,omitempty"`
	AnonymousID string `json:"anonymous_id,omitempty"`
	Channel     string `json:"channel"`
	TookUS      int64  `json:"took_us"`
	Picks       []Pick `json:"picks"`
}

// Pick is one recommended product.
type Pick struct {
	Product  string   `json:"product"`
	Title    string   `json:"title"`
	Price    float64  `json:"price"`
	Currency string   `json:"currency,omitempty"`
	URL      string   `json:"url"`
	Image    string   `json:"image"`
	Category string   `json:"category,omitempty"`
	Brand    string   `json:"brand,omitempty"`
	Sizes    []string `json:"sizes"` // in stock and fitting; empty for one-size
	Reason   string   `json:"reason"`
	Score    float64  `json:"score,omitempty"`
}

// ScreenPicks is a store screen's current picks (GET
// /screen/{store}/picks.json).
type ScreenPicks struct {
	Store   string `json:"store"`
	Seq     uint64 `json:"seq"`
	Context string `json:"context,omitempty"`
	Channel string `json:"channel"`
	TookUS  int64  `json:"took_us"`
	Picks   []Pick `json:"picks"`
}

// AudienceQuery asks GET /v1/audiences/{name} (NDJSON). Zero values are
// left out.
type AudienceQuery struct {
	Name      string        // "cart_abandoners" or "viewers"
	MinAge    time.Duration // cart_abandoners
	MaxAge    time.Duration // cart_abandoners
	Category  string        // viewers
	Days      int           // viewers
	K         int
	Locations []string
}

// AudienceRow is one member of an audience with their ads picks (no
// category, brand or score).
type AudienceRow struct {
	Customer    string `json:"customer,omitempty"`
	AnonymousID string `json:"anonymous_id,omitempty"`
	Picks       []Pick `json:"picks"`
}

// Profile is a customer as the engine sees it (GET /v1/customers/{id}).
type Profile struct {
	ID                  string        `json:"id"`
	Anonymous           bool          `json:"anonymous,omitempty"`
	MergedInto          string        `json:"merged_into,omitempty"`
	MergedIntoAnonymous bool          `json:"merged_into_anonymous,omitempty"`
	Affinities          []Affinity    `json:"affinities"`
	Sizes               []ProfileSize `json:"sizes"`
	Purchases           []ItemAt      `json:"purchases"`
	Cart                []CartLine    `json:"cart"`
	Views               []ItemAt      `json:"views"`
	LinkedIDs           []string      `json:"linked_ids"`
	Impressions         []ItemAt      `json:"impressions"`
	Exclusions          []Excluded    `json:"exclusions"`
	Campaigns           []Campaign    `json:"campaigns"`
}

// Affinity is a learned weight for a facet ("c:women/knitwear", "b:nordic").
type Affinity struct {
	Facet  string  `json:"facet"`
	Weight float64 `json:"weight"`
}

// ProfileSize is a size the customer wears in a size group.
type ProfileSize struct {
	SizeGroup string    `json:"size_group"`
	Size      string    `json:"size"`
	At        time.Time `json:"at"`
	Source    string    `json:"source"` // cart or purchase
	Current   bool      `json:"current"`
}

// ItemAt is a product and when.
type ItemAt struct {
	Product string    `json:"product"`
	At      time.Time `json:"at"`
}

// CartLine is a product in the cart, with its SKU when known.
type CartLine struct {
	Product string    `json:"product"`
	SKU     string    `json:"sku,omitempty"`
	At      time.Time `json:"at"`
}

// Excluded is an active exclusion.
type Excluded struct {
	Product string    `json:"product"`
	Until   time.Time `json:"until"`
}

// Campaign is an email campaign's kept slots.
type Campaign struct {
	Campaign string    `json:"campaign"`
	At       time.Time `json:"at"`
	Products []string  `json:"products"`
}
