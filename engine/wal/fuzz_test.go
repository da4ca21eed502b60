package wal

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReplay feeds arbitrary bytes to Replay as the only segment of a log.
// Replay must not panic nor allocate more than the file's size per record;
// whatever it accepts must replay identically a second time, with no torn
// tail left; Repair must turn any damage into a log that replays; and the
// result must reopen and take an append.
func FuzzReplay(f *testing.F) {
	for _, fx := range fixtures() {
		if b, ok := fx.files[one()]; ok {
			f.Add(b)
		}
	}
	good := encodeSegment(1, fixtureRecords)
	f.Add(good[:HeaderSize])
	f.Add(good[:HeaderSize+3])
	huge := bytes.Clone(good[:HeaderSize+RecordHeaderSize])
	huge[HeaderSize], huge[HeaderSize+1], huge[HeaderSize+2], huge[HeaderSize+3] = 0xff, 0xff, 0xff, 0xff
	f.Add(huge)
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		const dir = "/wal"
		path := dir + "/" + one()
		fsys := NewMemFS()
		writeFile(t, fsys, path, data)

		check := func(seq uint64, typ byte, payload []byte) error {
			if len(payload) > len(data) {
				t.Fatalf("seq %d: %d-byte payload from a %d-byte file", seq, len(payload), len(data))
			}
			return nil
		}
		first, info, err := replayAll(t, fsys, dir, 0)
		for _, r := range first {
			check(r.seq, r.typ, r.payload)
		}
		switch {
		case err == nil:
			second, info2, err := replayAll(t, fsys, dir, 0)
			if err != nil || info2.TornTail || sameRecs(second, first) != "" {
				t.Fatalf("second Replay: %v %+v; first %+v", err, info2, info)
			}
		case errors.Is(err, ErrCorrupt):
			rinfo, err := Repair(fsys, dir)
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			second, info2, err := replayAll(t, fsys, dir, 0)
			if err != nil || info2.TornTail {
				t.Fatalf("Replay after Repair %+v: %v %+v", rinfo, err, info2)
			}
			if len(second) > len(first) || sameRecs(second, first[:len(second)]) != "" {
				t.Fatalf("Repair kept records Replay did not see: %d vs %d", len(second), len(first))
			}
		default:
			t.Fatalf("Replay: %v", err)
		}

		l, err := Open(fsys, dir, Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		seq, err := l.Append(1, []byte("fuzz"))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		recs, info3, err := replayAll(t, fsys, dir, 0)
		if err != nil || info3.Last != seq || string(recs[len(recs)-1].payload) != "fuzz" {
			t.Fatalf("Replay after append: %v %+v", err, info3)
		}
	})
}
