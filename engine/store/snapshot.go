package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/wal"
)

// Snapshot file format, version 1 (frozen):
//
//	+----------+---------+---------+-------------+-----------+------------+
//	| "OMNISNP"| version | seq     | created     | header    | zstd frame |
//	|   + 0x00 | u16 LE  | u64 LE  | unix ms i64 | CRC-32C   | ...        |
//	+----------+---------+---------+-------------+-----------+------------+
//	|  trailer: raw size u64 LE | CRC-32C of the raw bytes u32 LE | "SNAPEND\x00" |
//
// The zstd frame holds the engine's snapshot encoding (engine.Capture),
// covering every log record up to and including seq. The header CRC covers
// the bytes before it. A file is written as snap-<seq>.omnisnap.tmp,
// fsynced, renamed, and its directory fsynced; the store keeps the two
// newest and the log back to the older of them, so a damaged newest
// snapshot falls back to the other and a longer replay.
const (
	snapMagic      = "OMNISNP\x00"
	snapEndMagic   = "SNAPEND\x00"
	snapVersion    = 1
	snapHeaderSize = 8 + 2 + 8 + 8 + 4
	snapTrailer    = 8 + 4 + 8
	snapPrefix     = "snap-"
	snapSuffix     = ".omnisnap"
	tmpSuffix      = ".tmp"
	// maxSnapshotRaw bounds the decompressed size a snapshot may claim, so a
	// damaged size field cannot make the loader allocate without limit.
	maxSnapshotRaw = 64 << 30
	// maxWindow is the zstd window snapshots are written with and the most
	// a reader accepts beyond the content.
	maxWindow = 8 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBadSnapshotFile reports a snapshot file that fails its checks.
var ErrBadSnapshotFile = errors.New("store: damaged snapshot file")

// SnapshotInfo describes a snapshot the store wrote, or the one Open
// loaded (then Pause, Took and RemovedWAL are zero).
type SnapshotInfo struct {
	Path       string
	Seq        uint64
	RawBytes   int64 // uncompressed
	FileBytes  int64
	Pause      time.Duration // writes held back while the capture began
	Took       time.Duration // whole snapshot, pause included
	At         time.Time     // when the capture began: the state is as of then
	RemovedWAL int           // log segments the snapshot made unnecessary
}

// Snapshot writes a snapshot of the current state and prunes what it makes
// unnecessary (snapshots but the two newest, log segments older than the
// older of those). Writes wait only while the capture begins; reads never.
func (s *Store) Snapshot() (SnapshotInfo, error) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	return s.snapshotLocked(false)
}

// CompactInfo says what Compact did.
type CompactInfo struct {
	Snapshot         SnapshotInfo
	RemovedSnapshots int // older snapshot files deleted
}

// Compact rewrites the data folder so that it holds only the current
// state: it starts a new log segment, writes a snapshot covering every
// record before it, and deletes every older snapshot and every log
// segment the new snapshot covers. What an erasure removed from the state
// is then in no file (the snapshot holds the state, the log only what
// came after). Writes wait only while the capture begins, as for any
// snapshot; the price is one snapshot's worth of fallback: until the
// next snapshot, a damaged one cannot fall back to an older one.
func (s *Store) Compact() (CompactInfo, error) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	var ci CompactInfo
	next, err := s.log.Rotate()
	if err != nil {
		return ci, fmt.Errorf("cannot compact: %w", err)
	}
	// Every record before the new segment is durable; wait until its
	// writer has applied it, so that the snapshot covers the old segments
	// whole and they can all go.
	s.applyMu.Lock()
	for s.applied < next-1 {
		s.applyCond.Wait()
	}
	s.applyMu.Unlock()
	info, err := s.snapshotLocked(true)
	ci.Snapshot = info
	if err != nil {
		return ci, fmt.Errorf("cannot compact: %w", err)
	}
	ci.RemovedSnapshots = int(s.lastPruned.Load())
	return ci, nil
}

// snapshotLocked is Snapshot; with compact it keeps only the new snapshot
// and the log after it. s.snapMu must be held.
func (s *Store) snapshotLocked(compact bool) (SnapshotInfo, error) {
	start := time.Now()
	s.applyMu.Lock()
	seq := s.applied
	c := s.e.BeginSnapshot()
	s.applyMu.Unlock()
	info := SnapshotInfo{Seq: seq, Pause: time.Since(start), At: start}

	// The snapshot must not cover records the log could lose: wait until the
	// log holds them.
	if seq > 0 {
		if err := s.log.WaitDurable(seq); err != nil {
			c.WriteTo(io.Discard) // end the capture
			return info, fmt.Errorf("cannot snapshot: the log failed: %w", err)
		}
	}
	snapDir := join(s.opts.Dir, "snapshots")
	name := join(snapDir, snapName(seq))
	raw, size, err := writeSnapshotFile(s.opts.FS, name, seq, start, c)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			// Without room for snapshots the log would fill the disk next:
			// refuse writes until a snapshot succeeds (the background
			// retries every HealDelay). Nothing written is lost.
			if s.diskFull.Swap(&err) == nil {
				s.opts.Log.Error("snapshot failed for want of space: refusing writes until one succeeds", "err", err)
			}
		}
		return info, err
	}
	if s.diskFull.Swap(nil) != nil {
		s.opts.Log.Warn("snapshot written after a disk-full failure: accepting writes again", "seq", seq)
	}
	info.Path, info.RawBytes, info.FileBytes = name, raw, size
	s.snapSeq.Store(seq)
	s.snapBytes.Store(s.log.Stats().Bytes)

	// Prune: keep two snapshots, and the log back to the older one (one
	// and the log after it when compacting).
	seqs, err := listSnapshots(s.opts.FS, snapDir)
	if err != nil {
		return info, err
	}
	keep := 2
	if compact {
		keep = 1
	}
	pruned := 0
	defer func() { s.lastPruned.Store(int64(pruned)) }()
	for len(seqs) > keep {
		old := join(snapDir, snapName(seqs[len(seqs)-1]))
		if err := s.opts.FS.Remove(old); err != nil {
			return info, fmt.Errorf("cannot remove old snapshot %q: %w", old, err)
		}
		seqs = seqs[:len(seqs)-1]
		pruned++
	}
	if pruned > 0 {
		if err := s.opts.FS.SyncDir(snapDir); err != nil {
			return info, fmt.Errorf("cannot sync %q: %w", snapDir, err)
		}
	}
	if len(seqs) == keep {
		if info.RemovedWAL, err = s.log.RemoveBefore(seqs[keep-1] + 1); err != nil {
			return info, fmt.Errorf("cannot prune the write-ahead log: %w", err)
		}
	}
	info.Took = time.Since(start)
	s.snapStats.Store(&info)
	s.opts.Log.Info("snapshot written", "seq", seq, "raw_bytes", raw, "file_bytes", size,
		"pause", info.Pause, "took", info.Took.Round(time.Millisecond), "removed_wal_segments", info.RemovedWAL)
	return info, nil
}

func snapName(seq uint64) string { return fmt.Sprintf("%s%020d%s", snapPrefix, seq, snapSuffix) }

// writeSnapshotFile streams the capture through zstd into name, atomically.
func writeSnapshotFile(fs wal.FS, name string, seq uint64, at time.Time, c *engine.Capture) (raw, size int64, err error) {
	tmp := name + tmpSuffix
	f, err := fs.Create(tmp)
	if err != nil {
		c.WriteTo(io.Discard)
		return 0, 0, fmt.Errorf("cannot create snapshot %q: %w", tmp, err)
	}
	fail := func(what string, err error) (int64, int64, error) {
		f.Close()
		fs.Remove(tmp)
		return 0, 0, fmt.Errorf("cannot write snapshot %q: %s: %w", tmp, what, err)
	}
	cw := &countWriter{w: f}
	bw := bufio.NewWriterSize(cw, 1<<20)
	hdr := make([]byte, 0, snapHeaderSize)
	hdr = append(hdr, snapMagic...)
	hdr = binary.LittleEndian.AppendUint16(hdr, snapVersion)
	hdr = binary.LittleEndian.AppendUint64(hdr, seq)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(at.UnixMilli()))
	hdr = binary.LittleEndian.AppendUint32(hdr, crc32.Checksum(hdr, castagnoli))
	if _, err := bw.Write(hdr); err != nil {
		c.WriteTo(io.Discard)
		return fail("header", err)
	}
	zw, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(maxWindow))
	if err != nil {
		c.WriteTo(io.Discard)
		return fail("zstd", err)
	}
	crc := crc32.New(castagnoli)
	n, err := c.WriteTo(io.MultiWriter(zw, crc))
	if err != nil {
		zw.Close()
		return fail("state", err)
	}
	if err := zw.Close(); err != nil {
		return fail("zstd", err)
	}
	tr := binary.LittleEndian.AppendUint64(nil, uint64(n))
	tr = binary.LittleEndian.AppendUint32(tr, crc.Sum32())
	tr = append(tr, snapEndMagic...)
	if _, err := bw.Write(tr); err != nil {
		return fail("trailer", err)
	}
	if err := bw.Flush(); err != nil {
		return fail("flush", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := f.Close(); err != nil {
		fs.Remove(tmp)
		return 0, 0, fmt.Errorf("cannot close snapshot %q: %w", tmp, err)
	}
	if err := fs.Rename(tmp, name); err != nil {
		return 0, 0, fmt.Errorf("cannot rename snapshot into place: %w", err)
	}
	dir := name[:strings.LastIndexByte(name, '/')+1]
	if err := fs.SyncDir(strings.TrimSuffix(dir, "/")); err != nil {
		return 0, 0, fmt.Errorf("cannot sync snapshot directory: %w", err)
	}
	return n, cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// readSnapshotFile checks a snapshot file and returns what its header and
// size say (Path, Seq, At, RawBytes, FileBytes) and the decompressed engine
// encoding.
func readSnapshotFile(fs wal.FS, name string) (SnapshotInfo, []byte, error) {
	seq, at, size, raw, err := readSnapshotBytes(fs, name)
	if err != nil {
		return SnapshotInfo{}, nil, err
	}
	return SnapshotInfo{Path: name, Seq: seq, At: at, RawBytes: int64(len(raw)), FileBytes: size}, raw, nil
}

func readSnapshotBytes(fs wal.FS, name string) (seq uint64, at time.Time, size int64, raw []byte, err error) {
	f, err := fs.Open(name)
	if err != nil {
		return 0, time.Time{}, 0, nil, fmt.Errorf("cannot open snapshot %q: %w", name, err)
	}
	defer f.Close()
	size, err = fs.Size(name)
	if err != nil {
		return 0, time.Time{}, 0, nil, fmt.Errorf("cannot stat snapshot %q: %w", name, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %q: %s", ErrBadSnapshotFile, name, fmt.Sprintf(format, args...))
	}
	if size < snapHeaderSize+snapTrailer {
		return 0, time.Time{}, 0, nil, bad("%d bytes is too short", size)
	}
	hdr := make([]byte, snapHeaderSize)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return 0, time.Time{}, 0, nil, fmt.Errorf("cannot read snapshot %q: %w", name, err)
	}
	if string(hdr[:8]) != snapMagic {
		return 0, time.Time{}, 0, nil, bad("not a snapshot (bad magic)")
	}
	if crc32.Checksum(hdr[:snapHeaderSize-4], castagnoli) != binary.LittleEndian.Uint32(hdr[snapHeaderSize-4:]) {
		return 0, time.Time{}, 0, nil, bad("header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(hdr[8:]); v != snapVersion {
		return 0, time.Time{}, 0, nil, bad("unknown version %d", v)
	}
	seq = binary.LittleEndian.Uint64(hdr[10:])
	at = time.UnixMilli(int64(binary.LittleEndian.Uint64(hdr[18:])))
	tr := make([]byte, snapTrailer)
	if _, err := f.ReadAt(tr, size-snapTrailer); err != nil {
		return 0, time.Time{}, 0, nil, fmt.Errorf("cannot read snapshot %q: %w", name, err)
	}
	if string(tr[12:]) != snapEndMagic {
		return 0, time.Time{}, 0, nil, bad("incomplete (no end marker)")
	}
	rawSize, wantCRC := binary.LittleEndian.Uint64(tr), binary.LittleEndian.Uint32(tr[8:])
	if rawSize > maxSnapshotRaw {
		return 0, time.Time{}, 0, nil, bad("claims %d bytes", rawSize)
	}
	body := io.NewSectionReader(f, snapHeaderSize, size-snapHeaderSize-snapTrailer)
	// The decoder's memory covers the output and the frame's window, which
	// for a streamed frame can exceed a small snapshot's size.
	zr, err := zstd.NewReader(bufio.NewReaderSize(body, 1<<20), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(rawSize+maxWindow))
	if err != nil {
		return 0, time.Time{}, 0, nil, fmt.Errorf("cannot start zstd: %w", err)
	}
	defer zr.Close()
	// rawSize is not trusted until the checksum matches, but growing
	// towards it by appends would copy a multi-GiB buffer several times
	// (and hold twice its size at the end): take it at once when it is
	// within what zstd could plausibly have packed into the file, else
	// grow towards it.
	raw = make([]byte, 0, min(rawSize, max(64<<20, 16*uint64(size))))
	var h hash.Hash32 = crc32.New(castagnoli)
	buf := make([]byte, 1<<20)
	for {
		n, err := zr.Read(buf)
		raw = append(raw, buf[:n]...)
		if uint64(len(raw)) > rawSize {
			return 0, time.Time{}, 0, nil, bad("decompresses past its stated size")
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, time.Time{}, 0, nil, bad("cannot decompress: %v", err)
		}
	}
	h.Write(raw)
	if uint64(len(raw)) != rawSize || h.Sum32() != wantCRC {
		return 0, time.Time{}, 0, nil, bad("content checksum mismatch")
	}
	return seq, at, size, raw, nil
}

// listSnapshots returns the seqs of the snapshot files in dir, newest first.
func listSnapshots(fs wal.FS, dir string) ([]uint64, error) {
	names, err := fs.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list snapshots: %w", err)
	}
	var seqs []uint64
	for _, n := range names {
		if !strings.HasPrefix(n, snapPrefix) || !strings.HasSuffix(n, snapSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(n, snapPrefix), snapSuffix), 10, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	slices.Reverse(seqs)
	return seqs, nil
}

// loadLatestSnapshot loads the newest snapshot that passes its checks,
// falling back to older ones. With none, it returns an empty engine at seq 0.
// It also returns what the loaded snapshot's file says (nil when none).
func loadLatestSnapshot(fs wal.FS, dir string, opts engine.Options, info *RecoveryInfo, log *slog.Logger) (*engine.Engine, uint64, *SnapshotInfo, error) {
	seqs, err := listSnapshots(fs, dir)
	if err != nil {
		return nil, 0, nil, err
	}
	for _, want := range seqs {
		name := join(dir, snapName(want))
		snap, raw, err := readSnapshotFile(fs, name)
		seq := snap.Seq
		if err == nil && seq != want {
			err = fmt.Errorf("%w: %q holds seq %d", ErrBadSnapshotFile, name, seq)
		}
		var e *engine.Engine
		if err == nil {
			e, err = engine.LoadSnapshot(opts, raw)
		}
		if err != nil {
			log.Error("snapshot unusable: falling back to an older one", "file", name, "err", err)
			info.SkippedSnapshot = append(info.SkippedSnapshot, name)
			continue
		}
		info.Snapshot = name
		return e, seq, &snap, nil
	}
	return engine.New(opts), 0, nil, nil
}

// removeTemps deletes snapshot files a crash left half-written.
func removeTemps(fs wal.FS, dir string, log *slog.Logger) {
	names, err := fs.ReadDir(dir)
	if err != nil {
		return
	}
	for _, n := range names {
		if strings.HasSuffix(n, tmpSuffix) {
			if err := fs.Remove(join(dir, n)); err == nil {
				log.Info("removed an unfinished snapshot", "file", n)
			}
		}
	}
}

// removeAllSegments deletes every log segment in dir.
func removeAllSegments(fs wal.FS, dir string) (int, error) {
	names, err := fs.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("cannot list the write-ahead log: %w", err)
	}
	n := 0
	for _, name := range names {
		if strings.HasPrefix(name, "wal-") {
			if err := fs.Remove(join(dir, name)); err != nil {
				return n, fmt.Errorf("cannot remove %q: %w", name, err)
			}
			n++
		}
	}
	if n > 0 {
		if err := fs.SyncDir(dir); err != nil {
			return n, fmt.Errorf("cannot sync %q: %w", dir, err)
		}
	}
	return n, nil
}
