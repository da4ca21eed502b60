package wal

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// atomicBatch appends n records of key k as one batch record and returns
// its ticket.
func atomicBatch(t *testing.T, l *Log, k uint64, n int) Ticket {
	t.Helper()
	var b Batch
	for i := range n {
		if err := b.Add(byte(1+i%7), testPayload(k*1000+uint64(i), 40+i%50)); err != nil {
			t.Fatal(err)
		}
	}
	tk, err := l.AppendAtomic(&b)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// checkBatches checks that got holds, in order, whole batches of n
// records each with keys 1, 2, ... (one seq per batch), and returns how
// many.
func checkBatches(t *testing.T, got []rec, n int) int {
	t.Helper()
	if len(got)%n != 0 {
		t.Fatalf("replay gave %d records: not whole batches of %d", len(got), n)
	}
	for i, r := range got {
		k, j := uint64(i/n+1), i%n
		if r.seq != k || r.typ != byte(1+j%7) || !bytes.Equal(r.payload, testPayload(k*1000+uint64(j), 40+j%50)) {
			t.Fatalf("record %d: seq %d type %d, want batch %d's record %d", i, r.seq, r.typ, k, j)
		}
	}
	return len(got) / n
}

// TestAtomicBatchAcrossCrashes: a batch is one record; a power loss that
// keeps any prefix of its unsynced bytes leaves it wholly there or wholly
// absent, and replay hands out its records in order under its seq.
func TestAtomicBatchAcrossCrashes(t *testing.T) {
	const n = 64
	rng := rand.New(rand.NewPCG(7, 7))
	outcomes := map[int]int{}
	for it := range 200 {
		fsys := NewMemFS()
		// Interval mode with a long interval: the last batch is written,
		// acknowledged and not yet fsynced when the crash comes.
		l, err := Open(fsys, "/wal", Options{Sync: SyncInterval, Interval: time.Hour, SegmentBytes: 8 << 10})
		if err != nil {
			t.Fatal(err)
		}
		batches := 1 + rng.IntN(4)
		for k := range batches {
			if err := l.Wait(atomicBatch(t, l, uint64(k+1), n)); err != nil {
				t.Fatal(err)
			}
			if k < batches-1 {
				l.syncWritten() // only the last batch is at the crash's mercy
			}
		}
		cut := rng.Float64() * 1.3 // past 1: every unsynced byte survives
		crashed := fsys.CrashCloneTorn(func(name string, unsynced int) int { return int(cut * float64(unsynced)) })
		l.Close()
		got, info := mustReplay(t, crashed, "/wal")
		whole := checkBatches(t, got, n)
		if whole != batches && whole != batches-1 {
			t.Fatalf("iteration %d: %d of %d batches survived; only the last may go", it, whole, batches)
		}
		if info.Records != whole {
			t.Fatalf("ReplayInfo.Records = %d, want %d batch records", info.Records, whole)
		}
		outcomes[batches-whole]++
	}
	if outcomes[0] == 0 || outcomes[1] == 0 {
		t.Fatalf("the last batch was never (or always) lost: %v; the test does not tear it", outcomes)
	}
	t.Logf("last batch kept whole %d times, lost whole %d times", outcomes[0], outcomes[1])
}

// TestAtomicBatchDiskFull: a batch that does not fit on the disk fails
// whole (none of it replays, even after a crash), appends are refused
// with ENOSPC while the disk is full, and once room returns the log heals
// and takes batches again, at the lost batch's seq.
func TestAtomicBatchDiskFull(t *testing.T) {
	const n = 200
	fsys := NewMemFS()
	l, err := Open(fsys, "/wal", Options{HealDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Wait(atomicBatch(t, l, 1, n)); err != nil {
		t.Fatal(err)
	}
	used, _ := fsys.Size("/wal/" + SegmentName(1))
	fsys.SetCapacity(used + 1000) // a batch of 200 records needs ~20 KB
	lost := atomicBatch(t, l, 2, n)
	if err := l.Wait(lost); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Wait on a batch that does not fit = %v, want ENOSPC", err)
	}
	got, _ := mustReplay(t, fsys.CrashClone(), "/wal")
	if checkBatches(t, got, n) != 1 {
		t.Fatal("the batch that did not fit is (partly) in the log")
	}
	// Still full: healing cuts the partial write away, and the next try
	// fails the same way (its writer sees ENOSPC), never half-applied.
	time.Sleep(50 * time.Millisecond)
	var b Batch
	b.Add(1, testPayload(3, 5000))
	b.Add(1, testPayload(4, 5000))
	if tk, err := l.AppendAtomic(&b); err == nil {
		if err := l.Wait(tk); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("a batch while the disk is still full: %v, want ENOSPC", err)
		}
	} else if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("AppendAtomic while the disk is full = %v, want ENOSPC", err)
	}
	fsys.SetCapacity(0) // room again
	deadline := time.Now().Add(5 * time.Second)
	for {
		var b Batch
		for i := range n {
			b.Add(byte(1+i%7), testPayload(2000+uint64(i), 40+i%50))
		}
		tk, err := l.AppendAtomic(&b)
		if err == nil {
			if err := l.Wait(tk); err != nil {
				t.Fatal(err)
			}
			if tk.First != 2 {
				t.Fatalf("the batch after healing has seq %d, want 2", tk.First)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume once the disk had room: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, _ = mustReplay(t, fsys.CrashClone(), "/wal")
	if checkBatches(t, got, n) != 2 {
		t.Fatalf("after healing the log holds %d records, want 2 whole batches", len(got))
	}
}
