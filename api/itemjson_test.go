package api

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/index"
)

func testItem(d uint32, title string) *index.Item {
	return &index.Item{Dense: d, ID: fmt.Sprintf("P%d", d), Title: title, URL: fmt.Sprintf("https://shop.example/p/P%d?ref=<x>&y=1", d),
		Image: "https://shop.example/i.jpg", Price: 19.5, Currency: "EUR", Category: "women/knit", Brand: map[bool]string{true: "Nordic"}[d%2 == 0],
		Variants: []index.Variant{{SKU: "a", Size: "S"}, {SKU: "b", Size: "M"}}}
}

// TestItemJSON checks that picks encoded from the items' fragments are the
// bytes encoded directly: repeated, after an item changed (a new *Item
// for the same product), short and full, and with the fragments' budget
// spent (then encoded directly).
func TestItemJSON(t *testing.T) {
	for _, budget := range []int64{maxItemJSONBytes, 600, 0} {
		c := &itemJSON{max: budget}
		items := []*index.Item{testItem(0, `Merino "Classic" – Größe`), testItem(1, "Tee"), testItem(3000, "Far id: the slots grow")}
		q := &engine.Query{Customer: "C1", Channel: engine.ChannelWeb}
		for round := range 4 {
			if round == 2 { // the catalog changes: new items for products 0 and 3000
				items[0], items[2] = testItem(0, "Renamed\n"), testItem(3000, "Changed too")
			}
			picks := make([]engine.Pick, 0, len(items))
			for i, it := range items {
				picks = append(picks, engine.Pick{Item: it, Reason: engine.ReasonPopular, Score: float64(i), SizeMask: 0b10})
			}
			got := appendPicksJSON(nil, q, picks, time.Microsecond, c)
			want := appendPicksJSON(nil, q, picks, time.Microsecond, nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("budget %d round %d:\n%s\nwant\n%s", budget, round, got, want)
			}
			short := appendAudienceJSON(nil, engine.Member{ID: "C1"}, picks, c)
			if want := appendAudienceJSON(nil, engine.Member{ID: "C1"}, picks, nil); !bytes.Equal(short, want) {
				t.Fatalf("budget %d round %d, short:\n%s\nwant\n%s", budget, round, short, want)
			}
		}
		if held := c.bytes.Load(); held > budget+400 || (budget == 0 && held != 0) {
			t.Errorf("budget %d: %d bytes held", budget, held)
		}
	}
}

// TestItemJSONConcurrent encodes picks from several goroutines while the
// items change (run it with -race): every answer is one of the item's
// versions' bytes.
func TestItemJSONConcurrent(t *testing.T) {
	c := &itemJSON{max: maxItemJSONBytes}
	versions := [][]*index.Item{}
	for v := range 3 {
		var row []*index.Item
		for d := range 50 {
			row = append(row, testItem(uint32(d*100), fmt.Sprintf("item %d version %d", d, v)))
		}
		versions = append(versions, row)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				it := versions[(i/7+g)%3][(i*13+g)%50]
				p := []engine.Pick{{Item: it, Reason: engine.ReasonRelated, Score: 1}}
				got := appendPickJSON(nil, &p[0], i%2 == 0, c)
				if want := appendPickJSON(nil, &p[0], i%2 == 0, nil); !bytes.Equal(got, want) {
					t.Errorf("%s\nwant\n%s", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
