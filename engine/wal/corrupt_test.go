package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"testing"
)

const corruptDir = "/wal"

// smallLog writes records with the given payload sizes to a MemFS and
// returns the records and the segment files' names and contents.
func smallLog(t *testing.T, segBytes int64, sizes ...int) ([]rec, []string, [][]byte) {
	t.Helper()
	fsys := NewMemFS()
	var payloads [][]byte
	for i, n := range sizes {
		payloads = append(payloads, testPayload(uint64(i), n))
	}
	recs := writeLog(t, fsys, corruptDir, Options{SegmentBytes: segBytes}, payloads)
	names := segmentFiles(t, fsys, corruptDir)
	var files [][]byte
	for _, n := range names {
		files = append(files, readFile(t, fsys, filepath.Join(corruptDir, n)))
	}
	return recs, names, files
}

// logFS returns a MemFS holding the given segment files.
func logFS(t *testing.T, names []string, files [][]byte) *MemFS {
	t.Helper()
	fsys := NewMemFS()
	if err := fsys.MkdirAll(corruptDir); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		writeFile(t, fsys, filepath.Join(corruptDir, n), files[i])
	}
	return fsys
}

// checkContinues opens the log, appends one record, and checks that Replay
// then returns want followed by it.
func checkContinues(t *testing.T, fsys FS, want []rec) {
	t.Helper()
	l, err := Open(fsys, corruptDir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	next := uint64(1)
	if len(want) > 0 {
		next = want[len(want)-1].seq + 1
	}
	seq, err := l.Append(7, []byte("next"))
	if err != nil || seq != next {
		t.Fatalf("Append = %d, %v; want seq %d", seq, err, next)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, info := mustReplay(t, fsys, corruptDir)
	if d := sameRecs(got, append(want[:len(want):len(want)], rec{next, 7, []byte("next")})); d != "" || info.TornTail {
		t.Fatalf("after Open+Append: %s %+v", d, info)
	}
}

// TestTornTail truncates the last segment at every byte offset of its last
// record (and of its header): Replay returns the records before it,
// truncates the file, and the log continues.
func TestTornTail(t *testing.T) {
	tests := []struct {
		name     string
		segBytes int64
		sizes    []int
	}{
		{"one segment", 0, []int{5, 40, 0, 17, 30}},
		{"empty last payload", 0, []int{5, 40, 0}},
		{"single record", 0, []int{25}},
		{"second segment", 120, []int{50, 50, 50, 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, names, files := smallLog(t, tt.segBytes, tt.sizes...)
			last := len(files) - 1
			b := files[last]
			offs := recordOffsets(b)
			lastOff := offs[len(offs)-1]
			path := filepath.Join(corruptDir, names[last])
			for cut := 0; cut < len(b); cut++ {
				if cut >= HeaderSize && cut < lastOff {
					continue // only the last record and the header
				}
				t.Run(fmt.Sprint(cut), func(t *testing.T) {
					fsys := logFS(t, names, append(files[:last:last], b[:cut]))
					want := recs[:len(recs)-1]
					wantSize, wantTorn := int64(lastOff), cut > lastOff
					if cut < HeaderSize { // the segment goes
						want = recs[:len(recs)-len(offs)]
						wantSize, wantTorn = -1, true
					}
					got, info := mustReplay(t, fsys, corruptDir)
					if d := sameRecs(got, want); d != "" {
						t.Fatal(d)
					}
					wantTrunc := int64(cut) - max(wantSize, 0)
					if info.TornTail != wantTorn || info.TruncatedBytes != wantTrunc {
						t.Fatalf("ReplayInfo %+v; want TornTail %v, TruncatedBytes %d", info, wantTorn, wantTrunc)
					}
					size, err := fsys.Size(path)
					if wantSize < 0 {
						if err == nil {
							t.Fatalf("torn segment %s not removed", names[last])
						}
					} else if size != wantSize {
						t.Fatalf("file size %d after Replay, want %d", size, wantSize)
					}
					if wantSize >= 0 {
						if synced, _ := fsys.SyncedSize(path); synced != wantSize {
							t.Fatalf("truncation not synced: %d", synced)
						}
					}
					checkContinues(t, fsys, want)
				})
			}
		})
	}
}

// TestTornTailOpen checks that Open repairs a torn tail by itself when the
// caller did not Replay first.
func TestTornTailOpen(t *testing.T) {
	recs, names, files := smallLog(t, 0, 10, 20, 30)
	b := files[0]
	fsys := logFS(t, names, [][]byte{b[:len(b)-3]})
	checkContinues(t, fsys, recs[:2])
}

// TestZeroedTail covers file systems that expose zeros for data that never
// reached the disk: trailing zeros after the last record, and a last record
// overwritten with zeros, are torn tails.
func TestZeroedTail(t *testing.T) {
	recs, names, files := smallLog(t, 0, 10, 20, 30)
	b := files[0]
	offs := recordOffsets(b)
	zeroLast := append([]byte(nil), b...)
	clear(zeroLast[offs[2]:])
	tests := []struct {
		name  string
		file  []byte
		want  []rec
		trunc int64
	}{
		{"zeros after", append(append([]byte(nil), b...), make([]byte, 100)...), recs, 100},
		{"last record zeroed", zeroLast, recs[:2], int64(len(b) - offs[2])},
		{"zeroed header", make([]byte, 64), nil, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := logFS(t, names, [][]byte{tt.file})
			got, info := mustReplay(t, fsys, corruptDir)
			if d := sameRecs(got, tt.want); d != "" {
				t.Fatal(d)
			}
			if !info.TornTail || info.TruncatedBytes != tt.trunc {
				t.Fatalf("ReplayInfo %+v", info)
			}
			checkContinues(t, fsys, tt.want)
		})
	}
}

// TestBitFlips flips every bit of small logs in turn: damage in the last
// record of the last segment is a torn tail; anywhere else it is reported
// as corruption at the right record. Replay never returns a wrong payload.
func TestBitFlips(t *testing.T) {
	tests := []struct {
		name     string
		segBytes int64
		sizes    []int
		seg      int // which segment to damage
	}{
		{"last segment", 0, []int{3, 10, 0, 7, 12}, 0},
		{"non-last segment", 100, []int{3, 10, 0, 7, 60, 5, 8}, 0},
		{"middle segment", 60, []int{20, 20, 20, 20, 20, 20}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, names, files := smallLog(t, tt.segBytes, tt.sizes...)
			isLast := tt.seg == len(files)-1
			if len(files) < 2 && !isLast {
				t.Fatalf("want several segments, got %d", len(files))
			}
			b := files[tt.seg]
			offs := recordOffsets(b)
			first, _ := parseSegmentName(names[tt.seg])
			for bit := 0; bit < 8*len(b); bit++ {
				damaged := append([]byte(nil), b...)
				damaged[bit/8] ^= 1 << (bit % 8)
				fs := append([][]byte(nil), files...)
				fs[tt.seg] = damaged
				fsys := logFS(t, names, fs)
				got, info, err := replayAll(t, fsys, corruptDir, 0)

				// The record holding the flipped bit, or -1 for the header.
				k := -1
				for i, off := range offs {
					if bit/8 >= off {
						k = i
					}
				}
				before := recs[:first-1]
				if k >= 0 {
					before = recs[:int(first-1)+k]
				}
				if d := sameRecs(got[:min(len(got), len(before))], before[:min(len(got), len(before))]); d != "" {
					t.Fatalf("bit %d: wrong payload: %s", bit, d)
				}
				if k == len(offs)-1 && isLast {
					if err != nil || !info.TornTail || sameRecs(got, before) != "" {
						t.Fatalf("bit %d (last record): %v %+v, want torn tail after %d records", bit, err, info, len(before))
					}
					continue
				}
				var ce *CorruptError
				if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("bit %d (record %d): err %v, want ErrCorrupt", bit, k, err)
				}
				wantOff, wantSeq := int64(0), first
				if k >= 0 {
					wantOff, wantSeq = int64(offs[k]), first+uint64(k)
				}
				if ce.Offset != wantOff || ce.Seq != wantSeq || ce.File != filepath.Join(corruptDir, names[tt.seg]) {
					t.Fatalf("bit %d: %v; want offset %d seq %d", bit, err, wantOff, wantSeq)
				}
				if sameRecs(got, before) != "" {
					t.Fatalf("bit %d: replayed %d records before the error, want %d", bit, len(got), len(before))
				}
			}
		})
	}
}

// rehead rewrites a segment header field and, if fix, its checksum.
func rehead(b []byte, fix bool, edit func(h []byte)) []byte {
	b = append([]byte(nil), b...)
	edit(b[:HeaderSize])
	if fix {
		binary.LittleEndian.PutUint32(b[18:22], crc32.Checksum(b[:18], castagnoli))
	}
	return b
}

func TestHeaderDamage(t *testing.T) {
	recs, names, files := smallLog(t, 60, 20, 20, 20, 20)
	if len(files) != 4 {
		t.Fatalf("%d segments, want 4", len(files))
	}
	edits := []struct {
		name  string
		edit  func(b []byte) []byte
		torn  bool // a torn tail if in the last segment
		empty bool // the edit leaves no records in the segment
	}{
		{"magic", func(b []byte) []byte { return rehead(b, true, func(h []byte) { h[0] = 'X' }) }, false, false},
		{"version", func(b []byte) []byte { return rehead(b, true, func(h []byte) { h[8] = 2 }) }, false, false},
		{"first seq", func(b []byte) []byte { return rehead(b, true, func(h []byte) { h[10]++ }) }, false, false},
		{"checksum", func(b []byte) []byte { return rehead(b, false, func(h []byte) { h[20] ^= 4 }) }, false, false},
		{"zeroed", func(b []byte) []byte { return rehead(b, false, func(h []byte) { clear(h) }) }, false, false},
		{"zeroed file", func(b []byte) []byte { return make([]byte, len(b)) }, true, true},
		{"cut", func(b []byte) []byte { return b[:HeaderSize-1] }, true, true},
		{"empty", func(b []byte) []byte { return nil }, true, true},
	}
	for _, e := range edits {
		for seg := range files {
			t.Run(fmt.Sprintf("%s/segment %d", e.name, seg), func(t *testing.T) {
				fs := append([][]byte(nil), files...)
				fs[seg] = e.edit(files[seg])
				fsys := logFS(t, names, fs)
				got, info, err := replayAll(t, fsys, corruptDir, 0)
				before := recs[:seg]
				if sameRecs(got, before) != "" {
					t.Fatalf("replayed %d records, want %d", len(got), len(before))
				}
				if e.torn && seg == len(files)-1 {
					if err != nil || !info.TornTail {
						t.Fatalf("Replay: %v %+v; want torn tail", err, info)
					}
					checkContinues(t, fsys, before)
					return
				}
				if !isCorrupt(err) {
					t.Fatalf("Replay: %v; want ErrCorrupt", err)
				}
			})
		}
	}
}

func TestSequenceGap(t *testing.T) {
	// Segments of three records: first seqs 1, 4, 7, 10.
	recs, names, files := smallLog(t, 120, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20)
	if len(files) != 4 {
		t.Fatalf("%d segments, want 4", len(files))
	}
	tests := []struct {
		name  string
		first uint64 // new first seq of segment 2 (name and header)
	}{
		{"gap", 8},
		{"overlap", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := append([]string(nil), names...)
			fs := append([][]byte(nil), files...)
			ns[2] = SegmentName(tt.first)
			fs[2] = rehead(files[2], true, func(h []byte) { binary.LittleEndian.PutUint64(h[10:], tt.first) })
			fsys := logFS(t, ns, fs)
			got, _, err := replayAll(t, fsys, corruptDir, 0)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Seq != 7 || sameRecs(got, recs[:6]) != "" {
				t.Fatalf("Replay: %d records, %v; want 6 and ErrCorrupt at seq 7", len(got), err)
			}
		})
	}
}

func TestRepair(t *testing.T) {
	// Four segments of three records, 20-byte payloads: 22 + 3*29 = 109.
	sizes := make([]int, 12)
	for i := range sizes {
		sizes[i] = 20
	}
	recs, names, files := smallLog(t, 120, sizes...)
	if len(files) != 4 {
		t.Fatalf("%d segments, want 4", len(files))
	}
	recOff := func(i int) int { return HeaderSize + i*29 } // i-th record of a segment
	flip := func(seg, byteOff int) func([]string, [][]byte) ([]string, [][]byte) {
		return func(ns []string, fs [][]byte) ([]string, [][]byte) {
			fs[seg] = append([]byte(nil), fs[seg]...)
			fs[seg][byteOff] ^= 0x10
			return ns, fs
		}
	}
	tests := []struct {
		name    string
		damage  func([]string, [][]byte) ([]string, [][]byte)
		kept    uint64
		dropped int
		bytes   int64
		removed int
	}{
		{"clean", func(ns []string, fs [][]byte) ([]string, [][]byte) { return ns, fs }, 12, 0, 0, 0},
		{"middle of last segment", flip(3, recOff(1)+12), 10, 1, 58, 0},
		{"middle of first segment", flip(0, recOff(0)+12), 0, 11, 87 + 3*109, 3},
		{"length of a record", flip(1, recOff(1)+1), 4, 7, 58 + 2*109, 2},
		{"header of segment 2", flip(2, 3), 6, 6, 2 * 109, 2},
		{"torn tail", func(ns []string, fs [][]byte) ([]string, [][]byte) {
			fs[3] = fs[3][:len(fs[3])-5]
			return ns, fs
		}, 11, 0, 24, 0},
		{"gap", func(ns []string, fs [][]byte) ([]string, [][]byte) {
			ns[3] = SegmentName(11)
			fs[3] = rehead(fs[3], true, func(h []byte) { binary.LittleEndian.PutUint64(h[10:], 11) })
			return ns, fs
		}, 9, 3, 109, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, fs := tt.damage(append([]string(nil), names...), append([][]byte(nil), files...))
			fsys := logFS(t, ns, fs)
			info, err := Repair(fsys, corruptDir)
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			want := RepairInfo{KeptLast: tt.kept, DroppedRecords: tt.dropped, DroppedBytes: tt.bytes, RemovedSegments: tt.removed}
			if info != want {
				t.Fatalf("Repair = %+v, want %+v", info, want)
			}
			got, rinfo := mustReplay(t, fsys, corruptDir)
			if d := sameRecs(got, recs[:tt.kept]); d != "" || rinfo.TornTail {
				t.Fatalf("Replay after Repair: %s %+v", d, rinfo)
			}
			if again, err := Repair(fsys, corruptDir); err != nil || again != (RepairInfo{KeptLast: tt.kept}) {
				t.Fatalf("second Repair = %+v, %v", again, err)
			}
			checkContinues(t, fsys, recs[:tt.kept])
		})
	}
}
