package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOneOwnerPerDataFolder runs two real processes on one data folder:
// the second `serve` (with and without flags, as typed beside a running
// server) and a `repair` exit non-zero at once, naming the folder
// and the owner's pid, and leave every file of the folder as it was; once
// the owner is SIGKILLed, its stale lock file does not block a restart,
// which recovers what the owner acknowledged.
func TestOneOwnerPerDataFolder(t *testing.T) {
	bin := omnipickBinary(t)
	root := t.TempDir()
	data := filepath.Join(root, "data")
	owner := startServe(t, bin, data, filepath.Join(root, "owner.log"), "-snapshot-every", "1h")
	hc := &http.Client{Timeout: 10 * time.Second}
	mustPost(t, hc, owner.base+"/v1/products", `{"id":"L1","title":"Lock","variants":[{"sku":"L1"}]}`)
	mustPost(t, hc, owner.base+"/v1/events", `{"type":"view","customer":"c-lock","product":"L1"}`)
	pid := strconv.Itoa(owner.cmd.Process.Pid)
	before := folderDigest(t, data)

	for _, tc := range []struct {
		name string
		args []string
		dir  string // working directory
	}{
		{"serve", []string{"serve", "-addr", freeAddr(t), "-data", data}, ""},
		{"serve without flags", []string{"serve"}, root}, // serve on ./data, the owner's folder (no command at all prints the usage: issue 16)
		{"repair", []string{"repair", "-data", data}, ""},
	} {
		start := time.Now()
		out, code := runBinaryIn(t, tc.dir, bin, tc.args...)
		took := time.Since(start)
		if code == 0 {
			t.Errorf("%s: a second process on a locked folder exited 0:\n%s", tc.name, out)
		}
		if !strings.Contains(out, "in use by process "+pid) || !strings.Contains(out, "data") {
			t.Errorf("%s: the message does not name the folder and the owner's pid %s:\n%s", tc.name, pid, out)
		}
		if took > 5*time.Second {
			t.Errorf("%s: took %v to refuse: it should not wait", tc.name, took)
		}
		if after := folderDigest(t, data); after != before {
			t.Errorf("%s: the refused process changed the data folder:\nbefore %s\nafter  %s", tc.name, before, after)
		}
		t.Logf("%s: refused in %v: %s", tc.name, took.Round(time.Millisecond), strings.TrimSpace(out))
	}
	if owner.exited() {
		t.Fatalf("the owner died: %s", owner.logTail())
	}

	// A SIGKILL leaves the lock file behind; the kernel dropped the lock.
	owner.signal(syscall.SIGKILL)
	owner.wait(10 * time.Second)
	if _, err := os.Stat(filepath.Join(data, "LOCK")); err != nil {
		t.Fatalf("the lock file should outlive a SIGKILL: %v", err)
	}
	next := startServe(t, bin, data, filepath.Join(root, "next.log"))
	var d profileDoc
	if status, err := getJSON(hc, next.base+"/v1/customers/c-lock", &d); err != nil || status != http.StatusOK {
		t.Fatalf("after the restart the acknowledged event is gone: status %d, %v", status, err)
	}
	b, _ := os.ReadFile(filepath.Join(data, "LOCK"))
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(next.cmd.Process.Pid) {
		t.Errorf("the lock file holds %q, want the new owner's pid %d", got, next.cmd.Process.Pid)
	}
	next.signal(syscall.SIGTERM)
	if st := next.wait(30 * time.Second); st.ExitCode() != 0 {
		t.Fatalf("clean stop: %v\n%s", st, next.logTail())
	}
	// Once the owner stopped cleanly, repair may run.
	if out, code := runBinary(t, bin, "repair", "-data", data); code != 0 {
		t.Fatalf("repair after the owner stopped: exit %d\n%s", code, out)
	}
}

// runBinaryIn is runBinary with a working directory ("" for this one).
func runBinaryIn(t *testing.T, dir, bin string, args ...string) (string, int) {
	t.Helper()
	if dir == "" {
		return runBinary(t, bin, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, testEnv()
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("omnipick %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// folderDigest names every file under dir with its size, modification time
// and content hash.
func folderDigest(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(&b, "%s:%d:%d:%x ", rel, fi.Size(), fi.ModTime().UnixNano(), sha256.Sum256(content))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
