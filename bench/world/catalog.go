package world

import (
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/omnipick/omnipick/engine"
)

// dept is a store department: the first segment of a category path.
type dept uint8

const (
	deptWomen dept = iota
	deptMen
	deptKids
	numDepts
)

// mission is what a visit is about; each category serves one or more.
// Visits with a mission browse and buy across its categories, which is
// what gives the world its co-purchase structure (a hat with gloves, a
// scarf and a coat; leggings with a sports top).
type mission uint8

const (
	missionWinter mission = iota
	missionSport
	missionBasics
	missionOccasion
	numMissions
)

const (
	mWinter   = 1 << missionWinter
	mSport    = 1 << missionSport
	mBasics   = 1 << missionBasics
	mOccasion = 1 << missionOccasion
)

// sizeGroup is a size system. Group 0 is "one size": a single variant
// with no size.
type sizeGroup struct {
	name  string
	dept  dept
	sizes []string
}

const (
	sgOne = iota
	sgWomenLetter
	sgWomenNumeric
	sgWomenShoe
	sgMenLetter
	sgMenNumeric
	sgMenShoe
	sgKidsAge
	sgKidsShoe
	numSizeGroups
)

var sizeGroups = [numSizeGroups]sizeGroup{
	sgOne:          {"", 0, []string{""}},
	sgWomenLetter:  {"women-letter", deptWomen, []string{"XS", "S", "M", "L", "XL"}},
	sgWomenNumeric: {"women-numeric", deptWomen, []string{"4", "6", "8", "10", "12", "14", "16"}},
	sgWomenShoe:    {"women-shoe", deptWomen, []string{"36", "37", "38", "39", "40", "41", "42"}},
	sgMenLetter:    {"men-letter", deptMen, []string{"S", "M", "L", "XL", "XXL"}},
	sgMenNumeric:   {"men-numeric", deptMen, []string{"28", "30", "32", "34", "36", "38", "40"}},
	sgMenShoe:      {"men-shoe", deptMen, []string{"40", "41", "42", "43", "44", "45", "46"}},
	sgKidsAge:      {"kids-age", deptKids, []string{"2Y", "4Y", "6Y", "8Y", "10Y", "12Y", "14Y"}},
	sgKidsShoe:     {"kids-shoe", deptKids, []string{"26", "27", "28", "29", "30", "31", "32", "33", "34", "35"}},
}

// oneSizeSuffix ends the SKU of a product without sizes: "P00123-OS".
const oneSizeSuffix = "OS"

// Brands are invented. The pools below say which brands make what.
var brands = [...]string{
	"Nordvik", "Fjellsand", "Pinecrest", "Halden", "Lumen & Co", "Marlowe",
	"Velora", "Tidewater", "Oakhaven", "Kestrel Active", "Stride Lab",
	"Urbanloom", "Solbury", "Bramble Kids", "Little Otter",
}

var (
	brandsWinter   = []uint8{0, 1, 2, 3}
	brandsSport    = []uint8{9, 10, 11}
	brandsBasics   = []uint8{8, 3, 11, 7}
	brandsWomen    = []uint8{4, 6, 3, 7}
	brandsMen      = []uint8{5, 3, 7}
	brandsBags     = []uint8{12, 4, 6}
	brandsShoes    = []uint8{10, 3, 1, 11}
	brandsKids     = []uint8{13, 14, 8}
	brandsKidsWarm = []uint8{13, 14, 1}
)

// material is a title word with the tags it implies ("merino" -> wool).
type material struct {
	word string
	tags []string
}

var (
	matKnit = []material{
		{"merino", []string{"wool", "merino"}}, {"wool", []string{"wool"}},
		{"cashmere", []string{"cashmere", "wool"}}, {"alpaca", []string{"wool", "alpaca"}},
		{"cable-knit", []string{"wool"}}, {"cotton-blend", []string{"cotton"}},
	}
	matCoat = []material{
		{"wool", []string{"wool"}}, {"down", []string{"down"}}, {"padded", nil},
		{"quilted", nil}, {"waterproof", []string{"waterproof"}}, {"recycled", []string{"recycled"}},
	}
	matWarmAcc = []material{
		{"wool", []string{"wool"}}, {"merino", []string{"wool", "merino"}},
		{"cashmere", []string{"cashmere", "wool"}}, {"fleece", []string{"fleece"}},
		{"chunky-knit", []string{"wool"}},
	}
	matGloves = []material{
		{"leather", []string{"leather"}}, {"wool", []string{"wool"}},
		{"fleece", []string{"fleece"}}, {"touchscreen", nil}, {"knitted", []string{"wool"}},
	}
	matBoots = []material{
		{"leather", []string{"leather"}}, {"suede", []string{"suede"}},
		{"waterproof", []string{"waterproof"}}, {"lined", nil},
	}
	matCotton = []material{
		{"cotton", []string{"cotton"}}, {"organic cotton", []string{"organic", "cotton"}},
		{"linen", []string{"linen", "summer"}}, {"recycled", []string{"recycled"}},
		{"jersey", nil}, {"", nil},
	}
	matDressy = []material{
		{"silk", []string{"silk"}}, {"viscose", nil}, {"linen", []string{"linen", "summer"}},
		{"satin", nil}, {"floral", []string{"summer"}}, {"cotton", []string{"cotton"}},
	}
	matDenim = []material{
		{"denim", []string{"denim"}}, {"stretch", []string{"denim"}},
		{"organic", []string{"organic", "denim"}}, {"recycled", []string{"recycled", "denim"}},
	}
	matSport = []material{
		{"recycled", []string{"recycled"}}, {"seamless", nil}, {"quick-dry", nil},
		{"thermal", []string{"thermal"}}, {"high-rise", nil}, {"", nil},
	}
	matSneaker = []material{
		{"running", []string{"running"}}, {"leather", []string{"leather"}},
		{"canvas", nil}, {"knit", nil}, {"recycled", []string{"recycled"}},
	}
	matBag = []material{
		{"leather", []string{"leather"}}, {"canvas", nil},
		{"vegan leather", []string{"vegan"}}, {"nylon", nil},
	}
	matSocks = []material{
		{"cotton", []string{"cotton"}}, {"wool", []string{"wool"}},
		{"organic cotton", []string{"organic", "cotton"}}, {"bamboo", nil},
	}
	matTrousers = []material{
		{"cotton", []string{"cotton"}}, {"stretch", nil}, {"linen", []string{"linen", "summer"}},
		{"corduroy", nil}, {"organic", []string{"organic", "cotton"}},
	}
	matHoodie = []material{
		{"fleece", []string{"fleece"}}, {"organic cotton", []string{"organic", "cotton"}},
		{"recycled", []string{"recycled"}}, {"brushed", nil}, {"", nil},
	}
)

// Adjectives by a category's main mission.
var adjectives = [numMissions][]string{
	missionWinter:   {"Nordic", "Alpine", "Cosy", "Highland", "Arctic", "Fjord", "Heritage", "Winter"},
	missionSport:    {"Active", "Trail", "Studio", "Flex", "Pace", "Tempo", "Core", "Aero"},
	missionBasics:   {"Classic", "Essential", "Everyday", "Relaxed", "Soft", "Urban", "Weekend", "Easy"},
	missionOccasion: {"Elegant", "Riviera", "Coastal", "Vintage", "Modern", "Tailored", "City", "Garden"},
}

// category is a leaf category and everything products in it share.
type category struct {
	path         string
	dept         dept
	group        uint8   // size group
	oneSizeShare float64 // share of products that are one-size anyway (gloves)
	lo, hi       float64 // price range, EUR
	weight       float64 // relative share of the catalog and of attention
	missions     uint8
	tags         []string // every product carries these
	nouns        []string
	materials    []material
	brands       []uint8
}

// mainMission is the lowest mission bit of c: it picks the title's tone.
func (c *category) mainMission() mission {
	for m := range numMissions {
		if c.missions&(1<<m) != 0 {
			return m
		}
	}
	return missionBasics
}

var (
	tagsWinter   = []string{"winter"}
	tagsSport    = []string{"sport"}
	tagsBasics   = []string{"basics"}
	tagsCasual   = []string{"casual"}
	tagsOffice   = []string{"office"}
	tagsOccasion = []string{"occasion"}
)

// categories is the leaf category tree. At most 64 (missions track
// categories in a uint64).
var categories = []category{
	// women
	{"women/tops/t-shirts", deptWomen, sgWomenLetter, 0, 9.95, 34.95, 6, mBasics, tagsBasics, []string{"t-shirt", "v-neck tee", "crew-neck tee", "striped tee"}, matCotton, brandsBasics},
	{"women/tops/blouses", deptWomen, sgWomenNumeric, 0, 24.95, 69.95, 4, mOccasion, tagsOffice, []string{"blouse", "wrap blouse", "shirt blouse"}, matDressy, brandsWomen},
	{"women/knitwear/sweaters", deptWomen, sgWomenLetter, 0, 39.95, 129.95, 5, mWinter, tagsWinter, []string{"sweater", "jumper", "turtleneck", "roll-neck sweater"}, matKnit, brandsWinter},
	{"women/knitwear/cardigans", deptWomen, sgWomenLetter, 0, 39.95, 109.95, 3, mWinter, tagsWinter, []string{"cardigan", "long cardigan", "knit jacket"}, matKnit, brandsWinter},
	{"women/dresses", deptWomen, sgWomenNumeric, 0, 29.95, 129.95, 5, mOccasion, tagsOccasion, []string{"dress", "midi dress", "wrap dress", "maxi dress", "shirt dress"}, matDressy, brandsWomen},
	{"women/jeans", deptWomen, sgWomenNumeric, 0, 39.95, 99.95, 4, mBasics, tagsBasics, []string{"jeans", "skinny jeans", "straight jeans", "wide-leg jeans", "mom jeans"}, matDenim, brandsBasics},
	{"women/leggings", deptWomen, sgWomenLetter, 0, 19.95, 59.95, 3, mSport, tagsSport, []string{"leggings", "running tights", "yoga leggings", "7/8 leggings"}, matSport, brandsSport},
	{"women/sportswear/tops", deptWomen, sgWomenLetter, 0, 19.95, 49.95, 3, mSport, tagsSport, []string{"sports top", "running top", "training tee", "tank top"}, matSport, brandsSport},
	{"women/sportswear/sports-bras", deptWomen, sgWomenLetter, 0, 19.95, 49.95, 2, mSport, tagsSport, []string{"sports bra", "yoga bra", "running bra"}, matSport, brandsSport},
	{"women/hoodies", deptWomen, sgWomenLetter, 0, 29.95, 79.95, 2, mSport | mBasics, tagsCasual, []string{"hoodie", "zip hoodie", "sweatshirt"}, matHoodie, brandsSport},
	{"women/coats", deptWomen, sgWomenNumeric, 0, 79.95, 299.95, 3, mWinter, tagsWinter, []string{"coat", "parka", "puffer jacket", "wrap coat"}, matCoat, brandsWinter},
	{"women/accessories/gloves", deptWomen, sgWomenLetter, 0.5, 14.95, 49.95, 1.5, mWinter, tagsWinter, []string{"gloves", "mittens"}, matGloves, brandsWinter},
	{"women/accessories/scarves", deptWomen, sgOne, 0, 14.95, 69.95, 1.5, mWinter, tagsWinter, []string{"scarf", "snood", "wrap scarf"}, matWarmAcc, brandsWinter},
	{"women/accessories/hats", deptWomen, sgOne, 0, 12.95, 39.95, 1.5, mWinter, tagsWinter, []string{"beanie", "bobble hat", "beret"}, matWarmAcc, brandsWinter},
	{"women/accessories/bags", deptWomen, sgOne, 0, 29.95, 149.95, 2, mOccasion, tagsCasual, []string{"tote bag", "crossbody bag", "shoulder bag", "backpack"}, matBag, brandsBags},
	{"women/accessories/socks", deptWomen, sgOne, 0, 4.95, 14.95, 1, mBasics, tagsBasics, []string{"socks", "ankle socks", "socks 3-pack"}, matSocks, brandsBasics},
	{"women/shoes/boots", deptWomen, sgWomenShoe, 0, 69.95, 229.95, 2.5, mWinter, tagsWinter, []string{"boots", "ankle boots", "chelsea boots", "snow boots"}, matBoots, brandsWinter},
	{"women/shoes/sneakers", deptWomen, sgWomenShoe, 0, 49.95, 149.95, 2.5, mSport | mBasics, tagsCasual, []string{"sneakers", "running shoes", "trainers"}, matSneaker, brandsShoes},
	// men
	{"men/tops/t-shirts", deptMen, sgMenLetter, 0, 9.95, 34.95, 5, mBasics, tagsBasics, []string{"t-shirt", "crew-neck tee", "pocket tee", "henley"}, matCotton, brandsBasics},
	{"men/shirts", deptMen, sgMenLetter, 0, 29.95, 79.95, 4, mOccasion, tagsOffice, []string{"oxford shirt", "flannel shirt", "overshirt", "button-down shirt"}, matTrousers, brandsMen},
	{"men/knitwear/sweaters", deptMen, sgMenLetter, 0, 39.95, 129.95, 4, mWinter, tagsWinter, []string{"sweater", "jumper", "turtleneck", "quarter-zip sweater"}, matKnit, brandsWinter},
	{"men/hoodies", deptMen, sgMenLetter, 0, 29.95, 79.95, 3, mSport | mBasics, tagsCasual, []string{"hoodie", "zip hoodie", "sweatshirt"}, matHoodie, brandsSport},
	{"men/jeans", deptMen, sgMenNumeric, 0, 39.95, 109.95, 4, mBasics, tagsBasics, []string{"jeans", "slim jeans", "straight jeans", "relaxed jeans"}, matDenim, brandsBasics},
	{"men/trousers/chinos", deptMen, sgMenNumeric, 0, 39.95, 89.95, 3, mOccasion, tagsOffice, []string{"chinos", "trousers", "pleated trousers"}, matTrousers, brandsMen},
	{"men/coats", deptMen, sgMenLetter, 0, 89.95, 329.95, 3, mWinter, tagsWinter, []string{"coat", "parka", "puffer jacket", "overcoat"}, matCoat, brandsWinter},
	{"men/sportswear/shorts", deptMen, sgMenLetter, 0, 19.95, 44.95, 2, mSport, tagsSport, []string{"running shorts", "training shorts", "shorts"}, matSport, brandsSport},
	{"men/sportswear/tops", deptMen, sgMenLetter, 0, 19.95, 49.95, 2, mSport, tagsSport, []string{"training tee", "running top", "base layer"}, matSport, brandsSport},
	{"men/accessories/gloves", deptMen, sgMenLetter, 0.5, 14.95, 54.95, 1.2, mWinter, tagsWinter, []string{"gloves", "mittens"}, matGloves, brandsWinter},
	{"men/accessories/scarves", deptMen, sgOne, 0, 14.95, 69.95, 1, mWinter, tagsWinter, []string{"scarf", "snood"}, matWarmAcc, brandsWinter},
	{"men/accessories/hats", deptMen, sgOne, 0, 12.95, 39.95, 1.2, mWinter, tagsWinter, []string{"beanie", "watch cap", "flat cap"}, matWarmAcc, brandsWinter},
	{"men/accessories/socks", deptMen, sgOne, 0, 4.95, 14.95, 1, mBasics, tagsBasics, []string{"socks", "sports socks", "socks 3-pack"}, matSocks, brandsBasics},
	{"men/accessories/belts", deptMen, sgOne, 0, 19.95, 59.95, 0.8, mOccasion, tagsOffice, []string{"belt", "braided belt"}, matBag, brandsMen},
	{"men/shoes/boots", deptMen, sgMenShoe, 0, 79.95, 239.95, 2, mWinter, tagsWinter, []string{"boots", "chelsea boots", "work boots", "hiking boots"}, matBoots, brandsWinter},
	{"men/shoes/sneakers", deptMen, sgMenShoe, 0, 49.95, 159.95, 2.5, mSport | mBasics, tagsCasual, []string{"sneakers", "running shoes", "trainers"}, matSneaker, brandsShoes},
	// kids
	{"kids/tops/t-shirts", deptKids, sgKidsAge, 0, 6.95, 19.95, 3, mBasics, tagsBasics, []string{"t-shirt", "printed tee", "long-sleeve tee"}, matCotton, brandsKids},
	{"kids/hoodies", deptKids, sgKidsAge, 0, 19.95, 39.95, 2, mSport | mBasics, tagsCasual, []string{"hoodie", "zip hoodie", "sweatshirt"}, matHoodie, brandsKids},
	{"kids/dresses", deptKids, sgKidsAge, 0, 14.95, 39.95, 1.5, mOccasion, tagsOccasion, []string{"dress", "party dress", "pinafore dress"}, matDressy, brandsKids},
	{"kids/jeans", deptKids, sgKidsAge, 0, 19.95, 39.95, 2, mBasics, tagsBasics, []string{"jeans", "slim jeans", "pull-on jeans"}, matDenim, brandsKids},
	{"kids/leggings", deptKids, sgKidsAge, 0, 9.95, 24.95, 1.5, mSport | mBasics, tagsCasual, []string{"leggings", "sports leggings"}, matSport, brandsKids},
	{"kids/coats", deptKids, sgKidsAge, 0, 39.95, 119.95, 2, mWinter, tagsWinter, []string{"coat", "snowsuit", "puffer jacket", "parka"}, matCoat, brandsKidsWarm},
	{"kids/knitwear/sweaters", deptKids, sgKidsAge, 0, 19.95, 49.95, 1.5, mWinter, tagsWinter, []string{"sweater", "jumper", "fair-isle sweater"}, matKnit, brandsKidsWarm},
	{"kids/accessories/hats", deptKids, sgOne, 0, 9.95, 24.95, 1, mWinter, tagsWinter, []string{"beanie", "bobble hat", "balaclava"}, matWarmAcc, brandsKidsWarm},
	{"kids/accessories/gloves", deptKids, sgOne, 0, 7.95, 24.95, 1, mWinter, tagsWinter, []string{"mittens", "gloves"}, matGloves, brandsKidsWarm},
	{"kids/accessories/scarves", deptKids, sgOne, 0, 9.95, 24.95, 0.7, mWinter, tagsWinter, []string{"scarf", "snood"}, matWarmAcc, brandsKidsWarm},
	{"kids/accessories/socks", deptKids, sgOne, 0, 3.95, 9.95, 0.7, mBasics, tagsBasics, []string{"socks", "socks 5-pack"}, matSocks, brandsKids},
	{"kids/shoes/boots", deptKids, sgKidsShoe, 0, 34.95, 89.95, 1.5, mWinter, tagsWinter, []string{"boots", "snow boots", "rain boots"}, matBoots, brandsKidsWarm},
	{"kids/shoes/sneakers", deptKids, sgKidsShoe, 0, 24.95, 69.95, 1.5, mSport | mBasics, tagsCasual, []string{"sneakers", "trainers", "velcro sneakers"}, matSneaker, brandsKids},
}

// catalog is the product catalog in compact arrays, indexed by product
// number p (0-based; the id is P00001 for p = 0). Built once per Generate
// and read-only afterwards.
type catalog struct {
	seed       uint64
	n          int
	attributes bool // products carry feed attributes (Config.Attributes)

	idW int    // width of one product id in ids
	ids string // fixed-width product ids back to back

	cat      []uint8
	group    []uint8
	brand    []uint8
	adj      []uint8
	mat      []uint8
	noun     []uint8
	inactive []bool
	cents    []uint32
	rank     []uint32 // popularity rank within the category, 0 = most popular

	skuStart []uint32 // variants of p are skuStart[p]..skuStart[p+1]-1
	skuOff   []uint32 // SKU v is skus[skuOff[v]:skuOff[v+1]]
	skus     string

	byCat [][]uint32 // products of each category, most popular first

	assortment float64 // Config.StoreAssortment
	soldOut    float64 // Config.SoldOutShare
	// Store s (1-based location index) carries storeProds[s-1][off[c]:off[c+1]]
	// in category c, most popular first.
	storeProds [][]uint32
	storeOff   [][]uint32
}

func newCatalog(cfg Config, seed uint64) *catalog {
	n := cfg.Products
	c := &catalog{
		seed:       seed,
		n:          n,
		attributes: cfg.Attributes,
		cat:        make([]uint8, n),
		group:      make([]uint8, n),
		brand:      make([]uint8, n),
		adj:        make([]uint8, n),
		mat:        make([]uint8, n),
		noun:       make([]uint8, n),
		inactive:   make([]bool, n),
		cents:      make([]uint32, n),
		rank:       make([]uint32, n),
		skuStart:   make([]uint32, n+1),
		byCat:      make([][]uint32, len(categories)),
		assortment: cfg.StoreAssortment,
		soldOut:    cfg.SoldOutShare,
	}
	c.idW, c.ids = idArena('P', 5, n)

	cum := make([]float64, len(categories))
	total := 0.0
	for i := range categories {
		total += categories[i].weight
		cum[i] = total
	}
	pcg := rand.NewPCG(0, 0)
	r := rand.New(pcg)
	nskus := 0
	for p := range n {
		pcg.Seed(mix(seed, tagProduct), uint64(p))
		ci := p // the first products seed every category
		if p >= len(categories) {
			x := r.Float64() * total
			ci, _ = slices.BinarySearch(cum, x)
			ci = min(ci, len(categories)-1)
		}
		cat := &categories[ci]
		c.cat[p] = uint8(ci)
		c.group[p] = cat.group
		if cat.oneSizeShare > 0 && r.Float64() < cat.oneSizeShare {
			c.group[p] = sgOne
		}
		c.brand[p] = cat.brands[r.IntN(len(cat.brands))]
		c.adj[p] = uint8(r.IntN(len(adjectives[cat.mainMission()])))
		c.mat[p] = uint8(r.IntN(len(cat.materials)))
		c.noun[p] = uint8(r.IntN(len(cat.nouns)))
		u := r.Float64()
		c.cents[p] = pricePoint(cat.lo + (cat.hi-cat.lo)*u*u)
		c.inactive[p] = r.Float64() < cfg.InactiveShare
		c.byCat[ci] = append(c.byCat[ci], uint32(p))
		c.skuStart[p] = uint32(nskus)
		nskus += len(sizeGroups[c.group[p]].sizes)
	}
	c.skuStart[n] = uint32(nskus)

	// SKU ids: "P00123-8", "P00123-OS".
	c.skuOff = make([]uint32, 0, nskus+1)
	buf := make([]byte, 0, nskus*(c.idW+4))
	for p := range n {
		id := c.id(uint32(p))
		for _, size := range sizeGroups[c.group[p]].sizes {
			if size == "" {
				size = oneSizeSuffix
			}
			c.skuOff = append(c.skuOff, uint32(len(buf)))
			buf = append(buf, id...)
			buf = append(buf, '-')
			buf = append(buf, size...)
		}
	}
	c.skuOff = append(c.skuOff, uint32(len(buf)))
	c.skus = string(buf)

	// Popularity: a seeded shuffle within each category.
	key := func(p uint32) uint64 { return mix(seed^tagCatalog, uint64(p)) }
	for _, list := range c.byCat {
		slices.SortFunc(list, func(a, b uint32) int {
			ka, kb := key(a), key(b)
			switch {
			case ka < kb:
				return -1
			case ka > kb:
				return 1
			}
			return int(a) - int(b)
		})
		for i, p := range list {
			c.rank[p] = uint32(i)
		}
	}

	// Store assortments.
	c.storeProds = make([][]uint32, cfg.Stores)
	c.storeOff = make([][]uint32, cfg.Stores)
	for s := range cfg.Stores {
		off := make([]uint32, 0, len(categories)+1)
		var prods []uint32
		for _, list := range c.byCat {
			off = append(off, uint32(len(prods)))
			for _, p := range list {
				if c.carries(p, s+1) {
					prods = append(prods, p)
				}
			}
		}
		off = append(off, uint32(len(prods)))
		c.storeProds[s], c.storeOff[s] = slices.Clip(prods), off
	}
	return c
}

// id returns product p's id.
func (c *catalog) id(p uint32) string {
	o := int(p) * c.idW
	return c.ids[o : o+c.idW]
}

// sku returns the SKU id of variant v of product p.
func (c *catalog) sku(p uint32, v uint8) string {
	i := c.skuStart[p] + uint32(v)
	return c.skus[c.skuOff[i]:c.skuOff[i+1]]
}

// variants is how many SKUs product p has.
func (c *catalog) variants(p uint32) int {
	return int(c.skuStart[p+1] - c.skuStart[p])
}

// popularity is 1 for the most popular product of a category, falling
// linearly to 0 for the least.
func (c *catalog) popularity(p uint32) float64 {
	n := len(c.byCat[c.cat[p]])
	return 1 - float64(c.rank[p])/float64(n)
}

// carries reports whether store loc (1-based location index) stocks p.
// Popular products are carried about twice as often as the average.
func (c *catalog) carries(p uint32, loc int) bool {
	h := mix(mix(c.seed^tagCarry, uint64(p)), uint64(loc))
	return unit(h) < c.assortment*2*c.popularity(p)
}

// stock is the quantity of variant v of p at location loc. It is a pure
// function of the seed, so purchases can avoid what is sold out.
func (c *catalog) stock(p uint32, v uint8, loc int) int64 {
	h := mix(mix(c.seed^tagStock, uint64(c.skuStart[p])+uint64(v)), uint64(loc))
	if unit(h) < c.soldOut {
		return 0
	}
	span := uint64(8)
	if loc == locOnline {
		span = 4 + uint64(60*c.popularity(p))
	}
	return 1 + int64((h>>32)%span)
}

// storeList is the part of store loc's assortment in category ci.
func (c *catalog) storeList(loc int, ci uint8) []uint32 {
	off := c.storeOff[loc-1]
	return c.storeProds[loc-1][off[ci]:off[ci+1]]
}

// colors are the demo's product colours (api/images.go draws them).
var colors = []string{"black", "white", "grey", "navy", "blue", "green", "olive", "red", "burgundy", "pink", "beige", "camel", "brown", "cream", "yellow"}

// fabrics name the material a title word implies, for the material
// attribute; "" is a plain product of its category.
var fabrics = map[string]string{
	"merino": "merino wool", "wool": "wool", "cashmere": "cashmere", "alpaca": "alpaca wool", "cable-knit": "wool",
	"cotton-blend": "cotton blend", "down": "down", "padded": "polyester", "quilted": "polyester", "waterproof": "polyester",
	"recycled": "recycled polyester", "fleece": "polyester fleece", "chunky-knit": "wool", "leather": "leather",
	"touchscreen": "polyester", "knitted": "wool", "suede": "suede", "lined": "leather", "cotton": "cotton",
	"organic cotton": "organic cotton", "linen": "linen", "jersey": "cotton jersey", "": "cotton", "silk": "silk",
	"viscose": "viscose", "satin": "satin", "floral": "viscose", "denim": "cotton denim", "stretch": "stretch cotton",
	"organic": "organic cotton", "seamless": "polyamide", "quick-dry": "polyester", "thermal": "polyester",
	"high-rise": "polyamide", "running": "mesh", "canvas": "canvas", "knit": "knit", "vegan leather": "polyurethane",
	"nylon": "nylon", "bamboo": "bamboo viscose", "corduroy": "cotton corduroy", "brushed": "cotton",
}

// googleCategories map a category segment to Google's product taxonomy,
// most specific first; anything else is clothing.
var googleCategories = []struct{ segment, taxonomy string }{
	{"hats", "Apparel & Accessories > Clothing Accessories > Hats"},
	{"gloves", "Apparel & Accessories > Clothing Accessories > Gloves & Mittens"},
	{"scarves", "Apparel & Accessories > Clothing Accessories > Scarves & Shawls"},
	{"belts", "Apparel & Accessories > Clothing Accessories > Belts"},
	{"bags", "Apparel & Accessories > Handbags, Wallets & Cases > Handbags"},
	{"socks", "Apparel & Accessories > Clothing > Underwear & Socks > Socks"},
	{"shoes", "Apparel & Accessories > Shoes"},
	{"coats", "Apparel & Accessories > Clothing > Outerwear > Coats & Jackets"},
	{"sportswear", "Apparel & Accessories > Clothing > Activewear"},
	{"leggings", "Apparel & Accessories > Clothing > Activewear"},
}

// attributesOf returns product p's feed attributes, sorted by key: its
// colour (a stable draw), the gender and age group of its department, its
// material and its place in Google's taxonomy.
func (c *catalog) attributesOf(p uint32, cat *category, mat material) []engine.Attribute {
	gender, age := "female", "adult"
	switch cat.dept {
	case deptMen:
		gender = "male"
	case deptKids:
		gender, age = "unisex", "kids"
	}
	fabric, ok := fabrics[mat.word]
	if !ok {
		fabric = mat.word
	}
	taxonomy := "Apparel & Accessories > Clothing"
	segs := strings.Split(cat.path, "/")
	for _, g := range googleCategories {
		if slices.Contains(segs, g.segment) {
			taxonomy = g.taxonomy
			break
		}
	}
	return []engine.Attribute{
		{Key: "age_group", Value: age},
		{Key: "color", Value: colors[mix(c.seed^tagColor, uint64(p))%uint64(len(colors))]},
		{Key: "gender", Value: gender},
		{Key: "google_product_category", Value: taxonomy},
		{Key: "material", Value: fabric},
	}
}

// emitProducts emits every product. Each product gets fresh Tags and
// Variants slices.
func (c *catalog) emitProducts(r *engine.Record, emit func(*engine.Record) error) error {
	var title []byte
	for i := range c.n {
		p := uint32(i)
		cat := &categories[c.cat[p]]
		mat := cat.materials[c.mat[p]]
		id := c.id(p)

		title = append(title[:0], adjectives[cat.mainMission()][c.adj[p]]...)
		if mat.word != "" {
			title = append(title, ' ')
			title = append(title, mat.word...)
		}
		title = append(title, ' ')
		title = append(title, cat.nouns[c.noun[p]]...)

		tags := make([]string, 0, len(cat.tags)+len(mat.tags))
		tags = append(tags, cat.tags...)
		for _, t := range mat.tags {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}

		g := &sizeGroups[c.group[p]]
		vars := make([]engine.Variant, len(g.sizes))
		for v, size := range g.sizes {
			vars[v] = engine.Variant{SKU: c.sku(p, uint8(v)), Size: size}
		}

		r.Op = engine.OpProduct
		r.Product = engine.Product{
			ID:        id,
			Title:     string(title),
			URL:       "https://shop.example/p/" + id,
			Image:     "/img/" + id + ".svg", // drawn by the server itself (api/images.go): works offline
			Price:     float64(c.cents[p]) / 100,
			Currency:  "EUR",
			Category:  cat.path,
			Brand:     brands[c.brand[p]],
			Tags:      tags,
			SizeGroup: g.name,
			Variants:  vars,
			Inactive:  c.inactive[p],
		}
		if c.attributes {
			r.Product.Attributes = c.attributesOf(p, cat, mat)
		}
		if err := emit(r); err != nil {
			return err
		}
	}
	return nil
}

// emitInventory emits the stock of every SKU online and at every store
// that carries its product, SKU by SKU.
func (w *world) emitInventory(r *engine.Record, emit func(*engine.Record) error) error {
	c := w.cat
	var at []int // stores carrying the current product
	for i := range c.n {
		p := uint32(i)
		at = at[:0]
		for loc := 1; loc < len(w.locs); loc++ {
			if c.carries(p, loc) {
				at = append(at, loc)
			}
		}
		for v := range c.variants(p) {
			sku := c.sku(p, uint8(v))
			r.Op = engine.OpInventory
			r.Inventory = engine.Inventory{SKU: sku, Location: w.locs[locOnline].ID, Quantity: c.stock(p, uint8(v), locOnline)}
			if err := emit(r); err != nil {
				return err
			}
			for _, loc := range at {
				r.Inventory = engine.Inventory{SKU: sku, Location: w.locs[loc].ID, Quantity: c.stock(p, uint8(v), loc)}
				if err := emit(r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
