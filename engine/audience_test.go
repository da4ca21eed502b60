package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// ev is an event for the audience tests: actor (anonymous when it starts
// with "cookie"), item (a SKU when it contains '-'), and how long before
// the world's clock it happened.
type ev struct {
	typ   EventType
	actor string
	item  string
	ago   time.Duration
}

func (w *world) applyAgo(e ev) {
	w.t.Helper()
	r := Event{Type: e.typ, Customer: e.actor, Channel: "web", TS: w.now.Add(-e.ago).UnixMilli()}
	if strings.HasPrefix(e.actor, "cookie") {
		r.Customer, r.AnonymousID = "", e.actor
	}
	if strings.Contains(e.item, "-") {
		r.SKU = e.item
	} else {
		r.Product = e.item
	}
	w.apply(Record{Op: OpEvent, Event: r})
}

// audience returns the members of q as "id" or "anon:id", sorted.
func (w *world) audience(q AudienceQuery) []string {
	w.t.Helper()
	var got []string
	err := w.e.Audience(&q, nil, func(batch []Member) error {
		for _, m := range batch {
			if m.Anonymous {
				got = append(got, "anon:"+m.ID)
			} else {
				got = append(got, m.ID)
			}
		}
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

func TestAudienceMembership(t *testing.T) {
	const h, day = time.Hour, 24 * time.Hour
	cart := AudienceQuery{Kind: AudienceCartAbandoners, MinAge: h, MaxAge: 7 * day}
	knitViewers := AudienceQuery{Kind: AudienceViewers, Category: "women/knitwear", Within: 7 * day}
	for _, tc := range []struct {
		name   string
		events []ev
		q      AudienceQuery
		want   []string
	}{
		{"cart line 30 min old", []ev{{EventCartAdd, "C1", "SW0-8", 30 * time.Minute}}, cart, nil},
		{"cart line 2 h old", []ev{{EventCartAdd, "C1", "SW0-8", 2 * h}}, cart, []string{"C1"}},
		{"cart line exactly min_age old", []ev{{EventCartAdd, "C1", "SW0-8", h}}, cart, []string{"C1"}},
		{"cart line 8 days old", []ev{{EventCartAdd, "C1", "SW0-8", 8 * day}}, cart, nil},
		{"cart line 8 days old, max_age 10 days", []ev{{EventCartAdd, "C1", "SW0-8", 8 * day}},
			AudienceQuery{Kind: AudienceCartAbandoners, MinAge: h, MaxAge: 10 * day}, []string{"C1"}},
		{"cart line 8 days old, no max_age (CartTTL)", []ev{{EventCartAdd, "C1", "SW0-8", 8 * day}},
			AudienceQuery{Kind: AudienceCartAbandoners, MinAge: h}, []string{"C1"}},
		{"cart line 40 days old, max_age over CartTTL", []ev{{EventCartAdd, "C1", "SW0-8", 40 * day}},
			AudienceQuery{Kind: AudienceCartAbandoners, MinAge: h, MaxAge: 100 * day}, nil},
		{"min_age 0 takes a line of now", []ev{{EventCartAdd, "C1", "HT0", 0}},
			AudienceQuery{Kind: AudienceCartAbandoners}, []string{"C1"}},
		{"bought since", []ev{{EventCartAdd, "C1", "SW0-8", 3 * h}, {EventPurchase, "C1", "SW0-8", 2 * h}}, cart, nil},
		{"bought another size since", []ev{{EventCartAdd, "C1", "SW0-8", 3 * h}, {EventPurchase, "C1", "SW0-10", 2 * h}}, cart, nil},
		{"bought before, carted again", []ev{{EventPurchase, "C1", "HT0", 3 * day}, {EventCartAdd, "C1", "HT0", 2 * h}}, cart, nil},
		{"bought one line, another left", []ev{{EventCartAdd, "C1", "SW0-8", 3 * h}, {EventCartAdd, "C1", "HT0", 3 * h}, {EventPurchase, "C1", "SW0-8", 2 * h}}, cart, []string{"C1"}},
		{"removed from cart", []ev{{EventCartAdd, "C1", "SW0-8", 3 * h}, {EventCartRemove, "C1", "SW0-8", 2 * h}}, cart, nil},
		{"only a view", []ev{{EventView, "C1", "SW0", 3 * h}}, cart, nil},
		{"anonymous member", []ev{{EventCartAdd, "cookie-1", "LG0-6", 5 * h}}, cart, []string{"anon:cookie-1"}},
		{"two members", []ev{{EventCartAdd, "C1", "LG0-6", 5 * h}, {EventCartAdd, "C2", "LG1-6", 6 * day}, {EventCartAdd, "C3", "LG1-6", 10 * time.Minute}}, cart, []string{"C1", "C2"}},

		{"viewed a sweater", []ev{{EventView, "C1", "SW1", 2 * day}}, knitViewers, []string{"C1"}},
		{"viewed a sweater 8 days ago", []ev{{EventView, "C1", "SW1", 8 * day}}, knitViewers, nil},
		{"viewed a sweater 8 days ago, days=10", []ev{{EventView, "C1", "SW1", 8 * day}},
			AudienceQuery{Kind: AudienceViewers, Category: "women/knitwear", Within: 10 * day}, []string{"C1"}},
		{"viewed leggings", []ev{{EventView, "C1", "LG1", time.Minute}}, knitViewers, nil},
		{"viewed an old sweater then leggings", []ev{{EventView, "C1", "SW1", 9 * day}, {EventView, "C1", "LG1", time.Minute}}, knitViewers, nil},
		{"category prefix women", []ev{{EventView, "C1", "LG1", time.Minute}, {EventView, "C2", "HT0", time.Minute}},
			AudienceQuery{Kind: AudienceViewers, Category: "women", Within: day}, []string{"C1", "C2"}},
		{"category leaf, normalised", []ev{{EventView, "C1", "SW1", time.Minute}},
			AudienceQuery{Kind: AudienceViewers, Category: " Women/Knitwear/Sweaters/", Within: day}, []string{"C1"}},
		{"category is a prefix of segments, not bytes", []ev{{EventView, "C1", "SW1", time.Minute}},
			AudienceQuery{Kind: AudienceViewers, Category: "women/knit", Within: day}, nil},
		{"unknown category", []ev{{EventView, "C1", "SW1", time.Minute}},
			AudienceQuery{Kind: AudienceViewers, Category: "men", Within: day}, nil},
		{"any category", []ev{{EventView, "C1", "SW1", time.Minute}, {EventView, "cookie-2", "TS0", time.Minute}},
			AudienceQuery{Kind: AudienceViewers, Within: day}, []string{"C1", "anon:cookie-2"}},
		{"a cart add is not a view", []ev{{EventCartAdd, "C1", "SW0-8", time.Minute}}, knitViewers, nil},
		{"a scan counts as a view", []ev{{EventScan, "C1", "SW0", time.Minute}}, knitViewers, []string{"C1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := apparel(t)
			w.now = w.now.Add(60 * day) // room for events in the past
			for _, e := range tc.events {
				w.applyAgo(e)
			}
			if got := w.audience(tc.q); !slices.Equal(got, tc.want) {
				t.Fatalf("members %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAudienceSkipsMergedAnonymous(t *testing.T) {
	w := apparel(t)
	w.applyAgo(ev{EventCartAdd, "cookie-1", "SW0-8", 3 * time.Hour})
	w.applyAgo(ev{EventCartAdd, "cookie-2", "SW1-8", 3 * time.Hour})
	w.apply(Record{Op: OpIdentify, Identify: Identify{AnonymousID: "cookie-1", Customer: "C1"}})
	q := AudienceQuery{Kind: AudienceCartAbandoners, MinAge: time.Hour, MaxAge: 7 * 24 * time.Hour}
	// cookie-1's cart now lives with C1; cookie-1 itself is only a link.
	if got, want := w.audience(q), []string{"C1", "anon:cookie-2"}; !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
}

func TestAudienceBatches(t *testing.T) {
	w := newWorld(t, Options{Shards: 4})
	w.product("HT0", "women/accessories/hats", "Alpen", "", nil)
	const n = 1000
	want := make([]string, 0, n)
	for i := range n {
		id := fmt.Sprintf("C%04d", i)
		w.applyAgo(ev{EventCartAdd, id, "HT0", 2 * time.Hour})
		if i%3 == 0 { // every third is not a member: a sparse scan
			w.applyAgo(ev{EventPurchase, id, "HT0", time.Hour})
		} else {
			want = append(want, id)
		}
	}
	q := AudienceQuery{Kind: AudienceCartAbandoners, MinAge: time.Hour}
	for _, size := range []int{1, 7, 256, 5000} {
		t.Run(fmt.Sprint("batch ", size), func(t *testing.T) {
			var got []string
			buf := make([]Member, 0, size)
			err := w.e.Audience(&q, buf, func(batch []Member) error {
				if len(batch) == 0 || len(batch) > size {
					t.Fatalf("batch of %d, cap %d", len(batch), size)
				}
				for _, m := range batch {
					got = append(got, m.ID)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("%d members, want %d (each once)", len(got), len(want))
			}
		})
	}

	// fn's error stops the visit and comes back.
	stop := errors.New("client went away")
	calls := 0
	err := w.e.Audience(&q, make([]Member, 0, 10), func([]Member) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("err %v after %d calls; want the callback's error after 1", err, calls)
	}
	if err := w.e.Audience(&AudienceQuery{}, nil, func([]Member) error { return nil }); !errors.Is(err, ErrBadAudience) {
		t.Fatalf("zero kind: %v", err)
	}
}

// TestAudienceReleasesLocks checks that fn runs with no engine lock held:
// writes and picks inside it would deadlock otherwise.
func TestAudienceReleasesLocks(t *testing.T) {
	w := apparel(t)
	w.applyAgo(ev{EventCartAdd, "C1", "SW0-8", 2 * time.Hour})
	q := AudienceQuery{Kind: AudienceCartAbandoners, MinAge: time.Hour}
	err := w.e.Audience(&q, nil, func(batch []Member) error {
		for _, m := range batch {
			w.applyAgo(ev{EventView, m.ID, "SW1", 0})
			w.product("NEW", "women/knitwear", "Nordic", "", nil)
			if ps := w.e.PicksInto(nil, &Query{Customer: m.ID, Channel: ChannelAds}); len(ps) == 0 {
				t.Fatal("no picks")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseAudience(t *testing.T) {
	f := func(s string, want AudienceKind, ok bool) {
		t.Helper()
		k, got := ParseAudience(s)
		if k != want || got != ok {
			t.Fatalf("ParseAudience(%q) = %v, %v", s, k, got)
		}
		if ok && k.String() != s {
			t.Fatalf("%v.String() = %q", k, k.String())
		}
	}
	f("cart_abandoners", AudienceCartAbandoners, true)
	f("viewers", AudienceViewers, true)
	f("", 0, false)
	f("unknown", 0, false)
	f("Viewers", 0, false)
}

func BenchmarkAudience(b *testing.B) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	e := New(Options{Now: func() time.Time { return now }})
	if err := e.Apply(&Record{Op: OpProduct, Product: Product{ID: "HT0", Category: "a/b", Variants: []Variant{{SKU: "HT0"}}}}); err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	for i := range n {
		r := Record{Op: OpEvent, Event: Event{Type: EventCartAdd, Customer: fmt.Sprint("C", i), Product: "HT0", TS: now.Add(-2 * time.Hour).UnixMilli()}}
		if err := e.Apply(&r); err != nil {
			b.Fatal(err)
		}
	}
	q := AudienceQuery{Kind: AudienceCartAbandoners, MinAge: time.Hour}
	buf := make([]Member, 0, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		members := 0
		if err := e.Audience(&q, buf, func(batch []Member) error { members += len(batch); return nil }); err != nil {
			b.Fatal(err)
		}
		if members != n {
			b.Fatalf("%d members", members)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/member")
}
