package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/wal"
)

var update = flag.Bool("update", false, "rewrite the snapshot fixtures in testdata/snapshots")

// snapFixtureDir holds the checked-in snapshot fixtures:
//
//	older.omnisnap            a good snapshot at seq fxSeqOlder
//	newer.omnisnap            a good snapshot at seq fxSeqNewer, the base of the damaged ones
//	wal-…0001.log             the log that wrote both: records 1..fxSeqNewer
//	truncated.omnisnap        newer cut in the middle of its zstd frame
//	short.omnisnap            newer's first 20 bytes: shorter than a header and a trailer
//	body-bitflip.omnisnap     newer with one bit flipped in the middle of the zstd frame
//	header-bitflip.omnisnap   newer with one bit flipped in the header's seq
//	trailer-size.omnisnap     newer whose trailer states one byte less than it holds
//	trailer-crc.omnisnap      newer with one bit flipped in the trailer's content CRC
//	half-written.omnisnap.tmp newer's first half under the temp name: a crash mid-write
//
// They are made by the store itself (Open, Write, Snapshot), so they pin
// the snapshot file format (version 1, frozen) as it is written, not as a
// test re-encodes it. Regenerate them with
//
//	go test ./engine/store -run Fixture -update
//
// The good ones carry the engine's snapshot encoding of the time they were
// made (engine snapshot version 1 today). The engine promises to keep
// loading old versions, so when that version changes these files must still
// load (TestOpenWithDamagedNewestSnapshot fails otherwise): keep them as the
// old-version case and regenerate (-update) only once a copy of the old
// files is kept elsewhere, or when the file format itself changes on
// purpose.
const snapFixtureDir = "../../testdata/snapshots"

// The fixture world: fxBefore is written and snapshotted (older), then
// fxAfter is written and snapshotted (newer).
var (
	fxNow    = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	fxBefore = []engine.Record{
		{Op: engine.OpProduct, Product: engine.Product{ID: "FX1", Title: "Sweater", Category: "women/knitwear", Brand: "Nordic",
			Tags: []string{"winter"}, SizeGroup: "letter", Variants: []engine.Variant{{SKU: "FX1-S", Size: "S"}, {SKU: "FX1-M", Size: "M"}}}},
		{Op: engine.OpProduct, Product: engine.Product{ID: "FX2", Title: "Scarf", Category: "women/accessories", Brand: "Nordic",
			Variants: []engine.Variant{{SKU: "FX2"}}}},
		{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: "FX1-S", Location: "online", Quantity: 3}},
		{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: "FX1-M", Location: "online", Quantity: 2}},
		{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: "FX2", Location: "online", Quantity: 9}},
		{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, Customer: "fx-before", Product: "FX1", TS: fxNow.Add(-3 * time.Hour).UnixMilli()}},
		{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventPurchase, Customer: "fx-before", SKU: "FX1-M", TS: fxNow.Add(-2 * time.Hour).UnixMilli()}},
	}
	fxAfter = []engine.Record{
		{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, AnonymousID: "fx-cookie", Product: "FX2", TS: fxNow.Add(-time.Hour).UnixMilli()}},
		{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventCartAdd, Customer: "fx-after", SKU: "FX1-S", TS: fxNow.Add(-30 * time.Minute).UnixMilli()}},
		{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: "fx-cookie", Customer: "fx-after"}},
		{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: "FX2", Location: "online", Quantity: 0}},
	}
	fxSeqOlder = uint64(len(fxBefore))
	fxSeqNewer = uint64(len(fxBefore) + len(fxAfter))
)

func fxEngineOptions() engine.Options {
	return engine.Options{Shards: 4, Now: func() time.Time { return fxNow }}
}

// snapFixture is one file of testdata/snapshots and what reading it gives.
type snapFixture struct {
	file string
	seq  uint64 // readSnapshotFile's seq when good
	bad  string // "" when good, else the reason readSnapshotFile gives
}

var snapFixtures = []snapFixture{
	{file: "older.omnisnap", seq: fxSeqOlder},
	{file: "newer.omnisnap", seq: fxSeqNewer},
	{file: "truncated.omnisnap", bad: "incomplete (no end marker)"},
	{file: "short.omnisnap", bad: "20 bytes is too short"},
	{file: "body-bitflip.omnisnap", bad: "cannot decompress"},
	{file: "header-bitflip.omnisnap", bad: "header checksum mismatch"},
	{file: "trailer-size.omnisnap", bad: "decompresses past its stated size"},
	{file: "trailer-crc.omnisnap", bad: "content checksum mismatch"},
	{file: "half-written.omnisnap.tmp", bad: "incomplete (no end marker)"},
}

var fxGenerate sync.Once

// snapFixturePath returns the path of a fixture, regenerating all of them
// first (once) when -update is set.
func snapFixturePath(t *testing.T, name string) string {
	t.Helper()
	if *update {
		fxGenerate.Do(func() { generateSnapFixtures(t) })
	}
	p := filepath.Join(snapFixtureDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%v (run go test ./engine/store -run Fixture -update to create the fixtures)", err)
	}
	return p
}

// generateSnapFixtures writes testdata/snapshots from a real store.
func generateSnapFixtures(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(Options{Dir: dir, Engine: fxEngineOptions(), NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	snap := func(recs []engine.Record) []byte {
		t.Helper()
		errs := make([]error, len(recs))
		if err := s.Write(recs, errs); err != nil {
			t.Fatal(err)
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("fixture record %d rejected: %v", i, err)
			}
		}
		info, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(info.Path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	older := snap(fxBefore)
	newer := snap(fxAfter)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	walName := wal.SegmentName(1)
	log, err := os.ReadFile(filepath.Join(dir, "wal", walName))
	if err != nil {
		t.Fatal(err)
	}

	flip := func(b []byte, off int, bit byte) []byte {
		b = bytes.Clone(b)
		b[off] ^= bit
		return b
	}
	body := len(newer) - snapHeaderSize - snapTrailer
	trailer := len(newer) - snapTrailer
	trailerSize := bytes.Clone(newer)
	binary.LittleEndian.PutUint64(trailerSize[trailer:], binary.LittleEndian.Uint64(newer[trailer:])-1)
	files := map[string][]byte{
		"older.omnisnap":            older,
		"newer.omnisnap":            newer,
		walName:                     log,
		"truncated.omnisnap":        newer[:snapHeaderSize+body/2],
		"short.omnisnap":            newer[:20],
		"body-bitflip.omnisnap":     flip(newer, snapHeaderSize+body/2, 0x10),
		"header-bitflip.omnisnap":   flip(newer, 10, 0x01), // the seq's low byte
		"trailer-size.omnisnap":     trailerSize,
		"trailer-crc.omnisnap":      flip(newer, trailer+8, 0x01),
		"half-written.omnisnap.tmp": newer[:len(newer)/2],
	}
	if err := os.RemoveAll(snapFixtureDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(snapFixtureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(snapFixtureDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("rewrote %d fixtures in %s", len(files), snapFixtureDir)
}

// TestSnapshotFixtures checks what readSnapshotFile makes of each fixture:
// the good ones load at their seq, every damaged one is ErrBadSnapshotFile
// with the reason of its damage.
func TestSnapshotFixtures(t *testing.T) {
	for _, fx := range snapFixtures {
		t.Run(fx.file, func(t *testing.T) {
			path := snapFixturePath(t, fx.file)
			snap, raw, err := readSnapshotFile(wal.OS(), path)
			seq := snap.Seq
			if fx.bad == "" {
				if err != nil {
					t.Fatalf("readSnapshotFile: %v", err)
				}
				if seq != fx.seq {
					t.Fatalf("seq %d, want %d", seq, fx.seq)
				}
				if _, err := engine.LoadSnapshot(fxEngineOptions(), raw); err != nil {
					t.Fatalf("the engine cannot load the fixture's state: %v (see snapFixtureDir's doc before regenerating)", err)
				}
				return
			}
			if !errors.Is(err, ErrBadSnapshotFile) {
				t.Fatalf("readSnapshotFile: %v; want ErrBadSnapshotFile", err)
			}
			if !strings.Contains(err.Error(), fx.bad) || !strings.Contains(err.Error(), path) {
				t.Fatalf("readSnapshotFile: %q; want the reason %q and the file name", err, fx.bad)
			}
			if raw != nil || seq != 0 {
				t.Fatalf("a damaged file returned seq %d and %d bytes", seq, len(raw))
			}
		})
	}
}

// TestOpenWithDamagedNewestSnapshot opens a data folder holding the older
// good snapshot, the log, and each fixture as the newest snapshot: a good
// one is loaded; a damaged one is passed over (named in SkippedSnapshot) for
// the older one and a longer replay, which reaches the same state; a
// half-written .tmp is removed and never considered.
func TestOpenWithDamagedNewestSnapshot(t *testing.T) {
	newest := filepath.Join("snapshots", snapName(fxSeqNewer))
	older := filepath.Join("snapshots", snapName(fxSeqOlder))
	cases := []struct {
		name     string
		fixture  string
		as       string // the fixture's name in the data folder
		snapshot string // RecoveryInfo.Snapshot, relative to the folder
		skipped  string // the one SkippedSnapshot, or ""
	}{
		{"newer", "newer.omnisnap", newest, newest, ""},
		{"truncated", "truncated.omnisnap", newest, older, newest},
		{"short", "short.omnisnap", newest, older, newest},
		{"body-bitflip", "body-bitflip.omnisnap", newest, older, newest},
		{"header-bitflip", "header-bitflip.omnisnap", newest, older, newest},
		{"trailer-size", "trailer-size.omnisnap", newest, older, newest},
		{"trailer-crc", "trailer-crc.omnisnap", newest, older, newest},
		// A good file under another seq's name is damaged too.
		{"misnamed", "older.omnisnap", newest, older, newest},
		{"half-written", "half-written.omnisnap.tmp", newest + tmpSuffix, older, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyFixture(t, snapFixturePath(t, "older.omnisnap"), filepath.Join(dir, older))
			copyFixture(t, snapFixturePath(t, tc.fixture), filepath.Join(dir, tc.as))
			copyFixture(t, snapFixturePath(t, wal.SegmentName(1)), filepath.Join(dir, "wal", wal.SegmentName(1)))

			s, info, err := Open(Options{Dir: dir, Engine: fxEngineOptions(), NoBackground: true})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			var want []string
			if tc.skipped != "" {
				want = []string{filepath.Join(dir, tc.skipped)}
			}
			if info.Snapshot != filepath.Join(dir, tc.snapshot) || !slices.Equal(info.SkippedSnapshot, want) {
				t.Fatalf("loaded %q, skipped %q; want %q, skipped %q", info.Snapshot, info.SkippedSnapshot, filepath.Join(dir, tc.snapshot), want)
			}
			wantSeq, wantReplayed := fxSeqOlder, int(fxSeqNewer-fxSeqOlder)
			if tc.snapshot == newest {
				wantSeq, wantReplayed = fxSeqNewer, 0
			}
			if info.SnapshotSeq != wantSeq || info.Replayed != wantReplayed || info.Rejected != 0 || info.NextSeq != fxSeqNewer+1 || info.TornTail {
				t.Fatalf("recovery %+v; want snapshot seq %d, %d replayed, next seq %d", info, wantSeq, wantReplayed, fxSeqNewer+1)
			}
			if _, err := os.Stat(filepath.Join(dir, newest+tmpSuffix)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a half-written snapshot is still there after Open: %v", err)
			}
			checkFixtureState(t, s.Engine())
		})
	}
}

// checkFixtureState checks that e holds both halves of the fixture world:
// what the older snapshot holds and what only the log after it holds.
func checkFixtureState(t *testing.T, e *engine.Engine) {
	t.Helper()
	before, ok := e.Profile("fx-before", false)
	if !ok || len(before.Purchases) != 1 || before.Purchases[0].Product != "FX1" {
		t.Fatalf("fx-before: %+v, %v; want one purchase of FX1", before, ok)
	}
	after, ok := e.Profile("fx-after", false)
	if !ok || !slices.Equal(after.Links, []string{"fx-cookie"}) || len(after.Cart) != 1 || len(after.Views) != 1 {
		t.Fatalf("fx-after: %+v, %v; want the merged cookie, its view and a cart line", after, ok)
	}
	picks := e.PicksInto(nil, &engine.Query{K: 10})
	var got []string
	for _, p := range picks {
		got = append(got, p.Item.ID)
	}
	if !slices.Equal(got, []string{"FX1"}) { // FX2 sold out after the older snapshot
		t.Fatalf("picks %v; want [FX1]", got)
	}
}

func copyFixture(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
