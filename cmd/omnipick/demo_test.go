package main

import (
	"bufio"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine/store"
	"github.com/omnipick/omnipick/internal/demo"
)

// TestServeDemoAnywhere starts `serve -demo` in a folder that is not the
// repository (startServe runs every binary in a temporary folder): the
// demo is embedded, its history ends now, so the last week's cart
// abandoners are there and a new visitor's popular picks are too.
func TestServeDemoAnywhere(t *testing.T) {
	bin := omnipickBinary(t)
	dir := t.TempDir()
	p := startServe(t, bin, filepath.Join(dir, "data"), filepath.Join(dir, "serve.log"), "-demo")
	if !strings.Contains(p.log(), "demo world loaded") {
		t.Fatalf("no \"demo world loaded\" in the log\n%s", p.logTail())
	}
	if n := countLines(t, p.base+"/v1/audiences/cart_abandoners?min_age=1h&max_age=168h&k=5"); n == 0 {
		t.Error("no cart abandoners in the last week of a fresh demo")
	}
	var picks struct {
		Picks []struct{ Product, Reason string }
	}
	if st, err := getJSON(http.DefaultClient, p.base+"/v1/picks?customer=newcomer&channel=web&k=5", &picks); err != nil || st != 200 || len(picks.Picks) != 5 {
		t.Fatalf("a new visitor's picks: status %d, %v, %+v", st, err, picks)
	}
	for _, pk := range picks.Picks {
		if pk.Reason != "popular" {
			t.Errorf("a new visitor's pick %s has reason %q, want popular", pk.Product, pk.Reason)
		}
	}
	p.signal(syscall.SIGTERM)
	p.wait(30 * time.Second)
}

// TestServeDemoStale seeds a data folder with the demo as it was five
// weeks ago: serve -demo keeps it but says it is stale and names the flag;
// -demo-reseed seeds it afresh.
func TestServeDemoStale(t *testing.T) {
	bin := omnipickBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	st, _, err := store.Open(store.Options{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Load(st, time.Now().Add(-35*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	p := startServe(t, bin, data, filepath.Join(dir, "stale.log"), "-demo")
	log := p.log()
	if !strings.Contains(log, "seeded 35 days ago") || !strings.Contains(log, "-demo-reseed") || strings.Contains(log, "demo world loaded") {
		t.Errorf("serve -demo on a five-week-old demo: want a warning naming -demo-reseed, got\n%s", p.logTail())
	}
	if n := countLines(t, p.base+"/v1/audiences/cart_abandoners?min_age=1h&max_age=168h&k=5"); n != 0 {
		t.Errorf("a stale demo has %d cart abandoners in the last week: the test seeded it wrong", n)
	}
	p.signal(syscall.SIGTERM)
	p.wait(30 * time.Second)

	p = startServe(t, bin, data, filepath.Join(dir, "reseed.log"), "-demo", "-demo-reseed")
	if log := p.log(); !strings.Contains(log, "deleted the data folder's log and snapshots") || !strings.Contains(log, "demo world loaded") {
		t.Errorf("serve -demo -demo-reseed: want the folder wiped and the demo loaded, got\n%s", p.logTail())
	}
	if n := countLines(t, p.base+"/v1/audiences/cart_abandoners?min_age=1h&max_age=168h&k=5"); n == 0 {
		t.Error("no cart abandoners in the last week after -demo-reseed")
	}
	p.signal(syscall.SIGTERM)
	p.wait(30 * time.Second)

	// And a third start keeps what the reseed wrote, without a warning.
	p = startServe(t, bin, data, filepath.Join(dir, "again.log"), "-demo")
	if log := p.log(); strings.Contains(log, "days ago") || strings.Contains(log, "demo world loaded") {
		t.Errorf("serve -demo on a fresh demo folder:\n%s", p.logTail())
	}
	p.signal(syscall.SIGTERM)
	p.wait(30 * time.Second)
}

// countLines GETs url and counts its non-empty lines (NDJSON members).
func countLines(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) > 0 {
			n++
		}
	}
	return n
}
