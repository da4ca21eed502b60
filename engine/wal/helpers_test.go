package wal

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

// rec is a record as a test sees it.
type rec struct {
	seq     uint64
	typ     byte
	payload []byte
}

// replayAll replays dir from seq from and returns the records it saw.
func replayAll(t testing.TB, fsys FS, dir string, from uint64) ([]rec, ReplayInfo, error) {
	t.Helper()
	var recs []rec
	info, err := Replay(fsys, dir, from, func(seq uint64, typ byte, payload []byte) error {
		recs = append(recs, rec{seq, typ, bytes.Clone(payload)})
		return nil
	})
	return recs, info, err
}

// mustReplay replays dir from seq 0 and fails the test on error.
func mustReplay(t testing.TB, fsys FS, dir string) ([]rec, ReplayInfo) {
	t.Helper()
	recs, info, err := replayAll(t, fsys, dir, 0)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return recs, info
}

// testPayload returns a deterministic payload of n bytes for key.
func testPayload(key uint64, n int) []byte {
	p := make([]byte, n)
	x := key*0x9E3779B97F4A7C15 + 1
	for i := range p {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		p[i] = byte(x)
	}
	return p
}

// writeLog writes recs (whose seqs must run from opts.FirstSeq or 1) with
// Append, waits for them, closes the log and returns the records.
func writeLog(t testing.TB, fsys FS, dir string, opts Options, payloads [][]byte) []rec {
	t.Helper()
	l, err := Open(fsys, dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	var recs []rec
	var last uint64
	for i, p := range payloads {
		typ := byte(i % 7)
		seq, err := l.Append(typ, p)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		recs = append(recs, rec{seq, typ, p})
		last = seq
	}
	if last != 0 {
		if err := l.WaitDurable(last); err != nil {
			t.Fatalf("WaitDurable: %v", err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return recs
}

// sameRecs reports how got differs from want, or "".
func sameRecs(got, want []rec) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.seq != w.seq || g.typ != w.typ || !bytes.Equal(g.payload, w.payload) {
			return fmt.Sprintf("record %d: got seq %d type %d %d bytes, want seq %d type %d %d bytes",
				i, g.seq, g.typ, len(g.payload), w.seq, w.typ, len(w.payload))
		}
	}
	return ""
}

// fsCase is a file system to run a test on.
type fsCase struct {
	name string
	new  func(t testing.TB) (FS, string) // the FS and a log directory in it
}

var fsCases = []fsCase{
	{"mem", func(testing.TB) (FS, string) { return NewMemFS(), "/data/wal" }},
	{"os", func(t testing.TB) (FS, string) { return OS(), filepath.Join(t.TempDir(), "wal") }},
}

// readFile returns a file's contents.
func readFile(t testing.TB, fsys FS, path string) []byte {
	t.Helper()
	size, err := fsys.Size(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := readRange(fsys, path, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFile creates a file with contents b, fsyncs it and its directory.
func writeFile(t testing.TB, fsys FS, path string, b []byte) {
	t.Helper()
	if err := fsys.MkdirAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	f, err := fsys.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
}

// segmentFiles returns the segment file names in dir.
func segmentFiles(t testing.TB, fsys FS, dir string) []string {
	t.Helper()
	names, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, n := range names {
		if _, ok := parseSegmentName(n); ok {
			segs = append(segs, n)
		}
	}
	return segs
}

// recordOffsets returns the offset of each record in a segment's bytes.
func recordOffsets(b []byte) []int {
	var offs []int
	for p := HeaderSize; p < len(b); {
		size, ok := recordAt(b, p)
		if !ok {
			break
		}
		offs = append(offs, p)
		p += size
	}
	return offs
}

func isCorrupt(err error) bool {
	var ce *CorruptError
	return errors.Is(err, ErrCorrupt) && errors.As(err, &ce)
}
