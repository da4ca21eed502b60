package store

import (
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
)

// TestWorldSnapshotFigures measures snapshot size, time and write pause, and
// recovery time, on a generated world. It is a measurement, not a check of
// speed: run it by hand (the figures: 1M customers, 100k products):
//
//	OMNIPICK_WORLD_CUSTOMERS=1000000 OMNIPICK_WORLD_PRODUCTS=100000 \
//	  go test ./engine/store -run WorldSnapshotFigures -v -timeout 60m
func TestWorldSnapshotFigures(t *testing.T) {
	customers, _ := strconv.Atoi(os.Getenv("OMNIPICK_WORLD_CUSTOMERS"))
	products, _ := strconv.Atoi(os.Getenv("OMNIPICK_WORLD_PRODUCTS"))
	if customers == 0 || products == 0 {
		t.Skip("set OMNIPICK_WORLD_CUSTOMERS and OMNIPICK_WORLD_PRODUCTS to measure")
	}
	dir := t.TempDir()
	if d := os.Getenv("OMNIPICK_WORLD_DIR"); d != "" {
		dir = d
	}
	s, _, err := Open(Options{Dir: dir, NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := world.Bench()
	cfg.Customers, cfg.Products, cfg.Stores = customers, products, 19
	start := time.Now()
	var n, rejected int
	// The world goes straight into the engine: the log is not what is
	// measured here, and a billion-byte log would only slow the setup.
	err = world.Generate(cfg, func(r *engine.Record) error {
		n++
		if s.e.Apply(r) != nil {
			rejected++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	build := time.Since(start)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("world: %d records (%d rejected) applied in %v (%.0f records/s); %s; heap %d MiB",
		n, rejected, build.Round(time.Millisecond), float64(n)/build.Seconds(), s.e, ms.HeapAlloc>>20)

	info, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot: %d MiB raw, %d MiB on disk (%.1fx), writes paused %v, took %v",
		info.RawBytes>>20, info.FileBytes>>20, float64(info.RawBytes)/float64(info.FileBytes), info.Pause, info.Took.Round(time.Millisecond))
	s.closed = true // skip the final snapshot; the log is closed below
	s.log.Close()

	start = time.Now()
	s2, rinfo, err := Open(Options{Dir: dir, NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	t.Logf("recovery from the snapshot: %v (%s)", time.Since(start).Round(time.Millisecond), s2.e)
	if rinfo.Snapshot == "" {
		t.Fatal("recovered without the snapshot")
	}
}
