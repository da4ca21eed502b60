package eval

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
)

// applyAll applies recs to m in order.
func applyAll(t *testing.T, m Recommender, recs ...engine.Record) {
	t.Helper()
	for i := range recs {
		if err := m.Apply(&recs[i]); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
}

func TestEngineAdapter(t *testing.T) {
	m := NewEngine("eng", engine.Options{})
	if m.Name() != "eng" {
		t.Errorf("name %q", m.Name())
	}
	var recs []engine.Record
	for _, id := range []string{"A", "B", "C", "D", "E"} {
		recs = append(recs, product(id, id, "home/"+strings.ToLower(id), 1, "EUR"))
	}
	for _, id := range []string{"A", "B", "C", "D", "E"} {
		recs = append(recs, stock(id))
	}
	const t0 = 1_600_000_000_000
	buy := func(cust, item string, ts int64) engine.Record {
		return event(engine.EventPurchase, cust, "", item, "web", "", 1, ts)
	}
	recs = append(recs,
		// A and B go together; C is bought most.
		buy("u1", "A", t0), buy("u1", "B", t0+1000),
		buy("u2", "A", t0+2000), buy("u2", "B", t0+3000),
		buy("u3", "C", t0+4000), buy("u4", "C", t0+5000), buy("u5", "C", t0+6000),
		buy("u6", "A", t0+7000),
	)
	applyAll(t, m, recs...)
	if got := [3]int{m.Applied(engine.OpProduct), m.Applied(engine.OpInventory), m.Applied(engine.OpEvent)}; got != [3]int{5, 5, 8} {
		t.Errorf("applied products, stock, events = %v, want [5 5 8]", got)
	}
	if st := m.Engine().Stats(); st.EventCount(engine.EventPurchase) != 8 || st.Products != 5 {
		t.Errorf("engine stats %+v", st)
	}

	dst := m.Recommend("u6", 2, t0+Day, []string{"keep"})
	if len(dst) != 3 || dst[0] != "keep" || dst[1] != "B" || slices.Contains(dst, "A") {
		t.Errorf("Recommend(u6, 2) = %q, want [keep B ...] without A (bought)", dst)
	}
	if got := m.Recommend("nobody", 12, t0+Day, nil); len(got) != 5 || got[0] != "C" {
		t.Errorf("Recommend(nobody, 12) = %q, want all 5, C first", got)
	}

	// An event without a time is stamped with the replay clock: the newest
	// event time applied, not the wall clock.
	r := buy("u7", "D", 0)
	applyAll(t, m, r)
	pv, ok := m.Engine().Profile("u7", false)
	if !ok || len(pv.Purchases) != 1 || !pv.Purchases[0].At.Equal(time.UnixMilli(t0+7000)) {
		t.Errorf("u7 purchases %+v, want D at %v", pv.Purchases, time.UnixMilli(t0+7000))
	}

	// A rejected record is an error that says so.
	r = buy("u8", "nope", t0+8000)
	err := m.Apply(&r)
	if !errors.Is(err, engine.ErrUnknownSKU) || !strings.Contains(err.Error(), "engine rejected a record after 19 accepted") {
		t.Errorf("unknown product: got %v", err)
	}
	if m.Applied(engine.OpEvent) != 9 {
		t.Errorf("applied events %d after a rejection, want 9", m.Applied(engine.OpEvent))
	}
}

// writeBasketSet writes an hm-format data set in which co-purchases predict
// the holdout and popularity does not: pairs (Ai, Bi) are bought together
// by 4 customers each, P1..P3 are bought most, and the holdout customers
// bought Ai in train and buy Bi after the cut.
func writeBasketSet(t *testing.T) string {
	t.Helper()
	var arts, tx, hold strings.Builder
	arts.WriteString("article_id,product_code,prod_name,index_group_name,department_name,product_type_name,colour_group_name,graphical_appearance_name,garment_group_name,index_name\n")
	tx.WriteString("t_dat,customer_id,article_id,price,sales_channel_id\n")
	hold.WriteString("customer_id,article_id\n")
	article := func(id, kind string) {
		fmt.Fprintf(&arts, "%s,%s,%s,Group,Dept,%s,Black,Solid,Jersey,Index\n", id, id[:7], id, kind)
	}
	for i := range 3 {
		article(fmt.Sprintf("10000%d0001", i), fmt.Sprintf("kind%d", i))
		article(fmt.Sprintf("20000%d0001", i), fmt.Sprintf("kind%d", i+3))
		article(fmt.Sprintf("30000%d0001", i), "popular")
	}
	for i := range 12 { // filler, never bought
		article(fmt.Sprintf("90000%02d001", i), "filler")
	}
	for i := range 3 {
		a, b := fmt.Sprintf("10000%d0001", i), fmt.Sprintf("20000%d0001", i)
		for c := range 4 {
			cust := fmt.Sprintf("pair%d-%d", i, c)
			fmt.Fprintf(&tx, "2020-09-16,%s,%s,0.01,2\n2020-09-16,%s,%s,0.01,2\n", cust, a, cust, b)
		}
	}
	for i := range 3 {
		cust := fmt.Sprintf("hold%d", i)
		fmt.Fprintf(&tx, "2020-09-17,%s,10000%d0001,0.01,2\n", cust, i)
		fmt.Fprintf(&hold, "%s,20000%d0001\n", cust, i)
	}
	for c := range 10 {
		for i := range 3 {
			fmt.Fprintf(&tx, "2020-09-18,fan%d,30000%d0001,0.01,1\n", c, i)
		}
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "hm/articles.csv.gz"), arts.String())
	writeFile(t, filepath.Join(root, "hm/train/transactions.csv.gz"), tx.String())
	writeFile(t, filepath.Join(root, "hm/holdout_dev/holdout_purchases.csv"), hold.String())
	return root
}

func TestEngineLearnsBaskets(t *testing.T) {
	root := writeBasketSet(t)
	for _, opts := range []engine.Options{{}, ProposedOptions()} {
		eng := NewEngine("engine", opts)
		rep, err := Run(SetHM, root, "", 2, []Recommender{eng, NewPopularity()}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Customers != 3 || eng.Applied(engine.OpEvent) != rep.TrainEvents || rep.TrainEvents != 57 {
			t.Fatalf("report %+v, engine applied %d events", rep, eng.Applied(engine.OpEvent))
		}
		if e, p := rep.Methods[0], rep.Methods[1]; e.HitRate != 1 || p.HitRate != 0 {
			t.Errorf("HR@2: engine %v, popularity %v; want 1 and 0\n%s", e.HitRate, p.HitRate, rep)
		}
	}
}

// TestEngineRealDataSlice checks, on each real set's whole train split and
// holdout_dev, that the engine beats the global popularity baseline and
// accepts every record. It is the check CI runs: the three sets take well
// under two minutes (the log says how long), so the "slice" is the whole
// of them rather than a sample that would make the check noisier.
func TestEngineRealDataSlice(t *testing.T) {
	dir := realDataDir(t)
	if testing.Short() {
		t.Skip("reads the real data sets")
	}
	start := time.Now()
	var reports []Report
	for _, set := range SetNames() {
		eng := NewEngine("engine", ProposedOptions())
		rep, err := Run(set, dir, "", 12, []Recommender{eng, NewPopularity()}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		reports = append(reports, rep)
		if eng.Applied(engine.OpProduct) != rep.CatalogSize || eng.Applied(engine.OpEvent) != rep.TrainEvents {
			t.Errorf("%s: engine applied %d products and %d events, want %d and %d", set,
				eng.Applied(engine.OpProduct), eng.Applied(engine.OpEvent), rep.CatalogSize, rep.TrainEvents)
		}
		e, p := rep.Methods[0], rep.Methods[1]
		if e.HitRate <= p.HitRate {
			t.Errorf("%s: engine HR@12 %.4f does not beat popularity's %.4f", set, e.HitRate, p.HitRate)
		}
		if e.MeanLen != 12 {
			t.Errorf("%s: engine's mean list length %v, want 12", set, e.MeanLen)
		}
	}
	var b bytes.Buffer
	if err := WriteTable(&b, reports...); err != nil {
		t.Fatal(err)
	}
	t.Logf("took %s\n%s", time.Since(start).Round(time.Millisecond), b.String())
}
