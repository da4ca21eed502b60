package engine

import (
	"slices"
	"strings"
	"time"

	"github.com/omnipick/omnipick/engine/profile"
)

// Options configure an Engine. Start from DefaultOptions and change what
// you need, or write a literal: New fills every zero field of a literal
// with its documented default, so Options{} is the default engine.
//
// Weights are the exception that WeightsSet makes: a weight of zero is a
// real setting (a signal switched off), so with WeightsSet true New takes
// every weight field (EventWeights, FacetWeights, Priors and the *Weight
// fields) as it is, zeros included. DefaultOptions sets it, so
//
//	o := engine.DefaultOptions()
//	o.AffinityWeight = 0 // affinity plays no part in the score
//
// means zero. With WeightsSet false (a literal), zero weights take their
// defaults as every other zero field does.
type Options struct {
	Shards int // customer shards; default 64

	AffinityHalfLife   time.Duration // default 1 day
	PopularityHalfLife time.Duration // default 2 days
	CartTTL            time.Duration // cart items older than this are dropped; default 30 days
	ViewWindow         time.Duration // views this recent relate to the next item; default 1 day
	PurchaseWindow     time.Duration // purchases this recent relate to the next item (a basket); default 1 hour

	// WeightsSet says the weight fields below hold exactly the weights
	// wanted, zeros included; see Options.
	WeightsSet bool

	// EventWeights is how much each event type adds to affinity and
	// popularity; see DefaultOptions for the defaults.
	EventWeights [numEventTypes]float32
	// FacetWeights scales affinity per facet kind: category, brand, tag.
	FacetWeights [3]float32

	MaxAffinity  int // facets per profile; default 64
	MaxViews     int // recent views per profile; default 20
	MaxCart      int // cart lines per profile; default 50
	MaxPurchases int // purchased products remembered per profile; default 1000
	MaxSizes     int // learned sizes per profile; default 16
	MaxRelated   int // related products kept per product; default 128
	EventAnchors int // recent items (at most 64) a new event relates to; default 64
	TopPerFacet  int // popular products kept per facet; default 64
	TopGlobal    int // popular products kept overall; default 512

	// Ranking: score = prior[channel][reason] + AffinityWeight*affinity +
	// RelatedWeight*related + PopularityWeight*popularity.
	Priors           [numChannels][numReasons]float64
	AffinityWeight   float64 // default 0.25
	RelatedWeight    float64 // default 0.25
	PopularityWeight float64 // default 0.5
	// ContextWeight scales the attribute similarity of a candidate to the
	// query's context product (shared category prefixes, brand, tags,
	// weighted like affinity); a candidate at least half as similar as the
	// context is to itself counts as related. Default 1.
	ContextWeight    float64
	AffinityFacets   int // top facets of a profile that source candidates; default 4
	Anchors          int // most recent history items whose relations source candidates; default 48
	RelatedPerAnchor int // strongest relations taken per anchor (twice that for the context); default 16
	// TaperAnchors: anchors after the first TaperAnchors (older history)
	// take a quarter of RelatedPerAnchor (at least 2); default 16 (the
	// evaluation scores it as no taper, at half the candidates for long
	// histories); negative: no taper.
	TaperAnchors int
	FallbackScan int // eligible products scanned when sources do not fill k; default 4096
	// SiblingWeight is the relation strength a product of an anchor's
	// product group (Product.Group) gets from that anchor, relative to the
	// anchor's strongest learned relation; default 1 (a weight: zero is
	// off when WeightsSet, as is a negative value).
	SiblingWeight float64
	// SiblingsPerAnchor bounds the siblings proposed per anchor; default 8.
	SiblingsPerAnchor int
	// RelatedPopNorm, if > 0, divides each learned relation's weight by
	// (1 + the related product's decayed popularity)^RelatedPopNorm before
	// relations are made relative to the anchor's strongest, so a best
	// seller bought with everything no longer leads every list (item-CF's
	// normalisation, damped; 0.5 is a square root); default 0: raw weights
	// (docs/ranking.md: validation liked 0.5, holdout_dev did not confirm).
	RelatedPopNorm float64
	// NeighbourWeight, if > 0, turns on the user-neighbour signal
	// (neighbours.go): products bought by the Neighbours customers whose
	// decayed baskets (NeighbourBasket products, NeighbourHalfLife)
	// overlap the asker's most, found through each product's
	// NeighbourBuyers latest buyers, are proposed as related, the
	// NeighbourItems best with relation strength up to NeighbourWeight.
	// Default 0: off (docs/ranking.md: validation liked 4, holdout_dev did
	// not confirm it).
	NeighbourWeight   float64
	NeighbourHalfLife time.Duration // default 30 days
	NeighbourBasket   int           // default 32
	NeighbourBuyers   int           // default 32
	Neighbours        int           // default 20
	NeighbourItems    int           // default 24

	// FrequencyCaps: per channel of the request, an item shown (impression
	// events, on any channel) at least Max times within Window ranks below
	// every item not capped. Zero entries take three impressions within
	// two days.
	FrequencyCaps  [numChannels]FrequencyCap
	MaxImpressions int // impressions remembered per profile; default 256

	// RepurchaseWindows let a bought item come back once its window has
	// passed, by category prefix (the longest matching prefix wins). An
	// item in no window never comes back, unless it is returned.
	RepurchaseWindows []RepurchaseWindow

	CampaignTTL   time.Duration // an email campaign shows the same picks this long; default 7 days
	MaxCampaigns  int           // campaigns remembered per profile; default 16
	MaxExclusions int           // exclusions per profile; default 256
	BoostWeight   float64       // added to the score of a boosted item; default 1
	// RepeatCategoryWeight is added to the score of a product whose leaf
	// category is that of one of the customer's recent purchases (those
	// among the Anchors): customers buy again in the categories they buy
	// from. A weight (zero is off when WeightsSet); default 0.
	RepeatCategoryWeight float64

	// The blend the engine fits itself (blend.go): at each purchase a
	// pairwise model takes one step on the candidates web picks would
	// have proposed just before, and web and app picks score with its
	// weights once it has learned from BlendMinPurchases purchases (until
	// then, and without Blend, the hand-set priors and weights above).
	// Off by default: it paid on the validation split, holdout_dev did
	// not confirm it, and it costs a picks computation per purchase
	// (docs/ranking.md).
	Blend             bool
	BlendMinPurchases int     // default 1000; negative: none
	BlendRate         float64 // the SGD step size; default 0.05

	// EventIDWindow is how long an applied Record.EventID keeps a record
	// with the same id from being applied again (default 7 days);
	// MaxEventIDs bounds the ids kept (default 2M, about 55 bytes each):
	// past it the oldest go early. See eventIDs.
	EventIDWindow time.Duration
	MaxEventIDs   int

	// MaxProfiles caps the profiles held (0: no cap), enforced per shard
	// (MaxProfiles/Shards each, rounded up). A new actor in a full shard
	// makes the least recently active anonymous profiles of the shard go
	// (an eighth of the shard's share at a time, counted in
	// Stats.ProfilesEvicted); when only customers are left, the record is
	// refused with ErrProfilesFull. Replay with the same cap drops the same
	// profiles.
	MaxProfiles int

	// ApplyWorkers is how many goroutines ApplyBatch edits the profiles
	// of a batch's events on (0: GOMAXPROCS at the call; 1: one by one).
	// It changes speed only: the state is the same for every value.
	ApplyWorkers int

	Now func() time.Time // default time.Now

	// Holds, if set, makes the engine hold the profiles of only the
	// actors it reports true for (a partitioned cluster node's
	// partitions; see partial.go). nil: every actor, and everything
	// behaves exactly as without it (same bytes, same speed, no derived
	// records). Holds is called with actor ids (customers' and
	// anonymous ids alike, links followed where the profile is meant),
	// from several goroutines at once (ApplyBatch) and under the profile
	// store's locks: it must be a pure function of the id, answering the
	// same for the engine's life. It may not be combined with Blend (see
	// Check).
	Holds func(actor string) bool
}

// FrequencyCap is how often an item may be shown before it is demoted.
type FrequencyCap struct {
	Max    int
	Window time.Duration
}

// RepurchaseWindow is how long after a purchase items of a category prefix
// ("beauty/", "grocery/coffee") may be recommended again.
type RepurchaseWindow struct {
	Prefix string
	Window time.Duration
}

// DefaultOptions returns the default options, every field filled in and
// WeightsSet true: a fresh value each call, so changing it changes nothing
// else.
func DefaultOptions() Options {
	var o Options
	o.setDefaults()
	return o
}

// defaultFrequencyCap: three impressions within two days.
func defaultFrequencyCap() FrequencyCap { return FrequencyCap{Max: 3, Window: 48 * time.Hour} }

// defaultEventWeights weigh what each event type says about a customer's
// taste.
func defaultEventWeights() [numEventTypes]float32 {
	return [numEventTypes]float32{
		EventView:       0.25,
		EventCartAdd:    3,
		EventCartRemove: 0,
		EventPurchase:   5,
		EventReturn:     -5,
		EventScan:       2,
		EventEmailClick: 1.5,
		EventAdClick:    1.5,
		EventImpression: 0,
	}
}

// defaultPriors order candidate sources per channel. Ads and email lead
// with the cart, then views, then related items; a store screen leads with
// items related to the scanned product. Web and app blend: only the cart
// keeps a lead, and learned relation strength, popularity and affinity
// decide the rest (chosen by the offline evaluation, bench/eval).
func defaultPriors() [numChannels][numReasons]float64 {
	return [numChannels][numReasons]float64{
		ChannelWeb:    {ReasonPopular: 0, ReasonAffinity: 0, ReasonRelated: 0.125, ReasonViewed: 0, ReasonCart: 2},
		ChannelApp:    {ReasonPopular: 0, ReasonAffinity: 0, ReasonRelated: 0.125, ReasonViewed: 0, ReasonCart: 2},
		ChannelAds:    {ReasonPopular: 0, ReasonAffinity: 10, ReasonRelated: 100, ReasonViewed: 1000, ReasonCart: 10000},
		ChannelEmail:  {ReasonPopular: 0, ReasonAffinity: 10, ReasonRelated: 100, ReasonViewed: 1000, ReasonCart: 10000},
		ChannelScreen: {ReasonPopular: 0, ReasonAffinity: 10, ReasonRelated: 1000, ReasonViewed: 10, ReasonCart: 10},
	}
}

// setWeightDefaults fills the zero weights of an Options literal.
func (o *Options) setWeightDefaults() {
	if o.WeightsSet {
		return
	}
	o.WeightsSet = true
	dw := defaultEventWeights()
	for i := range o.EventWeights {
		if o.EventWeights[i] == 0 {
			o.EventWeights[i] = dw[i]
		}
	}
	if o.FacetWeights == [3]float32{} {
		o.FacetWeights = [3]float32{1, 0.5, 0.5}
	}
	if o.Priors == [numChannels][numReasons]float64{} {
		o.Priors = defaultPriors()
	}
	defF := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	defF(&o.AffinityWeight, 0.25)
	defF(&o.RelatedWeight, 0.25)
	defF(&o.PopularityWeight, 0.5)
	defF(&o.ContextWeight, 1)
	defF(&o.BoostWeight, 1)
	defF(&o.SiblingWeight, defaultSiblingWeight)
}

// profileLimits returns what bounds one profile.
func (o *Options) profileLimits() profile.Limits {
	return profile.Limits{
		Affinity: o.MaxAffinity, Views: o.MaxViews, Cart: o.MaxCart, Purchases: o.MaxPurchases,
		Sizes: o.MaxSizes, Impressions: o.MaxImpressions, Exclusions: o.MaxExclusions,
		Campaigns: o.MaxCampaigns, HalfLife: o.AffinityHalfLife.Seconds(),
	}
}

func (o *Options) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Shards, 64)
	defD(&o.AffinityHalfLife, 24*time.Hour)
	defD(&o.PopularityHalfLife, 48*time.Hour)
	defD(&o.CartTTL, 30*24*time.Hour)
	defD(&o.ViewWindow, 24*time.Hour)
	defD(&o.PurchaseWindow, time.Hour)
	o.setWeightDefaults()
	def(&o.MaxAffinity, 64)
	def(&o.MaxViews, 20)
	def(&o.MaxCart, 50)
	def(&o.MaxPurchases, 1000)
	def(&o.MaxSizes, 16)
	def(&o.MaxRelated, 128)
	def(&o.EventAnchors, 64)
	o.EventAnchors = min(o.EventAnchors, maxSignalAnchors) // the anchors are sliced from an array of that size
	def(&o.TopPerFacet, 64)
	def(&o.TopGlobal, 512)
	def(&o.AffinityFacets, 4)
	def(&o.Anchors, 48)
	def(&o.RelatedPerAnchor, 16)
	if o.TaperAnchors == 0 {
		o.TaperAnchors = 16
	}
	def(&o.FallbackScan, 4096)
	defD(&o.NeighbourHalfLife, 30*24*time.Hour)
	def(&o.NeighbourBasket, 32)
	def(&o.NeighbourBuyers, 32)
	def(&o.Neighbours, 20)
	def(&o.NeighbourItems, 24)
	def(&o.SiblingsPerAnchor, defaultSiblingsPerAnchor)
	if o.BlendMinPurchases == 0 {
		o.BlendMinPurchases = 1000
	}
	if o.BlendRate == 0 {
		o.BlendRate = 0.05
	}
	dc := defaultFrequencyCap()
	for i := range o.FrequencyCaps {
		c := &o.FrequencyCaps[i]
		def(&c.Max, dc.Max)
		defD(&c.Window, dc.Window)
	}
	def(&o.MaxImpressions, 256)
	defD(&o.CampaignTTL, 7*24*time.Hour)
	def(&o.MaxCampaigns, 16)
	def(&o.MaxExclusions, 256)
	defD(&o.EventIDWindow, 7*24*time.Hour)
	def(&o.MaxEventIDs, 2_000_000)
	o.RepurchaseWindows = slices.Clone(o.RepurchaseWindows)
	for i := range o.RepurchaseWindows {
		o.RepurchaseWindows[i].Prefix = strings.Trim(o.RepurchaseWindows[i].Prefix, "/")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}
