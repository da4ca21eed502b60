package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// withID returns r carrying event id id, received at ms.
func withID(r Record, id string, ms int64) Record {
	r.EventID, r.Received = id, ms
	return r
}

func view(c, p string, ts int64) Record {
	return Record{Op: OpEvent, Event: Event{Type: EventView, Customer: c, Product: p, TS: ts}}
}

// TestEventIDs: a record whose event id was applied changes nothing
// (ErrDuplicate), also after a snapshot is loaded; a rejected record does
// not use up its id; ids expire after the window, measured on receipt
// stamps; past MaxEventIDs the oldest go; two engines fed the same records
// end in the same state, whatever the wall clock.
func TestEventIDs(t *testing.T) {
	const day = int64(24 * time.Hour / time.Millisecond)
	t0 := int64(1_790_000_000_000)
	type step struct {
		rec  Record
		want error // nil, ErrDuplicate, or another error (errors.Is)
	}
	cat := Record{Op: OpProduct, Product: Product{ID: "P1", Variants: []Variant{{SKU: "P1"}}}}
	tests := []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"duplicate refused", Options{}, []step{
			{withID(view("c", "P1", t0), "a", t0), nil},
			{withID(view("c", "P1", t0), "a", t0+1000), ErrDuplicate},
			{withID(view("c", "P1", t0), "b", t0+2000), nil},
		}},
		{"rejected record keeps its id free", Options{}, []step{
			{withID(view("c", "NOPE", t0), "a", t0), ErrUnknownProduct},
			{withID(view("c", "P1", t0), "a", t0+1), nil},
			{withID(view("c", "P1", t0), "a", t0+2), ErrDuplicate},
		}},
		{"identify and exclusions", Options{}, []step{
			{withID(Record{Op: OpIdentify, Identify: Identify{AnonymousID: "k", Customer: "c"}}, "i", t0), nil},
			{withID(Record{Op: OpIdentify, Identify: Identify{AnonymousID: "k", Customer: "c"}}, "i", t0), ErrDuplicate},
			{withID(Record{Op: OpExclusion, Exclusion: Exclusion{Customer: "c", Product: "P1", Until: t0 + day}}, "x", t0), nil},
			{withID(Record{Op: OpExclusion, Exclusion: Exclusion{Customer: "c", Product: "P1", Until: t0 + day}}, "x", t0), ErrDuplicate},
			{withID(cat, "p", t0), ErrNoEventID},
		}},
		{"window", Options{EventIDWindow: 48 * time.Hour}, []step{
			{withID(view("c", "P1", t0), "a", t0), nil},
			{withID(view("c", "P1", t0), "a", t0+day), ErrDuplicate},
			{withID(view("c", "P1", t0), "z", t0+3*day), nil}, // moves the clock on
			{withID(view("c", "P1", t0), "a", t0+3*day), nil}, // expired: applied again
		}},
		{"cap", Options{MaxEventIDs: 3}, []step{
			{withID(view("c", "P1", t0), "a", t0), nil},
			{withID(view("c", "P1", t0), "b", t0), nil},
			{withID(view("c", "P1", t0), "c", t0), nil},
			{withID(view("c", "P1", t0), "d", t0), nil}, // a goes
			{withID(view("c", "P1", t0), "b", t0), ErrDuplicate},
			{withID(view("c", "P1", t0), "a", t0), nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := New(tt.opts), New(tt.opts)
			a.Apply(&cat)
			b.Apply(&cat)
			for i, s := range tt.steps {
				r := s.rec
				err := a.Apply(&r)
				if (s.want == nil) != (err == nil) || (s.want != nil && !errors.Is(err, s.want)) {
					t.Fatalf("step %d (%s): Apply = %v, want %v", i, s.rec.EventID, err, s.want)
				}
				// The same record through the codec, as replay sees it.
				var dec Record
				if err := DecodeRecord(r.Op, AppendRecord(nil, &s.rec), &dec); err != nil {
					t.Fatal(err)
				}
				b.Apply(&dec)
				// Half way, b restarts from a snapshot of itself.
				if i == len(tt.steps)/2 {
					b = reload(t, b, tt.opts)
				}
			}
			if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
				t.Fatal("replaying the records (through a snapshot) gives another state")
			}
		})
	}
}

func reload(t *testing.T, e *Engine, opts Options) *Engine {
	t.Helper()
	e2, err := LoadSnapshot(opts, snapshotBytes(t, e))
	if err != nil {
		t.Fatal(err)
	}
	return e2
}

// TestEventIDMemory measures what the dedupe table costs per id, and
// that the cap bounds it: 1M ids (OMNIPICK_EVENT_IDS overrides) into a
// table capped at half as many.
func TestEventIDMemory(t *testing.T) {
	n := sizeFromEnv(t, "OMNIPICK_EVENT_IDS", 1_000_000, 100_000)
	d := newEventIDs(int64((7 * 24 * time.Hour).Seconds()), n/2)
	before := heapAlloc()
	for i := range n {
		if !d.reserve(hashEventID(fmt.Sprintf("order-%d-line-%d", i/3, i%3)), uint32(1_790_000_000+i/1000)) {
			t.Fatalf("id %d refused as a duplicate", i)
		}
	}
	used := heapAlloc() - before
	if d.len() != n/2 || d.evicted != uint64(n-n/2) {
		t.Fatalf("%d ids kept, %d evicted; want %d and %d", d.len(), d.evicted, n/2, n-n/2)
	}
	per := float64(used) / float64(n/2)
	t.Logf("%d ids kept (cap), %d evicted: %.1f MiB, %.1f bytes an id", d.len(), d.evicted, float64(used)/(1<<20), per)
	most := 64.0
	if raceDetector {
		most = 96 // the detector's shadow memory
	}
	if per > most {
		t.Fatalf("%.1f bytes an id: the table is not as small as documented", per)
	}
	runtime.KeepAlive(d)
}

// sizeFromEnv returns the size a memory test runs at: def, the
// environment variable's value when set, small with -short or -race.
func sizeFromEnv(t *testing.T, env string, def, small int) int {
	t.Helper()
	if s := os.Getenv(env); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 {
			t.Fatalf("%s=%q: want a number of at least 100", env, s)
		}
		return n
	}
	if testing.Short() || raceDetector {
		return small
	}
	return def
}

// heapAlloc returns the live heap after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
