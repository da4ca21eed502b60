package scale

import (
	"bytes"
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
