package wal

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the fixture logs in testdata/wal")

// fixtureRoot holds one directory per fixture log. Tests copy a fixture
// before replaying it, since Replay truncates torn tails.
const fixtureRoot = "../../testdata/wal"

// fixtureRecords are the records of the fixture logs: seq i+1 has type i+1.
var fixtureRecords = []string{
	"omnipick fixture record 1",
	"",
	"omnipick fixture record 3: a little longer than the others",
	"4",
	"omnipick fixture record 5",
}

// encodeSegment encodes records into a segment file by hand, independently
// of Log, so the fixtures pin the format.
func encodeSegment(first uint64, payloads []string) []byte {
	b := appendHeader(nil, first)
	for i, p := range payloads {
		h := recordHeader(byte(first)+byte(i), []byte(p))
		b = append(b, h[:]...)
		b = append(b, p...)
	}
	return b
}

// fixtureOffset returns the offset of record i in encodeSegment(1, recs).
func fixtureOffset(i int) int64 {
	off := int64(HeaderSize)
	for _, p := range fixtureRecords[:i] {
		off += RecordHeaderSize + int64(len(p))
	}
	return off
}

type fixture struct {
	name  string
	files map[string][]byte // segment files
	// Expected Replay outcome.
	records   int   // records replayed (the first n of fixtureRecords)
	torn      bool  // TornTail
	truncated int64 // TruncatedBytes
	corrupt   bool  // a *CorruptError ...
	file      string
	offset    int64 // ... at this file and offset
	seq       uint64
}

func fixtures() []fixture {
	good := encodeSegment(1, fixtureRecords)
	truncated := good[:fixtureOffset(4)+RecordHeaderSize+5] // mid-payload of record 5
	bitflip := bytes.Clone(good)
	bitflip[fixtureOffset(2)+RecordHeaderSize+10] ^= 0x04 // payload of record 3
	badHeader := bytes.Clone(good)
	badHeader[6] = 'X' // magic "OMNIWAX\x00"
	zeroTail := append(bytes.Clone(good), make([]byte, 64)...)
	one := SegmentName(1)
	return []fixture{
		{name: "good", files: map[string][]byte{one: good}, records: 5},
		{name: "rotated", files: map[string][]byte{
			one:            encodeSegment(1, fixtureRecords[:2]),
			SegmentName(3): encodeSegment(3, fixtureRecords[2:4]),
			SegmentName(5): encodeSegment(5, fixtureRecords[4:]),
		}, records: 5},
		{name: "truncated", files: map[string][]byte{one: truncated},
			records: 4, torn: true, truncated: RecordHeaderSize + 5},
		{name: "zerotail", files: map[string][]byte{one: zeroTail},
			records: 5, torn: true, truncated: 64},
		{name: "bitflip", files: map[string][]byte{one: bitflip},
			records: 2, corrupt: true, file: one, offset: fixtureOffset(2), seq: 3},
		{name: "badheader", files: map[string][]byte{one: badHeader},
			corrupt: true, file: one, offset: 0, seq: 1},
		{name: "gap", files: map[string][]byte{
			one:            encodeSegment(1, fixtureRecords[:3]),
			SegmentName(5): encodeSegment(5, fixtureRecords[4:]),
		}, records: 3, corrupt: true, file: SegmentName(5), offset: 0, seq: 4},
	}
}

// TestFixtures replays each checked-in fixture log and checks the exact
// outcome. It also checks that the fixtures still match what the encoder
// produces (the format is frozen); go test -run TestFixtures -update
// rewrites them.
func TestFixtures(t *testing.T) {
	for _, fx := range fixtures() {
		t.Run(fx.name, func(t *testing.T) {
			src := filepath.Join(fixtureRoot, fx.name)
			if *update {
				if err := os.RemoveAll(src); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(src, 0o755); err != nil {
					t.Fatal(err)
				}
				for name, b := range fx.files {
					if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Copy the fixture: Replay truncates.
			dir := t.TempDir()
			ents, err := os.ReadDir(src)
			if err != nil {
				t.Fatalf("%v (run go test -run TestFixtures -update to create the fixtures)", err)
			}
			var names []string
			for _, e := range ents {
				b, err := os.ReadFile(filepath.Join(src, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, fx.files[e.Name()]) {
					t.Fatalf("%s/%s differs from what the encoder produces: the frozen format changed", fx.name, e.Name())
				}
				if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
					t.Fatal(err)
				}
				names = append(names, e.Name())
			}
			if len(names) != len(fx.files) {
				t.Fatalf("fixture has files %v, want %d", names, len(fx.files))
			}

			got, info, err := replayAll(t, OS(), dir, 0)
			var want []rec
			for i, p := range fixtureRecords[:fx.records] {
				want = append(want, rec{uint64(i + 1), byte(i + 1), []byte(p)})
			}
			if d := sameRecs(got, want); d != "" {
				t.Fatal(d)
			}
			if fx.corrupt {
				var ce *CorruptError
				if !isCorrupt(err) || !errors.As(err, &ce) {
					t.Fatalf("Replay: %v; want ErrCorrupt", err)
				}
				if ce.File != filepath.Join(dir, fx.file) || ce.Offset != fx.offset || ce.Seq != fx.seq {
					t.Fatalf("Replay: %v; want file %s offset %d seq %d", err, fx.file, fx.offset, fx.seq)
				}
				return
			}
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if info.TornTail != fx.torn || info.TruncatedBytes != fx.truncated || info.Records != fx.records ||
				info.NextSeq != uint64(fx.records)+1 || info.Segments != len(fx.files) {
				t.Fatalf("ReplayInfo %+v", info)
			}
			if fx.torn {
				size, _ := OS().Size(filepath.Join(dir, one()))
				if size != fixtureOffset(fx.records) {
					t.Fatalf("size after truncation %d, want %d", size, fixtureOffset(fx.records))
				}
			}
		})
	}
}

// TestWriterMatchesFixture checks that Log writes exactly the bytes of the
// good fixture.
func TestWriterMatchesFixture(t *testing.T) {
	fsys := NewMemFS()
	l, err := Open(fsys, "/wal", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	for i, p := range fixtureRecords {
		if i < 2 {
			if _, err := l.Append(byte(i+1), []byte(p)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b.Add(byte(i+1), []byte(p))
	}
	if _, _, err := l.AppendBatch(&b); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := readFile(t, fsys, "/wal/"+one())
	if want := encodeSegment(1, fixtureRecords); !bytes.Equal(got, want) {
		t.Fatalf("writer output differs from the encoded fixture:\n got %x\nwant %x", got, want)
	}
	// And the fixture file on disk, if present.
	if disk, err := os.ReadFile(filepath.Join(fixtureRoot, "good", one())); err == nil && !bytes.Equal(disk, got) {
		t.Fatal("writer output differs from testdata/wal/good")
	}
}

func one() string { return SegmentName(1) }
