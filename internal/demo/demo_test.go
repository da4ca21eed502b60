package demo

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
)

// TestRecordsEndNow checks the shift: whatever the date, the newest event
// happens at now, the span of the history is kept, and nothing but event
// times changes.
func TestRecordsEndNow(t *testing.T) {
	fixed, err := Records(time.Date(2026, 10, 30, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	for _, now := range []time.Time{
		time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC),
		time.Date(2031, 2, 1, 8, 30, 0, 0, time.UTC),
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), // before the files' dates: shifted back
	} {
		recs, err := Records(now)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != len(fixed) {
			t.Fatalf("%d records, then %d", len(fixed), len(recs))
		}
		var newest, oldest int64 = 0, 1 << 62
		var fixedOldest, fixedNewest int64 = 1 << 62, 0
		ops := map[engine.Op]int{}
		for i := range recs {
			ops[recs[i].Op]++
			if recs[i].Op != engine.OpEvent {
				continue
			}
			ts := recs[i].Event.TS
			newest, oldest = max(newest, ts), min(oldest, ts)
			fixedNewest, fixedOldest = max(fixedNewest, fixed[i].Event.TS), min(fixedOldest, fixed[i].Event.TS)
			if recs[i].Event.Customer != fixed[i].Event.Customer || recs[i].Event.Product != fixed[i].Event.Product {
				t.Fatalf("record %d changed beyond its time", i)
			}
		}
		if newest != now.UnixMilli() {
			t.Errorf("now %v: newest event at %v", now, time.UnixMilli(newest).UTC())
		}
		if newest-oldest != fixedNewest-fixedOldest {
			t.Errorf("now %v: the history spans %v, the files %v", now, time.Duration(newest-oldest)*time.Millisecond, time.Duration(fixedNewest-fixedOldest)*time.Millisecond)
		}
		if ops[engine.OpLocation] != 4 || ops[engine.OpProduct] != 600 || ops[engine.OpEvent] < 10000 {
			t.Errorf("records by kind %v", ops)
		}
	}
}

// TestLoadIsAlive loads the demo into an engine and checks what the README
// relies on: popular items, cart abandoners in the last week, and the age
// of the history as Age sees it, now and a month later.
func TestLoadIsAlive(t *testing.T) {
	now := time.Now()
	e := engine.New(engine.Options{Now: func() time.Time { return now }})
	n, err := Load(direct{e}, now)
	if err != nil {
		t.Fatal(err)
	}
	if n < 20000 {
		t.Fatalf("loaded %d records", n)
	}
	age, ok := Age(e, now)
	if !ok || age < 0 || age > time.Hour {
		t.Errorf("Age right after Load: %v, %v; want under an hour", age, ok)
	}
	later := now.Add(FreshFor + 24*time.Hour)
	if age, ok := Age(e, later); !ok || age <= FreshFor {
		t.Errorf("Age a FreshFor later: %v, %v; want over %v", age, ok, FreshFor)
	}
	if _, ok := Age(engine.New(engine.Options{}), now); ok {
		t.Error("Age of an empty engine: ok")
	}
	members := 0
	q := engine.AudienceQuery{Kind: engine.AudienceCartAbandoners, MinAge: time.Hour, MaxAge: 7 * 24 * time.Hour, Now: now.UnixMilli()}
	err = e.Audience(&q, nil, func(b []engine.Member) error { members += len(b); return nil })
	if err != nil || members == 0 {
		t.Errorf("cart abandoners of the last week: %d, %v; want some", members, err)
	}
	// A visitor nobody knows gets popular picks with a score, not an
	// arbitrary order of zeros.
	picks := e.PicksInto(nil, &engine.Query{Channel: engine.ChannelWeb, K: 5, Customer: "nobody"})
	if len(picks) != 5 {
		t.Fatalf("picks for a new visitor: %d", len(picks))
	}
	for _, p := range picks {
		if !(p.Score > 0) {
			t.Errorf("a new visitor's pick %s has score %v: popularity has decayed away", p.Item.ID, p.Score)
		}
	}
}

// TestFilesMatchWorldOrder: every file the loader reads is embedded.
func TestFilesMatchWorldOrder(t *testing.T) {
	for _, f := range world.Files() {
		if b, err := File(f.Name); err != nil || len(b) == 0 {
			t.Errorf("%s: %d bytes, %v", f.Name, len(b), err)
		}
	}
}

type direct struct{ e *engine.Engine }

func (d direct) Write(recs []engine.Record, errs []error) error {
	for i := range recs {
		errs[i] = d.e.Apply(&recs[i])
	}
	return nil
}

// TestLoadNamesTheLine: a bad record is an error naming its file and line,
// whether the decoder or the engine refuses it, blank lines counted.
func TestLoadNamesTheLine(t *testing.T) {
	const n = 2*batchLines + 500
	lines := func(line func(i int) string) *fstest.MapFile {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			b.WriteString(line(i))
			b.WriteByte('\n')
		}
		return &fstest.MapFile{Data: []byte(b.String())}
	}
	product := func(i int) string {
		return fmt.Sprintf(`{"id":"P%d","title":"T","price":1,"variants":[{"sku":"P%d"}]}`, i, i)
	}
	stock := func(i int) string { return fmt.Sprintf(`{"sku":"P%d","location":"online","quantity":1}`, i) }
	for _, tc := range []struct {
		name      string
		products  func(i int) string
		inventory func(i int) string
		want      string // "" for success
	}{
		{"all good", product, stock, ""},
		{"decoder refuses, third batch", func(i int) string {
			if i == 2*batchLines+17 {
				return `{"title":"no id"}`
			}
			return product(i)
		}, stock, "demo: products.ndjson line 2017: id: "},
		{"blank lines counted", func(i int) string {
			switch i {
			case 3, 1200:
				return "  "
			case 1500:
				return `{"id":"P1500","price":-1}`
			}
			return product(i)
		}, stock, "demo: products.ndjson line 1500: price: "},
		{"engine refuses, second batch", product, func(i int) string {
			if i == batchLines+250 {
				return `{"sku":"no-such-sku","location":"online","quantity":1}`
			}
			return stock(i)
		}, "demo: inventory.ndjson line 1250: rejected: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"locations.ndjson": {Data: []byte(`{"id":"online","name":"Shop"}` + "\n")},
				"products.ndjson":  lines(tc.products),
				"inventory.ndjson": lines(tc.inventory),
				"events.ndjson":    {Data: nil},
			}
			total, err := load(fsys, direct{engine.New(engine.Options{})}, time.Now())
			if tc.want == "" {
				if err != nil || total != 1+2*n {
					t.Fatalf("load: %d records, %v; want %d", total, err, 1+2*n)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("load: %v; want an error starting %q", err, tc.want)
			}
		})
	}
}

func TestObjectLine(t *testing.T) {
	b := []byte("a\n\n  \r\nb\nc")
	for idx, want := range []int{1, 4, 5, 6} {
		if got := objectLine(b, idx); got != want {
			t.Errorf("objectLine(%d) = %d, want %d", idx, got, want)
		}
	}
}
