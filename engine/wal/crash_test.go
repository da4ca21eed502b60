package wal

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// crashPayload returns the payload appender g writes as its i-th record:
// g and i, then bytes derived from them.
func crashPayload(g, i int) []byte {
	n := int((uint64(g)*131 + uint64(i)*31) % 150)
	p := binary.LittleEndian.AppendUint32(nil, uint32(g))
	p = binary.LittleEndian.AppendUint32(p, uint32(i))
	return append(p, testPayload(uint64(g)<<32|uint64(i), n)...)
}

// TestCrash appends from several goroutines to a log on a MemFS, simulates
// a power loss at a random moment with CrashClone, and checks that the
// clone holds every acknowledged record, byte for byte, in order with no
// gaps, and that the log reopens and takes appends.
//
// OMNIPICK_WAL_CRASH_ITERS sets the number of iterations (default 200).
func TestCrash(t *testing.T) {
	iters := 200
	if testing.Short() {
		iters = 30
	}
	if s := os.Getenv("OMNIPICK_WAL_CRASH_ITERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("OMNIPICK_WAL_CRASH_ITERS: %v", err)
		}
		iters = n
	}
	for it := range iters {
		seed := uint64(it)
		if !crashIteration(t, seed) {
			t.Fatalf("iteration %d failed (seed %d)", it, seed)
		}
	}
}

// crashIteration runs one crash; it reports false after t.Errorf.
func crashIteration(t *testing.T, seed uint64) bool {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	fsys := NewMemFS()
	const dir = "/data/wal"
	opts := Options{
		SegmentBytes: []int64{256, 2048, 1 << 20}[rng.IntN(3)],
		// SyncInterval acknowledges before fsync, so only its consistency is
		// checked, not that acknowledged records survive.
		Sync:     []SyncMode{SyncAlways, SyncAlways, SyncAlways, SyncInterval}[rng.IntN(4)],
		Interval: 200 * time.Microsecond,
	}
	torn := rng.IntN(2) == 0 // keep a random prefix of unsynced bytes
	l, err := Open(fsys, dir, opts)
	if err != nil {
		t.Errorf("Open: %v", err)
		return false
	}

	appenders := 2 + rng.IntN(5)
	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		ackMu   sync.Mutex
		acked   []uint64                      // acknowledged seqs
		cutoff  atomic.Uint64                 // RemoveBefore arguments, max so far
		appends = make([][]uint64, appenders) // appends[g][i] = seq of g's i-th record
	)
	for g := range appenders {
		wg.Add(1)
		grng := rand.New(rand.NewPCG(seed, uint64(g)))
		go func() {
			defer wg.Done()
			var b Batch
			for i := 0; !stop.Load(); {
				var last uint64
				if grng.IntN(2) == 0 {
					seq, err := l.Append(byte(g), crashPayload(g, i))
					if err != nil {
						t.Errorf("Append: %v", err)
						return
					}
					appends[g] = append(appends[g], seq)
					i, last = i+1, seq
				} else {
					b.Reset()
					n := 1 + grng.IntN(20)
					for k := range n {
						b.Add(byte(g), crashPayload(g, i+k))
					}
					first, l2, err := l.AppendBatch(&b)
					if err != nil {
						t.Errorf("AppendBatch: %v", err)
						return
					}
					for k := range n {
						appends[g] = append(appends[g], first+uint64(k))
					}
					i, last = i+n, l2
				}
				if err := l.WaitDurable(last); err != nil {
					t.Errorf("WaitDurable: %v", err)
					return
				}
				ackMu.Lock()
				acked = append(acked, last)
				ackMu.Unlock()
			}
		}()
	}
	// A snapshotter that drops old segments now and then.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			time.Sleep(300 * time.Microsecond)
			c := l.DurableSeq() / 2
			if c > cutoff.Load() {
				cutoff.Store(c) // before the call: the clone may see its effect
			}
			if _, err := l.RemoveBefore(c); err != nil {
				t.Errorf("RemoveBefore: %v", err)
				return
			}
		}
	}()

	// Crash either just before the K-th file system operation (often an
	// fsync, after a pause that lets any waiter woken too early record its
	// acknowledgement) or after a random time, whichever comes first.
	var (
		crashOnce    sync.Once
		crashed      = make(chan struct{})
		ackedAtCrash []uint64
		clone        *MemFS
		minKept      uint64 // records below may be gone
		ops          atomic.Int64
	)
	crng := rand.New(rand.NewPCG(seed, 1))
	pause := time.Duration(rng.IntN(200)) * time.Microsecond
	crash := func() {
		crashOnce.Do(func() {
			ackMu.Lock()
			ackedAtCrash = append([]uint64(nil), acked...)
			ackMu.Unlock()
			if torn {
				clone = fsys.CrashCloneTorn(func(_ string, n int) int { return crng.IntN(n + 1) })
			} else {
				clone = fsys.CrashClone()
			}
			minKept = cutoff.Load()
			close(crashed)
		})
	}
	k := 1 + rng.Int64N(400)
	fsys.SetHook(func(op Op, name string) error {
		if ops.Add(1) == k {
			time.Sleep(pause)
			crash()
		}
		return nil
	})
	select {
	case <-crashed:
	case <-time.After(time.Duration(rng.IntN(5000)) * time.Microsecond):
		crash()
	}
	stop.Store(true)
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if t.Failed() {
		return false
	}

	// Who appended which seq.
	type origin struct{ g, i int }
	bySeq := map[uint64]origin{}
	for g, seqs := range appends {
		for i, seq := range seqs {
			bySeq[seq] = origin{g, i}
		}
	}

	var prev uint64
	var n int
	info, err := Replay(clone, dir, 0, func(seq uint64, typ byte, payload []byte) error {
		if prev != 0 && seq != prev+1 {
			t.Errorf("seq %d after %d", seq, prev)
		}
		prev = seq
		n++
		o, ok := bySeq[seq]
		if !ok {
			t.Errorf("seq %d was never appended", seq)
			return nil
		}
		if typ != byte(o.g) || !bytes.Equal(payload, crashPayload(o.g, o.i)) {
			t.Errorf("seq %d: wrong record (want appender %d record %d)", seq, o.g, o.i)
		}
		return nil
	})
	if err != nil {
		t.Errorf("Replay of crash clone: %v", err)
		return false
	}
	if opts.Sync == SyncAlways {
		for _, seq := range ackedAtCrash {
			if seq < minKept {
				continue
			}
			if seq < info.First || seq > info.Last {
				t.Errorf("acknowledged seq %d lost: clone has %d..%d (%d records, torn tail %v)",
					seq, info.First, info.Last, n, info.TornTail)
				return false
			}
		}
	}

	// The clone reopens and continues.
	l, err = Open(clone, dir, opts)
	if err != nil {
		t.Errorf("Open after crash: %v", err)
		return false
	}
	if l.LastSeq() != info.NextSeq-1 {
		t.Errorf("LastSeq after crash = %d, want %d", l.LastSeq(), info.NextSeq-1)
	}
	seq, err := l.Append(9, []byte("after crash"))
	if err == nil {
		err = l.WaitDurable(seq)
	}
	if err == nil {
		err = l.Close()
	}
	if err != nil {
		t.Errorf("append after crash: %v", err)
		return false
	}
	recs, info2, err := replayAll(t, clone, dir, 0)
	if err != nil || info2.TornTail || info2.Last != seq || string(recs[len(recs)-1].payload) != "after crash" ||
		info2.Records != n+1 {
		t.Errorf("replay after reopen: %+v, %v (first replay %+v)", info2, err, info)
		return false
	}
	return !t.Failed()
}
