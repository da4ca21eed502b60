package store

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/wal"
)

// TestCompact: after writes and snapshots, Compact leaves one snapshot
// and a log holding only what came after it, while writes go on; the
// folder reopens to the same state, also after a power loss right after.
func TestCompact(t *testing.T) {
	fs := wal.NewMemFS()
	s, _ := openMem(t, fs, func(o *Options) { o.SegmentBytes = 4 << 10 })
	defer s.Close()
	all := catalog(20)
	write(t, s, all)
	ts := t0.UnixMilli()
	for i := range 40 {
		b := viewBatch("c"+strings.Repeat("x", i%5), 10, ts+int64(i)*1e6)
		write(t, s, b)
		all = append(all, b...)
		if i%10 == 9 {
			if _, err := s.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	before, _ := fs.ReadDir("/data/wal")
	// Writers go on during the compaction.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20 {
			b := viewBatch("during", 3, ts+1e9+int64(i)*1e6)
			if err := s.Write(b, make([]error, len(b))); err != nil {
				t.Error(err)
				return
			}
			all = append(all, b...)
		}
	}()
	ci, err := s.Compact()
	if err != nil {
		t.Fatal(err)
	}
	<-done
	snaps, _ := fs.ReadDir("/data/snapshots")
	segs, _ := fs.ReadDir("/data/wal")
	if len(snaps) != 1 || ci.RemovedSnapshots < 1 {
		t.Fatalf("after Compact the snapshots are %v (removed %d); want only the new one", snaps, ci.RemovedSnapshots)
	}
	if len(segs) != 1 || len(before) < 2 {
		t.Fatalf("the log had %d segments and has %v after Compact; want only the one after the snapshot", len(before), segs)
	}
	t.Logf("compacted: %d segments and 2 snapshots -> %v and %v (%+v)", len(before), segs, snaps, ci)
	want := stateBytes(t, reference(t, all))
	if !bytes.Equal(stateBytes(t, s.Engine()), want) {
		t.Fatal("the live state changed")
	}
	if got := stateBytes(t, openCrashed(t, fs).Engine()); !bytes.Equal(got, want) {
		t.Fatal("after Compact and a power loss the state differs")
	}
}

// TestAnonymousTTL: the store's background writes expiry records; an
// anonymous profile unused for the TTL goes, a customer and a recent
// cookie stay, and a reopen (replaying the expiry record) agrees.
func TestAnonymousTTL(t *testing.T) {
	fs := wal.NewMemFS()
	s, _ := openMem(t, fs, func(o *Options) {
		o.NoBackground, o.AnonymousTTL, o.ExpireEvery = false, 24*time.Hour, 20*time.Millisecond
	})
	defer s.Close()
	write(t, s, catalog(20))
	now := time.Now().UnixMilli()
	old := now - 48*3600*1000
	write(t, s, []engine.Record{
		{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, AnonymousID: "ck-old", Product: "P001", TS: old}},
		{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, AnonymousID: "ck-new", Product: "P001", TS: now}},
		{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, Customer: "cust-old", Product: "P001", TS: old}},
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := s.Engine().Profile("ck-old", true); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the old cookie did not expire")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, e := range []*engine.Engine{s.Engine(), openCrashed(t, fs).Engine()} {
		_, okOld := e.Profile("ck-old", true)
		_, okNew := e.Profile("ck-new", true)
		_, okCust := e.Profile("cust-old", false)
		if okOld || !okNew || !okCust {
			t.Fatalf("after expiry: old cookie %v, new cookie %v, customer %v; want false, true, true", okOld, okNew, okCust)
		}
	}
}
