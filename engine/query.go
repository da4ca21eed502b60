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
	numReasons
)

var reasonNames = [numReasons]string{"popular", "affinity", "related", "viewed", "cart"}

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
}

// Reset clears q for reuse, keeping the slices' capacity.
func (q *Query) Reset() {
	locs, excl := q.Locations[:0], q.Exclude[:0]
	*q = Query{Locations: locs, Exclude: excl}
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
