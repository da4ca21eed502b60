package scale

import (
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/bench/world"
)

func smallWorld() world.Config {
	cfg := world.Bench()
	cfg.Products, cfg.Customers, cfg.Stores, cfg.Days = 3000, 2000, 5, 14
	return cfg
}

func TestRunSmallWorld(t *testing.T) {
	for _, workers := range []int{1, 3} {
		rep, err := Run(Options{World: smallWorld(), Dir: t.TempDir(), Workers: workers, Queries: 2000, Restart: true})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case rep.Products != 3000 || rep.Profiles < 1000 || rep.Events == 0:
			t.Fatalf("workers %d: %+v", workers, rep)
		case rep.Rejected > rep.Events/100:
			t.Fatalf("workers %d: %d of %d records rejected", workers, rep.Rejected, rep.Records)
		case rep.Picks["all"].Count != 2000 || rep.Picks["all"].P50 <= 0 || rep.Picks["ads"].Count == 0 || rep.Picks["screen"].Count == 0:
			t.Fatalf("workers %d: picks %+v", workers, rep.Picks)
		case rep.HeapAll <= rep.HeapCatalog || rep.RSS == 0:
			t.Fatalf("workers %d: heap %d after the catalog, %d after all, RSS %d", workers, rep.HeapCatalog, rep.HeapAll, rep.RSS)
		case rep.SnapshotBytes == 0 || rep.RestartTook == 0:
			t.Fatalf("workers %d: snapshot %d bytes, restart %v", workers, rep.SnapshotBytes, rep.RestartTook)
		}
		var b bytes.Buffer
		if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), "p99") {
			t.Fatalf("report: %v\n%s", err, b.String())
		}
		t.Log("\n" + b.String())
	}
}

// TestReuseMeasuresAFolder: Reuse opens a folder an earlier Run left,
// builds nothing, and measures two restarts (the folder's snapshot, then
// its own), the memory after each and picks; the profile it asked for is
// written, it serves the store over HTTP, and the folder still holds the
// same profiles.
func TestReuseMeasuresAFolder(t *testing.T) {
	t.Cleanup(func() { waitForGoroutines(t, "fasthttp.(*workerPool)", 30*time.Second) }) // see TestRunOverHTTP
	dir := t.TempDir()
	built, err := Run(Options{World: smallWorld(), Dir: dir, Queries: 100, Restart: true})
	if err != nil {
		t.Fatal(err)
	}
	var prof, again bytes.Buffer
	rep, err := Reuse(Options{World: smallWorld(), Dir: dir, Queries: 2000,
		HTTP: HTTPOptions{Duration: 200 * time.Millisecond, PicksConns: 2, EventConns: 2, EventBatch: 50}}, [2]io.Writer{&prof, &again})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case rep.Profiles != built.Profiles || rep.Products != built.Products:
		t.Fatalf("reused %d profiles and %d products, built %d and %d", rep.Profiles, rep.Products, built.Profiles, built.Products)
	case rep.Open.Took <= 0 || rep.Again.Took <= 0 || rep.Open.Snapshot == "":
		t.Fatalf("restarts: %+v, %+v", rep.Open, rep.Again)
	case rep.Open.RSS == 0 || rep.Open.HeapLive == 0 || rep.Again.PeakRSS < rep.Again.RSS:
		t.Fatalf("memory: %+v, %+v", rep.Open, rep.Again)
	case rep.Picks["all"].Count != 2000 || rep.Picks["web"].Count == 0:
		t.Fatalf("picks: %+v", rep.Picks)
	case prof.Len() == 0 || again.Len() == 0:
		t.Fatalf("CPU profiles of %d and %d bytes", prof.Len(), again.Len())
	case rep.HTTP == nil || rep.HTTP.Picks.RPS <= 0 || rep.HTTP.Events.Accepted == 0:
		t.Fatalf("HTTP: %+v", rep.HTTP)
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), "restart again") || !strings.Contains(b.String(), "events over HTTP") {
		t.Fatalf("report: %v\n%s", err, b.String())
	}
	t.Log("\n" + b.String())
	if _, err := Reuse(Options{World: smallWorld(), Dir: t.TempDir()}, [2]io.Writer{}); err == nil {
		t.Fatal("an empty folder measured")
	}
}

// TestWorkersBuildTheSameProfiles: applying events from several goroutines,
// each actor on one of them, leaves every profile as one goroutine does.
func TestWorkersBuildTheSameProfiles(t *testing.T) {
	one, err := Run(Options{World: smallWorld(), Dir: t.TempDir(), Workers: 1, Queries: 10})
	if err != nil {
		t.Fatal(err)
	}
	three, err := Run(Options{World: smallWorld(), Dir: t.TempDir(), Workers: 3, Queries: 10})
	if err != nil {
		t.Fatal(err)
	}
	if one.Profiles != three.Profiles || one.Records != three.Records || one.Rejected != three.Rejected {
		t.Fatalf("1 worker: %d profiles, %d records, %d rejected; 3 workers: %d, %d, %d",
			one.Profiles, one.Records, one.Rejected, three.Profiles, three.Records, three.Rejected)
	}
}

// TestRunOverHTTP: the built world served on loopback answers the load
// tool's picks and takes its event batches, every answer a 2xx, and the
// restart afterwards replays the events the HTTP run logged.
func TestRunOverHTTP(t *testing.T) {
	// A stopped fasthttp server's idle-worker cleaner sleeps up to 10 s
	// before it notices, holding the server and through it the engine:
	// the next test's heap figures would count this test's world.
	t.Cleanup(func() { waitForGoroutines(t, "fasthttp.(*workerPool)", 30*time.Second) })
	rep, err := Run(Options{World: smallWorld(), Dir: t.TempDir(), Queries: 200, Restart: true,
		HTTP: HTTPOptions{Duration: 300 * time.Millisecond, PicksConns: 4, EventConns: 2, EventBatch: 100}})
	if err != nil {
		t.Fatal(err)
	}
	h := rep.HTTP
	switch {
	case h == nil:
		t.Fatal("no HTTP report")
	case h.Picks.Requests == 0 || h.Picks.RPS <= 0 || h.Ceiling.RPS <= 0 || h.Share <= 0:
		t.Fatalf("picks %+v, ceiling %+v, share %v", h.Picks, h.Ceiling, h.Share)
	case h.Events.Accepted == 0 || h.Events.Failed != 0 || h.Events.Rejected > h.Events.Accepted/100:
		t.Fatalf("events %+v", h.Events)
	case rep.RestartTook == 0:
		t.Fatal("no restart after the HTTP run")
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), "share") || !strings.Contains(b.String(), "events over HTTP") {
		t.Fatalf("report: %v\n%s", err, b.String())
	}
	t.Log("\n" + b.String())
}

// waitForGoroutines waits until no goroutine's stack mentions fn.
func waitForGoroutines(t *testing.T, fn string, limit time.Duration) {
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		if !strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines running %s still there after %v", fn, limit)
		}
	}
}
