package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeBenchWorld: serve -world bench builds a (small) generated world
// into an empty data folder and snapshots it; a restart reads the snapshot
// instead of building it again; the load tool's ids answer.
func TestServeBenchWorld(t *testing.T) {
	bin := omnipickBinary(t)
	data := t.TempDir()
	logs := t.TempDir()
	args := []string{"-world", "bench", "-world-customers", "3000", "-world-products", "2000"}
	p := startServe(t, bin, data, filepath.Join(logs, "1.log"), args...)
	get := func(p *proc, path string) string {
		t.Helper()
		resp, err := http.Get(p.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	if body := get(p, "/v1/customers/C0001"); !strings.Contains(body, `"purchases"`) {
		t.Fatalf("customer C0001: %s", body)
	}
	if body := get(p, "/v1/picks?customer=C0001&channel=ads&k=5"); !strings.Contains(body, `"product":"P`) {
		t.Fatalf("picks: %s", body)
	}
	if !strings.Contains(p.log(), "world snapshotted") {
		t.Fatalf("no snapshot of the world:\n%s", p.logTail())
	}
	p.signal(syscall.SIGTERM)
	p.wait(30 * time.Second)

	p2 := startServe(t, bin, data, filepath.Join(logs, "2.log"), args...)
	defer func() { p2.signal(syscall.SIGTERM); p2.wait(30 * time.Second) }()
	if !strings.Contains(p2.log(), "world not built again") {
		t.Fatalf("the restart built the world again:\n%s", p2.logTail())
	}
	if body := get(p2, "/v1/customers/C0001"); !strings.Contains(body, `"purchases"`) {
		t.Fatalf("after the restart, customer C0001: %s", body)
	}
}
