package engine

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestLog1p compares log1p with math.Log1p from 2^-60 to 2^60 and at the
// table's edges: within 2 ulps of the result, 1.2e-16 absolute near
// 0 (the rounding of 1 + v; a ranking term cannot tell these apart).
func TestLog1p(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(v float64) {
		t.Helper()
		got, want := log1p(v), math.Log1p(v)
		if d := math.Abs(got - want); d > 2*ulp(want)+1.2e-16 {
			t.Fatalf("log1p(%v) = %v, math.Log1p %v (%g apart)", v, got, want, d)
		}
	}
	for _, v := range []float64{0, 1e-300, 1e-17, 1e-9, 0.5, 1, 2, 3, 1023, 1024, 1e9, 1 << 52, 1e300} {
		check(v)
	}
	for i := range logTableSize * 4 {
		check(float64(i) / (logTableSize * 4)) // the intervals' edges
	}
	for range 1_000_000 {
		check(math.Exp2(rng.Float64()*120 - 60))
	}
}

func ulp(x float64) float64 { return math.Nextafter(x, math.Inf(1)) - x }

var log1pSink float64

// BenchmarkLog1p: a popularity term's log, 1024 different counts.
func BenchmarkLog1p(b *testing.B) {
	xs := make([]float64, 1024)
	for i := range xs {
		xs[i] = math.Exp2(float64(i%64) - 20)
	}
	for _, f := range []struct {
		name string
		fn   func(float64) float64
	}{{"table", log1p}, {"math.Log1p", math.Log1p}} {
		b.Run(f.name, func(b *testing.B) {
			s, i := 0.0, 0
			for b.Loop() {
				s += f.fn(xs[i&1023])
				i++
			}
			log1pSink = s
		})
	}
}
