package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine/wal"
)

// TestRepair damages an early record of the real binary's write-ahead log
// and checks the operator's path: serve refuses to start and points at
// omnipick repair; repair says what it dropped; serve starts again and
// takes writes. Without a snapshot the records from the damage on are
// gone; with one (a clean stop writes it) the snapshot still holds them.
func TestRepair(t *testing.T) {
	bin := omnipickBinary(t)
	for _, tc := range []struct {
		name string
		stop syscall.Signal
	}{{"crashed", syscall.SIGKILL}, {"stopped", syscall.SIGTERM}} {
		t.Run(tc.name, func(t *testing.T) { testRepair(t, bin, tc.stop) })
	}
}

func testRepair(t *testing.T, bin string, stop syscall.Signal) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	p := startServe(t, bin, data, filepath.Join(dir, "serve.log"))
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	mustPost(t, hc, p.base+"/v1/products",
		`{"id":"RP0","title":"Hat","category":"acc/hats","variants":[{"sku":"RP0-OS"}]}`,
		`{"id":"RP1","title":"Scarf","category":"acc/scarves","variants":[{"sku":"RP1-OS"}]}`)
	// One record a request (the two products are one batch record), in
	// order: customer rep-i is record 2+i.
	const events = 20
	for i := range events {
		mustPost(t, hc, p.base+"/v1/events", fmt.Sprintf(`{"type":"view","customer":"rep-%d","product":"RP%d","ts":%d}`, i, i%2, time.Now().UnixMilli()))
	}
	const total = 1 + events
	p.signal(stop)
	p.wait(30 * time.Second)
	snaps, _ := snapshotFiles(t, data)
	if want := stop == syscall.SIGTERM; (len(snaps) == 1) != want {
		t.Fatalf("snapshots after %v: %v", stop, snaps)
	}

	// Flip a payload byte of record 9 (rep-7): damage followed by intact
	// records is corruption, not a torn tail.
	const damaged = 9
	seg := filepath.Join(data, "wal", wal.SegmentName(1))
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	off := wal.HeaderSize
	for seq := 1; seq < damaged; seq++ {
		off += wal.RecordHeaderSize + int(binary.LittleEndian.Uint32(b[off:]))
	}
	n := int(binary.LittleEndian.Uint32(b[off:]))
	b[off+wal.RecordHeaderSize+n/2] ^= 0x08
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}

	out, code := runBinary(t, bin, "serve", "-addr", freeAddr(t), "-data", data)
	if code == 0 || !strings.Contains(out, "corrupt") || !strings.Contains(out, "omnipick repair -data "+data) {
		t.Fatalf("serve on a corrupt log: exit %d; want a non-zero exit and a message naming omnipick repair\n%s", code, out)
	}
	out, code = runBinary(t, bin, "repair", "-data", data)
	if want := fmt.Sprintf("after record %d: dropped %d intact records after the damage", damaged-1, total-damaged); code != 0 || !strings.Contains(out, want) {
		t.Fatalf("repair: exit %d, output:\n%s\nwant %q", code, out, want)
	}

	p = startServe(t, bin, data, filepath.Join(dir, "repaired.log"))
	rec := p.recovery()
	kept := damaged - 1 // records 1..8: the products, rep-0..rep-6
	if stop == syscall.SIGTERM {
		kept = total // the snapshot holds them all
		if rec.snapshot == "" || rec.replayed != 0 {
			t.Fatalf("after repair: %s; want the shutdown's snapshot and nothing replayed", rec.line)
		}
	} else if rec.snapshot != "" || rec.replayed != kept+1 { // replayed counts the batch's two products
		t.Fatalf("after repair: %s; want no snapshot and %d records replayed", rec.line, kept+1)
	}
	if rec.nextSeq != uint64(kept)+1 {
		t.Fatalf("after repair: %s; want next_seq=%d", rec.line, kept+1)
	}
	for i := range events {
		want := http.StatusOK
		if 2+i > kept {
			want = http.StatusNotFound
		}
		var d profileDoc
		if status, err := getJSON(hc, fmt.Sprintf("%s/v1/customers/rep-%d", p.base, i), &d); err != nil || status != want {
			t.Errorf("after repair, rep-%d (record %d): status %d, %v; want %d", i, 2+i, status, err, want)
		}
	}
	// The repaired log takes writes, and they last.
	mustPost(t, hc, p.base+"/v1/events", fmt.Sprintf(`{"type":"view","customer":"rep-new","product":"RP0","ts":%d}`, time.Now().UnixMilli()))
	p.signal(syscall.SIGTERM)
	if st := p.wait(30 * time.Second); st.ExitCode() != 0 {
		t.Fatalf("exit %v\n%s", st, p.logTail())
	}
	out, code = runBinary(t, bin, "repair", "-data", data)
	if code != 0 || !strings.Contains(out, "intact: nothing dropped") {
		t.Fatalf("repair of a good log: exit %d\n%s", code, out)
	}
	p = startServe(t, bin, data, filepath.Join(dir, "again.log"))
	var d profileDoc
	if status, err := getJSON(hc, p.base+"/v1/customers/rep-new", &d); err != nil || status != http.StatusOK {
		t.Fatalf("the write after the repair: status %d, %v", status, err)
	}
	p.signal(syscall.SIGTERM)
	p.wait(30 * time.Second)
}

// runBinary runs the binary to completion and returns its combined output
// and exit code.
func runBinary(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = testEnv()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		return string(out), ee.ExitCode()
	}
	t.Fatalf("omnipick %s: %v\n%s", strings.Join(args, " "), err, out)
	return "", 0
}
