package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCheckAdminAddr(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:6060", true},
		{"127.0.0.2:6060", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
		{"127.0.0.1:0", true},
		{":6060", false}, // every interface
		{"0.0.0.0:6060", false},
		{"[::]:6060", false},
		{"192.168.1.10:6060", false},
		{"example.com:6060", false},
		{"127.0.0.1", false}, // no port
	} {
		err := checkAdminAddr(tt.addr)
		if (err == nil) != tt.ok {
			t.Errorf("checkAdminAddr(%q) = %v; want ok=%v", tt.addr, err, tt.ok)
		}
	}
}

// TestAdminMux checks that the mux serves pprof's index and named
// profiles, and nothing else.
func TestAdminMux(t *testing.T) {
	srv := httptest.NewServer(adminMux())
	defer srv.Close()
	for _, tt := range []struct {
		path, contains string
		status         int
	}{
		{"/debug/pprof/", "goroutine", 200},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile", 200},
		{"/debug/pprof/heap?debug=1", "heap profile", 200},
		{"/debug/pprof/cmdline", "", 200},
		{"/metrics", "", 404},
		{"/", "", 404},
	} {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.contains) {
			t.Errorf("GET %s: %d, %.80q; want %d with %q", tt.path, resp.StatusCode, b, tt.status, tt.contains)
		}
	}
}

// TestAdminListener runs the real binary: without -admin-addr no profile
// is served (not on the API port either); with it, pprof answers on that
// address (and /metrics has the store's figures, wired by serve); a
// non-loopback address is refused before anything starts.
func TestAdminListener(t *testing.T) {
	bin := omnipickBinary(t)
	dir := t.TempDir()
	get := func(url string) (int, string) {
		t.Helper()
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	p := startServe(t, bin, filepath.Join(dir, "off"), filepath.Join(dir, "off.log"))
	if code, body := get(p.base + "/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("pprof on the API port: %d %.80q; want 404", code, body)
	}
	if strings.Contains(p.log(), "admin") || strings.Contains(p.log(), "pprof") {
		t.Fatalf("the log mentions an admin listener without -admin-addr:\n%s", p.log())
	}
	p.signal(syscall.SIGTERM)
	p.wait(30 * time.Second)

	admin := freeAddr(t)
	p = startServe(t, bin, filepath.Join(dir, "on"), filepath.Join(dir, "on.log"), "-admin-addr", admin)
	if code, body := get("http://" + admin + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("GET /debug/pprof/ on -admin-addr: %d %.200q", code, body)
	}
	// serve wires the log's fsyncs and the store's figures into /metrics.
	if code, body := get(p.base + "/metrics"); code != http.StatusOK || !strings.Contains(body, "omnipick_wal_fsync_duration_seconds_count") ||
		!strings.Contains(body, "omnipick_wal_segments 1") {
		t.Fatalf("GET /metrics: %d, no WAL figures:\n%s", code, body)
	}
	if code, body := get("http://" + admin + "/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Fatalf("GET /debug/pprof/heap on -admin-addr: %d %.200q", code, body)
	}
	p.signal(syscall.SIGTERM)
	if st := p.wait(30 * time.Second); st.ExitCode() != 0 {
		t.Fatalf("exit %v with the admin listener on:\n%s", st, p.logTail())
	}

	out, err := exec.Command(bin, "serve", "-addr", freeAddr(t), "-data", filepath.Join(dir, "refused"), "-admin-addr", "0.0.0.0:6060").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "loopback") {
		t.Fatalf("-admin-addr 0.0.0.0:6060: %v\n%s; want a refusal naming loopback", err, out)
	}
}
