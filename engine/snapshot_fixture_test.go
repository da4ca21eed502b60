package engine

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var writeFixture = flag.Bool("write-snapshot-fixture", false, "write the current encoding's fixture (testdata/snapshots/"+currentFixture+") from the current code")

// engineFixture is a snapshot in engine encoding version 2 holding an
// index snapshot of version 1, written by the code of December 2026
// (before profiles moved to their own package) from the world of
// TestSnapshotRoundTrip. It must keep loading into the same state whatever
// the code that reads it: never rewrite it.
var engineFixture = filepath.Join("..", "testdata", "snapshots", "engine-v2.snap")

// indexV2Fixture is the same world in engine version 2 holding an index
// snapshot of version 2 (items carry a product group, issue 11). Never
// rewrite it.
var indexV2Fixture = filepath.Join("..", "testdata", "snapshots", "engine-v2-index-v2.snap")

// engineV3Fixture is the same world in engine version 3 (version 2 and
// the event ids section, issue 12) holding an index snapshot of version
// 2. Never rewrite it.
var engineV3Fixture = filepath.Join("..", "testdata", "snapshots", "engine-v3-index-v2.snap")

// indexV3Fixture is the same world in engine version 3 holding an index
// snapshot of version 3 (items carry attributes, stores their registered
// names; issue 16). Never rewrite it.
var indexV3Fixture = filepath.Join("..", "testdata", "snapshots", "engine-v3-index-v3.snap")

// engineV4Fixture is the same world in engine version 4 (version 3 and
// the learned blend, issue 11) holding an index snapshot of version 3.
// Never rewrite it.
var engineV4Fixture = filepath.Join("..", "testdata", "snapshots", "engine-v4-index-v3.snap")

// engineV5Fixture is the same world in engine version 5 (popularity as
// values at a reference time, issue 13) holding an index snapshot of
// version 3. Never rewrite it.
var engineV5Fixture = filepath.Join("..", "testdata", "snapshots", "engine-v5-index-v3.snap")

// engineV6Fixture is the same world in engine version 6 (version 5 and
// the user-neighbour signal's baskets, issue 11) holding an index snapshot
// of version 3. Never rewrite it.
var engineV6Fixture = filepath.Join("..", "testdata", "snapshots", "engine-v6-index-v3.snap")

// currentFixture is the same world in today's encoding: engine version 7
// (version 6 with its big parts length-prefixed, so that they load in
// parallel; issue 13) holding an index snapshot of version 3. Write it
// with -write-snapshot-fixture only for a new encoding version, keeping
// the older files.
const currentFixture = "engine-v7-index-v3.snap"

// fixtureWorld is the world the fixture holds. The encodings before
// version 4 hold no learned blend, and the world learns none (Blend is
// off): each fixture loads with the blend New sets, as the world has it.
// TestBlendIsState checks a learned blend's round trip. Likewise the
// neighbour signal is off (no baskets, as before version 6);
// TestNeighboursAreState checks baskets' round trip.
func fixtureWorld(t *testing.T) *world {
	w := apparel(t)
	w.stock("SW1-8", "store-1", 3)
	w.stock("HT1", "store-1", 1)
	replayWorld(w, 0, 300)
	return w
}

// TestSnapshotFixtureLoads loads a snapshot written by earlier code and
// checks it holds the state the same records give today: the same stats,
// picks and profiles, and it writes back the same bytes. Before version 5
// popularity was kept as log-scores, which load converted to values at a
// reference time: the same up to float rounding, so those fixtures give
// the same picks with scores within 1e-9 (two picks may swap only where
// their scores are that close), and written again they are a current
// snapshot that loads back to the same answers and bytes.
func TestSnapshotFixtureLoads(t *testing.T) {
	w := fixtureWorld(t)
	current := filepath.Join("..", "testdata", "snapshots", currentFixture)
	if *writeFixture {
		if err := os.WriteFile(current, snapshotBytes(t, w.e), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(current)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{engineFixture, indexV2Fixture, engineV3Fixture, indexV3Fixture, engineV4Fixture, engineV5Fixture, engineV6Fixture, current} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		loaded, err := LoadSnapshot(w.e.Options(), data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		st := loaded.Stats()
		if st.Products != 28 || st.Profiles == 0 || st.Events[EventPurchase] == 0 {
			t.Fatalf("%s: stats of the fixture: %+v", path, st)
		}
		again := snapshotBytes(t, loaded)
		if path != current {
			answersWithin(t, w.e, loaded, w.now, 1e-9)
			// Converted once, the state is today's encoding's.
			reloaded, err := LoadSnapshot(w.e.Options(), again)
			if err != nil {
				t.Fatalf("%s written again: %v", path, err)
			}
			sameAnswers(t, loaded, reloaded, w.now)
			if b := snapshotBytes(t, reloaded); !bytes.Equal(b, again) {
				t.Fatalf("%s written twice differs: %d vs %d bytes", path, len(b), len(again))
			}
			// Version 5 holds popularity as today: only the (empty)
			// neighbour section and version 7's part lengths are new,
			// so it converts exactly, as version 6 does.
			if (path == engineV5Fixture || path == engineV6Fixture) && !bytes.Equal(again, want) {
				t.Fatalf("%s written again differs from %s: %d vs %d bytes", path, currentFixture, len(again), len(want))
			}
			continue
		}
		sameAnswers(t, w.e, loaded, w.now)
		// Written again, today's encoding gives the same bytes.
		if !bytes.Equal(again, want) {
			t.Fatalf("%s written again differs from %s: %d vs %d bytes", path, currentFixture, len(again), len(want))
		}
	}
}
