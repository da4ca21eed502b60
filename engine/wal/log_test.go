package wal

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	big := testPayload(99, 1<<20)
	tests := []struct {
		name     string
		payloads [][]byte
		batch    bool // append with AppendBatch
	}{
		{"none", nil, false},
		{"empty payload", [][]byte{{}}, false},
		{"one byte", [][]byte{{42}}, false},
		{"mixed", [][]byte{testPayload(1, 100), {}, testPayload(2, 3), big, testPayload(3, 4096)}, false},
		{"mixed batch", [][]byte{testPayload(1, 100), {}, testPayload(2, 3), big, testPayload(3, 4096)}, true},
		{"many small batch", manyPayloads(1000, 100), true},
	}
	for _, fc := range fsCases {
		for _, tt := range tests {
			t.Run(fc.name+"/"+tt.name, func(t *testing.T) {
				fsys, dir := fc.new(t)
				var want []rec
				if tt.batch {
					l, err := Open(fsys, dir, Options{})
					if err != nil {
						t.Fatal(err)
					}
					var b Batch
					for i, p := range tt.payloads {
						if err := b.Add(byte(i%255), p); err != nil {
							t.Fatal(err)
						}
						want = append(want, rec{uint64(i + 1), byte(i % 255), p})
					}
					first, last, err := l.AppendBatch(&b)
					if err != nil || first != 1 || last != uint64(len(tt.payloads)) {
						t.Fatalf("AppendBatch = %d, %d, %v; want 1, %d, nil", first, last, err, len(tt.payloads))
					}
					if err := l.WaitDurable(last); err != nil {
						t.Fatal(err)
					}
					if got := l.DurableSeq(); got != last {
						t.Fatalf("DurableSeq = %d, want %d", got, last)
					}
					if err := l.Close(); err != nil {
						t.Fatal(err)
					}
				} else {
					want = writeLog(t, fsys, dir, Options{}, tt.payloads)
				}
				got, info := mustReplay(t, fsys, dir)
				if d := sameRecs(got, want); d != "" {
					t.Fatal(d)
				}
				if info.Records != len(want) || info.TornTail || info.Segments != 1 ||
					info.NextSeq != uint64(len(want))+1 {
					t.Fatalf("ReplayInfo = %+v", info)
				}
				if len(want) > 0 && (info.First != 1 || info.Last != uint64(len(want))) {
					t.Fatalf("ReplayInfo = %+v", info)
				}
			})
		}
	}
}

func manyPayloads(n, size int) [][]byte {
	ps := make([][]byte, n)
	for i := range ps {
		ps[i] = testPayload(uint64(i), size)
	}
	return ps
}

func TestRotation(t *testing.T) {
	for _, fc := range fsCases {
		t.Run(fc.name, func(t *testing.T) {
			fsys, dir := fc.new(t)
			const segBytes = 512
			var payloads [][]byte
			for i := range 600 {
				payloads = append(payloads, testPayload(uint64(i), (i*37)%300))
			}
			payloads = append(payloads, testPayload(1000, 2000)) // bigger than a segment
			payloads = append(payloads, testPayload(1001, 10))
			want := writeLog(t, fsys, dir, Options{SegmentBytes: segBytes}, payloads)
			files := segmentFiles(t, fsys, dir)
			if len(files) < 100 {
				t.Fatalf("%d segments, want many", len(files))
			}
			got, info := mustReplay(t, fsys, dir)
			if d := sameRecs(got, want); d != "" {
				t.Fatal(d)
			}
			if info.Segments != len(files) {
				t.Fatalf("ReplayInfo.Segments = %d, want %d", info.Segments, len(files))
			}
			// Every segment is named by its first record, holds whole
			// records, and exceeds SegmentBytes only with a single record.
			for _, name := range files {
				b := readFile(t, fsys, filepath.Join(dir, name))
				first, _ := parseSegmentName(name)
				offs := recordOffsets(b)
				end := HeaderSize
				if len(offs) > 0 {
					last := offs[len(offs)-1]
					size, _ := recordAt(b, last)
					end = last + size
				}
				if end != len(b) {
					t.Fatalf("%s: records end at %d, file at %d", name, end, len(b))
				}
				if len(b) > segBytes && len(offs) != 1 {
					t.Fatalf("%s: %d bytes with %d records", name, len(b), len(offs))
				}
				if len(offs) > 0 && got[first-1].seq != first {
					t.Fatalf("%s: first record is seq %d", name, got[first-1].seq)
				}
			}
		})
	}
}

func TestReopenContinues(t *testing.T) {
	for _, fc := range fsCases {
		t.Run(fc.name, func(t *testing.T) {
			fsys, dir := fc.new(t)
			opts := Options{SegmentBytes: 300}
			want := writeLog(t, fsys, dir, opts, manyPayloads(10, 50))
			for round := range 3 {
				_, info := mustReplay(t, fsys, dir)
				l, err := Open(fsys, dir, opts)
				if err != nil {
					t.Fatal(err)
				}
				if l.LastSeq() != info.NextSeq-1 || l.DurableSeq() != info.NextSeq-1 {
					t.Fatalf("round %d: LastSeq %d DurableSeq %d, want %d", round, l.LastSeq(), l.DurableSeq(), info.NextSeq-1)
				}
				for i := range 7 {
					p := testPayload(uint64(100*round+i), 40)
					seq, err := l.Append(3, p)
					if err != nil {
						t.Fatal(err)
					}
					if seq != uint64(len(want))+1 {
						t.Fatalf("round %d: Append got seq %d, want %d", round, seq, len(want)+1)
					}
					want = append(want, rec{seq, 3, p})
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
			got, _ := mustReplay(t, fsys, dir)
			if d := sameRecs(got, want); d != "" {
				t.Fatal(d)
			}
		})
	}
}

func TestFirstSeq(t *testing.T) {
	fsys, dir := NewMemFS(), "/wal"
	want := writeLog(t, fsys, dir, Options{FirstSeq: 1001}, manyPayloads(3, 10))
	if want[0].seq != 1001 {
		t.Fatalf("first seq %d, want 1001", want[0].seq)
	}
	if got := segmentFiles(t, fsys, dir); len(got) != 1 || got[0] != "wal-00000000000000001001.log" {
		t.Fatalf("segments %v", got)
	}
	// from beyond the log's start is fine; from before it means records
	// are missing.
	got, info, err := replayAll(t, fsys, dir, 1002)
	if err != nil || len(got) != 2 || info.First != 1002 {
		t.Fatalf("Replay from 1002: %d records, %+v, %v", len(got), info, err)
	}
	if _, _, err := replayAll(t, fsys, dir, 5); !errors.Is(err, ErrMissing) {
		t.Fatalf("Replay from 5: err %v, want ErrMissing", err)
	}
	// FirstSeq at or before the log's end is only a check.
	for _, tt := range []struct {
		first uint64
		ok    bool
	}{{1, true}, {1004, true}, {1005, false}} {
		l, err := Open(fsys, dir, Options{FirstSeq: tt.first})
		if tt.ok != (err == nil) {
			t.Fatalf("Open with FirstSeq %d: %v", tt.first, err)
		}
		if err != nil {
			if !errors.Is(err, ErrMissing) {
				t.Fatalf("Open with FirstSeq %d: %v, want ErrMissing", tt.first, err)
			}
			continue
		}
		if l.LastSeq() != 1003 {
			t.Fatalf("LastSeq %d, want 1003", l.LastSeq())
		}
		l.Close()
	}
}

func TestRemoveBefore(t *testing.T) {
	for _, fc := range fsCases {
		t.Run(fc.name, func(t *testing.T) {
			fsys, dir := fc.new(t)
			l, err := Open(fsys, dir, Options{SegmentBytes: 200})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var last uint64
			for i := range 100 {
				if last, err = l.Append(1, testPayload(uint64(i), 50)); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.WaitDurable(last); err != nil {
				t.Fatal(err)
			}
			segs := l.Stats().Segments
			if n := len(segmentFiles(t, fsys, dir)); n != segs || segs < 10 {
				t.Fatalf("Stats.Segments %d, files %d", segs, n)
			}
			firsts := func() []uint64 {
				var fs []uint64
				for _, n := range segmentFiles(t, fsys, dir) {
					f, _ := parseSegmentName(n)
					fs = append(fs, f)
				}
				return fs
			}
			before := firsts()
			cut := before[3] + 1 // inside the fourth segment
			removed, err := l.RemoveBefore(cut)
			if err != nil || removed != 3 {
				t.Fatalf("RemoveBefore(%d) = %d, %v; want 3", cut, removed, err)
			}
			if after := firsts(); after[0] != before[3] || l.Stats().Segments != len(after) {
				t.Fatalf("after RemoveBefore: %v (stats %d)", after, l.Stats().Segments)
			}
			if removed, err := l.RemoveBefore(cut); err != nil || removed != 0 {
				t.Fatalf("second RemoveBefore = %d, %v", removed, err)
			}
			// Never the active segment.
			if _, err := l.RemoveBefore(1 << 62); err != nil {
				t.Fatal(err)
			}
			if after := firsts(); len(after) != 1 || after[0] != before[len(before)-1] {
				t.Fatalf("after RemoveBefore(max): %v", after)
			}
			seq, err := l.Append(1, []byte("after"))
			if err != nil || seq != last+1 {
				t.Fatalf("Append = %d, %v", seq, err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			got, info := mustReplay(t, fsys, dir)
			if info.Last != last+1 || string(got[len(got)-1].payload) != "after" || got[0].seq != before[len(before)-1] {
				t.Fatalf("Replay after RemoveBefore: %+v", info)
			}
			if _, _, err := replayAll(t, fsys, dir, 1); !errors.Is(err, ErrMissing) {
				t.Fatalf("Replay from 1 after RemoveBefore: %v, want ErrMissing", err)
			}
		})
	}
}

func TestSyncInterval(t *testing.T) {
	fsys, dir := NewMemFS(), "/wal"
	l, err := Open(fsys, dir, Options{Sync: SyncInterval, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, SegmentName(1))
	seq, err := l.Append(1, testPayload(1, 100))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitDurable(seq); err != nil {
		t.Fatal(err)
	}
	// Written: a process crash keeps it.
	if size, _ := fsys.Size(path); size != HeaderSize+RecordHeaderSize+100 {
		t.Fatalf("size after WaitDurable %d", size)
	}
	// Synced within the interval.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if s := l.Stats(); s.SyncedSeq == seq {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("record not synced by the interval fsync")
		}
		time.Sleep(time.Millisecond)
	}
	if synced, _ := fsys.SyncedSize(path); synced != HeaderSize+RecordHeaderSize+100 {
		t.Fatalf("synced size %d", synced)
	}
	// Close syncs whatever is left.
	l2, err := Open(fsys, "/wal2", Options{Sync: SyncInterval, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := l2.Append(1, testPayload(uint64(i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := mustReplay(t, fsys.CrashClone(), "/wal2"); len(got) != 10 {
		t.Fatalf("after Close and crash: %d records, want 10", len(got))
	}
	l.Close()
}

func TestAppendErrors(t *testing.T) {
	fsys := NewMemFS()
	l, err := Open(fsys, "/wal", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(1, make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append(too large) = %v, want ErrTooLarge", err)
	}
	var b Batch
	if err := b.Add(1, make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Batch.Add(too large) = %v, want ErrTooLarge", err)
	}
	if first, last, err := l.AppendBatch(&b); first != 0 || last != 0 || err != nil {
		t.Fatalf("AppendBatch(empty) = %d, %d, %v", first, last, err)
	}
	if err := l.WaitDurable(1); err == nil {
		t.Fatal("WaitDurable of a seq not appended succeeded")
	}
	seq, err := l.Append(1, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := l.WaitDurable(seq); err != nil {
		t.Fatalf("WaitDurable after Close: %v", err)
	}
	if _, err := l.Append(1, []byte("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	b.Reset()
	b.Add(1, nil)
	if _, _, err := l.AppendBatch(&b); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendBatch after Close = %v, want ErrClosed", err)
	}
}

func TestErrFull(t *testing.T) {
	fsys := NewMemFS()
	l, err := Open(fsys, "/wal", Options{MaxBufferedBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// Hold the flusher inside its first fsync.
	release := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	fsys.SetHook(func(op Op, name string) error {
		if op == OpSync {
			once.Do(func() { close(entered) })
			<-release
		}
		return nil
	})
	p := testPayload(1, 100)
	first, err := l.Append(1, p)
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	var last uint64
	n := 0
	for ; n < 100; n++ {
		seq, err := l.Append(1, p)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	if n == 0 || n >= 9 { // 109 in flight + n*109 <= 1000
		t.Fatalf("%d appends before ErrFull, want 1..8", n)
	}
	if s := l.Stats(); s.Full != 1 || s.BufferedBytes != int64(n+1)*109 {
		t.Fatalf("Stats %+v", s)
	}
	close(release)
	if err := l.WaitDurable(last); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(1, p); err != nil {
		t.Fatalf("Append after drain: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := mustReplay(t, fsys, "/wal")
	if len(got) != n+2 || got[0].seq != first {
		t.Fatalf("%d records, want %d", len(got), n+2)
	}
	// A single append larger than the bound is accepted when idle.
	l, err = Open(fsys, "/wal", Options{MaxBufferedBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(1, p); err != nil {
		t.Fatalf("big append into an empty buffer: %v", err)
	}
	l.Close()
}

// TestFailureHeals checks that after a failed write or fsync the log
// acknowledges nothing more while the failure lasts, refuses appends
// naming it, keeps what it acknowledged before, and heals by itself once
// the disk works again: the records that failed are gone (never
// acknowledged), later appends take their sequence numbers, and a crash
// after healing keeps exactly the acknowledged records.
func TestFailureHeals(t *testing.T) {
	tests := []struct {
		op   Op
		mode SyncMode
	}{
		{OpSync, SyncAlways},
		{OpWrite, SyncAlways},
		{OpWrite, SyncInterval},
		{OpSync, SyncInterval},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.op, tt.mode), func(t *testing.T) {
			fsys := NewMemFS()
			l, err := Open(fsys, "/wal", Options{Sync: tt.mode, Interval: time.Millisecond, HealDelay: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			good, err := l.Append(1, []byte("good"))
			if err != nil {
				t.Fatal(err)
			}
			if err := l.WaitDurable(good); err != nil {
				t.Fatal(err)
			}
			// Let SyncInterval's ticker sync "good" first.
			for l.Stats().SyncedSeq != good {
				time.Sleep(time.Millisecond)
			}
			injected := &fs.PathError{Op: "write", Path: "/wal", Err: syscall.ENOSPC}
			var failing atomic.Bool
			failing.Store(true)
			fsys.SetHook(func(op Op, name string) error {
				if failing.Load() && (op == tt.op || op == OpTruncate) {
					return injected
				}
				return nil
			})
			var b Batch
			b.Add(1, []byte("bad"))
			tk, err := l.AppendBatchTicket(&b)
			if err != nil {
				t.Fatal(err)
			}
			err = l.Wait(tk)
			if tt.op == OpSync && tt.mode == SyncInterval {
				// Written is enough here; the failure shows at the next
				// interval fsync, and "bad" was acknowledged.
				if err != nil {
					t.Fatal(err)
				}
				for l.Stats().Err == nil {
					time.Sleep(time.Millisecond)
				}
			} else if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Wait = %v, want the injected ENOSPC", err)
			}
			// While the disk fails (healing's truncate fails too), appends
			// are refused with the cause.
			time.Sleep(60 * time.Millisecond)
			if _, err := l.Append(1, []byte("refused")); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Append during the failure = %v, want ENOSPC", err)
			}
			if err := l.WaitDurable(good); err != nil {
				t.Fatalf("WaitDurable(acknowledged) = %v", err)
			}
			failing.Store(false) // the disk has room again
			var after Ticket
			deadline := time.Now().Add(5 * time.Second)
			for {
				var ab Batch
				ab.Add(1, []byte("after"))
				after, err = l.AppendBatchTicket(&ab)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the log did not heal: %v", err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := l.Wait(after); err != nil {
				t.Fatalf("Wait after healing = %v", err)
			}
			badAcked := tt.op == OpSync && tt.mode == SyncInterval
			want := []string{"good", "after"}
			if badAcked {
				want = []string{"good", "bad", "after"}
				if after.First != 3 {
					t.Fatalf("after healing the next seq is %d, want 3", after.First)
				}
			} else {
				if after.First != 2 {
					t.Fatalf("after healing the next seq is %d, want 2 (the lost record's)", after.First)
				}
				// The lost record's writer is told so, even though its seq
				// is taken by now.
				if err := l.Wait(tk); !errors.Is(err, ErrLost) || !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("Wait(lost) after healing = %v, want ErrLost and the cause", err)
				}
			}
			if st := l.Stats(); st.Failures != 1 || st.Heals != 1 || st.Err != nil {
				t.Fatalf("stats after healing: %+v", st)
			}
			for l.Stats().SyncedSeq < after.Last { // SyncInterval: its ticker syncs
				time.Sleep(time.Millisecond)
			}
			crashed := fsys.CrashClone()
			if err := l.Close(); err != nil {
				t.Fatalf("Close after healing = %v", err)
			}
			for _, fsys := range []*MemFS{crashed, fsys} {
				got, _ := mustReplay(t, fsys, "/wal")
				var payloads []string
				for _, r := range got {
					payloads = append(payloads, string(r.payload))
				}
				if !slices.Equal(payloads, want) {
					t.Fatalf("the log holds %q, want %q", payloads, want)
				}
			}
		})
	}
}

func TestStats(t *testing.T) {
	fsys := NewMemFS()
	l, err := Open(fsys, "/wal", Options{SegmentBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	for i := range 50 {
		b.Add(2, testPayload(uint64(i), 91))
	}
	_, last, err := l.AppendBatch(&b)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitDurable(last); err != nil {
		t.Fatal(err)
	}
	s := l.Stats()
	files := segmentFiles(t, fsys, "/wal")
	var bytes int64
	for _, f := range files {
		n, _ := fsys.Size(filepath.Join("/wal", f))
		bytes += n
	}
	if s.Appends != 50 || s.LastSeq != 50 || s.DurableSeq != 50 || s.SyncedSeq != 50 ||
		s.Segments != len(files) || s.Bytes != bytes || s.Fsyncs == 0 || s.BufferedBytes != 0 || s.Err != nil {
		t.Fatalf("Stats %+v; files %d bytes %d", s, len(files), bytes)
	}
	l.Close()
}

// TestOnSync checks that the fsync hook sees every fsync of a segment and,
// between them, every byte written: headers and records, across rotations
// and in both sync modes.
func TestOnSync(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"always", Options{Sync: SyncAlways}},
		{"always, rotating", Options{Sync: SyncAlways, SegmentBytes: 300}},
		{"interval", Options{Sync: SyncInterval, Interval: time.Millisecond}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fsys := NewMemFS()
			var mu sync.Mutex // the hook runs on the flusher, the test reads at the end
			var syncs, bytes int
			opts := tt.opts
			opts.OnSync = func(d time.Duration, n int) {
				mu.Lock()
				syncs++
				bytes += n
				mu.Unlock()
			}
			payloads := manyPayloads(20, 100)
			writeLog(t, fsys, "wal", opts, payloads)
			want := 0
			segs, err := listSegments(fsys, "wal")
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range segs {
				n, err := fsys.Size(filepath.Join("wal", SegmentName(s.first)))
				if err != nil {
					t.Fatal(err)
				}
				want += int(n)
			}
			mu.Lock()
			defer mu.Unlock()
			if syncs < len(segs) || bytes != want {
				t.Fatalf("%d fsyncs covering %d bytes; want at least %d covering %d (the segments' sizes)", syncs, bytes, len(segs), want)
			}
		})
	}
}
