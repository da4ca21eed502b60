package eval

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
)

// realDataDir returns ../shared/data next to the repository root, or skips
// the test if it is absent. OMNIPICK_DATA overrides the path.
func realDataDir(t testing.TB) string {
	t.Helper()
	if raceDetector {
		t.Skip("replaying the real data sets under -race takes minutes: make test runs them without it")
	}
	if dir := os.Getenv("OMNIPICK_DATA"); dir != "" {
		return dir
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(root)
		if up == root {
			missingRealData(t, "../shared/data (no go.mod above the test's directory)")
		}
		root = up
	}
	dir := filepath.Join(root, "..", "shared", "data")
	if _, err := os.Stat(dir); err != nil {
		missingRealData(t, dir)
	}
	return dir
}

// missingRealData skips a test that needs the real data sets, except in CI
// (CI=true), where a missing data folder is a broken set-up that must not
// pass as green.
func missingRealData(t testing.TB, dir string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("real data not found at %s, and CI=true: CI must check the real data (clone ../shared beside the repository, or set OMNIPICK_DATA)", dir)
	}
	t.Skipf("real data not found at %s (with CI=true this fails)", dir)
}

// TestRealDataSlice runs the baselines on a slice of each real data set.
func TestRealDataSlice(t *testing.T) {
	dir := realDataDir(t)
	if testing.Short() {
		t.Skip("reads the real data sets")
	}
	// Lower bounds on popularity's HR@12 on the slice, well under what it
	// scores, to catch a broken loader or scorer. Taobao's targets are
	// mostly items absent from train: no bound.
	minHR := map[string]float64{SetHM: 0.005, SetOnlineRetail: 0.05, SetTaobao: 0}
	var reports []Report
	for _, set := range SetNames() {
		rep, err := Run(set, dir, "", 12, Baselines(), Options{MaxCustomers: 400, MaxTrainEvents: 40_000})
		if err != nil {
			t.Fatal(err)
		}
		reports = append(reports, rep)
		if rep.Customers == 0 || rep.CatalogSize == 0 || rep.TrainEvents == 0 {
			t.Fatalf("%s: empty run: %+v", set, rep)
		}
		if rep.TrainEvents > 40_000 {
			t.Errorf("%s: %d train events fed, want <= 40000", set, rep.TrainEvents)
		}
		for _, m := range rep.Methods {
			for name, v := range map[string]float64{"hit rate": m.HitRate, "MAP": m.MAP, "recall": m.Recall, "coverage": m.Coverage} {
				if v < 0 || v > 1 {
					t.Errorf("%s %s: %s %v out of [0, 1]", set, m.Method, name, v)
				}
			}
			if m.HitRate > rep.MaxHitRate {
				t.Errorf("%s %s: hit rate %v above the ceiling %v", set, m.Method, m.HitRate, rep.MaxHitRate)
			}
			if m.MAP > m.HitRate || m.Recall > m.HitRate {
				t.Errorf("%s %s: MAP %v or recall %v above hit rate %v", set, m.Method, m.MAP, m.Recall, m.HitRate)
			}
			if m.MeanLen != 12 {
				t.Errorf("%s %s: mean list length %v, want 12", set, m.Method, m.MeanLen)
			}
			// No Rebuy check: the slice hides older purchases from the
			// methods, so they cannot filter them (online_retail's
			// wholesalers rebuy a lot). TestRealDataFull checks it.
		}
		if pop := rep.Methods[0]; pop.HitRate <= minHR[set] && minHR[set] > 0 {
			t.Errorf("%s: popularity HR@12 %v, want > %v", set, pop.HitRate, minHR[set])
		}
	}
	var b bytes.Buffer
	if err := WriteTable(&b, reports...); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
}

// TestRealDataFull runs the baselines on the whole of each real data set
// and logs the table and JSON. It runs only with OMNIPICK_EVAL_FULL=1:
//
//	OMNIPICK_EVAL_FULL=1 go test ./bench/eval -run TestRealDataFull -v
func TestRealDataFull(t *testing.T) {
	if os.Getenv("OMNIPICK_EVAL_FULL") == "" {
		t.Skip("set OMNIPICK_EVAL_FULL=1 to evaluate the baselines on the full data sets")
	}
	dir := realDataDir(t)
	var reports []Report
	for _, set := range SetNames() {
		start := time.Now()
		rep, err := Run(set, dir, "", 12, Baselines(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		reports = append(reports, rep)
		for _, m := range rep.Methods {
			if m.Rebuy != 0 || m.MeanLen != 12 {
				t.Errorf("%s %s: rebuy %v, mean length %v; want 0 and 12", set, m.Method, m.Rebuy, m.MeanLen)
			}
		}
		t.Logf("%s: run took %s; load stats %+v", set, time.Since(start).Round(time.Millisecond), rep.Load)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, reports...); err != nil {
		t.Fatal(err)
	}
	b.WriteByte('\n')
	if err := WriteJSON(&b, reports...); err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t.Logf("\n%s\ntotal allocated %.0f MiB, peak RSS %.0f MiB", b.String(),
		float64(ms.TotalAlloc)/(1<<20), float64(ru.Maxrss)/1024)
}

// TestRealDataConsistency replays each real set and checks what an engine
// relies on: every event names a product (and SKU) of the catalog, events
// come in time order before the cut, and every product has stock.
func TestRealDataConsistency(t *testing.T) {
	dir := realDataDir(t)
	if testing.Short() {
		t.Skip("reads the real data sets")
	}
	for _, set := range SetNames() {
		d, err := OpenDataset(set, dir)
		if err != nil {
			t.Fatal(err)
		}
		products := map[string]bool{} // id -> stocked
		var last int64
		bad := 0
		err = d.Replay(func(r *engine.Record) error {
			switch r.Op {
			case engine.OpProduct:
				if products[r.Product.ID] || len(r.Product.Variants) != 1 || r.Product.Variants[0].SKU != r.Product.ID {
					bad++
				}
				products[r.Product.ID] = false
			case engine.OpInventory:
				if stocked, ok := products[r.Inventory.SKU]; !ok || stocked {
					bad++
				}
				products[r.Inventory.SKU] = true
			case engine.OpEvent:
				e := &r.Event
				if !products[e.Product] || e.SKU != e.Product || e.TS < last || e.TS >= d.Cut() ||
					(e.Customer == "") == (e.AnonymousID == "") {
					if bad++; bad < 5 {
						t.Errorf("%s: bad event %+v", set, *e)
					}
				}
				last = e.TS
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if bad > 0 {
			t.Errorf("%s: %d inconsistent records", set, bad)
		}
		for id, stocked := range products {
			if !stocked {
				t.Errorf("%s: product %s has no stock record", set, id)
				break
			}
		}
	}
}
