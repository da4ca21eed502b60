package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Large batches for TestLargeBatchesAllOrNothing: every batch buys
// batchProducts distinct products for each of batchCustomers customers of
// its own, so a partly applied batch shows as a profile with fewer
// purchases, or as customers of one batch that disagree.
const (
	batchProducts  = 400
	batchCustomers = 4 // 1,600 records, ~130 KB, a batch
	batchClients   = 3
	batchCycles    = 4
)

// TestLargeBatchesAllOrNothing SIGKILLs the real binary while clients
// post large batches concurrently, restarts it, and checks that every
// batch is wholly present or wholly absent, and every acknowledged one
// present.
func TestLargeBatchesAllOrNothing(t *testing.T) {
	bin := omnipickBinary(t)
	root := t.TempDir()
	data := filepath.Join(root, "data")
	hc := &http.Client{Timeout: 30 * time.Second}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))

	type batch struct {
		name  string
		acked bool
	}
	var (
		mu      sync.Mutex
		batches []batch
		seen    = map[string]bool{} // batches found present after a kill
	)
	var present, absent, ackedTotal int
	for cycle := range batchCycles {
		p := startServe(t, bin, data, filepath.Join(root, fmt.Sprintf("cycle-%d.log", cycle)), "-snapshot-every", "300ms")
		if cycle == 0 {
			var prods []string
			for i := range batchProducts {
				prods = append(prods, fmt.Sprintf(`{"id":"B%03d","title":"Batch %d","variants":[{"sku":"B%03d"}]}`, i, i, i))
			}
			mustPost(t, hc, p.base+"/v1/products", prods...)
		} else {
			// Check every batch posted so far.
			for _, b := range batches {
				var counts []int
				for c := range batchCustomers {
					var d profileDoc
					status, err := getJSON(hc, fmt.Sprintf("%s/v1/customers/%s-c%d", p.base, b.name, c), &d)
					switch {
					case err != nil:
						t.Fatal(err)
					case status == http.StatusNotFound:
						counts = append(counts, 0)
					case status == http.StatusOK:
						counts = append(counts, len(d.Purchases))
					default:
						t.Fatalf("GET customer: status %d", status)
					}
				}
				all, none := true, true
				for _, n := range counts {
					all = all && n == batchProducts
					none = none && n == 0
				}
				if !all && !none {
					t.Fatalf("cycle %d: batch %s is partly present: purchases per customer %v, want all %d or none", cycle, b.name, counts, batchProducts)
				}
				if b.acked && !all {
					t.Fatalf("cycle %d: acknowledged batch %s is gone", cycle, b.name)
				}
				if seen[b.name] && !all {
					t.Fatalf("cycle %d: batch %s was present after an earlier restart and is gone now", cycle, b.name)
				}
				if all {
					seen[b.name] = true
				}
			}
		}
		if cycle == batchCycles-1 {
			p.signal(syscall.SIGTERM)
			p.wait(30 * time.Second)
			break
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var ackedNow atomic.Int64
		for cl := range batchClients {
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("k%d-w%d-b%d", cycle, cl, n)
					var body bytes.Buffer
					for c := range batchCustomers {
						for i := range batchProducts {
							fmt.Fprintf(&body, `{"type":"purchase","customer":"%s-c%d","product":"B%03d","channel":"web","order":"%s"}`+"\n", name, c, i, name)
						}
					}
					mu.Lock()
					batches = append(batches, batch{name: name})
					idx := len(batches) - 1
					mu.Unlock()
					req, _ := http.NewRequest("POST", p.base+"/v1/events", &body)
					req.Header.Set("Content-Type", "application/x-ndjson")
					resp, err := hc.Do(req)
					if err != nil {
						return // the kill
					}
					rb, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK && n == 0 {
						t.Logf("batch %s: %d %.300s", name, resp.StatusCode, rb)
					}
					if resp.StatusCode == http.StatusOK {
						ackedNow.Add(1)
						mu.Lock()
						batches[idx].acked = true
						mu.Unlock()
					}
				}
			})
		}
		// Kill once a batch of this cycle was acknowledged, at a random
		// moment after, while others are in flight.
		for deadline := time.Now().Add(20 * time.Second); ackedNow.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		p.signal(syscall.SIGKILL)
		p.wait(10 * time.Second)
		close(stop)
		wg.Wait()
	}
	for _, b := range batches {
		if b.acked {
			ackedTotal++
		}
		if seen[b.name] {
			present++
		} else {
			absent++
		}
	}
	if ackedTotal == 0 {
		t.Fatal("no batch was acknowledged: the test did not exercise the server")
	}
	t.Logf("%d kills: %d batches of %d records posted, %d acknowledged; after the restarts %d wholly present, %d wholly absent, none partly",
		batchCycles-1, len(batches), batchProducts*batchCustomers, ackedTotal, present, absent)
}

// TestDiskFullOnTmpfs runs the real binary on a 4 MiB tmpfs: once a filler
// file takes the space, writes answer 503 naming the cause with
// Retry-After, reads keep working, and once the filler is gone writes
// resume by themselves; after a restart every acknowledged write is there.
// It needs root to mount (CI runs as root) and skips only without it.
func TestDiskFullOnTmpfs(t *testing.T) {
	bin := omnipickBinary(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	root := t.TempDir()
	mnt := filepath.Join(root, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	})
	data := filepath.Join(mnt, "data")
	hc := &http.Client{Timeout: 10 * time.Second}
	p := startServe(t, bin, data, filepath.Join(root, "serve.log"), "-snapshot-every", "1h")
	mustPost(t, hc, p.base+"/v1/products", `{"id":"F1","title":"Full","variants":[{"sku":"F1"}]}`)
	mustPost(t, hc, p.base+"/v1/inventory", `{"sku":"F1","location":"online","quantity":5}`)
	mustPost(t, hc, p.base+"/v1/events", `{"type":"view","customer":"before-full","product":"F1"}`)

	// Fill the disk.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()

	events := func(c string) string {
		var b strings.Builder
		for range 200 {
			fmt.Fprintf(&b, `{"type":"view","customer":%q,"product":"F1"}`+"\n", c)
		}
		return b.String()
	}
	post := func(body string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", p.base+"/v1/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := post(events("during-full"))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no space left on device") || resp.Header.Get("Retry-After") != "5" {
		t.Fatalf("a write on a full disk: %d %s (Retry-After %q), want 503 naming the cause", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	t.Logf("full disk: %d %s", resp.StatusCode, strings.TrimSpace(body))
	var d profileDoc
	if status, err := getJSON(hc, p.base+"/v1/customers/before-full", &d); err != nil || status != http.StatusOK {
		t.Fatalf("a read on a full disk: %d %v", status, err)
	}
	if status, err := getJSON(hc, p.base+"/v1/customers/during-full", &d); err != nil || status != http.StatusNotFound {
		t.Fatalf("the refused write is visible: %d %v", status, err)
	}
	var picks struct{}
	if status, err := getJSON(hc, p.base+"/v1/picks?customer=before-full&channel=web&k=3", &picks); err != nil || status != http.StatusOK {
		t.Fatalf("picks on a full disk: %d %v", status, err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		resp, body = post(events("after-full"))
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("writes did not resume after the space came back: %d %s", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("writes resumed %v after the space came back", time.Since(start).Round(time.Millisecond))
	p.signal(syscall.SIGKILL)
	p.wait(10 * time.Second)
	p = startServe(t, bin, data, filepath.Join(root, "restart.log"))
	for _, c := range []string{"before-full", "after-full"} {
		if status, err := getJSON(hc, p.base+"/v1/customers/"+c, &d); err != nil || status != http.StatusOK || len(d.Views) == 0 {
			t.Fatalf("after a restart the acknowledged %s is gone: %d %v", c, status, err)
		}
	}
	if status, _ := getJSON(hc, p.base+"/v1/customers/during-full", &d); status != http.StatusNotFound {
		t.Fatalf("after a restart the refused write is there: %d", status)
	}
	p.signal(syscall.SIGTERM)
	if st := p.wait(30 * time.Second); st.ExitCode() != 0 {
		t.Fatalf("clean stop: %v\n%s", st, p.logTail())
	}
}
