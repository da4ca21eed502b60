package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests in this package that run the real binary build it once, on
// first use, into a temporary folder that TestMain removes.
var testBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testBinary.dir != "" {
		os.RemoveAll(testBinary.dir)
	}
	os.Exit(code)
}

// omnipickBinary returns the path of a freshly built omnipick binary, or
// skips the test in -short mode.
func omnipickBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real omnipick binary: skipped with -short")
	}
	testBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "omnipick-test-bin-")
		if err != nil {
			testBinary.err = err
			return
		}
		testBinary.dir = dir
		path := filepath.Join(dir, "omnipick")
		out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
		if err != nil {
			testBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		testBinary.path = path
	})
	if testBinary.err != nil {
		t.Fatal(testBinary.err)
	}
	return testBinary.path
}

// proc is a running omnipick serve process. Its stderr (the log) goes to
// a file, so it survives a SIGKILL and can be quoted in failures.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string
	base    string // "http://" + addr
	logPath string
	done    chan struct{} // closed once the process has exited
	state   *os.ProcessState
}

// startServe starts `omnipick serve` on a free port with data in dataDir
// and waits until /healthz answers. extra are more serve flags.
func startServe(t *testing.T, bin, dataDir, logPath string, extra ...string) *proc {
	t.Helper()
	p, err := startServeErr(t, bin, dataDir, logPath, extra...)
	if err != nil {
		t.Fatalf("omnipick serve did not become healthy: %v\n%s", err, p.logTail())
	}
	return p
}

// startServeErr is startServe returning the failure.
func startServeErr(t *testing.T, bin, dataDir, logPath string, extra ...string) (*proc, error) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		p, err := tryStartServe(t, bin, dataDir, logPath, extra...)
		// Another process may have taken the port between our probe and
		// the server's listen: try another one.
		if err != nil && attempt < 3 && strings.Contains(p.log(), "cannot listen") {
			continue
		}
		return p, err
	}
}

func tryStartServe(t *testing.T, bin, dataDir, logPath string, extra ...string) (*proc, error) {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"serve", "-addr", addr, "-data", dataDir}, extra...)
	p := &proc{t: t, addr: addr, base: "http://" + addr, logPath: logPath, done: make(chan struct{})}
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = testEnv()
	// Not the repository: the binary must need nothing from it (the demo
	// world is embedded).
	p.cmd.Dir = t.TempDir()
	p.cmd.Stderr = f
	p.cmd.Stdout = f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	f.Close() // the child has its own descriptor
	go func() {
		p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p, p.waitHealthy(15 * time.Second)
}

// testEnv is the environment for the binary: this one without API keys,
// so the server runs open on loopback whatever the developer's shell has.
func testEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "OMNIPICK_WRITE_KEY=") || strings.HasPrefix(kv, "OMNIPICK_READ_KEY=")
	})
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func (p *proc) waitHealthy(timeout time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("the process exited: %v", p.state)
		default:
		}
		resp, err := c.Get(p.base + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no healthy answer within %v (last error: %v)", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("cannot send %v: %v", sig, err)
	}
}

// wait waits for the process to exit and returns how it did.
func (p *proc) wait(timeout time.Duration) *os.ProcessState {
	p.t.Helper()
	select {
	case <-p.done:
		return p.state
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("the process did not exit within %v: killed\n%s", timeout, p.logTail())
		return nil
	}
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// logTail returns the log's last lines, for failure messages.
func (p *proc) logTail() string {
	lines := strings.Split(strings.TrimRight(p.log(), "\n"), "\n")
	if len(lines) > 40 {
		lines = append([]string{"..."}, lines[len(lines)-40:]...)
	}
	return "--- " + p.logPath + "\n" + strings.Join(lines, "\n")
}

// recovered is the store's "recovered" log line.
type recovered struct {
	line        string
	snapshot    string
	snapshotSeq uint64
	replayed    int
	rejected    int
	nextSeq     uint64
}

var (
	recoveredRE = regexp.MustCompile(`msg=recovered snapshot=("[^"]*"|\S*) snapshot_seq=(\d+) replayed=(\d+) rejected=(\d+) next_seq=(\d+)`)
)

// recovery parses the process's "recovered" log line.
func (p *proc) recovery() recovered {
	p.t.Helper()
	log := p.log()
	m := recoveredRE.FindStringSubmatch(log)
	if m == nil {
		p.t.Fatalf("no parsable \"recovered\" line in the log\n%s", p.logTail())
	}
	r := recovered{line: m[0]}
	r.snapshot = m[1]
	if s, err := strconv.Unquote(m[1]); err == nil {
		r.snapshot = s
	}
	r.snapshotSeq, _ = strconv.ParseUint(m[2], 10, 64)
	r.replayed, _ = strconv.Atoi(m[3])
	r.rejected, _ = strconv.Atoi(m[4])
	r.nextSeq, _ = strconv.ParseUint(m[5], 10, 64)
	return r
}

// writeResult is the reply to a write: applied (2xx) or not.
type writeResult struct {
	Applied    int               `json:"applied"`
	Duplicates int               `json:"duplicates"`
	Rejected   []json.RawMessage `json:"rejected"`
}

// post sends an NDJSON write and returns the status and decoded reply; err
// is set when no reply arrived.
func post(c *http.Client, url string, body []byte) (int, writeResult, error) {
	var wr writeResult
	resp, err := c.Post(url, "application/x-ndjson", bytes.NewReader(body))
	if err != nil {
		return 0, wr, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, wr, err
	}
	if err := json.Unmarshal(b, &wr); err != nil && resp.StatusCode/100 == 2 {
		return resp.StatusCode, wr, fmt.Errorf("cannot decode the reply %q: %w", b, err)
	}
	return resp.StatusCode, wr, nil
}

// mustPost posts a write that must be applied in full.
func mustPost(t *testing.T, c *http.Client, url string, lines ...string) {
	t.Helper()
	body := []byte(strings.Join(lines, "\n") + "\n")
	status, wr, err := post(c, url, body)
	if err != nil || status != http.StatusOK || wr.Applied != len(lines) || len(wr.Rejected) != 0 {
		t.Fatalf("POST %s: status %d, reply %+v, err %v; want all %d applied", url, status, wr, err, len(lines))
	}
}

// getJSON fetches url into v; it returns the status (404 leaves v alone).
func getJSON(c *http.Client, url string, v any) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: cannot decode %q: %w", url, b, err)
	}
	return resp.StatusCode, nil
}

// snapshotFiles lists the finished snapshot files and the leftover
// temporary ones in a data folder.
func snapshotFiles(t *testing.T, dataDir string) (snaps, tmps []string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dataDir, "snapshots"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range ents {
		switch n := e.Name(); {
		case strings.HasSuffix(n, ".omnisnap"):
			snaps = append(snaps, n)
		case strings.HasSuffix(n, ".tmp"):
			tmps = append(tmps, n)
		}
	}
	return snaps, tmps
}
