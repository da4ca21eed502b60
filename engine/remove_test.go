package engine

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// removeWorld is a catalog of 10 products for the removal tests.
func removeWorld(t *testing.T, opts Options) *Engine {
	t.Helper()
	e := New(opts)
	for i := range 10 {
		r := Record{Op: OpProduct, Product: Product{ID: fmt.Sprintf("R%d", i), Category: fmt.Sprintf("c/%d", i%3), Variants: []Variant{{SKU: fmt.Sprintf("R%d", i)}}}}
		if err := e.Apply(&r); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func mustApply(t *testing.T, e *Engine, recs ...Record) {
	t.Helper()
	for i := range recs {
		if err := e.Apply(&recs[i]); err != nil {
			t.Fatalf("%+v: %v", recs[i], err)
		}
	}
}

func anonView(id, p string, ts int64) Record {
	return Record{Op: OpEvent, Event: Event{Type: EventView, AnonymousID: id, Product: p, TS: ts}}
}

// TestErase: erasing a customer removes its profile and the anonymous ids
// linked into it, keeps everyone else byte for byte, and the snapshot no
// longer holds the ids; erasing a linked cookie takes it (and the ids
// linked through it) out of the customer's links; the engine's state after
// a snapshot round trip is the same.
func TestErase(t *testing.T) {
	ts := int64(1_790_000_000_000)
	e := removeWorld(t, Options{Shards: 4})
	mustApply(t, e,
		anonView("ck-anna", "R1", ts), anonView("dev-anna", "R2", ts+1000), view("anna", "R3", ts+2000),
		anonView("ck-bob", "R4", ts), view("bob", "R5", ts+1000),
		Record{Op: OpIdentify, Identify: Identify{AnonymousID: "ck-anna", ToAnonymousID: "dev-anna"}},
		Record{Op: OpIdentify, Identify: Identify{AnonymousID: "dev-anna", Customer: "anna"}},
		Record{Op: OpIdentify, Identify: Identify{AnonymousID: "ck-bob", Customer: "bob"}},
		Record{Op: OpExclusion, Exclusion: Exclusion{Customer: "anna", Product: "R6", Until: ts + 1e9}},
		Record{Op: OpCampaign, Campaign: Campaign{Customer: "anna", Name: "spring", Products: []string{"R7"}, TS: ts}},
		Record{Op: OpEvent, Event: Event{Type: EventScan, Customer: "anna", Product: "R1", Location: "store-1", TS: ts + 3000}},
	)
	bobBefore, _ := e.Profile("bob", false)
	if err := e.Apply(&Record{Op: OpErase, Erase: Erase{Customer: "anna"}}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		id   string
		anon bool
	}{{"anna", false}, {"ck-anna", true}, {"dev-anna", true}} {
		if _, ok := e.Profile(a.id, a.anon); ok {
			t.Fatalf("%s still has a profile after the erasure", a.id)
		}
	}
	if sc := e.LastScan("store-1"); sc.Customer != "" || sc.Product != "R1" {
		t.Fatalf("the last scan still names her: %+v", sc)
	}
	bobAfter, _ := e.Profile("bob", false)
	if fmt.Sprint(bobBefore) != fmt.Sprint(bobAfter) {
		t.Fatalf("bob changed: %+v -> %+v", bobBefore, bobAfter)
	}
	snap := snapshotBytes(t, e)
	for _, id := range []string{"anna", "ck-anna", "dev-anna"} {
		if bytes.Contains(snap, []byte(id)) {
			t.Fatalf("the snapshot still holds %q", id)
		}
	}
	if err := e.Apply(&Record{Op: OpErase, Erase: Erase{Customer: "anna"}}); !errors.Is(err, ErrUnknownActor) {
		t.Fatalf("erasing again: %v", err)
	}
	// A new event for her starts afresh.
	mustApply(t, e, view("anna", "R8", ts+5000))
	if v, _ := e.Profile("anna", false); len(v.Views) != 1 || len(v.Links) != 0 {
		t.Fatalf("a new profile after the erasure: %+v", v)
	}
	// Erasing a linked cookie: out of bob's links, bob keeps his history.
	if err := e.Apply(&Record{Op: OpErase, Erase: Erase{AnonymousID: "ck-bob"}}); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.Profile("bob", false); len(v.Links) != 0 || len(v.Views) != 2 {
		t.Fatalf("bob after erasing his cookie: %+v", v)
	}
	if bytes.Contains(snapshotBytes(t, e), []byte("ck-bob")) {
		t.Fatal("the snapshot still holds ck-bob")
	}
	if !bytes.Equal(snapshotBytes(t, reload(t, e, Options{Shards: 4})), snapshotBytes(t, e)) {
		t.Fatal("a snapshot round trip changes the state")
	}
}

// TestExpire: anonymous profiles unused since Before go, customers and
// links stay, later events start afresh; replaying the same records gives
// the same state.
func TestExpire(t *testing.T) {
	day := int64(24 * time.Hour / time.Millisecond)
	ts := int64(1_790_000_000_000)
	recs := []Record{
		anonView("old-1", "R1", ts), anonView("old-2", "R2", ts+day),
		anonView("new-1", "R3", ts+40*day), view("cust-old", "R4", ts),
		anonView("linked", "R5", ts),
		{Op: OpIdentify, Identify: Identify{AnonymousID: "linked", Customer: "cust-old"}},
		{Op: OpExpire, Expire: Expire{Before: ts + 10*day}},
	}
	e := removeWorld(t, Options{Shards: 2})
	mustApply(t, e, recs...)
	for id, want := range map[string]bool{"old-1": false, "old-2": false, "new-1": true, "linked": true} {
		if _, ok := e.Profile(id, true); ok != want {
			t.Errorf("%s: profile %v after the expiry, want %v", id, ok, want)
		}
	}
	if _, ok := e.Profile("cust-old", false); !ok {
		t.Error("a customer expired")
	}
	if st := e.Stats(); st.ProfilesExpired != 2 {
		t.Errorf("ProfilesExpired = %d, want 2", st.ProfilesExpired)
	}
	r := removeWorld(t, Options{Shards: 2})
	for i := range recs {
		var dec Record
		if err := DecodeRecord(recs[i].Op, AppendRecord(nil, &recs[i]), &dec); err != nil {
			t.Fatal(err)
		}
		r.Apply(&dec)
	}
	if !bytes.Equal(snapshotBytes(t, e), snapshotBytes(t, r)) {
		t.Fatal("replaying the same records gives another state")
	}
}

// TestMaxProfiles: at the cap the least recently active anonymous
// profiles go first, customers never; a shard of customers only refuses a
// new actor with ErrProfilesFull and changes nothing.
func TestMaxProfiles(t *testing.T) {
	ts := int64(1_790_000_000_000)
	e := removeWorld(t, Options{Shards: 1, MaxProfiles: 16})
	for i := range 8 {
		mustApply(t, e, view(fmt.Sprintf("cust-%d", i), "R1", ts+int64(i)*1000))
	}
	for i := range 100 {
		mustApply(t, e, anonView(fmt.Sprintf("ck-%03d", i), "R2", ts+int64(i)*1000))
		if n := e.Stats().Profiles; n > 16 {
			t.Fatalf("%d profiles, over the cap of 16", n)
		}
	}
	for i := range 8 {
		if _, ok := e.Profile(fmt.Sprintf("cust-%d", i), false); !ok {
			t.Fatalf("customer %d was dropped", i)
		}
	}
	if _, ok := e.Profile("ck-099", true); !ok {
		t.Fatal("the most recent cookie was dropped")
	}
	if _, ok := e.Profile("ck-000", true); ok {
		t.Fatal("the least recent cookie is still there")
	}
	st := e.Stats()
	if st.ProfilesEvicted < 92 {
		t.Fatalf("ProfilesEvicted = %d, want at least 92", st.ProfilesEvicted)
	}
	// Only customers: a new actor is refused, nothing changes.
	f := removeWorld(t, Options{Shards: 1, MaxProfiles: 4})
	for i := range 4 {
		mustApply(t, f, view(fmt.Sprintf("cust-%d", i), "R1", ts))
	}
	before := snapshotBytes(t, f)
	for _, r := range []Record{view("cust-new", "R1", ts), anonView("ck-new", "R1", ts),
		{Op: OpIdentify, Identify: Identify{AnonymousID: "ck-x", Customer: "cust-0"}}} {
		if err := f.Apply(&r); !errors.Is(err, ErrProfilesFull) {
			t.Fatalf("%+v at a cap of customers only: %v, want ErrProfilesFull", r, err)
		}
	}
	mustApply(t, f, view("cust-2", "R3", ts+1000)) // known customers go on
	if bytes.Equal(before, snapshotBytes(t, f)) {
		t.Fatal("the known customer's event changed nothing")
	}
}

// TestChurnMemoryLevelsOff feeds distinct cookie ids, one view each, into
// an engine capped at MaxProfiles and reads the heap as it goes: once the
// cap is reached it must level off. 400,000 ids under a cap of 40,000 by
// default; OMNIPICK_CHURN_IDS=2000000 (cap a tenth of it) for the long
// run quoted in docs/operations.md.
func TestChurnMemoryLevelsOff(t *testing.T) {
	n := sizeFromEnv(t, "OMNIPICK_CHURN_IDS", 400_000, 100_000)
	limit := n / 10
	e := removeWorld(t, Options{MaxProfiles: limit})
	heap := func() float64 { return float64(heapAlloc()) / (1 << 20) }
	ts := int64(1_790_000_000_000)
	var curve []string
	var atCap, last float64
	steps := 10
	for i := range n {
		r := anonView("cookie-"+strconv.Itoa(i), "R"+strconv.Itoa(i%10), ts+int64(i)*1000)
		if err := e.Apply(&r); err != nil {
			t.Fatal(err)
		}
		if (i+1)%(n/steps) == 0 {
			h := heap()
			st := e.Stats()
			curve = append(curve, fmt.Sprintf("%dk ids: %.1f MiB, %d profiles", (i+1)/1000, h, st.Profiles))
			if i+1 == 2*limit {
				atCap = h
			}
			last = h
			if st.Profiles > limit {
				t.Fatalf("%d profiles over the cap of %d", st.Profiles, limit)
			}
		}
	}
	t.Logf("%d distinct cookies, -max-profiles %d: %s; evicted %d", n, limit, strings.Join(curve, "; "), e.Stats().ProfilesEvicted)
	if last > atCap*1.25+1 {
		t.Fatalf("the heap grew from %.1f MiB at twice the cap to %.1f MiB at the end: it does not level off", atCap, last)
	}
}
