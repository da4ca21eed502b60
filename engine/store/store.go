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
// replay rejects them again and reaches the same state.
//
// It owns the data folder, the log (engine/wal) and the engine it feeds;
// it may import engine and engine/wal, never api. It sits above engine
// and below api (see engine's package doc for the floor plan).
//
// # Atomic batches, durability and visibility
//
// The records of one Write go to the log as one batch record (wal's
// TypeBatch): after any crash they are all there or none is. They are
// applied to the engine only once the log holds them durably, in log order,
// so memory never runs ahead of the disk: a reader sees a write no earlier
// than the moment it became durable (and a moment before its writer gets
// the answer), and never sees a write that a crash or a failed write could
// take back. Within a batch, records become visible as they are applied
// (engine.ApplyBatch), over microseconds to a few milliseconds; of a run of
// events, the profile edits may show before the relations and popularity
// the same events change. If the log fails (a full disk, an I/O error),
// the writes not yet durable fail with the cause, are never applied, and
// writes are refused until the log heals by itself (see wal.Log); a
// snapshot that fails for want of space refuses writes too, until one
// succeeds (ErrDiskFull), while reads go on.
//
// # Lock order
//
// snapMu -> appendMu -> applyMu -> the engine's locks. snapMu lets one
// snapshot (or compaction) run at a time; appendMu orders log appends;
// applyMu orders the Applies of durable batches in log order (applyCond
// waits on it). A snapshot holds applyMu only while the engine begins its
// capture (BeginSnapshot), then writes it out with applyMu released. The
// log's own locks are leaves and never call back. Nothing takes snapMu
// while holding appendMu or applyMu.
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
	// HealDelay is passed to the log: how soon after a write failure it
	// heals and writes may resume (default 1s). While a snapshot failure
	// for want of space refuses writes, the store retries the snapshot as
	// often.
	HealDelay time.Duration
	// EraseCompactAfter is how long after an erasure (engine.OpErase)
	// the store compacts (Compact), so that no file holds the erased id
	// any more; erasures within that time share one compaction. Default
	// 10 minutes. An erasure replayed at start-up counts from then.
	EraseCompactAfter time.Duration
	// AnonymousTTL: every ExpireEvery the store writes an engine.OpExpire
	// record dropping the anonymous profiles unused for this long
	// (default 30 days; negative: never). ExpireEvery defaults to 1 hour.
	AnonymousTTL time.Duration
	ExpireEvery  time.Duration
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
	if o.HealDelay <= 0 {
		o.HealDelay = wal.DefaultHealDelay
	}
	if o.EraseCompactAfter <= 0 {
		o.EraseCompactAfter = 10 * time.Minute
	}
	if o.AnonymousTTL == 0 {
		o.AnonymousTTL = 30 * 24 * time.Hour
	}
	if o.ExpireEvery <= 0 {
		o.ExpireEvery = time.Hour
	}
}

// Errors of Write.
var (
	// ErrClosed is returned by writes after Close.
	ErrClosed = errors.New("store: closed")
	// ErrDiskFull is wrapped by the error of writes refused because a
	// snapshot could not be written for want of space (ENOSPC, EDQUOT);
	// they succeed again once a snapshot does. A log write that fails for
	// want of space returns the log's error, which wraps syscall.ENOSPC.
	ErrDiskFull = errors.New("store: disk full")
)

// replayBatch is how many records the log's replay decodes before it
// applies them with one ApplyBatch.
const replayBatch = 1024

// Store is a durable engine. Safe for concurrent use.
type Store struct {
	opts Options
	e    *engine.Engine
	log  *wal.Log

	appendMu sync.Mutex // orders log appends; guards batch, buf, closed
	batch    wal.Batch
	buf      []byte
	closed   bool

	applyMu   sync.Mutex // guards applied; applyCond waits on it
	applyCond sync.Cond
	applied   uint64 // seq of the last log record applied to the engine

	// diskFull is the snapshot failure for want of space that makes
	// Write refuse, until a snapshot succeeds; nil when none.
	diskFull atomic.Pointer[error]

	snapMu    sync.Mutex // one snapshot at a time
	snapSeq   atomic.Uint64
	snapBytes atomic.Int64 // WAL bytes at the last snapshot
	snapStats atomic.Pointer[SnapshotInfo]
	// lastPruned is how many snapshot files the last snapshot deleted.
	lastPruned atomic.Int64
	// erased is when the oldest erasure not yet compacted away was
	// applied (unix ns); 0 when none.
	erased atomic.Int64

	stop chan struct{}
	done chan struct{}
	lock *Lock // the data folder's; nil on a FS other than the OS's
}

// RecoveryInfo says what Open found and did.
type RecoveryInfo struct {
	Snapshot        string // file loaded; "" when none
	SnapshotSeq     uint64
	SkippedSnapshot []string // damaged snapshots passed over, newest first
	Replayed        int      // log records applied after the snapshot
	Rejected        int      // of which the engine rejected (as it did live)
	Erasures        int      // erasures replayed: the store compacts them away
	TornTail        bool     // a half-written last record was cut off
	TruncatedBytes  int64
	NextSeq         uint64 // the seq the next write gets
	Took            time.Duration
}

// Open recovers the state in opts.Dir (the latest valid snapshot, then the
// log after it) and returns a store ready for writes.
//
// On the operating system's file system (opts.FS nil or wal.OS()) Open
// first takes the folder's lock (LockDir), before it reads anything, and
// Close releases it: a second process opening the same folder gets a
// *LockedError at once.
func Open(opts Options) (*Store, RecoveryInfo, error) {
	opts.setDefaults()
	var lock *Lock
	if opts.FS == wal.OS() {
		dir := opts.Dir
		if dir == "" {
			dir = "."
		}
		var err error
		if lock, err = LockDir(dir); err != nil {
			return nil, RecoveryInfo{}, err
		}
	}
	s, info, err := open(opts)
	if err != nil {
		lock.Unlock()
		return nil, info, err
	}
	s.lock = lock
	return s, info, nil
}

func open(opts Options) (*Store, RecoveryInfo, error) {
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

	// Records are applied in batches (ApplyBatch: the state of Apply one
	// by one, the profile edits in parallel).
	recs, errs := make([]engine.Record, replayBatch), make([]error, replayBatch)
	n := 0
	flush := func() {
		e.ApplyBatch(recs[:n], errs[:n])
		for i, err := range errs[:n] {
			if err != nil {
				info.Rejected++
			} else if recs[i].Op == engine.OpErase {
				info.Erasures++
			}
		}
		n = 0
	}
	rinfo, err := wal.Replay(fs, walDir, seq+1, func(s uint64, typ byte, payload []byte) error {
		if err := engine.DecodeRecord(engine.Op(typ), payload, &recs[n]); err != nil {
			return fmt.Errorf("record %d: %w", s, err)
		}
		info.Replayed++
		if n++; n == len(recs) {
			flush()
		}
		return nil
	})
	if err == nil {
		flush()
	}
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
		HealDelay: opts.HealDelay,
	})
	if err != nil {
		return nil, info, fmt.Errorf("cannot open the write-ahead log: %w", err)
	}
	s := &Store{opts: opts, e: e, log: log, applied: next - 1, stop: make(chan struct{}), done: make(chan struct{})}
	s.applyCond.L = &s.applyMu
	if info.Erasures > 0 {
		s.erased.Store(time.Now().UnixNano())
	}
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

// Write logs recs as one batch (all or nothing across a crash), waits
// until the log holds it durably, then applies the records to the engine,
// in log order, and returns: errs[i] is the engine's verdict on recs[i]. It
// implements api.Writer. An error means nothing was applied or
// acknowledged: engine.ErrOverloaded when the log's queue is full, an
// error wrapping ErrDiskFull while a snapshot lacks space, otherwise the
// log's failure (for a full disk it wraps syscall.ENOSPC).
func (s *Store) Write(recs []engine.Record, errs []error) error {
	if len(recs) == 0 {
		return nil
	}
	t, err := s.appendBatch(recs)
	if err != nil {
		return err
	}
	return s.applyDurable(t, recs, errs)
}

// appendBatch logs recs as one batch; it is not durable yet.
func (s *Store) appendBatch(recs []engine.Record) (wal.Ticket, error) {
	if cause := s.diskFull.Load(); cause != nil {
		return wal.Ticket{}, fmt.Errorf("%w: writes are refused until a snapshot can be written: %w", ErrDiskFull, *cause)
	}
	s.appendMu.Lock()
	if s.closed {
		s.appendMu.Unlock()
		return wal.Ticket{}, ErrClosed
	}
	s.batch.Reset()
	for i := range recs {
		s.buf = engine.AppendRecord(s.buf[:0], &recs[i])
		if err := s.batch.Add(byte(recs[i].Op), s.buf); err != nil {
			s.appendMu.Unlock()
			return wal.Ticket{}, fmt.Errorf("cannot log record %d: %w", i, err)
		}
	}
	t, err := s.log.AppendAtomic(&s.batch)
	s.appendMu.Unlock()
	if err != nil {
		if errors.Is(err, wal.ErrFull) {
			return t, fmt.Errorf("%w: %w", engine.ErrOverloaded, err)
		}
		return t, fmt.Errorf("cannot append to the write-ahead log: %w", err)
	}
	return t, nil
}

// applyDurable waits until the batch t is durable and applies its records.
func (s *Store) applyDurable(t wal.Ticket, recs []engine.Record, errs []error) error {
	if err := s.log.Wait(t); err != nil {
		return fmt.Errorf("cannot make the write durable: %w", err)
	}
	// Durable: apply in log order. Every record before ours is durable
	// too, so its writer is applying it or about to.
	s.applyMu.Lock()
	for s.applied != t.First-1 {
		s.applyCond.Wait()
	}
	s.e.ApplyBatch(recs, errs)
	erased := false
	for i := range recs {
		erased = erased || (recs[i].Op == engine.OpErase && errs[i] == nil)
	}
	if erased {
		s.erased.CompareAndSwap(0, time.Now().UnixNano())
	}
	s.applied = t.Last
	s.applyCond.Broadcast()
	s.applyMu.Unlock()
	return nil
}

// background takes snapshots on time and on log volume.
func (s *Store) background() {
	defer close(s.done)
	tick := time.NewTicker(min(time.Second, s.opts.SnapshotEvery, s.opts.HealDelay, s.opts.ExpireEvery))
	defer tick.Stop()
	last := time.Now()
	lastExpire := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			if s.opts.AnonymousTTL > 0 && now.Sub(lastExpire) >= s.opts.ExpireEvery {
				lastExpire = now
				s.expire(now)
			}
			st := s.log.Stats()
			grown := st.Bytes - s.snapBytes.Load()
			s.applyMu.Lock()
			dirty := s.applied > s.snapSeq.Load()
			s.applyMu.Unlock()
			if e := s.erased.Load(); e != 0 && now.Sub(time.Unix(0, e)) >= s.opts.EraseCompactAfter {
				// Erasures applied after the compaction began may be in
				// the log it keeps: they count from now.
				s.erased.Store(0)
				if _, err := s.Compact(); err != nil {
					s.erased.CompareAndSwap(0, now.UnixNano())
					s.opts.Log.Error("compaction after an erasure failed; trying again", "err", err)
				} else {
					s.opts.Log.Info("compacted the data folder after an erasure")
				}
				last = now
				continue
			}
			retry := s.diskFull.Load() != nil && now.Sub(last) >= s.opts.HealDelay
			if !retry && (!dirty || (now.Sub(last) < s.opts.SnapshotEvery && grown < s.opts.SnapshotBytes)) {
				continue
			}
			if _, err := s.Snapshot(); err != nil {
				s.opts.Log.Error("snapshot failed", "err", err)
			}
			last = now
		}
	}
}

// expire writes the record that drops the anonymous profiles unused for
// the TTL: a log record like any write, so replay drops the same ones.
func (s *Store) expire(now time.Time) {
	rec := []engine.Record{{Op: engine.OpExpire, Expire: engine.Expire{Before: now.Add(-s.opts.AnonymousTTL).UnixMilli()}}}
	before := s.e.Stats().Profiles
	if err := s.Write(rec, []error{nil}); err != nil {
		s.opts.Log.Error("cannot expire anonymous profiles; trying again later", "err", err)
		return
	}
	if after := s.e.Stats().Profiles; after < before {
		s.opts.Log.Info("expired anonymous profiles unused for the TTL", "dropped", before-after, "ttl", s.opts.AnonymousTTL, "profiles", after)
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
	// DiskFull is the snapshot failure that refuses writes (see
	// ErrDiskFull); nil when none.
	DiskFull error
}

// Stats returns current counters.
func (s *Store) Stats() Stats {
	s.applyMu.Lock()
	applied := s.applied
	s.applyMu.Unlock()
	st := Stats{WAL: s.log.Stats(), LastSnapshot: s.snapStats.Load(), AppliedSeq: applied}
	if p := s.diskFull.Load(); p != nil {
		st.DiskFull = *p
	}
	return st
}

// Close stops accepting writes, takes a final snapshot (unless nothing
// changed since the last), and closes the log. Call it once in-flight
// writes are done (the HTTP server is stopped).
func (s *Store) Close() error {
	s.appendMu.Lock()
	if s.closed {
		s.appendMu.Unlock()
		return nil
	}
	s.appendMu.Unlock()
	s.applyMu.Lock()
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
	s.appendMu.Lock()
	s.closed = true
	s.appendMu.Unlock()
	if err := s.log.Close(); err != nil {
		errs = append(errs, fmt.Errorf("cannot close the write-ahead log: %w", err))
	}
	if err := s.lock.Unlock(); err != nil {
		errs = append(errs, fmt.Errorf("cannot release the data folder's lock: %w", err))
	}
	return errors.Join(errs...)
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
