package world

import (
	"math"
	"strconv"

	"github.com/omnipick/omnipick/engine"
)

// city is where stores open, in order: the first three stores are Berlin,
// Hamburg and Munich; after the list runs out, each city gets a second
// store, then a third.
type city struct {
	slug, name string
	lat, lon   float64
}

var cities = [...]city{
	{"berlin", "Berlin", 52.5200, 13.4050},
	{"hamburg", "Hamburg", 53.5511, 9.9937},
	{"munich", "München", 48.1374, 11.5755},
	{"cologne", "Köln", 50.9375, 6.9603},
	{"frankfurt", "Frankfurt am Main", 50.1109, 8.6821},
	{"stuttgart", "Stuttgart", 48.7758, 9.1829},
	{"dusseldorf", "Düsseldorf", 51.2277, 6.7735},
	{"leipzig", "Leipzig", 51.3397, 12.3731},
	{"dortmund", "Dortmund", 51.5136, 7.4653},
	{"essen", "Essen", 51.4556, 7.0116},
	{"bremen", "Bremen", 53.0793, 8.8017},
	{"dresden", "Dresden", 51.0504, 13.7373},
	{"hanover", "Hannover", 52.3759, 9.7320},
	{"nuremberg", "Nürnberg", 49.4521, 11.0767},
	{"duisburg", "Duisburg", 51.4344, 6.7623},
	{"bochum", "Bochum", 51.4818, 7.2162},
	{"wuppertal", "Wuppertal", 51.2562, 7.1508},
	{"bielefeld", "Bielefeld", 52.0302, 8.5325},
	{"bonn", "Bonn", 50.7374, 7.0982},
	{"munster", "Münster", 51.9607, 7.6261},
	{"mannheim", "Mannheim", 49.4875, 8.4660},
	{"karlsruhe", "Karlsruhe", 49.0069, 8.4037},
	{"augsburg", "Augsburg", 48.3705, 10.8978},
	{"wiesbaden", "Wiesbaden", 50.0782, 8.2398},
	{"kiel", "Kiel", 54.3233, 10.1228},
	{"freiburg", "Freiburg im Breisgau", 47.9990, 7.8421},
	{"aachen", "Aachen", 50.7753, 6.0839},
	{"lubeck", "Lübeck", 53.8655, 10.6866},
	{"rostock", "Rostock", 54.0924, 12.0991},
	{"mainz", "Mainz", 49.9929, 8.2473},
	{"erfurt", "Erfurt", 50.9848, 11.0299},
	{"kassel", "Kassel", 51.3127, 9.4797},
	{"potsdam", "Potsdam", 52.3906, 13.0645},
	{"regensburg", "Regensburg", 49.0134, 12.1016},
	{"heidelberg", "Heidelberg", 49.3988, 8.6724},
	{"ulm", "Ulm", 48.4011, 9.9876},
	{"vienna", "Wien", 48.2082, 16.3738},
	{"zurich", "Zürich", 47.3769, 8.5417},
	{"amsterdam", "Amsterdam", 52.3676, 4.9041},
	{"copenhagen", "København", 55.6761, 12.5683},
}

// locOnline is the index of "online" in the location list; stores follow
// at 1..Stores.
const locOnline = 0

// makeLocations lists "online" and then the stores. Coordinates of a
// city's second and later stores are spread a few kilometres around its
// centre, deterministically.
func makeLocations(stores int) []engine.Location {
	locs := make([]engine.Location, 0, stores+1)
	locs = append(locs, engine.Location{ID: "online", Name: "Online shop"})
	for i := range stores {
		c := cities[i%len(cities)]
		n := i/len(cities) + 1
		num := strconv.Itoa(n)
		loc := engine.Location{
			ID:       "store-" + c.slug + "-" + num,
			Name:     "Omnipick " + c.name,
			Lat:      c.lat,
			Lon:      c.lon,
			HasCoord: true,
		}
		if n > 1 {
			loc.Name += " " + num
			h := mix(uint64(i), uint64(n))
			loc.Lat = roundCoord(c.lat + (unit(h)-0.5)*0.08)
			loc.Lon = roundCoord(c.lon + (unit(mix(h, 1))-0.5)*0.12)
		}
		locs = append(locs, loc)
	}
	return locs
}

func roundCoord(v float64) float64 {
	return math.Round(v*1e4) / 1e4
}
