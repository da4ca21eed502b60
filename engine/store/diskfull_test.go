package store

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/wal"
)

// viewBatch returns n view events of customer c, one product each.
func viewBatch(c string, n int, ts int64) []engine.Record {
	recs := make([]engine.Record, n)
	for i := range recs {
		recs[i] = engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, Customer: c,
			Product: fmt.Sprintf("P%03d", i%20), TS: ts + int64(i)*1000}}
	}
	return recs
}

// TestDiskFull runs the store on a MemFS that runs out of space, first
// under the log, then under a snapshot: writes fail with the cause
// (ENOSPC; ErrDiskFull for the snapshot) and are not applied, reads keep
// working on the acknowledged state, and once room returns writes resume
// by themselves; a crash at any point keeps every acknowledged write and
// nothing else.
func TestDiskFull(t *testing.T) {
	fs := wal.NewMemFS()
	s, _ := openMem(t, fs, func(o *Options) {
		o.HealDelay = 10 * time.Millisecond
		o.NoBackground = false
		o.SnapshotEvery = time.Hour
	})
	defer s.Close()
	acked := catalog(20)
	write(t, s, acked)
	ts := t0.UnixMilli()
	ok := viewBatch("before", 30, ts)
	write(t, s, ok)
	acked = append(acked, ok...)
	want := stateBytes(t, s.Engine())

	// The log runs out of space in the middle of a batch.
	used := func() int64 {
		var n int64
		for _, dir := range []string{"/data/wal", "/data/snapshots"} {
			names, _ := fs.ReadDir(dir)
			for _, name := range names {
				sz, _ := fs.Size(dir + "/" + name)
				n += sz
			}
		}
		return n
	}
	fs.SetCapacity(used() + 200)
	big := viewBatch("during", 50, ts+1e6)
	errs := make([]error, len(big))
	err := s.Write(big, errs)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a write past the disk's end = %v, want ENOSPC", err)
	}
	if got := stateBytes(t, s.Engine()); !bytes.Equal(got, want) {
		t.Fatal("the failed write changed the engine: memory ran ahead of the disk")
	}
	if _, ok := s.Engine().Profile("during", false); ok {
		t.Fatal("a reader sees the customer of the failed write")
	}
	if _, ok := s.Engine().Profile("before", false); !ok {
		t.Fatal("reads lost the acknowledged customer")
	}
	// Still full: writes keep failing with the cause, and change nothing.
	for range 3 {
		time.Sleep(15 * time.Millisecond)
		if err := s.Write(big, errs); err == nil || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("a write while the disk is full = %v, want ENOSPC", err)
		}
	}
	if got := stateBytes(t, openCrashed(t, fs).Engine()); !bytes.Equal(got, want) {
		t.Fatal("after a crash while the disk was full the state is not the acknowledged one")
	}

	// Room again: writes resume by themselves.
	fs.SetCapacity(0)
	waitWrite(t, s, big)
	acked = append(acked, big...)

	// A snapshot that does not fit refuses writes until one does.
	fs.SetCapacity(used() + 100)
	if _, err := s.Snapshot(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a snapshot past the disk's end = %v, want ENOSPC", err)
	}
	if names, _ := fs.ReadDir("/data/snapshots"); len(names) != 0 {
		t.Fatalf("the failed snapshot left %v behind", names)
	}
	after := viewBatch("after", 5, ts+2e6)
	if err := s.Write(after, make([]error, 5)); !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a write while snapshots lack space = %v, want ErrDiskFull naming ENOSPC", err)
	}
	if _, ok := s.Engine().Profile("during", false); !ok {
		t.Fatal("reads stopped working")
	}
	fs.SetCapacity(0) // the background retries the snapshot every HealDelay
	waitWrite(t, s, after)
	acked = append(acked, after...)
	if st := s.Stats(); st.LastSnapshot == nil || st.LastSnapshot.Path == "" {
		t.Fatalf("no snapshot was written once there was room: %+v", st.LastSnapshot)
	}
	want = stateBytes(t, reference(t, acked))
	if got := stateBytes(t, s.Engine()); !bytes.Equal(got, want) {
		t.Fatal("the live state is not the acknowledged writes")
	}
	if got := stateBytes(t, openCrashed(t, fs).Engine()); !bytes.Equal(got, want) {
		t.Fatal("after a crash the state is not the acknowledged writes")
	}
}

// waitWrite writes recs, retrying for up to 5 s while the store refuses.
func waitWrite(t *testing.T, s *Store, recs []engine.Record) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Write(recs, make([]error, len(recs)))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// openCrashed opens what a power loss now would leave of fs.
func openCrashed(t *testing.T, fs *wal.MemFS) *Store {
	t.Helper()
	s, _ := openMem(t, fs.CrashClone(), nil)
	t.Cleanup(func() { s.Close() })
	return s
}
