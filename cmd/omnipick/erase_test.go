package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Snapshot file framing (engine/store/snapshot.go, frozen): the zstd
// frame sits between a 30-byte header and a 20-byte trailer.
const snapHeader, snapTrailer = 30, 20

// filesHolding returns the files under dir whose bytes, or whose
// decompressed content for snapshots, contain any of ids.
func filesHolding(t *testing.T, dir string, ids ...string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		contents := [][]byte{b}
		if strings.HasSuffix(path, ".omnisnap") && len(b) > snapHeader+snapTrailer {
			zr, err := zstd.NewReader(bytes.NewReader(b[snapHeader : len(b)-snapTrailer]))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(zr)
			zr.Close()
			if err != nil {
				t.Fatalf("cannot decompress %s: %v", path, err)
			}
			contents = append(contents, raw)
		}
		for _, c := range contents {
			for _, id := range ids {
				if bytes.Contains(c, []byte(id)) {
					found = append(found, fmt.Sprintf("%s (%s)", path, id))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestErasure runs the real binary with keys: a customer with a linked
// cookie, events on both, an exclusion, impressions and an email campaign
// is erased with DELETE /v1/customers/{id} (the write key; a read key is
// refused); from the next request nothing shows them; POST
// /v1/admin/compact answers once the data folder holds neither id in any
// file (snapshots decompressed), also after a restart. A second erasure
// is compacted away by the background within -erasure-compact-after.
func TestErasure(t *testing.T) {
	bin := omnipickBinary(t)
	root := t.TempDir()
	data := filepath.Join(root, "data")
	const wk, rk = "erase-write-key-0123456789abcdef", "erase-read-key-0123456789abcdef0"
	extra := []string{"-write-key", wk, "-read-key", rk, "-snapshot-every", "200ms", "-erasure-compact-after", "1h"}
	p := startServe(t, bin, data, filepath.Join(root, "serve.log"), extra...)
	hc := &http.Client{Timeout: 10 * time.Second}
	do := func(method, path, key, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, p.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	must := func(method, path, body string) string {
		t.Helper()
		status, b := do(method, path, wk, body)
		if status != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, status, b)
		}
		return b
	}
	const anna, cookie, other = "gdpr-anna-7f3e", "gdpr-cookie-91cd", "gdpr-keeps-5b2a"
	var prods, inv []string
	for i := range 8 {
		prods = append(prods, fmt.Sprintf(`{"id":"E%d","title":"Erase %d","category":"c/e%d","variants":[{"sku":"E%d"}]}`, i, i, i%2, i))
		inv = append(inv, fmt.Sprintf(`{"sku":"E%d","location":"online","quantity":5}`, i))
	}
	must("POST", "/v1/products", strings.Join(prods, "\n"))
	must("POST", "/v1/inventory", strings.Join(inv, "\n"))
	must("POST", "/v1/events", fmt.Sprintf(`{"type":"view","anonymous_id":%q,"product":"E1"}
{"type":"cart_add","anonymous_id":%q,"product":"E2"}
{"type":"purchase","customer":%q,"product":"E3","order":"gdpr-order-1"}
{"type":"view","customer":%q,"product":"E4"}
{"type":"view","customer":%q,"product":"E5"}`, cookie, cookie, anna, anna, other))
	must("POST", "/v1/identify", fmt.Sprintf(`{"anonymous_id":%q,"customer":%q}`, cookie, anna))
	must("POST", "/v1/exclusions", fmt.Sprintf(`{"customer":%q,"product":"E6","until":"2099-01-01T00:00:00Z"}`, anna))
	must("GET", "/v1/picks?customer="+anna+"&channel=email&k=3&campaign=spring&record=1", "")
	// A snapshot holds them now, and the log: the grep below can see them.
	deadline := time.Now().Add(10 * time.Second)
	for len(filesHolding(t, filepath.Join(data, "snapshots"), anna)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no snapshot holds the customer: the test cannot show the compaction removes it")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("before the erasure: %v", filesHolding(t, data, anna, cookie))

	if status, b := do("DELETE", "/v1/customers/"+anna, rk, ""); status != http.StatusForbidden {
		t.Fatalf("DELETE with a read key: %d %s", status, b)
	}
	if b := must("DELETE", "/v1/customers/"+anna, ""); !strings.Contains(b, `"erased":"`+anna+`"`) {
		t.Fatalf("DELETE: %s", b)
	}
	for _, path := range []string{"/v1/customers/" + anna, "/v1/customers/" + cookie + "?anonymous=1"} {
		if status, b := do("GET", path, rk, ""); status != http.StatusNotFound {
			t.Fatalf("GET %s right after the erasure: %d %s", path, status, b)
		}
	}
	if status, b := do("DELETE", "/v1/customers/"+anna, wk, ""); status != http.StatusNotFound {
		t.Fatalf("erasing again: %d %s", status, b)
	}
	// Her picks are a stranger's: no cart, no exclusion, no campaign.
	b := must("GET", "/v1/picks?customer="+anna+"&channel=ads&k=8", "")
	if strings.Contains(b, `"reason":"cart"`) || strings.Contains(b, `"reason":"viewed"`) {
		t.Fatalf("picks after the erasure still know her: %s", b)
	}
	if status, b := do("GET", "/v1/customers/"+other, rk, ""); status != http.StatusOK {
		t.Fatalf("another customer went too: %d %s", status, b)
	}

	if status, b := do("POST", "/v1/admin/compact", rk, ""); status != http.StatusForbidden {
		t.Fatalf("compact with a read key: %d %s", status, b)
	}
	start := time.Now()
	b = must("POST", "/v1/admin/compact", "")
	t.Logf("POST /v1/admin/compact: %s in %v", strings.TrimSpace(b), time.Since(start).Round(time.Millisecond))
	if found := filesHolding(t, data, anna, cookie); len(found) > 0 {
		t.Fatalf("after the compaction files still hold the erased ids: %v", found)
	}
	if found := filesHolding(t, data, other); len(found) == 0 {
		t.Fatal("no file holds the customer that stays: the grep proves nothing")
	}
	p.signal(syscall.SIGKILL)
	p.wait(10 * time.Second)

	// The background compacts a second erasure by itself.
	extra[len(extra)-1] = "2s"
	p = startServe(t, bin, data, filepath.Join(root, "restart.log"), extra...)
	if status, _ := do("GET", "/v1/customers/"+anna, rk, ""); status != http.StatusNotFound {
		t.Fatalf("after a restart the erased customer is back: %d", status)
	}
	must("DELETE", "/v1/customers/"+other, "")
	erased := time.Now()
	for len(filesHolding(t, data, other)) > 0 {
		if time.Since(erased) > 15*time.Second {
			t.Fatalf("15 s after an erasure with -erasure-compact-after 2s, files still hold it: %v", filesHolding(t, data, other))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the background compacted the second erasure away %v after it", time.Since(erased).Round(100*time.Millisecond))
	p.signal(syscall.SIGTERM)
	if st := p.wait(30 * time.Second); st.ExitCode() != 0 {
		t.Fatalf("clean stop: %v\n%s", st, p.logTail())
	}
	if found := filesHolding(t, data, anna, cookie, other); len(found) > 0 {
		t.Fatalf("after the shutdown snapshot files hold erased ids: %v", found)
	}
}
