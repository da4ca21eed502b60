package engine

import "github.com/omnipick/omnipick/index"

// Channel is where picks are shown; it chooses the candidate sources and
// their priors.
type Channel uint8

const (
	ChannelWeb Channel = iota
	ChannelApp
	ChannelAds
	ChannelEmail
	ChannelScreen
	numChannels
)

var channelNames = [numChannels]string{"web", "app", "ads", "email", "screen"}

func (c Channel) String() string {
	if c < numChannels {
		return channelNames[c]
	}
	return "unknown"
}

// ParseChannel maps an API name to its Channel.
func ParseChannel(s string) (Channel, bool) {
	for i, n := range channelNames {
		if n == s {
			return Channel(i), true
		}
	}
	return 0, false
}

// Reason says which candidate source a pick came from.
type Reason uint8

const (
	ReasonPopular Reason = iota
	ReasonAffinity
	ReasonRelated
	ReasonViewed
	ReasonCart
	ReasonPinned // placed by the request's pin parameter
	numReasons
)

var reasonNames = [numReasons]string{"popular", "affinity", "related", "viewed", "cart", "pinned"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// MaxK bounds how many picks one query may ask for.
const MaxK = 100

// Query asks for picks. The strings may be views into a request buffer:
// the engine never keeps them after PicksInto returns. A Query may be
// reused after Reset.
type Query struct {
	Customer    string // the actor: Customer or AnonymousID (both empty: non-personal)
	AnonymousID string
	Channel     Channel
	K           int      // 1..MaxK; 0 means the default, 10
	Locations   []string // any of these; empty means "online"
	Context     string   // product being looked at or scanned
	Category    string   // category prefix filter
	Exclude     []string // product ids never to return
	Now         int64    // unix milliseconds; 0 means Options.Now()

	// Business rules of this request. A boosted item (one in any of the
	// Boost facets) gains Options.BoostWeight and the facets also source
	// candidates; a buried one ranks below every item not buried. A facet
	// the catalog does not know is ignored.
	Boost    []Facet
	Bury     []Facet
	Pins     []Pin   // products placed at fixed positions, if eligible
	PriceMin float64 // inclusive; 0: no lower bound
	PriceMax float64 // inclusive; 0: no upper bound
}

// Pin places a product at a 1-based position of the picks. A pinned
// product still passes the hard filters (in stock in her size, not bought,
// not excluded); one that does not is left out.
type Pin struct {
	Product string
	Pos     int
}

// Reset clears q for reuse, keeping the slices' capacity.
func (q *Query) Reset() {
	*q = Query{Locations: q.Locations[:0], Exclude: q.Exclude[:0], Boost: q.Boost[:0], Bury: q.Bury[:0], Pins: q.Pins[:0]}
}

// k returns how many picks q asks for, within 1..MaxK.
func (q *Query) k() int {
	switch {
	case q.K <= 0:
		return 10
	case q.K > MaxK:
		return MaxK
	}
	return q.K
}

// Pick is one recommended product. Item is the catalog entry as it was when
// the pick was made (catalog items are immutable; an upsert installs a new
// one), so it stays valid after PicksInto returns. SizeMask has bit i set
// when Item.Variants[i] is in stock at one of the asked locations in a size
// the customer wears (one-size variants count as fitting).
type Pick struct {
	Item     *index.Item
	Reason   Reason
	Score    float64
	SizeMask uint64
}
