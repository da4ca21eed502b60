package eval

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
)

// replay returns every record of set under root, copied.
func replay(t *testing.T, root, set string) ([]engine.Record, LoadStats) {
	t.Helper()
	d, err := OpenDataset(set, root)
	if err != nil {
		t.Fatal(err)
	}
	var recs []engine.Record
	if err := d.Replay(func(r *engine.Record) error { recs = append(recs, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	// Products, then inventory, then events.
	last := engine.Op(0)
	for i, r := range recs {
		if r.Op < last || r.Op > engine.OpEvent {
			t.Fatalf("record %d is %s after %s", i, r.Op, last)
		}
		last = r.Op
	}
	return recs, d.Stats()
}

func unixMS(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func product(id, title, cat string, price float64, currency string, tags ...string) engine.Record {
	return engine.Record{Op: engine.OpProduct, Product: engine.Product{
		ID: id, Title: title, Category: cat, Price: price, Currency: currency, Tags: tags,
		Variants: []engine.Variant{{SKU: id}},
	}}
}

// grouped returns the product record r in product group g.
func grouped(r engine.Record, g string) engine.Record {
	r.Product.Group = g
	return r
}

func stock(sku string) engine.Record {
	return engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: sku, Location: "online", Quantity: Stock}}
}

func event(typ engine.EventType, cust, anon, item, channel, order string, price float64, ts int64) engine.Record {
	return engine.Record{Op: engine.OpEvent, Event: engine.Event{
		Type: typ, Customer: cust, AnonymousID: anon, Product: item, SKU: item,
		Channel: channel, Order: order, Price: price, TS: ts,
	}}
}

func TestLoaders(t *testing.T) {
	root := writeSets(t)
	P, R := engine.EventPurchase, engine.EventReturn
	tests := []struct {
		set   string
		want  []engine.Record
		stats LoadStats
	}{{
		set: SetHM,
		want: []engine.Record{
			grouped(product("0100001001", "Tee", "ladieswear/jersey-basic/t-shirt", 0, "",
				"colour:black", "appearance:solid", "garment:jersey-basic", "index:ladieswear", "style:0100001"), "0100001"),
			grouped(product("0100001002", "Tee (1)", "ladieswear/jersey-basic/t-shirt", 0, "",
				"colour:off-white", "appearance:stripe", "garment:jersey-basic", "index:ladieswear", "style:0100001"), "0100001"),
			grouped(product("0100002001", "Kid shorts", "baby-children/kids-boy/shorts", 0, "",
				"colour:dark-blue", "appearance:solid", "garment:shorts", "index:children-sizes-92-140", "style:0100002"), "0100002"),
			grouped(product("0100003001", "Cap", "menswear/men-accessories/cap-peaked", 0, "",
				"colour:black", "appearance:solid", "garment:accessories", "index:menswear", "style:0100003"), "0100003"),
			stock("0100001001"), stock("0100001002"), stock("0100002001"), stock("0100003001"),
			event(P, "aaa", "", "0100001001", "web", "", 0.05, unixMS("2020-09-16T00:00:00Z")),
			event(P, "aaa", "", "0100001001", "web", "", 0.05, unixMS("2020-09-16T00:00:00Z")),
			event(P, "bbb", "", "0100001001", "store", "", 0.05, unixMS("2020-09-17T00:00:00Z")),
			event(P, "bbb", "", "0100002001", "store", "", 0.02, unixMS("2020-09-17T00:00:00Z")),
			event(P, "ccc", "", "0100003001", "web", "", 0.01, unixMS("2020-09-19T00:00:00Z")),
		},
		stats: LoadStats{Products: 4, Inventory: 4, Rows: 5,
			Events: map[string]int{"purchase": 5}, Skipped: map[string]int{}},
	}, {
		set: SetOnlineRetail,
		want: []engine.Record{
			grouped(product("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "giftware/holder", 2.55, "GBP", "style:85123", "colour:white"), "85123"),
			product("71053", "WHITE METAL LANTERN", "giftware/lantern", 3.39, "GBP", "colour:white"),
			grouped(product("84029G", "KNITTED UNION FLAG HOT WATER BOTTLE", "giftware/bottle", 3.39, "GBP", "style:84029"), "84029"),
			product("10134", "10134", "giftware/other", 0, "GBP"),
			stock("85123A"), stock("71053"), stock("84029G"), stock("10134"),
			event(P, "17850", "", "85123A", "web", "536365", 2.55, unixMS("2010-12-01T08:26:00Z")),
			event(P, "17850", "", "71053", "web", "536365", 3.39, unixMS("2010-12-01T08:26:00Z")),
			event(P, "", "invoice:536366", "84029G", "web", "536366", 3.39, unixMS("2010-12-01T08:28:00Z")),
			event(P, "", "invoice:536366", "71053", "web", "536366", 3.39, unixMS("2010-12-01T08:28:00Z")),
			event(R, "17850", "", "71053", "web", "C536379", 3.39, unixMS("2010-12-01T09:41:00Z")),
		},
		stats: LoadStats{Products: 4, Inventory: 4, Rows: 9,
			Events: map[string]int{"purchase": 4, "return": 1},
			Skipped: map[string]int{"non-product code": 1, "non-product line": 1,
				"duplicate line in invoice": 1, "adjustment (quantity <= 0)": 1, "guest cancellation": 1}},
	}, {
		set: SetTaobao,
		want: []engine.Record{
			product("11", "", "100", 0, ""), product("12", "", "100", 0, ""), product("13", "", "200", 0, ""),
			stock("11"), stock("12"), stock("13"),
			event(engine.EventView, "1", "", "11", "web", "", 0, 1511539200000),
			event(engine.EventCartAdd, "1", "", "11", "web", "", 0, 1511539260000),
			event(engine.EventCartAdd, "2", "", "12", "web", "", 0, 1511539260000),
			event(P, "1", "", "11", "web", "", 0, 1512143999000),
		},
		stats: LoadStats{Products: 3, Inventory: 3, Rows: 4,
			Events: map[string]int{"view": 1, "cart_add": 2, "purchase": 1}, Skipped: map[string]int{}},
	}}
	for _, tc := range tests {
		t.Run(tc.set, func(t *testing.T) {
			got, stats := replay(t, root, tc.set)
			for i := range got {
				if tags := got[i].Product.Tags; tags != nil && len(tags) == 0 {
					got[i].Product.Tags = nil
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d records, want %d:\n%+v", len(got), len(tc.want), got)
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], tc.want[i]) {
					t.Errorf("record %d:\ngot  %+v\nwant %+v", i, got[i], tc.want[i])
				}
			}
			if !reflect.DeepEqual(stats, tc.stats) {
				t.Errorf("stats:\ngot  %+v\nwant %+v", stats, tc.stats)
			}
		})
	}
}

func TestLoaderErrors(t *testing.T) {
	f := func(set, file, body, wantErr string) {
		t.Helper()
		root := writeSets(t)
		writeFile(t, filepath.Join(root, set, file), body)
		d, err := OpenDataset(set, root)
		if err != nil {
			t.Fatal(err)
		}
		err = d.Replay(func(*engine.Record) error { return nil })
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s %s: got error %v, want one containing %q", set, file, err, wantErr)
		}
	}
	const taobaoHead = "user_id,item_id,category_id,event_type,behavior_type,timestamp,ts_utc\n"
	f(SetTaobao, "train/events.csv.gz", taobaoHead+
		"1,11,100,view,pv,1511539260,x\n1,11,100,view,pv,1511539200,x\n", ":3: event time 1511539200000 before")
	f(SetTaobao, "train/events.csv.gz", taobaoHead+
		"1,11,100,view,pv,1512144000,x\n", "not before the train cut")
	f(SetTaobao, "train/events.csv.gz", taobaoHead+
		"1,11,100,share,share,1511539200,x\n", `unknown behavior_type "share"`)
	f(SetTaobao, "train/events.csv.gz", "user_id,item_id\n1,11\n", `has no column "behavior_type"`)
	f(SetTaobao, "train/events.csv.gz", "", "cannot read the header")
	f(SetTaobao, "train/events.csv.gz", taobaoHead+"1,11,100\n", "wrong number of fields")
	f(SetHM, "train/transactions.csv.gz", "t_dat,customer_id,article_id,product_code,price,sales_channel_id\n"+
		"2020-09-16,aaa,0100001001,0100001,0.05,3\n", `bad sales_channel_id "3"`)
	f(SetHM, "train/transactions.csv.gz", "t_dat,customer_id,article_id,product_code,price,sales_channel_id\n"+
		"2020-09-20,aaa,0100001001,0100001,0.05,1\n", "not before the train cut")
	f(SetOnlineRetail, "train/transactions.csv.gz",
		"invoice_no,invoice_ts,customer_id,stock_code,quantity,unit_price,is_cancellation,is_product\n"+
			"1,2010-12-01 08:26,1,2,3,4,0,1\n", `bad invoice_ts "2010-12-01 08:26"`)

	if _, err := OpenDataset("movielens", writeSets(t)); !errors.Is(err, ErrUnknownSet) {
		t.Errorf("OpenDataset(movielens): got %v, want ErrUnknownSet", err)
	}
	if _, err := OpenDataset(SetHM, t.TempDir()); err == nil {
		t.Error("OpenDataset on an empty directory: got no error")
	}
}

func TestReadHoldout(t *testing.T) {
	d, err := OpenDataset(SetHM, writeSets(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.ReadHoldout(d.HoldoutPath())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"aaa": {"0100001001", "0100001002"},
		"bbb": {"0100001001"},
		"ccc": {"0100002001", "0999999999"},
		"ddd": {"0100003001"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestSlug(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
	f("Baby/Children", "baby-children")
	f("  Jersey  Basic ", "jersey-basic")
	f("H&M+", "h-m")
	f("T-shirt", "t-shirt")
	f("Children Sizes 92-140", "children-sizes-92-140")
	f("--", "")
	f("", "")
}

func TestProductKind(t *testing.T) {
	f := func(desc, want string) {
		t.Helper()
		if got := productKind(desc); got != want {
			t.Errorf("productKind(%q) = %q, want %q", desc, got, want)
		}
	}
	f("WHITE HANGING HEART T-LIGHT HOLDER", "holder")
	f("PACK OF 12 RED CANDLES", "candle")
	f("JUMBO BAG PINK POLKADOT", "bag")
	f("LUNCH BOX WITH CUTLERY RETROSPOT", "cutlery")
	f("SET OF 6 WINE GLASSES", "glass")
	f("STRAWBERRY LUNCH BOXES", "box")
	f("SET 2", "other")
	f("", "other")
}

// FuzzLoaders feeds arbitrary bytes to every set's catalog and event
// parsers: they may fail, never panic.
func FuzzLoaders(f *testing.F) {
	for _, s := range []string{hmArticlesCSV, hmTransactionsCSV, retailItemsCSV, retailTransactionsCSV, taobaoItemsCSV, taobaoEventsCSV} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, sp := range specs {
			for _, parse := range []func(*csvFile, *loader) error{sp.catalog, sp.events} {
				c, err := newCSVFile("fuzz", strings.NewReader(body))
				if err != nil {
					continue
				}
				l := &loader{emit: func(*engine.Record) error { return nil }, cut: sp.cut,
					stats: &LoadStats{Events: map[string]int{}, Skipped: map[string]int{}}}
				_ = parse(c, l)
			}
		}
	})
}
