package wal

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// TestRecordCRC checks the hand-rolled header part of the record checksum
// against hash/crc32 over the same bytes.
func TestRecordCRC(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		payload := testPayload(rng.Uint64(), rng.IntN(300))
		length, typ := rng.Uint32(), byte(rng.Uint32())
		b := []byte{byte(length), byte(length >> 8), byte(length >> 16), byte(length >> 24), typ}
		want := crc32.Checksum(append(b, payload...), crc32.MakeTable(crc32.Castagnoli))
		if got := recordCRC(length, typ, payload); got != want {
			t.Fatalf("recordCRC = %08x, want %08x", got, want)
		}
	}
}

func TestSegmentName(t *testing.T) {
	f := func(name string, want uint64, ok bool) {
		t.Helper()
		got, gotOK := parseSegmentName(name)
		if got != want || gotOK != ok {
			t.Fatalf("parseSegmentName(%q) = %d, %v; want %d, %v", name, got, gotOK, want, ok)
		}
	}
	f(SegmentName(1), 1, true)
	f("wal-00000000000000000001.log", 1, true)
	f(SegmentName(1<<64-1), 1<<64-1, true)
	f("wal-99999999999999999999.log", 0, false) // overflows uint64
	f("wal-0000000000000000001.log", 0, false)
	f("wal-0000000000000000000a.log", 0, false)
	f("wal-00000000000000000001.tmp", 0, false)
	f("xal-00000000000000000001.log", 0, false)
}
