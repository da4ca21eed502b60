package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/omnipick/omnipick/engine"
)

// TestRun checks a whole run on the hm fixture against hand-computed
// numbers (see hmHoldoutCSV for the targets).
func TestRun(t *testing.T) {
	root := writeSets(t)
	rep, err := Run(SetHM, root, "", 2, []Recommender{NewPopularity(), NewLastDayPopularity(), NewCoOccurrence()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CatalogSize != 4 || rep.TrainEvents != 5 || rep.HoldoutCustomers != 4 ||
		rep.Customers != 3 || rep.Targets != 4 || rep.TargetsInCatalog != 3 || rep.MaxHitRate != 1 {
		t.Errorf("report: %+v", rep)
	}
	// Popularity: 0100001001 (3), 0100002001 (1), 0100003001 (1), 0100001002 (0).
	// aaa gets [0100002001 0100003001]: no hit. ccc [0100001001 0100002001]:
	// hit at 2 of 2 targets. ddd [0100001001 0100002001]: no hit.
	// Last day (09-19: 0100003001 once): aaa [0100003001 0100002001]: no
	// hit; ccc as popularity; ddd [0100003001 0100001001]: hit at 1.
	// Co-occurrence: aaa's 0100001001 was also bought by bbb, with
	// 0100002001: [0100002001 0100003001]; ccc and ddd as popularity.
	want := map[string]Metrics{
		"popularity":    {Customers: 3, HitRate: 1.0 / 3, MAP: 0.25 / 3, Recall: 0.5 / 3, Coverage: 3.0 / 4, MeanLen: 2},
		"popularity-1d": {Customers: 3, HitRate: 2.0 / 3, MAP: 1.25 / 3, Recall: 1.5 / 3, Coverage: 3.0 / 4, MeanLen: 2},
		"cooccurrence":  {Customers: 3, HitRate: 1.0 / 3, MAP: 0.25 / 3, Recall: 0.5 / 3, Coverage: 3.0 / 4, MeanLen: 2},
	}
	if len(rep.Methods) != 3 {
		t.Fatalf("got %d methods, want 3", len(rep.Methods))
	}
	for _, m := range rep.Methods {
		w := want[m.Method]
		g := m.Metrics
		if g.Customers != w.Customers || !near(g.HitRate, w.HitRate) || !near(g.MAP, w.MAP) ||
			!near(g.Recall, w.Recall) || !near(g.Coverage, w.Coverage) || g.MeanLen != w.MeanLen || g.Rebuy != 0 {
			t.Errorf("%s:\ngot  %+v\nwant %+v", m.Method, g, w)
		}
	}
}

func TestRunOptions(t *testing.T) {
	root := writeSets(t)
	customers := func(opts Options) []string {
		t.Helper()
		rec := &recorder{}
		if _, err := Run(SetHM, root, "", 2, []Recommender{rec}, opts); err != nil {
			t.Fatal(err)
		}
		slices.Sort(rec.asked)
		return rec.asked
	}
	all := customers(Options{})
	if want := []string{"aaa", "ccc", "ddd"}; !slices.Equal(all, want) {
		t.Fatalf("customers %v, want %v", all, want)
	}
	two := customers(Options{MaxCustomers: 2})
	if len(two) != 2 || !slices.Equal(two, customers(Options{MaxCustomers: 2})) {
		t.Errorf("MaxCustomers 2: got %v, not 2 or not deterministic", two)
	}
	one := customers(Options{MaxCustomers: 1})
	if len(one) != 1 || !slices.Contains(two, one[0]) {
		t.Errorf("MaxCustomers 1: got %v, want one of %v", one, two)
	}
	if got := customers(Options{CustomerFraction: 1e-9}); len(got) != 0 {
		t.Errorf("CustomerFraction 1e-9: got %v, want none", got)
	}
	// The latest train event only: the methods no longer know aaa bought
	// 0100001001, so popularity offers it again, and the report says so.
	rep, err := Run(SetHM, root, "", 2, []Recommender{NewPopularity()}, Options{MaxTrainEvents: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TrainEvents != 1 || rep.Customers != 3 || rep.Targets != 4 {
		t.Errorf("MaxTrainEvents 1: report %+v", rep)
	}
	if r := rep.Methods[0].Rebuy; !near(r, 1.0/6) {
		t.Errorf("MaxTrainEvents 1: rebuy %v, want 1/6", r)
	}
}

// recorder is a Recommender that notes whom it was asked about.
type recorder struct {
	asked []string
	asOf  []int64
	fail  bool
}

func (r *recorder) Name() string { return "recorder" }

func (r *recorder) Apply(rec *engine.Record) error {
	if r.fail && rec.Op == engine.OpEvent {
		return errors.New("boom")
	}
	return nil
}

func (r *recorder) Recommend(customer string, k int, asOf int64, dst []string) []string {
	r.asked = append(r.asked, customer)
	r.asOf = append(r.asOf, asOf)
	return dst
}

func TestRunErrors(t *testing.T) {
	root := writeSets(t)
	if _, err := Run(SetHM, root, "", 2, []Recommender{&recorder{fail: true}}, Options{}); err == nil ||
		!strings.Contains(err.Error(), "recorder: cannot apply event record: boom") {
		t.Errorf("failing Apply: got %v", err)
	}
	if _, err := Run(SetHM, root, root+"/nope.csv", 2, Baselines(), Options{}); err == nil {
		t.Error("missing holdout file: got no error")
	}
	if _, err := Run(SetHM, root, "", 0, Baselines(), Options{}); err == nil {
		t.Error("k 0: got no error")
	}
}

func TestReportOutput(t *testing.T) {
	root := writeSets(t)
	var reports []Report
	for _, set := range SetNames() {
		rep, err := Run(set, root, "", 12, Baselines(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		reports = append(reports, rep)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, reports...); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	table := lines[:1+len(Baselines())*len(reports)]
	for _, l := range table {
		if utf8.RuneCountInString(l) != utf8.RuneCountInString(table[0]) {
			t.Errorf("table rows not aligned:\n%s", b.String())
			break
		}
	}
	if !strings.HasPrefix(table[0], "set ") || !strings.Contains(table[0], "HR@12") ||
		!strings.HasPrefix(table[1], "hm ") || !strings.Contains(table[1], " popularity ") {
		t.Errorf("unexpected table:\n%s", b.String())
	}
	if len(lines) != len(table)+len(reports) || !strings.HasPrefix(lines[len(table)], "hm (dev): catalog 4,") {
		t.Errorf("unexpected set lines:\n%s", b.String())
	}

	b.Reset()
	if err := WriteJSON(&b, reports...); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 18 {
		t.Fatalf("got %d JSON objects, want 18", len(got))
	}
	if got[0]["set"] != "hm" || got[0]["method"] != "popularity" || got[0]["k"] != 12.0 ||
		got[17]["set"] != "taobao" || got[17]["method"] != "itemcf-group" {
		t.Errorf("unexpected JSON: %s", b.String())
	}
	for _, key := range []string{"customers", "hit_rate", "map", "recall", "coverage", "rebuy", "apply_ms", "recommend_ms"} {
		if _, ok := got[0][key]; !ok {
			t.Errorf("JSON object has no %q: %v", key, got[0])
		}
	}
}

// TestRunValidationSplit checks the validation split's boundaries on
// hand-built histories: what is learned, who is scored, which purchases
// are targets and the time picks are asked for.
func TestRunValidationSplit(t *testing.T) {
	root := writeSets(t)
	// hm's validation cut is 2020-09-18: 09-17 is learned, 09-18 scored.
	writeFile(t, filepath.Join(root, "hm/train/transactions.csv.gz"), `t_dat,customer_id,article_id,product_code,price,sales_channel_id,channel_assumed
2020-09-17,aaa,0100001001,0100001,0.05,2,online
2020-09-17,bbb,0100002001,0100002,0.02,1,store
2020-09-18,aaa,0100001001,0100001,0.05,2,online
2020-09-18,aaa,0100001002,0100001,0.05,2,online
2020-09-18,ccc,0100003001,0100003,0.01,2,online
2020-09-19,bbb,0100003001,0100003,0.01,1,store
2020-09-19,bbb,0100003001,0100003,0.01,1,store
`)
	rec := &recorder{}
	rep, err := Run(SetHM, root, "", 2, []Recommender{rec, NewPopularity()}, Options{Split: SplitValidation})
	if err != nil {
		t.Fatal(err)
	}
	// aaa's rebuy of 0100001001 is no target; ccc was not seen before the
	// cut; bbb's two units are one target.
	if rep.Split != SplitValidation || rep.TrainEvents != 2 || rep.CatalogSize != 4 || rep.HoldoutCustomers != 2 ||
		rep.Customers != 2 || rep.Targets != 2 || rep.TargetsInCatalog != 2 {
		t.Errorf("report: %+v", rep)
	}
	if want := int64(1600387200000); len(rec.asOf) != 2 || rec.asOf[0] != want || rec.asOf[1] != want {
		t.Errorf("asked as of %v, want the validation cut %d", rec.asOf, want)
	}
	// Popularity learned 0100001001 and 0100002001 once each. aaa gets
	// [0100002001 0100001002]: hit at 2. bbb gets [0100001001 0100001002]:
	// no hit.
	if m := rep.Methods[1].Metrics; !near(m.HitRate, 0.5) || !near(m.MAP, 0.25) {
		t.Errorf("popularity: %+v", m)
	}

	// taobao: a favourite makes a customer present; the catalog holds
	// only the items seen before the cut (2017-11-30T16:00:00Z).
	writeFile(t, filepath.Join(root, "taobao/train/events.csv.gz"), `user_id,item_id,category_id,event_type,behavior_type,timestamp,ts_utc
1,11,100,view,pv,1511539200,2017-11-24T16:00:00Z
2,12,100,favorite,fav,1511539260,2017-11-24T16:01:00Z
1,12,100,purchase,buy,1512057599,2017-11-30T15:59:59Z
2,13,200,purchase,buy,1512057600,2017-11-30T16:00:00Z
1,11,100,purchase,buy,1512143999,2017-12-01T15:59:59Z
`)
	rep, err = Run(SetTaobao, root, "", 2, []Recommender{NewPopularity()}, Options{Split: SplitValidation})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TrainEvents != 3 || rep.CatalogSize != 2 || rep.Customers != 2 || rep.Targets != 2 ||
		rep.TargetsInCatalog != 1 || rep.MaxHitRate != 0.5 {
		t.Errorf("taobao report: %+v", rep)
	}
	if _, err := Run(SetHM, root, filepath.Join(root, "hm/holdout_dev/holdout_purchases.csv"), 2, nil, Options{Split: SplitValidation}); err == nil {
		t.Error("validation with a holdout file: got no error")
	}
	if _, err := Run(SetHM, root, "", 2, nil, Options{Split: "test"}); !errors.Is(err, ErrUnknownSplit) {
		t.Errorf("unknown split: got %v", err)
	}
}

// TestRunValidationFolds checks the other validation windows (Options.Fold)
// on hm, on one history: fold 2 learns 09-16 and scores 09-17 only (what
// comes after is neither learned nor a target); fold 3, the window of
// holdout_dev's length, learns 09-16 and scores 09-17 to 09-19. Both are
// asked as of 09-17; a fold Run does not know is refused.
func TestRunValidationFolds(t *testing.T) {
	root := writeSets(t)
	writeFile(t, filepath.Join(root, "hm/train/transactions.csv.gz"), `t_dat,customer_id,article_id,product_code,price,sales_channel_id,channel_assumed
2020-09-16,aaa,0100001001,0100001,0.05,2,online
2020-09-16,bbb,0100002001,0100002,0.02,1,store
2020-09-17,aaa,0100003001,0100003,0.01,2,online
2020-09-17,ccc,0100003001,0100003,0.01,2,online
2020-09-19,bbb,0100003001,0100003,0.01,1,store
2020-09-19,aaa,0100002001,0100002,0.02,2,online
`)
	// ccc was not seen before the cut in either fold.
	cases := []struct {
		fold                        int
		holdout, customers, targets int
	}{
		{2, 1, 1, 1}, // aaa's 09-17 purchase; the 09-19 ones are past the window
		{3, 2, 2, 3}, // aaa's 09-17 and 09-19 purchases, bbb's 09-19 one
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("fold %d", c.fold), func(t *testing.T) {
			rec := &recorder{}
			rep, err := Run(SetHM, root, "", 2, []Recommender{rec, NewPopularity()}, Options{Split: SplitValidation, Fold: c.fold})
			if err != nil {
				t.Fatal(err)
			}
			if rep.TrainEvents != 2 || rep.HoldoutCustomers != c.holdout || rep.Customers != c.customers || rep.Targets != c.targets {
				t.Errorf("report: %+v", rep)
			}
			if want := int64(1600300800000); len(rec.asOf) != c.customers || rec.asOf[0] != want {
				t.Errorf("asked as of %v, want the fold's cut %d for each customer", rec.asOf, want)
			}
		})
	}
	for _, fold := range []int{-1, 4} {
		if _, err := Run(SetHM, root, "", 2, nil, Options{Split: SplitValidation, Fold: fold}); !errors.Is(err, ErrUnknownFold) {
			t.Errorf("fold %d: got %v, want ErrUnknownFold", fold, err)
		}
	}
}
