package scale

import (
	"bytes"
	"io"
	"strings"
	"testing"

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
// written, and the folder still holds the same profiles.
func TestReuseMeasuresAFolder(t *testing.T) {
	dir := t.TempDir()
	built, err := Run(Options{World: smallWorld(), Dir: dir, Queries: 100, Restart: true})
	if err != nil {
		t.Fatal(err)
	}
	var prof, again bytes.Buffer
	rep, err := Reuse(Options{World: smallWorld(), Dir: dir, Queries: 2000}, [2]io.Writer{&prof, &again})
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
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), "restart again") {
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
