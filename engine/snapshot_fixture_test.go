package engine

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var writeFixture = flag.Bool("write-snapshot-fixture", false, "rewrite testdata/snapshots/engine-v2.snap from the current code")

// engineFixture is a snapshot in engine encoding version 2, written by the
// code of December 2026 (before profiles moved to their own package) from
// the world of TestSnapshotRoundTrip. It must keep loading into the same
// state whatever the code that reads it: rewrite it only with a new
// encoding version, and keep the old file as a fixture of the old version.
var engineFixture = filepath.Join("..", "testdata", "snapshots", "engine-v2.snap")

// fixtureWorld is the world the fixture holds.
func fixtureWorld(t *testing.T) *world {
	w := apparel(t)
	w.stock("SW1-8", "store-1", 3)
	w.stock("HT1", "store-1", 1)
	replayWorld(w, 0, 300)
	return w
}

// TestSnapshotFixtureLoads loads a snapshot written by earlier code and
// checks it holds the state the same records give today: the same stats,
// picks and profiles, and it writes back the same bytes.
func TestSnapshotFixtureLoads(t *testing.T) {
	w := fixtureWorld(t)
	if *writeFixture {
		if err := os.WriteFile(engineFixture, snapshotBytes(t, w.e), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(engineFixture)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadSnapshot(w.e.Options(), data)
	if err != nil {
		t.Fatal(err)
	}
	st := loaded.Stats()
	if st.Products != 28 || st.Profiles == 0 || st.Events[EventPurchase] == 0 {
		t.Fatalf("stats of the fixture: %+v", st)
	}
	sameAnswers(t, w.e, loaded, w.now)
	// Written again, it is what today's code writes for the same state
	// (the index part is in a newer encoding since: version 2 adds
	// product attributes and store names).
	if again, want := snapshotBytes(t, loaded), snapshotBytes(t, w.e); !bytes.Equal(again, want) {
		t.Fatalf("the fixture written again differs from the same state's snapshot: %d vs %d bytes", len(again), len(want))
	}
}
