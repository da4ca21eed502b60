package load

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Kind is a kind of request in the workload.
type Kind uint8

// The request kinds. Every picks kind is a GET /v1/picks; Events is a
// POST /v1/events of Options.Batch NDJSON lines.
const (
	Ads         Kind = iota // channel=ads&customer=C..&k=10: retargeting
	Email                   // channel=email&customer=C..&k=8: at send or open time
	Screen                  // channel=screen&location=<store>&context=P..&k=8: an anonymous scan
	ScreenKnown             // the same with &customer=C..: a known shopper at the screen
	Web                     // channel=web&customer=C..&context=P..&k=10: a product page
	Events                  // POST /v1/events, a batch of events
	NumKinds
)

var kindNames = [NumKinds]string{"ads", "email", "screen", "screen_known", "web", "events"}

func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// IsPicks reports whether k is a GET /v1/picks.
func (k Kind) IsPicks() bool { return k < Events }

// Mix is the relative weight of each kind; weights need not sum to 1.
type Mix [NumKinds]float64

// picksSplit is how "picks=X" divides X among the picks kinds.
var picksSplit = [Events]float64{Ads: 0.25, Email: 0.15, Screen: 0.15, ScreenKnown: 0.15, Web: 0.2}

// DefaultMix is "picks=0.9,events=0.1".
func DefaultMix() Mix {
	m, _ := ParseMix("picks=0.9,events=0.1")
	return m
}

// ParseMix reads "kind=weight,...". Kinds are ads, email, screen,
// screen_known, web and events; "picks=X" spreads X over the picks kinds
// as ads 25 : email 15 : screen 15 : screen_known 15 : web 20 and cannot be
// combined with a picks kind. Unnamed kinds get weight 0.
func ParseMix(s string) (Mix, error) {
	var m Mix
	var picks, named bool
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return Mix{}, fmt.Errorf("load: mix entry %q is not kind=weight", part)
		}
		w, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || !(w >= 0 && w <= 1e9) {
			return Mix{}, fmt.Errorf("load: mix weight %q of %s is not a number >= 0", val, name)
		}
		name = strings.TrimSpace(name)
		if name == "picks" {
			if picks {
				return Mix{}, fmt.Errorf("load: mix names picks twice")
			}
			picks = true
			total := 0.0
			for _, v := range picksSplit {
				total += v
			}
			for k, v := range picksSplit {
				m[k] = w * v / total
			}
			continue
		}
		k := Kind(0)
		for k < NumKinds && kindNames[k] != name {
			k++
		}
		if k == NumKinds {
			return Mix{}, fmt.Errorf("load: unknown kind %q in mix (want picks, %s)", name, strings.Join(kindNames[:], ", "))
		}
		if k.IsPicks() {
			named = true
		}
		m[k] = w
	}
	if picks && named {
		return Mix{}, fmt.Errorf("load: mix gives picks and a picks kind: give one or the other")
	}
	total := 0.0
	for _, w := range m {
		total += w
	}
	if total <= 0 {
		return Mix{}, fmt.Errorf("load: mix %q has no positive weight", s)
	}
	return m, nil
}

// String formats m as ParseMix reads it, normalized to sum to 1.
func (m Mix) String() string {
	total := 0.0
	for _, w := range m {
		total += w
	}
	var b strings.Builder
	for k, w := range m {
		if w <= 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%.3g", Kind(k), w/total)
	}
	return b.String()
}

// eventKind is one line of the event mix: what customers do.
type eventKind struct {
	weight  float64
	prefix  string // `{"type":"view","channel":"web"` ...
	atStore bool   // adds a store location
}

// eventMix: mostly views, some cart adds, scans in stores, clicks from ads
// and email, impressions and a few purchases. Events carry no ts: the
// server stamps them on receipt.
var eventMix = [...]eventKind{
	{0.40, `{"type":"view","channel":"web"`, false},
	{0.15, `{"type":"view","channel":"app"`, false},
	{0.10, `{"type":"view","channel":"social"`, false},
	{0.10, `{"type":"cart_add","channel":"web"`, false},
	{0.07, `{"type":"scan","channel":"store"`, true},
	{0.05, `{"type":"ad_click","channel":"ads"`, false},
	{0.05, `{"type":"email_click","channel":"email"`, false},
	{0.05, `{"type":"impression","channel":"web"`, false},
	{0.03, `{"type":"purchase","channel":"web"`, false},
}

// builder makes the requests of one worker. It draws kinds and ids from its
// own random stream and appends requests into buffers it reuses: after the
// first few requests it allocates nothing. Not safe for concurrent use; the
// slices it returns are valid until its next call.
type builder struct {
	rng        *rand.Rand
	w          World
	cust, prod *popularity
	kindCum    [NumKinds]float64 // cumulative, normalized
	eventCum   [len(eventMix)]float64
	batch      int
	base       string // "http://host:port"
	uri, body  []byte
}

func newBuilder(base string, w World, m Mix, cust, prod *popularity, batch int, seed, stream uint64) *builder {
	b := &builder{
		rng:   rand.New(rand.NewPCG(seed, stream)),
		w:     w,
		cust:  cust,
		prod:  prod,
		batch: batch,
		base:  base,
		uri:   make([]byte, 0, 256),
		body:  make([]byte, 0, batch*128),
	}
	total := 0.0
	for _, v := range m {
		total += v
	}
	acc := 0.0
	for k, v := range m {
		acc += v / total
		b.kindCum[k] = acc
	}
	total = 0
	for _, e := range eventMix {
		total += e.weight
	}
	acc = 0
	for i, e := range eventMix {
		acc += e.weight / total
		b.eventCum[i] = acc
	}
	return b
}

// pick returns the index of the first cumulative weight above a draw.
func pick(cum []float64, u float64) int {
	for i, c := range cum {
		if u < c {
			return i
		}
	}
	// Rounding can leave the last bound a hair below 1: take the last
	// positive entry.
	for i := len(cum) - 1; i > 0; i-- {
		if cum[i] > cum[i-1] {
			return i
		}
	}
	return 0
}

// next draws the kind of the next request.
func (b *builder) next() Kind { return Kind(pick(b.kindCum[:], b.rng.Float64())) }

func (b *builder) customer(dst []byte) []byte {
	return appendID(dst, 'C', b.w.CustomerDigits, b.cust.number(b.rng.Float64()))
}

func (b *builder) product(dst []byte) []byte {
	return appendID(dst, 'P', b.w.ProductDigits, b.prod.number(b.rng.Float64()))
}

func (b *builder) store(dst []byte) []byte {
	return append(dst, b.w.Stores[b.rng.IntN(len(b.w.Stores))]...)
}

// picksURI returns the full URI of a picks request of kind k.
func (b *builder) picksURI(k Kind) []byte {
	u := append(b.uri[:0], b.base...)
	switch k {
	case Ads:
		u = append(u, "/v1/picks?channel=ads&k=10&customer="...)
		u = b.customer(u)
	case Email:
		u = append(u, "/v1/picks?channel=email&k=8&customer="...)
		u = b.customer(u)
	case Screen, ScreenKnown:
		u = append(u, "/v1/picks?channel=screen&k=8&location="...)
		u = b.store(u)
		u = append(u, "&context="...)
		u = b.product(u)
		if k == ScreenKnown {
			u = append(u, "&customer="...)
			u = b.customer(u)
		}
	case Web:
		u = append(u, "/v1/picks?channel=web&k=10&customer="...)
		u = b.customer(u)
		u = append(u, "&context="...)
		u = b.product(u)
	}
	b.uri = u
	return u
}

// eventsBody returns an NDJSON body of b.batch events.
func (b *builder) eventsBody() []byte {
	d := b.body[:0]
	for range b.batch {
		e := &eventMix[pick(b.eventCum[:], b.rng.Float64())]
		d = append(d, e.prefix...)
		d = append(d, `,"customer":"`...)
		d = b.customer(d)
		d = append(d, `","product":"`...)
		d = b.product(d)
		if e.atStore {
			d = append(d, `","location":"`...)
			d = b.store(d)
		}
		d = append(d, "\"}\n"...)
	}
	b.body = d
	return d
}
