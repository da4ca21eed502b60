package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/wal"
)

var t0 = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

func engineOpts() engine.Options {
	return engine.Options{Shards: 8, Now: func() time.Time { return t0 }}
}

func openMem(t *testing.T, fs *wal.MemFS, tweak func(*Options)) (*Store, RecoveryInfo) {
	t.Helper()
	opts := Options{Dir: "/data", FS: fs, Engine: engineOpts(), NoBackground: true, SegmentBytes: 16 << 10}
	if tweak != nil {
		tweak(&opts)
	}
	s, info, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, info
}

// catalog returns records for n products (sized and one-size) with stock.
func catalog(n int) []engine.Record {
	var recs []engine.Record
	for i := range n {
		id := fmt.Sprintf("P%03d", i)
		p := engine.Product{ID: id, Title: "Product " + id, Category: fmt.Sprintf("w/c%d/l%d", i%3, i%7), Brand: fmt.Sprint("b", i%4), Tags: []string{fmt.Sprint("t", i%5)}}
		if i%2 == 0 {
			p.SizeGroup = "g"
			p.Variants = []engine.Variant{{SKU: id + "-S", Size: "S"}, {SKU: id + "-M", Size: "M"}}
		} else {
			p.Variants = []engine.Variant{{SKU: id}}
		}
		recs = append(recs, engine.Record{Op: engine.OpProduct, Product: p})
		for _, v := range p.Variants {
			recs = append(recs, engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: v.SKU, Location: "online", Quantity: int64(1 + i%4)}})
		}
	}
	return recs
}

// randomBatch returns a batch of events, stock changes, upserts and merges,
// some of them invalid (the engine rejects them, replay must too).
func randomBatch(rng *rand.Rand, products int, ts *int64, mu *sync.Mutex) []engine.Record {
	n := 1 + rng.IntN(20)
	recs := make([]engine.Record, 0, n)
	types := []engine.EventType{engine.EventView, engine.EventCartAdd, engine.EventPurchase, engine.EventReturn, engine.EventCartRemove, engine.EventScan, engine.EventImpression}
	for range n {
		mu.Lock()
		*ts += 1000 + rng.Int64N(60000)
		t := *ts
		mu.Unlock()
		i := rng.IntN(products + 1) // products+1: sometimes unknown
		id := fmt.Sprintf("P%03d", i)
		switch r := rng.IntN(10); {
		case r < 7:
			ev := engine.Event{Type: types[rng.IntN(len(types))], Customer: fmt.Sprint("C", rng.IntN(40)), TS: t, Product: id}
			if rng.IntN(5) == 0 {
				ev.Customer, ev.AnonymousID = "", fmt.Sprint("cookie-", rng.IntN(10))
			}
			if i%2 == 0 && rng.IntN(2) == 0 {
				ev.Product, ev.SKU = "", id+"-M"
			}
			recs = append(recs, engine.Record{Op: engine.OpEvent, Event: ev})
		case r < 9:
			sku := id
			if i%2 == 0 {
				sku += "-S"
			}
			recs = append(recs, engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: sku, Location: []string{"online", "store-1"}[rng.IntN(2)], Quantity: rng.Int64N(3)}})
		default:
			// Merges, links between anonymous ids (some would close a
			// cycle: refused), exclusions and email campaigns.
			cookie := fmt.Sprint("cookie-", rng.IntN(10))
			switch rng.IntN(5) {
			case 0:
				recs = append(recs, engine.Record{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: cookie, Customer: fmt.Sprint("C", rng.IntN(40))}})
			case 1:
				recs = append(recs, engine.Record{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: cookie, ToAnonymousID: fmt.Sprint("cookie-", rng.IntN(10))}})
			case 2:
				x := engine.Exclusion{Product: id, Until: t + rng.Int64N(3600_000)}
				if rng.IntN(2) == 0 {
					x.Customer = fmt.Sprint("C", rng.IntN(40))
				}
				recs = append(recs, engine.Record{Op: engine.OpExclusion, Exclusion: x})
			default:
				c := engine.Campaign{Customer: fmt.Sprint("C", rng.IntN(40)), Name: fmt.Sprint("camp-", rng.IntN(3)), TS: t,
					Products: []string{id, fmt.Sprintf("P%03d", rng.IntN(products))}}
				recs = append(recs, engine.Record{Op: engine.OpCampaign, Campaign: c})
			}
		}
	}
	return recs
}

func stateBytes(t *testing.T, e *engine.Engine) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := e.BeginSnapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// reference applies records in order to a fresh engine.
func reference(t *testing.T, recs []engine.Record) *engine.Engine {
	e := engine.New(engineOpts())
	for i := range recs {
		r := recs[i]
		e.Apply(&r) // rejections are part of the state's history too
	}
	return e
}

func write(t *testing.T, s *Store, recs []engine.Record) {
	t.Helper()
	errs := make([]error, len(recs))
	if err := s.Write(recs, errs); err != nil {
		t.Fatal(err)
	}
}

func TestReopenKeepsState(t *testing.T) {
	for _, closeFirst := range []bool{true, false} {
		t.Run(fmt.Sprint("close=", closeFirst), func(t *testing.T) {
			fs := wal.NewMemFS()
			s, _ := openMem(t, fs, nil)
			all := catalog(30)
			write(t, s, all)
			rng := rand.New(rand.NewPCG(1, 1))
			var ts int64 = t0.UnixMilli()
			var mu sync.Mutex
			for range 50 {
				b := randomBatch(rng, 30, &ts, &mu)
				write(t, s, b)
				all = append(all, b...)
			}
			want := stateBytes(t, s.Engine())
			if closeFirst {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			// Without Close the log alone carries the state: every write was
			// acknowledged, so fsynced.
			s2, info := openMem(t, fs.CrashClone(), nil)
			defer s2.Close()
			if got := stateBytes(t, s2.Engine()); !bytes.Equal(got, want) {
				t.Fatalf("state after reopen differs (recovery %+v)", info)
			}
			if !bytes.Equal(stateBytes(t, reference(t, all)), want) {
				t.Fatal("live state differs from a replay of the same records")
			}
			if closeFirst && (info.Snapshot == "" || info.Replayed != 0) {
				t.Fatalf("after a clean close: %+v, want the final snapshot and no replay", info)
			}
			if !closeFirst && info.Replayed != len(all) {
				t.Fatalf("replayed %d of %d records", info.Replayed, len(all))
			}
		})
	}
}

// logged is a batch with the seq of its (batch) record.
type logged struct {
	last uint64
	recs []engine.Record
}

// TestCrashRecovery: writers and snapshots run concurrently until a power
// loss at a random moment; the recovered state must hold every acknowledged
// write and equal a fresh engine fed exactly the records up to the
// recovered log position.
func TestCrashRecovery(t *testing.T) {
	iters := 25
	if s := os.Getenv("OMNIPICK_CRASH_ITERS"); s != "" {
		iters, _ = strconv.Atoi(s)
	}
	for it := range iters {
		crashOnce(t, uint64(it))
	}
}

func crashOnce(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	fs := wal.NewMemFS()
	s, _ := openMem(t, fs, func(o *Options) { o.SegmentBytes = int64(2<<10 + rng.IntN(16<<10)) })
	write(t, s, catalog(20))
	const base = 1 // the catalog is one batch record

	var (
		mu      sync.Mutex
		ts      = t0.UnixMilli()
		batches []logged
		acked   []uint64 // last seqs of acknowledged batches
		wg      sync.WaitGroup
		stop    = make(chan struct{})
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wrng := rand.New(rand.NewPCG(seed, uint64(w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				b := randomBatch(wrng, 20, &ts, &mu)
				errs := make([]error, len(b))
				tk, err := s.appendBatch(b)
				if err != nil {
					return
				}
				mu.Lock()
				batches = append(batches, logged{tk.Last, b})
				mu.Unlock()
				if s.applyDurable(tk, b, errs) != nil {
					return
				}
				mu.Lock()
				acked = append(acked, tk.Last)
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	srng := rand.New(rand.NewPCG(seed, 1000))
	go func() { // snapshots now and then
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(1+srng.IntN(5)) * time.Millisecond):
				s.Snapshot()
			}
		}
	}()
	time.Sleep(time.Duration(5+rng.IntN(40)) * time.Millisecond)
	mu.Lock()
	crashed := fs.CrashClone()
	ackedAtCrash := append([]uint64(nil), acked...)
	mu.Unlock()
	close(stop)
	wg.Wait()
	s.Close()

	s2, info := openMem(t, crashed, nil)
	defer s2.Close()
	recovered := info.NextSeq - 1
	for _, a := range ackedAtCrash {
		if a > recovered {
			t.Fatalf("seed %d: acknowledged write up to seq %d lost: recovered up to %d (%+v)", seed, a, recovered, info)
		}
	}
	// The reference: the catalog, then every logged record up to the
	// recovered seq, in seq order.
	recs := catalog(20)
	// A write of several records is one batch record: one seq, all or
	// nothing.
	bySeq := map[uint64][]engine.Record{}
	for _, b := range batches {
		bySeq[b.last] = b.recs
	}
	for seq := uint64(base) + 1; seq <= recovered; seq++ {
		r, ok := bySeq[seq]
		if !ok {
			t.Fatalf("seed %d: recovered seq %d was never logged", seed, seq)
		}
		recs = append(recs, r...)
	}
	want := stateBytes(t, reference(t, recs))
	if got := stateBytes(t, s2.Engine()); !bytes.Equal(got, want) {
		t.Fatalf("seed %d: recovered state differs from the reference of %d records (recovery %+v)", seed, len(recs), info)
	}
	// And the store goes on working.
	write(t, s2, []engine.Record{{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, Customer: "after", Product: "P001", TS: ts + 1}}})
}

// corruptFile flips one byte of a MemFS file at offset off (from the end
// when negative).
func corruptFile(t *testing.T, fs *wal.MemFS, name string, off int64) {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if off < 0 {
		off += int64(len(b))
	}
	b[off] ^= 0x40
	w, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Sync()
	w.Close()
}

func TestDamagedSnapshotFallsBack(t *testing.T) {
	fs := wal.NewMemFS()
	s, _ := openMem(t, fs, nil)
	all := catalog(20)
	write(t, s, all)
	rng := rand.New(rand.NewPCG(3, 3))
	var ts int64 = t0.UnixMilli()
	var mu sync.Mutex
	for round := range 3 {
		for range 20 {
			b := randomBatch(rng, 20, &ts, &mu)
			write(t, s, b)
			all = append(all, b...)
		}
		if round < 2 {
			if _, err := s.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil { // the third snapshot
		t.Fatal(err)
	}
	seqs, _ := listSnapshots(fs, "/data/snapshots")
	if len(seqs) != 2 {
		t.Fatalf("%d snapshots kept, want 2", len(seqs))
	}
	want := stateBytes(t, reference(t, all))
	for _, tc := range []struct {
		name string
		off  int64
	}{
		{"header", 12}, {"body", snapHeaderSize + 40}, {"body end", -snapTrailer - 5}, {"trailer", -3},
		// The engine loads what it reads as it decompresses: the file's
		// checks must still turn it down when they fail after the load.
		{"trailer size", -snapTrailer}, {"trailer checksum", -snapTrailer + 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fs.CrashClone()
			newest := "/data/snapshots/" + snapName(seqs[0])
			corruptFile(t, c, newest, tc.off)
			s2, info := openMem(t, c, nil)
			defer s2.Close()
			if len(info.SkippedSnapshot) != 1 || info.SnapshotSeq != seqs[1] || info.Replayed == 0 {
				t.Fatalf("recovery %+v: want the older snapshot and a longer replay", info)
			}
			if got := stateBytes(t, s2.Engine()); !bytes.Equal(got, want) {
				t.Fatal("state after fallback differs")
			}
		})
	}
}

func TestCorruptLogStopsStartup(t *testing.T) {
	fs := wal.NewMemFS()
	s, _ := openMem(t, fs, func(o *Options) { o.SegmentBytes = 1 << 20 })
	write(t, s, catalog(10))
	for i := range 10 {
		write(t, s, []engine.Record{{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, Customer: "c", Product: fmt.Sprintf("P%03d", i), TS: t0.UnixMilli() + int64(i)}}})
	}
	c := fs.CrashClone()
	names, _ := c.ReadDir("/data/wal")
	corruptFile(t, c, "/data/wal/"+names[0], 200)
	_, _, err := Open(Options{Dir: "/data", FS: c, Engine: engineOpts(), NoBackground: true})
	if !errors.Is(err, wal.ErrCorrupt) || !strings.Contains(err.Error(), "omnipick repair") {
		t.Fatalf("err = %v; want a corrupt-log error pointing at omnipick repair", err)
	}
	ri, err := wal.Repair(c, "/data/wal")
	if err != nil {
		t.Fatal(err)
	}
	s2, info := openMem(t, c, nil)
	defer s2.Close()
	if info.NextSeq != ri.KeptLast+1 {
		t.Fatalf("after repair: next seq %d, repair kept up to %d", info.NextSeq, ri.KeptLast)
	}
}

func TestOverloadedWhenTheLogCannotKeepUp(t *testing.T) {
	fs := wal.NewMemFS()
	release := make(chan struct{})
	s, _ := openMem(t, fs, func(o *Options) { o.MaxBufferedBytes = 4 << 10 })
	fs.SetHook(func(op wal.Op, name string) error {
		if op == wal.OpSync {
			<-release // the disk stalls
		}
		return nil
	})
	write := func() error {
		recs := catalog(5)
		return s.Write(recs, make([]error, len(recs)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- write() }()
	}
	deadline := time.After(5 * time.Second)
	var overloaded bool
	for !overloaded {
		select {
		case err := <-errs:
			overloaded = errors.Is(err, engine.ErrOverloaded)
			if overloaded && !errors.Is(err, wal.ErrFull) {
				t.Fatalf("%v: the log's own reason is hidden from errors.Is", err)
			}
		case <-deadline:
			t.Fatal("no write was refused while the disk stalled")
		}
	}
	close(release)
	fs.SetHook(nil)
	wg.Wait()
	s.Close()
}

// TestLargeSnapshotOnDisk writes a snapshot larger than the zstd window to
// a real directory and loads it back.
func TestLargeSnapshotOnDisk(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(Options{Dir: dir, Engine: engineOpts(), NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	write(t, s, catalog(400))
	rng := rand.New(rand.NewPCG(5, 5))
	var ts int64 = t0.UnixMilli()
	var mu sync.Mutex
	for range 3000 {
		write(t, s, randomBatch(rng, 400, &ts, &mu))
	}
	want := stateBytes(t, s.Engine())
	info, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if info.RawBytes < 1<<20 {
		t.Logf("snapshot only %d bytes", info.RawBytes)
	}
	s.Close()
	s2, rinfo, err := Open(Options{Dir: dir, Engine: engineOpts(), NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if rinfo.Snapshot == "" || len(rinfo.SkippedSnapshot) != 0 || rinfo.Replayed != 0 {
		t.Fatalf("recovery %+v: want the snapshot, nothing skipped or replayed", rinfo)
	}
	if !bytes.Equal(stateBytes(t, s2.Engine()), want) {
		t.Fatal("state differs after reload")
	}
}

func TestWriteAfterClose(t *testing.T) {
	s, _ := openMem(t, wal.NewMemFS(), nil)
	s.Close()
	if err := s.Write(catalog(1), make([]error, 3)); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

// TestStatsLastSnapshot checks what metrics read about snapshots: none on
// an empty folder, the one written, and after a restart the one loaded,
// with the same capture time and file size.
func TestStatsLastSnapshot(t *testing.T) {
	fs := wal.NewMemFS()
	s, _ := openMem(t, fs, nil)
	if got := s.Stats().LastSnapshot; got != nil {
		t.Fatalf("LastSnapshot on an empty folder = %+v, want nil", got)
	}
	write(t, s, catalog(20))
	info, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	got := s.Stats().LastSnapshot
	if got == nil || got.Seq != info.Seq || got.FileBytes <= 0 || got.Took <= 0 || got.At.IsZero() {
		t.Fatalf("LastSnapshot after Snapshot = %+v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, _ := openMem(t, fs, nil)
	defer s2.Close()
	loaded := s2.Stats().LastSnapshot
	if loaded == nil || loaded.Seq != info.Seq || loaded.FileBytes != info.FileBytes || loaded.RawBytes != info.RawBytes ||
		!loaded.At.Equal(info.At.Truncate(time.Millisecond)) || loaded.Took != 0 {
		t.Fatalf("LastSnapshot after reopening = %+v; want the file written: %+v", loaded, info)
	}
}
