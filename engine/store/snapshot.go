package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	sf, err := openSnapshot(fs, name)
	if err != nil {
		return SnapshotInfo{}, nil, err
	}
	defer sf.f.Close()
	raw, err := sf.decompress(nil, nil)
	if err != nil {
		return SnapshotInfo{}, nil, err
	}
	return sf.info(len(raw)), raw, nil
}

// snapFile is a snapshot file whose header and trailer passed their checks.
type snapFile struct {
	f       wal.File
	name    string
	seq     uint64
	at      time.Time
	size    int64  // of the file
	rawSize uint64 // the trailer's, not trusted until the checksum matches
	wantCRC uint32
}

func (sf *snapFile) info(raw int) SnapshotInfo {
	return SnapshotInfo{Path: sf.name, Seq: sf.seq, At: sf.at, RawBytes: int64(raw), FileBytes: sf.size}
}

func (sf *snapFile) bad(format string, args ...any) error {
	return fmt.Errorf("%w: %q: %s", ErrBadSnapshotFile, sf.name, fmt.Sprintf(format, args...))
}

// openSnapshot opens a snapshot file and checks its header and trailer;
// the caller closes sf.f.
func openSnapshot(fs wal.FS, name string) (*snapFile, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, fmt.Errorf("cannot open snapshot %q: %w", name, err)
	}
	sf := &snapFile{f: f, name: name}
	if err := sf.check(fs); err != nil {
		f.Close()
		return nil, err
	}
	return sf, nil
}

func (sf *snapFile) check(fs wal.FS) error {
	var err error
	if sf.size, err = fs.Size(sf.name); err != nil {
		return fmt.Errorf("cannot stat snapshot %q: %w", sf.name, err)
	}
	if sf.size < snapHeaderSize+snapTrailer {
		return sf.bad("%d bytes is too short", sf.size)
	}
	hdr := make([]byte, snapHeaderSize)
	if _, err := sf.f.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("cannot read snapshot %q: %w", sf.name, err)
	}
	if string(hdr[:8]) != snapMagic {
		return sf.bad("not a snapshot (bad magic)")
	}
	if crc32.Checksum(hdr[:snapHeaderSize-4], castagnoli) != binary.LittleEndian.Uint32(hdr[snapHeaderSize-4:]) {
		return sf.bad("header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(hdr[8:]); v != snapVersion {
		return sf.bad("unknown version %d", v)
	}
	sf.seq = binary.LittleEndian.Uint64(hdr[10:])
	sf.at = time.UnixMilli(int64(binary.LittleEndian.Uint64(hdr[18:])))
	tr := make([]byte, snapTrailer)
	if _, err := sf.f.ReadAt(tr, sf.size-snapTrailer); err != nil {
		return fmt.Errorf("cannot read snapshot %q: %w", sf.name, err)
	}
	if string(tr[12:]) != snapEndMagic {
		return sf.bad("incomplete (no end marker)")
	}
	sf.rawSize, sf.wantCRC = binary.LittleEndian.Uint64(tr), binary.LittleEndian.Uint32(tr[8:])
	if sf.rawSize > maxSnapshotRaw {
		return sf.bad("claims %d bytes", sf.rawSize)
	}
	return nil
}

// plausibleRaw is the most a file of size bytes is taken to decompress
// to without question: zstd packs snapshots 1.2-3x, never 16x.
func plausibleRaw(size int64) uint64 { return max(64<<20, 16*uint64(size)) }

// decompress decompresses the body and checks it against the trailer.
// rawSize is not trusted until the checksum matches, but growing towards
// it by appends would copy a multi-GiB buffer several times (and hold
// twice its size at the end): with raw nil it takes a buffer of rawSize
// at once when that is within what zstd could plausibly have packed into
// the file, else grows towards it. A caller that passes raw (of rawSize
// bytes) gets progress(n) after each chunk, n bytes being in.
func (sf *snapFile) decompress(raw []byte, progress func(n int)) ([]byte, error) {
	body := io.NewSectionReader(sf.f, snapHeaderSize, sf.size-snapHeaderSize-snapTrailer)
	// The decoder's memory covers the output and the frame's window, which
	// for a streamed frame can exceed a small snapshot's size.
	zr, err := zstd.NewReader(bufio.NewReaderSize(body, 1<<20), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(sf.rawSize+maxWindow))
	if err != nil {
		return nil, fmt.Errorf("cannot start zstd: %w", err)
	}
	defer zr.Close()
	if raw == nil {
		raw = make([]byte, 0, min(sf.rawSize, plausibleRaw(sf.size)))
	} else {
		raw = raw[:0]
	}
	// Read straight into raw's room, one chunk at a time, the checksum
	// taken while the chunk is still in cache.
	h := crc32.New(castagnoli)
	var one [1]byte
	for {
		if len(raw) == cap(raw) {
			if uint64(len(raw)) >= sf.rawSize {
				// All it claimed is in: the frame must end here.
				if n, err := zr.Read(one[:]); n > 0 || (err != nil && err != io.EOF) {
					if err != nil && n == 0 {
						return nil, sf.bad("cannot decompress: %v", err)
					}
					return nil, sf.bad("decompresses past its stated size")
				}
				break
			}
			raw = slices.Grow(raw, min(int(sf.rawSize)-len(raw), max(len(raw)/4, 1<<20)))
		}
		n, err := zr.Read(raw[len(raw):min(cap(raw), len(raw)+1<<20)])
		h.Write(raw[len(raw) : len(raw)+n])
		raw = raw[:len(raw)+n]
		if progress != nil && n > 0 {
			progress(len(raw))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, sf.bad("cannot decompress: %v", err)
		}
	}
	if uint64(len(raw)) != sf.rawSize || h.Sum32() != sf.wantCRC {
		return nil, sf.bad("content checksum mismatch")
	}
	return raw, nil
}

// loadSnapshotFile reads a snapshot file into an engine, loading while it
// decompresses: a version 7 engine snapshot's parts load as soon as they
// are in (engine.LoadSnapshotArriving), on the other cores, so a restart
// costs about the longer of the two rather than their sum. The engine is
// returned only once the whole file has passed its checksum.
func loadSnapshotFile(fs wal.FS, name string, opts engine.Options) (*engine.Engine, SnapshotInfo, error) {
	sf, err := openSnapshot(fs, name)
	if err != nil {
		return nil, SnapshotInfo{}, err
	}
	defer sf.f.Close()
	if sf.rawSize > plausibleRaw(sf.size) {
		// Implausible: read it whole first, growing towards the claim.
		raw, err := sf.decompress(nil, nil)
		if err != nil {
			return nil, SnapshotInfo{}, err
		}
		e, err := engine.LoadSnapshot(opts, raw)
		return e, sf.info(len(raw)), err
	}
	raw := make([]byte, sf.rawSize)
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		in      int   // bytes decompressed
		done    bool  // decompress returned
		readErr error // what it returned
	)
	go func() {
		_, err := sf.decompress(raw, func(n int) {
			mu.Lock()
			in = n
			cond.Broadcast()
			mu.Unlock()
		})
		mu.Lock()
		done, readErr = true, err
		cond.Broadcast()
		mu.Unlock()
	}()
	arrived := func(n int) error {
		mu.Lock()
		defer mu.Unlock()
		for in < n && !done {
			cond.Wait()
		}
		switch {
		case in >= n:
			return nil
		case readErr != nil:
			return readErr
		}
		return sf.bad("content checksum mismatch") // it ended short of its claim
	}
	// Even when the engine refuses what it read, the whole file is
	// checked: damage to the file says more than the encoding's error.
	e, loadErr := engine.LoadSnapshotArriving(opts, raw, arrived)
	mu.Lock()
	for !done {
		cond.Wait()
	}
	err = readErr
	mu.Unlock()
	switch {
	case err != nil:
		return nil, SnapshotInfo{}, err // the file is damaged, whatever loaded
	case loadErr != nil:
		return nil, SnapshotInfo{}, loadErr
	}
	return e, sf.info(len(raw)), nil
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
		e, snap, err := loadSnapshotFile(fs, name, opts)
		seq := snap.Seq
		if err == nil && seq != want {
			err = fmt.Errorf("%w: %q holds seq %d", ErrBadSnapshotFile, name, seq)
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
