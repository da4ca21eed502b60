package eval

// Metrics scores ranked lists of picks against target sets, over the
// customers added to one Scorer.
type Metrics struct {
	Customers int     `json:"customers"` // customers scored
	HitRate   float64 `json:"hit_rate"`  // share of customers with >= 1 target in their top k
	MAP       float64 `json:"map"`       // mean of AveragePrecision
	Recall    float64 `json:"recall"`    // mean of hits / |targets|
	Coverage  float64 `json:"coverage"`  // distinct items picked / catalog size
	MeanLen   float64 `json:"mean_len"`  // mean list length after cutting at k
	Rebuy     float64 `json:"rebuy"`     // share of picks the customer bought in train
}

// Hits returns how many distinct items of list[:k] are in targets. An item
// listed twice counts once.
func Hits(list []string, targets map[string]struct{}, k int) int {
	list = top(list, k)
	n := 0
	for i, id := range list {
		if _, ok := targets[id]; ok && !containsString(list[:i], id) {
			n++
		}
	}
	return n
}

// AveragePrecision returns AP@k of list: the sum of precision@i over the
// ranks i <= k that hold a target (not listed before), divided by
// min(|targets|, k). It is 0 when targets is empty.
func AveragePrecision(list []string, targets map[string]struct{}, k int) float64 {
	list = top(list, k)
	denom := min(len(targets), k)
	if denom == 0 {
		return 0
	}
	hits, sum := 0, 0.0
	for i, id := range list {
		if _, ok := targets[id]; ok && !containsString(list[:i], id) {
			hits++
			sum += float64(hits) / float64(i+1)
		}
	}
	return sum / float64(denom)
}

// top returns list cut at k items.
func top(list []string, k int) []string {
	if k < 0 {
		k = 0
	}
	if len(list) > k {
		return list[:k]
	}
	return list
}

// Scorer accumulates Metrics at one k over customers' lists.
//
// A Scorer is not safe for concurrent use.
type Scorer struct {
	k, catalog int
	customers  int
	hitCust    int
	sumAP      float64
	sumRecall  float64
	picks      int
	rebuys     int
	distinct   map[string]struct{}
	hits, aps  []float64 // per customer added, for the bootstrap
}

// NewScorer returns a Scorer at k for a catalog of catalogSize items.
func NewScorer(k, catalogSize int) *Scorer {
	return &Scorer{k: k, catalog: catalogSize, distinct: map[string]struct{}{}}
}

// Add scores one customer's list against their targets; bought holds what
// the customer bought in train (may be nil). Customers with no target
// should not be added: they count as scored and can never hit. Add keeps
// the strings of list (for coverage), not the slice.
func (s *Scorer) Add(list []string, targets, bought map[string]struct{}) {
	list = top(list, s.k)
	s.customers++
	hit, ap := 0.0, 0.0
	if len(targets) > 0 {
		h := Hits(list, targets, s.k)
		if h > 0 {
			s.hitCust++
			hit = 1
		}
		s.sumRecall += float64(h) / float64(len(targets))
		ap = AveragePrecision(list, targets, s.k)
		s.sumAP += ap
	}
	s.hits, s.aps = append(s.hits, hit), append(s.aps, ap)
	s.picks += len(list)
	for _, id := range list {
		if _, ok := bought[id]; ok {
			s.rebuys++
		}
		if _, ok := s.distinct[id]; !ok {
			s.distinct[id] = struct{}{}
		}
	}
}

// Metrics returns the metrics over the customers added so far.
func (s *Scorer) Metrics() Metrics {
	m := Metrics{Customers: s.customers}
	if s.customers > 0 {
		n := float64(s.customers)
		m.HitRate = float64(s.hitCust) / n
		m.MAP = s.sumAP / n
		m.Recall = s.sumRecall / n
		m.MeanLen = float64(s.picks) / n
	}
	if s.catalog > 0 {
		m.Coverage = float64(len(s.distinct)) / float64(s.catalog)
	}
	if s.picks > 0 {
		m.Rebuy = float64(s.rebuys) / float64(s.picks)
	}
	return m
}
