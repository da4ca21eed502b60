// Package store makes an engine durable. Every write is appended to the
// write-ahead log and applied to the engine in one order, under one lock,
// and acknowledged once the log says it is durable; snapshots bound how
// much log a restart replays; Open recovers the latest state.
//
// Layout of the data folder:
//
//	wal/wal-<first seq>.log          write-ahead log segments (package wal)
//	snapshots/snap-<seq>.omnisnap    full state covering records 1..seq
//
// Records rejected by the engine are logged too: Apply is deterministic, so
// replay rejects them again and reaches the same state. Logging first keeps
// memory and log identical whatever happens between the two.
//
// It owns the data folder, the log (engine/wal) and the engine it feeds;
// it may import engine and engine/wal, never api. It sits above engine
// and below api (see engine's package doc for the floor plan).
//
// # Lock order
//
// snapMu -> applyMu -> the engine's locks. snapMu lets one snapshot run at
// a time; applyMu makes a log append and its Applies one step, so the log
// and memory hold the same records in the same order. A snapshot holds
// applyMu only while the engine begins its capture (BeginSnapshot), then
// writes it out with applyMu released. The log's own locks are taken
// under applyMu and never call back. Nothing takes snapMu while holding
// applyMu.
package store

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/wal"
)

// Options configure a Store.
type Options struct {
	Dir    string         // the data folder
	FS     wal.FS         // default: the operating system's
	Engine engine.Options // options of the engine Open builds
	Log    *slog.Logger   // default: discard

	Sync             wal.SyncMode  // wal.SyncAlways (default) or wal.SyncInterval
	SyncInterval     time.Duration // for SyncInterval; default 100ms
	SegmentBytes     int64         // WAL segment size; default 64 MiB
	MaxBufferedBytes int64         // WAL bytes queued before writes get ErrOverloaded; default 64 MiB
	// OnWALSync is passed to the log as wal.Options.OnSync: called after
	// every segment fsync, on the log's flusher, for metrics.
	OnWALSync func(d time.Duration, bytes int)

	SnapshotEvery time.Duration // take a snapshot this often when there were writes; default 10 min
	SnapshotBytes int64         // or once this much log was written since the last; default 256 MiB
	// NoBackground disables the snapshot timer (tests take snapshots by hand).
	NoBackground bool
}

func (o *Options) setDefaults() {
	if o.FS == nil {
		o.FS = wal.OS()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.SnapshotEvery <= 0 {
		o.SnapshotEvery = 10 * time.Minute
	}
	if o.SnapshotBytes <= 0 {
		o.SnapshotBytes = 256 << 20
	}
}

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store: closed")

// Store is a durable engine. Safe for concurrent use.
type Store struct {
	opts Options
	e    *engine.Engine
	log  *wal.Log

	applyMu sync.Mutex // orders log appends and engine applies as one
	batch   wal.Batch
	buf     []byte
	applied uint64 // seq of the last record applied
	closed  bool

	snapMu    sync.Mutex // one snapshot at a time
	snapSeq   atomic.Uint64
	snapBytes atomic.Int64 // WAL bytes at the last snapshot
	snapStats atomic.Pointer[SnapshotInfo]

	stop chan struct{}
	done chan struct{}
}

// RecoveryInfo says what Open found and did.
type RecoveryInfo struct {
	Snapshot        string // file loaded; "" when none
	SnapshotSeq     uint64
	SkippedSnapshot []string // damaged snapshots passed over, newest first
	Replayed        int      // log records applied after the snapshot
	Rejected        int      // of which the engine rejected (as it did live)
	TornTail        bool     // a half-written last record was cut off
	TruncatedBytes  int64
	NextSeq         uint64 // the seq the next write gets
	Took            time.Duration
}

// Open recovers the state in opts.Dir (the latest valid snapshot, then the
// log after it) and returns a store ready for writes.
func Open(opts Options) (*Store, RecoveryInfo, error) {
	opts.setDefaults()
	start := time.Now()
	var info RecoveryInfo
	fs := opts.FS
	walDir, snapDir := join(opts.Dir, "wal"), join(opts.Dir, "snapshots")
	for _, d := range []string{walDir, snapDir} {
		if err := fs.MkdirAll(d); err != nil {
			return nil, info, fmt.Errorf("cannot create %q: %w", d, err)
		}
	}
	removeTemps(fs, snapDir, opts.Log)

	e, seq, loaded, err := loadLatestSnapshot(fs, snapDir, opts.Engine, &info, opts.Log)
	if err != nil {
		return nil, info, err
	}
	info.SnapshotSeq = seq

	var rec engine.Record
	rinfo, err := wal.Replay(fs, walDir, seq+1, func(s uint64, typ byte, payload []byte) error {
		if err := engine.DecodeRecord(engine.Op(typ), payload, &rec); err != nil {
			return fmt.Errorf("record %d: %w", s, err)
		}
		info.Replayed++
		if err := e.Apply(&rec); err != nil {
			info.Rejected++
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, wal.ErrCorrupt) {
			return nil, info, fmt.Errorf("the write-ahead log in %q is corrupt: %w; "+
				"run `omnipick repair -data %s` to truncate it at the last good record (it says how many records it drops)", walDir, err, opts.Dir)
		}
		return nil, info, fmt.Errorf("cannot replay the write-ahead log: %w", err)
	}
	if rinfo.Records > 0 && rinfo.First != seq+1 {
		return nil, info, fmt.Errorf("the write-ahead log starts at record %d but the snapshot covers only up to %d: records are missing", rinfo.First, seq)
	}
	info.TornTail, info.TruncatedBytes = rinfo.TornTail, rinfo.TruncatedBytes
	if rinfo.TornTail {
		opts.Log.Warn("write-ahead log had a torn tail: cut off", "bytes", rinfo.TruncatedBytes)
	}
	next := seq + 1
	if rinfo.Last >= next {
		next = rinfo.Last + 1
	}
	if rinfo.NextSeq > next {
		next = rinfo.NextSeq
	}
	if rinfo.NextSeq != 0 && rinfo.NextSeq < next {
		// The snapshot covers more than the log holds (the log's tail was
		// written but not yet fsynced when a power loss hit, or the
		// segments were pruned): every record in it is in the snapshot.
		if _, err := removeAllSegments(fs, walDir); err != nil {
			return nil, info, err
		}
	}
	log, err := wal.Open(fs, walDir, wal.Options{
		FirstSeq: next, SegmentBytes: opts.SegmentBytes, Sync: opts.Sync, Interval: opts.SyncInterval,
		MaxBufferedBytes: opts.MaxBufferedBytes, Logger: opts.Log, OnSync: opts.OnWALSync,
	})
	if err != nil {
		return nil, info, fmt.Errorf("cannot open the write-ahead log: %w", err)
	}
	s := &Store{opts: opts, e: e, log: log, applied: next - 1, stop: make(chan struct{}), done: make(chan struct{})}
	s.snapSeq.Store(seq)
	s.snapBytes.Store(log.Stats().Bytes)
	s.snapStats.Store(loaded)
	info.NextSeq = next
	info.Took = time.Since(start)
	opts.Log.Info("recovered", "snapshot", info.Snapshot, "snapshot_seq", seq, "replayed", info.Replayed,
		"rejected", info.Rejected, "next_seq", next, "took", info.Took.Round(time.Millisecond), "engine", e.String())
	if opts.NoBackground {
		close(s.done)
	} else {
		go s.background()
	}
	return s, info, nil
}

// Engine returns the engine, for reads.
func (s *Store) Engine() *engine.Engine { return s.e }

// Write appends recs to the log, applies them to the engine in the same
// order, and returns once they are durable: errs[i] is the engine's verdict
// on recs[i]. It implements api.Writer. An error means nothing was
// acknowledged: engine.ErrOverloaded when the log's queue is full (nothing
// was logged or applied), otherwise a log failure.
func (s *Store) Write(recs []engine.Record, errs []error) error {
	last, err := s.appendApply(recs, errs)
	if err != nil || last == 0 {
		return err
	}
	if err := s.log.WaitDurable(last); err != nil {
		return fmt.Errorf("cannot make the write durable: %w", err)
	}
	return nil
}

// appendApply logs and applies recs and returns the seq of the last; the
// records are not yet durable.
func (s *Store) appendApply(recs []engine.Record, errs []error) (uint64, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	s.applyMu.Lock()
	if s.closed {
		s.applyMu.Unlock()
		return 0, ErrClosed
	}
	s.batch.Reset()
	for i := range recs {
		s.buf = engine.AppendRecord(s.buf[:0], &recs[i])
		if err := s.batch.Add(byte(recs[i].Op), s.buf); err != nil {
			s.applyMu.Unlock()
			return 0, fmt.Errorf("cannot log record %d: %w", i, err)
		}
	}
	_, last, err := s.log.AppendBatch(&s.batch)
	if err != nil {
		s.applyMu.Unlock()
		if errors.Is(err, wal.ErrFull) {
			return 0, fmt.Errorf("%w: %w", engine.ErrOverloaded, err)
		}
		return 0, fmt.Errorf("cannot append to the write-ahead log: %w", err)
	}
	for i := range recs {
		errs[i] = s.e.Apply(&recs[i])
	}
	s.applied = last
	s.applyMu.Unlock()
	return last, nil
}

// background takes snapshots on time and on log volume.
func (s *Store) background() {
	defer close(s.done)
	tick := time.NewTicker(min(time.Second, s.opts.SnapshotEvery))
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			st := s.log.Stats()
			grown := st.Bytes - s.snapBytes.Load()
			s.applyMu.Lock()
			dirty := s.applied > s.snapSeq.Load()
			s.applyMu.Unlock()
			if !dirty || (now.Sub(last) < s.opts.SnapshotEvery && grown < s.opts.SnapshotBytes) {
				continue
			}
			if _, err := s.Snapshot(); err != nil {
				s.opts.Log.Error("snapshot failed", "err", err)
			}
			last = now
		}
	}
}

// Stats are the store's counters, for metrics.
type Stats struct {
	WAL wal.Stats
	// LastSnapshot is the newest snapshot this store wrote or, before it
	// wrote one, the one Open loaded; nil when there is none. It is
	// shared: do not modify it.
	LastSnapshot *SnapshotInfo
	AppliedSeq   uint64
}

// Stats returns current counters.
func (s *Store) Stats() Stats {
	s.applyMu.Lock()
	applied := s.applied
	s.applyMu.Unlock()
	return Stats{WAL: s.log.Stats(), LastSnapshot: s.snapStats.Load(), AppliedSeq: applied}
}

// Close stops accepting writes, takes a final snapshot (unless nothing
// changed since the last), and closes the log. Call it once in-flight
// writes are done (the HTTP server is stopped).
func (s *Store) Close() error {
	s.applyMu.Lock()
	if s.closed {
		s.applyMu.Unlock()
		return nil
	}
	dirty := s.applied > s.snapSeq.Load()
	s.applyMu.Unlock()
	close(s.stop)
	<-s.done
	var errs []error
	if dirty {
		if _, err := s.Snapshot(); err != nil {
			errs = append(errs, err)
		}
	}
	s.applyMu.Lock()
	s.closed = true
	s.applyMu.Unlock()
	if err := s.log.Close(); err != nil {
		errs = append(errs, fmt.Errorf("cannot close the write-ahead log: %w", err))
	}
	return errors.Join(errs...)
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
