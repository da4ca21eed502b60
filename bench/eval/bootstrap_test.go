package eval

import "testing"

// TestBootstrap checks the intervals on cases computed by hand.
func TestBootstrap(t *testing.T) {
	tests := []struct {
		name string
		got  Interval
		want Interval
	}{
		// Every resample of a constant sample has its mean.
		{"constant", Bootstrap([]float64{1, 1, 1}, 2000, 1), Interval{1, 1}},
		// Means of resamples of {0, 1}: 0, 0.5, 1 with probability 1/4,
		// 1/2, 1/4: both tails hold far more than 2.5%.
		{"coin", Bootstrap([]float64{0, 1}, 2000, 1), Interval{0, 1}},
		{"empty", Bootstrap(nil, 2000, 1), Interval{}},
		{"no resamples", Bootstrap([]float64{1}, 0, 1), Interval{}},
		// Paired: the same customers on both sides, so a method that
		// equals another plus a constant differs by exactly that.
		{"paired shift", PairedBootstrap([]float64{1, 0.5, 0.25, 1}, []float64{0.5, 0, -0.25, 0.5}, 2000, 1), Interval{0.5, 0.5}},
		{"paired equal", PairedBootstrap([]float64{0, 1, 0, 1}, []float64{0, 1, 0, 1}, 2000, 1), Interval{0, 0}},
		// Differences d = {1, 0, 0, 0}: the resample mean is j/4 with j
		// draws of the first customer, j ~ Binomial(4, 1/4).
		// P(j = 0) = 0.316 > 2.5%: low end 0. P(j >= 3) = 0.0508 >= 2.5%
		// but P(j = 4) = 0.0039 < 2.5%: high end 3/4.
		{"paired one customer apart", PairedBootstrap([]float64{1, 1, 0, 0}, []float64{0, 1, 0, 0}, 4000, 7), Interval{0, 0.75}},
	}
	for _, tc := range tests {
		if !near(tc.got.Lo, tc.want.Lo) || !near(tc.got.Hi, tc.want.Hi) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	x := []float64{0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0}
	a, b := Bootstrap(x, 500, 3), Bootstrap(x, 500, 3)
	if a != b {
		t.Errorf("same seed, different intervals: %v and %v", a, b)
	}
	if mean := 5.0 / 12; !(a.Lo < mean && mean < a.Hi) {
		t.Errorf("interval %v does not hold the mean %v", a, mean)
	}
}

// TestRunIntervals checks that Run compares the engine-like method, and
// not the baselines, with the best baseline of each metric.
func TestRunIntervals(t *testing.T) {
	root := writeSets(t)
	rec := &recorder{}
	rep, err := Run(SetHM, root, "", 2, append([]Recommender{rec}, Baselines()...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The recorder picks nothing; popularity-1d is best (HR 2/3, MAP
	// 1.25/3, see TestRun), on every customer at least as good.
	c := rep.Methods[0].VsBest
	if c == nil || c.HitRateBaseline != "popularity-1d" || c.MAPBaseline != "popularity-1d" ||
		!near(c.HitRate, -2.0/3) || !near(c.MAP, -1.25/3) || c.HitRateCI.Hi > 0 || c.HitRateCI.Lo < -1 {
		t.Errorf("comparison: %+v", c)
	}
	for _, m := range rep.Methods[1:] {
		if m.VsBest != nil {
			t.Errorf("baseline %s compared with itself: %+v", m.Method, m.VsBest)
		}
		if m.HitRateCI.Lo > m.HitRate || m.HitRateCI.Hi < m.HitRate {
			t.Errorf("%s: HR %v outside its interval %v", m.Method, m.HitRate, m.HitRateCI)
		}
	}
}
