package load

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"

	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
)

// World is the id space requests draw from. Its ids are spelled the way
// bench/world spells them: customers "C" and products "P" followed by the
// 1-based number, zero-padded to CustomerDigits and ProductDigits.
type World struct {
	Customers      int      // C0001..: customer numbers 1..Customers
	Products       int      // P00001..: product numbers 1..Products
	CustomerDigits int      // zero-padded width of a customer number
	ProductDigits  int      // zero-padded width of a product number
	Stores         []string // store location ids, for screen picks and scans
}

// Digit widths bench/world uses at the least (see its idArena): it pads to
// the width of the largest number, never narrower than these.
const (
	minCustomerDigits = 4
	minProductDigits  = 5
)

// errStop ends world.Generate once the locations are through.
var errStop = errors.New("load: stop")

// WorldOf returns the id space of the world cfg generates: its customer
// and product counts, their id widths, and its store ids (taken from the
// generator itself, which is cheap: it only builds the locations).
func WorldOf(cfg world.Config) (World, error) {
	w := World{
		Customers:      cfg.Customers,
		Products:       cfg.Products,
		CustomerDigits: idDigits(minCustomerDigits, cfg.Customers),
		ProductDigits:  idDigits(minProductDigits, cfg.Products),
	}
	// Only the locations are needed: keep the rest of the world tiny.
	small := cfg
	small.Products, small.Customers, small.SessionsPerCustomer = 1, 0, 0
	err := world.Generate(small, func(r *engine.Record) error {
		if r.Op != engine.OpLocation {
			return errStop
		}
		if r.Location.ID != "online" {
			w.Stores = append(w.Stores, r.Location.ID)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return World{}, fmt.Errorf("cannot list the world's stores: %w", err)
	}
	return w, nil
}

func idDigits(minDigits, n int) int { return max(minDigits, len(strconv.Itoa(n))) }

// Validate reports whether w can produce every kind of request.
func (w World) Validate() error {
	switch {
	case w.Customers < 1:
		return errors.New("load: the world has no customers")
	case w.Products < 1:
		return errors.New("load: the world has no products")
	case w.CustomerDigits < 1 || w.CustomerDigits > 18 || w.ProductDigits < 1 || w.ProductDigits > 18:
		return errors.New("load: id widths must be between 1 and 18 digits")
	case len(w.Stores) == 0:
		return errors.New("load: the world has no stores (screen picks and scans need one)")
	}
	return nil
}

// CustomerID returns the id of customer i (1-based).
func (w World) CustomerID(i int) string {
	return string(appendID(nil, 'C', w.CustomerDigits, uint64(i)))
}

// ProductID returns the id of product i (1-based).
func (w World) ProductID(i int) string {
	return string(appendID(nil, 'P', w.ProductDigits, uint64(i)))
}

// appendID appends prefix and n zero-padded to digits.
func appendID(dst []byte, prefix byte, digits int, n uint64) []byte {
	var num [20]byte
	i := len(num)
	for n >= 10 {
		i--
		num[i] = byte('0' + n%10)
		n /= 10
	}
	i--
	num[i] = byte('0' + n)
	dst = append(dst, prefix)
	for range digits - (len(num) - i) {
		dst = append(dst, '0')
	}
	return append(dst, num[i:]...)
}

// popularity draws 1-based numbers from 1..n with a Zipf-like skew and
// scatters the popular ones over the id space, so the busiest customer is
// not always C0001 (nor always in the same engine shard).
//
// Rank r (0-based) has probability about proportional to (r+1)^-s: the
// sampler inverts the CDF of the continuous power law x^-s on [1, n+1),
// which allows any s >= 0 (s = 0 is uniform; math/rand's Zipf needs s > 1,
// which makes the head far too hot for a customer population).
type popularity struct {
	n         uint64
	s         float64
	top       float64 // (n+1)^(1-s) - 1, or log(n+1) when s == 1
	mult, off uint64  // rank -> number: (r*mult + off) mod n, a bijection
}

func newPopularity(n int, s float64, seed uint64) popularity {
	p := popularity{n: uint64(n), s: s}
	if s == 1 {
		p.top = math.Log(float64(n) + 1)
	} else {
		p.top = math.Pow(float64(n)+1, 1-s) - 1
	}
	// A multiplier coprime with n makes r -> r*mult mod n a permutation.
	p.mult = (seed*0x9e3779b97f4a7c15 | 1) % p.n
	for gcd(p.mult, p.n) != 1 {
		p.mult = (p.mult + 1) % p.n
	}
	p.off = (seed ^ 0xd1b54a32d192ed03) % p.n
	return p
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// rank maps u in [0, 1) to a 0-based popularity rank.
func (p *popularity) rank(u float64) uint64 {
	var x float64
	if p.s == 1 {
		x = math.Exp(u * p.top)
	} else {
		x = math.Pow(1+u*p.top, 1/(1-p.s))
	}
	r := uint64(x) - 1
	if x < 1 {
		r = 0
	}
	return min(r, p.n-1)
}

// number maps u in [0, 1) to a 1-based id number.
func (p *popularity) number(u float64) uint64 {
	r := p.rank(u)
	hi, lo := bits.Mul64(r, p.mult)
	return (bits.Rem64(hi, lo, p.n)+p.off)%p.n + 1
}
