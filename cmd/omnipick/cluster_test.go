package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omnipick/omnipick/engine/cluster"
)

// TestClusterBinarySIGKILL runs `omnipick cluster -nodes 3` (three real node
// processes with embedded, clustered NATS servers), writes through every
// node, SIGKILLs one node process under that load and checks that every
// write acknowledged before, during and after is visible on the survivors.
func TestClusterBinarySIGKILL(t *testing.T) {
	bin := omnipickBinary(t)
	dir := t.TempDir()
	base := consecutivePorts(t, 3)
	cmd := exec.Command(bin, "cluster", "-nodes", "3", "-addr", fmt.Sprintf("127.0.0.1:%d", base), "-data", dir)
	cmd.Env = testEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	t.Cleanup(func() { dumpNodeLogs(t, dir) })
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			for _, p := range pids {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var urls, natsURLs []string
	start := time.Now()
	deadline := time.After(120 * time.Second)
	for ready := false; !ready; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("omnipick cluster exited before it was ready (logs in %s)", dir)
			}
			var name, u, nu string
			var pid int
			if _, err := fmt.Sscanf(l, "node %s %s pid %d nats %s", &name, &u, &pid, &nu); err == nil {
				urls, pids, natsURLs = append(urls, u), append(pids, pid), append(natsURLs, nu)
			}
			if strings.HasPrefix(l, "node ") && strings.Contains(l, " exited") {
				t.Fatalf("a node exited before the cluster was ready: %s", l)
			}
			ready = strings.HasPrefix(l, "cluster ready")
		case <-deadline:
			t.Fatalf("the cluster was not ready within 120s (logs in %s)", dir)
		}
	}
	go func() {
		for range lines {
		}
	}()
	if len(urls) != 3 {
		t.Fatalf("want 3 nodes, got %v", urls)
	}
	// Three nodes on one machine: each takes a third of serve's memory limit.
	for i := range urls {
		b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("n%d", i+1), "serve.log"))
		if !strings.Contains(string(b), `msg="memory limit"`) ||
			!strings.Contains(string(b), "percent=28 ") && !strings.Contains(string(b), "source=GOMEMLIMIT") {
			t.Errorf("node n%d did not take a third of the memory limit:\n%s", i+1, b)
		}
	}
	hc := &http.Client{Timeout: 60 * time.Second}
	defer hc.CloseIdleConnections()
	for i, u := range urls {
		var h struct {
			Node        string `json:"node"`
			PID         int    `json:"pid"`
			Partitions  int    `json:"partitions"`
			Partitioned bool   `json:"partitioned"`
			Owned       []int  `json:"owned"`
			Standby     []int  `json:"standby"`
		}
		if status, err := getJSON(hc, u+"/healthz", &h); err != nil || status != http.StatusOK {
			t.Fatalf("%s/healthz: %d %v", u, status, err)
		}
		// Each partition has an owner and a standby: a node holds about
		// two thirds of them.
		if held := len(h.Owned) + len(h.Standby); h.Node != fmt.Sprintf("n%d", i+1) || h.PID != pids[i] || h.Partitions != 64 ||
			!h.Partitioned || held < 30 || held > 56 || len(h.Owned) == 0 {
			t.Fatalf("%s/healthz: %+v; want node n%d, pid %d, 64 partitions, about 43 held", u, h, i+1, pids[i])
		}
	}
	mustPost(t, hc, urls[0]+"/v1/products",
		`{"id":"CP0","title":"Hat","category":"acc/hats","variants":[{"sku":"CP0-OS"}]}`,
		`{"id":"CP1","title":"Scarf","category":"acc/scarves","variants":[{"sku":"CP1-OS"}]}`)

	t.Logf("cluster ready in %v", time.Since(start).Round(time.Millisecond))
	// The worst case: the node whose NATS server leads the stream, so
	// JetStream must elect another leader before writes are stored again.
	victim := streamLeader(t, natsURLs[0])
	var (
		mu              sync.Mutex
		acked           []string
		stop            atomic.Bool
		killed, resumed atomic.Int64
		wg              sync.WaitGroup
	)
	for w := range 3 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				var body strings.Builder
				ids := make([]string, 5)
				for j := range ids {
					ids[j] = fmt.Sprintf("ck-%d-%d-%d", w, i, j)
					fmt.Fprintf(&body, `{"type":"view","customer":%q,"product":"CP%d","ts":%d}`+"\n", ids[j], j%2, time.Now().UnixMilli())
				}
				began := time.Now().UnixNano()
				status, wr, err := post(hc, urls[w]+"/v1/events", []byte(body.String()))
				if err != nil || status != http.StatusOK || wr.Applied != len(ids) {
					if w == victim && killed.Load() != 0 {
						return
					}
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if k := killed.Load(); k != 0 && began > k && w != victim {
					resumed.CompareAndSwap(0, time.Now().UnixNano())
				}
				mu.Lock()
				acked = append(acked, ids...)
				mu.Unlock()
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	pollUntil(t, 60*time.Second, "writes before the kill", func() bool { return count() >= 300 })
	// How the victim was started, to start it again afterwards.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pids[victim]))
	if err != nil {
		t.Fatal(err)
	}
	killed.Store(time.Now().UnixNano())
	if err := syscall.Kill(pids[victim], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 60*time.Second, "a write acknowledged after the kill", func() bool { return resumed.Load() != 0 })
	after := count()
	pollUntil(t, 60*time.Second, "more writes after the recovery", func() bool { return count() >= after+100 })
	stop.Store(true)
	wg.Wait()
	t.Logf("%d writes acknowledged; writes served again %v after SIGKILL of node %d (the stream leader's)",
		len(acked), time.Duration(resumed.Load()-killed.Load()).Round(time.Millisecond), victim+1)
	checked := time.Now()
	defer func() { t.Logf("checked in %v", time.Since(checked).Round(time.Millisecond)) }()

	for w, u := range urls {
		if w == victim {
			continue
		}
		i := 0
		pollUntil(t, 60*time.Second, "every acknowledged write visible on "+u, func() bool {
			for ; i < len(acked); i++ {
				var d map[string]any
				if status, err := getJSON(hc, u+"/v1/customers/"+acked[i], &d); err != nil || status != http.StatusOK {
					return false
				}
			}
			return true
		})
	}

	// The killed node comes back with its data folder: it catches up
	// from its snapshot and the stream, owns its partitions again and
	// answers for every acknowledged write too.
	restartNode(t, bin, dir, strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")[1:], urls[victim], victim)
	i := 0
	pollUntil(t, 60*time.Second, "every acknowledged write visible on the restarted node", func() bool {
		for ; i < len(acked); i++ {
			var d map[string]any
			if status, err := getJSON(hc, urls[victim]+"/v1/customers/"+acked[i], &d); err != nil || status != http.StatusOK {
				return false
			}
		}
		return true
	})

	// Any node answers, with the owner's answer: the same picks through
	// every node (the owner ranks them; took_us aside).
	for _, id := range []string{acked[0], acked[len(acked)/2], acked[len(acked)-1]} {
		var first string
		for w, u := range urls {
			status, body, err := getBody(hc, u+"/v1/picks?customer="+id+"&channel=web&k=5")
			if err != nil || status != http.StatusOK {
				t.Fatalf("picks of %s through n%d: %d %v", id, w+1, status, err)
			}
			body = tookRE.ReplaceAll(body, nil)
			if w == 0 {
				first = string(body)
			} else if string(body) != first {
				t.Fatalf("picks of %s through n%d:\n%s\nthrough n1:\n%s", id, w+1, body, first)
			}
		}
	}

	// Erasure in cluster mode: DELETE through a node, then POST
	// /v1/admin/compact: no node's snapshots hold the id, the stream is
	// trimmed. A partitioned cluster compacts with every member live (a
	// member's recovery point is its own snapshot).
	live := (victim + 1) % 3
	erased := acked[0]
	req, _ := http.NewRequest(http.MethodDelete, urls[live]+"/v1/customers/"+erased, nil)
	if resp, err := hc.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s: %v %v", erased, resp, err)
	} else {
		resp.Body.Close()
	}
	resp, err := hc.Post(urls[live]+"/v1/admin/compact", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var ci struct {
		Nodes     int    `json:"nodes"`
		Target    uint64 `json:"target_seq"`
		FirstSeq  uint64 `json:"stream_first_seq"`
		Purged    uint64 `json:"purged_messages"`
		Snapshot  string `json:"snapshot"`
		RemovedSn int    `json:"removed_snapshots"`
	}
	json.NewDecoder(resp.Body).Decode(&ci)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || ci.Nodes != 3 || ci.FirstSeq < ci.Target+1 || ci.Purged == 0 {
		t.Fatalf("POST /v1/admin/compact: %d %+v; want 3 nodes, the stream trimmed up to the target", resp.StatusCode, ci)
	}
	t.Logf("compact: %+v", ci)
	kept := acked[len(acked)-1]
	holding := 0 // snapshots with the kept customer: its partition's owner's and standby's
	for w := range urls {
		snaps, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("n%d", w+1), "cluster", "snapshots", "*.omnisnap"))
		if len(snaps) != 1 {
			t.Fatalf("node %d keeps snapshots %v after the compaction; want one", w+1, snaps)
		}
		_, raw, err := cluster.ReadSnapshot(snaps[0])
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(erased)) {
			t.Fatalf("node %d's snapshot holds the erased id", w+1)
		}
		if bytes.Contains(raw, []byte(kept)) {
			holding++
		}
		mresp, err := hc.Get(urls[w] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(mresp.Body)
		mresp.Body.Close()
		if want := fmt.Sprintf("omnipick_cluster_stream_first_seq %d", ci.FirstSeq); !strings.Contains(string(b), want) {
			// read each second: poll once more
			time.Sleep(1500 * time.Millisecond)
			if mresp, err = hc.Get(urls[w] + "/metrics"); err == nil {
				b, _ = io.ReadAll(mresp.Body)
				mresp.Body.Close()
			}
			if !strings.Contains(string(b), want) {
				t.Fatalf("%s/metrics lacks %q", urls[w], want)
			}
		}
	}
	if holding != 2 {
		t.Fatalf("%d nodes' snapshots hold customer %s: want 2, its partition's holders", holding, kept)
	}
	var d map[string]any
	if status, err := getJSON(hc, urls[live]+"/v1/customers/"+kept, &d); err != nil || status != http.StatusOK {
		t.Fatalf("a customer after the compaction: %d %v", status, err)
	}
}

// tookRE matches the time a picks answer took, which differs between
// answers.
var tookRE = regexp.MustCompile(`"took_us":[0-9]+,?`)

// getBody returns the status and body of a GET.
func getBody(hc *http.Client, url string) (int, []byte, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// restartNode starts node i again (serve with args, as omnipick cluster
// started it) and waits until it answers /healthz; the test stops it at
// its end.
func restartNode(t *testing.T, bin, dir string, args []string, url string, i int) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("n%d", i+1), "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = testEnv(), logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	pollUntil(t, 120*time.Second, "the restarted node's /healthz", func() bool {
		resp, err := hc.Get(url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// dumpNodeLogs prints the end of each node's log when the test failed:
// the temporary folder is gone afterwards, and a CI log is all there is.
func dumpNodeLogs(t *testing.T, dir string) {
	if !t.Failed() {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "n*", "serve.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("--- %s (last %d of %d lines)", l, min(60, len(lines)), len(lines))
		for _, ln := range lines[max(0, len(lines)-60):] {
			t.Log(ln)
		}
	}
}

// streamLeader returns the index of the node whose server leads the
// stream's replicas (nodes are named n1, n2, ...).
func streamLeader(t *testing.T, natsURL string) int {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "OMNIPICK")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %v", err)
	}
	var i int
	if _, err := fmt.Sscanf(info.Cluster.Leader, "n%d", &i); err != nil {
		t.Fatalf("leader %q: %v", info.Cluster.Leader, err)
	}
	return i - 1
}

// consecutivePorts returns the first of n consecutive loopback ports that
// were free a moment ago. They are drawn below Linux's ephemeral range
// (32768 up): the nodes' NATS servers and every outgoing connection take
// ports from that range, and one of them took a node's HTTP port once.
func consecutivePorts(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		base := 10000 + rand.IntN(20000)
		var ls []net.Listener
		for i := range n {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if len(ls) == n {
			return base
		}
	}
	t.Fatal("no consecutive free ports")
	return 0
}

// pollUntil polls cond until it holds or the deadline passes.
func pollUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
