package wal

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// SyncMode says when an appended record counts as durable.
type SyncMode uint8

const (
	// SyncAlways acknowledges a record (WaitDurable returns) once it is
	// written and fsynced: it survives a process crash and a power loss.
	// Concurrent appenders share fsyncs (group commit). The default.
	SyncAlways SyncMode = iota
	// SyncInterval acknowledges a record once it is written to the OS
	// (write(2) returned): it survives a process crash, but a power loss or
	// kernel crash may lose the records written in the last
	// Options.Interval, which the log fsyncs in the background. It trades
	// that window for latency and throughput; the log stays consistent
	// either way (a power loss leaves at most a torn tail, which Replay
	// truncates).
	SyncInterval
)

// Options configure a Log. The zero value is usable.
type Options struct {
	// FirstSeq is the sequence number of the first record if dir holds no
	// log yet (default 1). If dir holds a log, the log continues after its
	// last record and FirstSeq only serves as a check: Open fails if it is
	// beyond the next sequence number, since records would be missing.
	FirstSeq uint64
	// SegmentBytes is the size at which the log starts a new segment
	// (default 64 MiB). A segment is only larger if a single record is.
	SegmentBytes int64
	// Sync is the durability mode (default SyncAlways).
	Sync SyncMode
	// Interval is how often SyncInterval fsyncs (default 100ms).
	Interval time.Duration
	// MaxBufferedBytes bounds the records appended but not yet written
	// (default 64 MiB); past it Append returns ErrFull. A single append
	// larger than the bound is accepted when nothing else is buffered.
	MaxBufferedBytes int64
	// Logger receives rare events: torn tails repaired at Open, failures.
	// Default: discard.
	Logger *slog.Logger
	// OnSync, if set, is called after every fsync of a segment file with
	// its latency and the bytes it made durable (written since the
	// previous fsync), whether it failed or not. It runs on the flusher
	// goroutine (or in Open), so it must be quick and must not call the
	// Log: every write waiting for durability waits for it too. It exists
	// for metrics, which the Log does not know about.
	OnSync func(d time.Duration, bytes int)
	// HealDelay is how long after a write or fsync failure the log tries
	// to heal, and how often it tries again while healing fails (default
	// 1s). See Log.
	HealDelay time.Duration
}

// Default option values.
const (
	DefaultSegmentBytes     = 64 << 20
	DefaultInterval         = 100 * time.Millisecond
	DefaultMaxBufferedBytes = 64 << 20
	DefaultHealDelay        = time.Second
)

// Log appends records to a write-ahead log directory. Appends are buffered
// in memory and written by one background flusher goroutine, which writes
// everything buffered at once and fsyncs once for all of it (group commit).
//
// A Log is safe for concurrent use. Appends are totally ordered by their
// sequence numbers.
//
// # Failures and healing
//
// A write or fsync error (a full disk: ENOSPC; an I/O error) fails every
// record not yet durable: their waiters get the error, and so does every
// append until the log heals. HealDelay later the flusher heals: it cuts
// the active segment back to the end of the last durable record (dropping
// whatever the failed write or fsync left after it, and any segment a
// failed rotation began), fsyncs it and the directory, and reopens it. The
// records that failed are gone for good and their sequence numbers are
// given to the next appends, so the log stays contiguous and holds only
// what was acknowledged; Wait tells the writers of the lost records apart
// by the Ticket's generation. If healing fails (the disk is still broken)
// it is tried again every HealDelay; once the disk has room, appends
// succeed again by themselves. Records durable before the failure are
// never touched: in SyncAlways mode they were fsynced before it.
type Log struct {
	fs     FS
	dir    string
	opts   Options
	logger *slog.Logger

	kick    chan struct{}     // capacity 1: records are waiting to be written
	rotates chan chan rotated // Rotate's requests to the flusher
	closing chan struct{}     // closed by Close
	done    chan struct{}     // closed when the flusher has exited

	mu       sync.Mutex
	cond     sync.Cond // on mu; broadcast when durable or err change
	buf      []byte    // encoded records appended but not yet taken by the flusher
	spare    []byte    // empty buffer to swap with buf
	inflight int       // bytes the flusher is writing
	nextSeq  uint64    // seq the next append gets
	written  uint64    // last seq written to the OS; set by the flusher
	synced   uint64    // last seq fsynced; set by the flusher
	durable  uint64    // last seq durable per the sync mode
	err      error     // sticky failure
	closed   bool
	closeErr error // set by the flusher before done is closed
	appends  uint64
	full     uint64
	gen      uint64            // healings so far; see Ticket
	genEnds  map[uint64]genEnd // by generation, for tickets of earlier ones
	heals    uint64
	failures uint64

	// Owned by the flusher goroutine (and by Open before it starts).
	seg        File
	segPath    string
	segSize    int64
	segRecords int
	unsynced   int // bytes written to the active segment since its last fsync
	// good is where the last durable record ends: healing cuts back to it.
	good position

	fsyncs     atomic.Uint64
	fsyncNanos atomic.Int64
	lastFsync  atomic.Int64

	removeMu sync.Mutex // serialises RemoveBefore
	segMu    sync.Mutex
	segs     []segment // oldest first; the last is the active segment
}

// Open opens the log in dir, creating dir and a first segment if needed,
// and starts its flusher. It does not replay: call Replay first, then Open,
// which continues after the last record. Open verifies the end of the last
// segment itself: a torn tail is truncated (and logged), corruption returns
// a *CorruptError. The caller must Close the Log.
func Open(fsys FS, dir string, opts Options) (*Log, error) {
	if opts.FirstSeq == 0 {
		opts.FirstSeq = 1
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MaxBufferedBytes <= 0 {
		opts.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if opts.HealDelay <= 0 {
		opts.HealDelay = DefaultHealDelay
	}
	if opts.Sync != SyncAlways && opts.Sync != SyncInterval {
		return nil, fmt.Errorf("wal: unknown sync mode %d", opts.Sync)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		fs:      fsys,
		dir:     dir,
		opts:    opts,
		logger:  logger,
		kick:    make(chan struct{}, 1),
		rotates: make(chan chan rotated),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	l.cond.L = &l.mu
	if err := fsys.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("cannot create wal directory %q: %w", dir, err)
	}
	if err := l.openTail(); err != nil {
		if l.seg != nil {
			l.seg.Close()
		}
		return nil, err
	}
	l.written, l.synced, l.durable = l.nextSeq-1, l.nextSeq-1, l.nextSeq-1
	l.markGood()
	go l.run()
	return l, nil
}

// openTail finds the end of the log, repairing a torn tail, and opens the
// active segment. If dir holds no segment it creates one at FirstSeq.
func (l *Log) openTail() error {
	segs, err := listSegments(l.fs, l.dir)
	if err != nil {
		return err
	}
	for i := range segs {
		path := filepath.Join(l.dir, SegmentName(segs[i].first))
		if segs[i].size, err = l.fs.Size(path); err != nil {
			return fmt.Errorf("cannot stat wal segment %q: %w", path, err)
		}
	}
	next := l.opts.FirstSeq
	var sc scanner
	for len(segs) > 0 {
		last := segs[len(segs)-1]
		path := filepath.Join(l.dir, SegmentName(last.first))
		res, err := sc.scan(l.fs, path, last.first, true, 0, nil)
		if err != nil {
			return err
		}
		if res.bad {
			if !res.tail {
				return res.corruptError(path, last.first)
			}
			n, err := fixTail(l.fs, l.dir, path, res)
			if err != nil {
				return err
			}
			l.logger.Warn("wal: truncated torn tail", "file", path, "offset", res.badOff,
				"bytes", n, "reason", res.reason)
			if res.tornHead {
				segs = segs[:len(segs)-1]
				next = last.first
				continue
			}
			res.size = res.badOff
		}
		next = last.first + uint64(res.records)
		if l.opts.FirstSeq > next {
			return fmt.Errorf("wal %q ends before seq %d but FirstSeq is %d: %w", l.dir, next, l.opts.FirstSeq, ErrMissing)
		}
		f, err := l.fs.OpenAppend(path)
		if err != nil {
			return fmt.Errorf("cannot open wal segment %q: %w", path, err)
		}
		l.seg, l.segPath, l.segSize, l.segRecords = f, path, res.size, res.records
		segs[len(segs)-1].size = res.size
		// What a crashed process wrote may still be only in the page cache.
		if err := l.syncSeg(); err != nil {
			return err
		}
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("cannot sync wal directory %q: %w", l.dir, err)
		}
		l.segs = segs
		l.nextSeq = next
		return nil
	}
	next = max(next, l.opts.FirstSeq)
	if err := l.createSegment(next); err != nil {
		return err
	}
	l.segs = []segment{{first: next, size: HeaderSize}}
	l.nextSeq = next
	return nil
}

// Append appends one record and returns its sequence number. The payload is
// copied. The record is not durable yet: call WaitDurable(seq) before
// acknowledging it. Append returns ErrFull if too much is buffered,
// ErrTooLarge for a payload over MaxPayload, ErrClosed after Close, and the
// sticky error after a failure.
func (l *Log) Append(typ byte, payload []byte) (seq uint64, err error) {
	if len(payload) > MaxPayload {
		return 0, fmt.Errorf("cannot append %d-byte wal record: %w", len(payload), ErrTooLarge)
	}
	if typ == TypeBatch {
		return 0, ErrReservedType
	}
	h := recordHeader(typ, payload) // outside the lock
	n := RecordHeaderSize + len(payload)
	l.mu.Lock()
	if err := l.admit(n); err != nil {
		l.mu.Unlock()
		return 0, err
	}
	l.buf = append(l.buf, h[:]...)
	l.buf = append(l.buf, payload...)
	seq = l.nextSeq
	l.nextSeq++
	l.appends++
	l.mu.Unlock()
	l.signal()
	return seq, nil
}

// AppendBatch appends every record of b, in order, under one lock
// acquisition, and returns the sequence numbers of the first and last. It
// appends all of them or none. b is not retained: it may be reset and
// reused when AppendBatch returns. An empty batch returns 0, 0, nil.
func (l *Log) AppendBatch(b *Batch) (first, last uint64, err error) {
	if b.n == 0 {
		return 0, 0, nil
	}
	l.mu.Lock()
	if err := l.admit(len(b.buf)); err != nil {
		l.mu.Unlock()
		return 0, 0, err
	}
	l.buf = append(l.buf, b.buf...)
	first = l.nextSeq
	l.nextSeq += uint64(b.n)
	l.appends += uint64(b.n)
	last = l.nextSeq - 1
	l.mu.Unlock()
	l.signal()
	return first, last, nil
}

// Ticket names appended records for Wait: the sequence numbers of the
// first and the last, and the log's generation when they were appended
// (healing after a failure starts a new one and reuses the lost sequence
// numbers).
type Ticket struct {
	First, Last uint64
	gen         uint64
}

// genEnd is how a generation ended: its last durable record, and the
// failure that ended it.
type genEnd struct {
	durable uint64
	err     error
}

// maxGenEnds bounds the generations whose end the log remembers; a ticket
// older than that many healings waits for nothing and gets ErrLost (its
// writer would have had the answer long before).
const maxGenEnds = 1024

// AppendBatchTicket is AppendBatch returning a Ticket for Wait.
func (l *Log) AppendBatchTicket(b *Batch) (Ticket, error) {
	if b.n == 0 {
		return Ticket{}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.admit(len(b.buf)); err != nil {
		return Ticket{}, err
	}
	t := l.appendLocked(b.buf, b.n)
	l.signalLocked()
	return t, nil
}

// AppendAtomic appends every record of b as one batch record (type
// TypeBatch, see the package doc): one sequence number, all or nothing
// across a crash. A batch of one record is appended as that record. It
// returns ErrTooLarge if the batch is larger than MaxPayload. b is not
// retained.
func (l *Log) AppendAtomic(b *Batch) (Ticket, error) {
	if b.n <= 1 {
		return l.AppendBatchTicket(b)
	}
	// Re-frame the records without their checksums (see the package doc),
	// outside the lock.
	b.atomic = b.atomic[:0]
	for p := 0; p < len(b.buf); {
		n := int(binary.LittleEndian.Uint32(b.buf[p:]))
		b.atomic = append(b.atomic, b.buf[p:p+batchFrameSize]...)
		b.atomic = append(b.atomic, b.buf[p+RecordHeaderSize:p+RecordHeaderSize+n]...)
		p += RecordHeaderSize + n
	}
	if len(b.atomic) > MaxPayload {
		return Ticket{}, fmt.Errorf("cannot append a %d-byte batch as one wal record: %w", len(b.atomic), ErrTooLarge)
	}
	h := recordHeader(TypeBatch, b.atomic)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.admit(RecordHeaderSize + len(b.atomic)); err != nil {
		return Ticket{}, err
	}
	l.buf = append(l.buf, h[:]...)
	t := l.appendLocked(b.atomic, 1)
	l.signalLocked()
	return t, nil
}

// appendLocked buffers n encoded records. l.mu must be held.
func (l *Log) appendLocked(enc []byte, n int) Ticket {
	l.buf = append(l.buf, enc...)
	t := Ticket{First: l.nextSeq, Last: l.nextSeq + uint64(n) - 1, gen: l.gen}
	l.nextSeq += uint64(n)
	l.appends += uint64(n)
	return t
}

// signalLocked wakes the flusher; with l.mu held it cannot race a heal.
func (l *Log) signalLocked() { l.signal() }

// Wait blocks until the records of t are durable per the sync mode and
// returns nil, or returns the failure that lost them (wrapping ErrLost if
// the log has healed since). A zero Ticket returns at once.
func (l *Log) Wait(t Ticket) error {
	if t.Last == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if t.gen != l.gen {
			end, ok := l.genEnds[t.gen]
			if ok && t.Last <= end.durable {
				return nil
			}
			if ok {
				return fmt.Errorf("%w: %w", ErrLost, end.err)
			}
			return ErrLost
		}
		if l.durable >= t.Last {
			return nil
		}
		if l.err != nil {
			return l.err
		}
		l.cond.Wait()
	}
}

// admit checks that n more bytes may be buffered. l.mu must be held.
func (l *Log) admit(n int) error {
	switch {
	case l.err != nil:
		return l.err
	case l.closed:
		return ErrClosed
	}
	if pending := len(l.buf) + l.inflight; pending > 0 && int64(pending+n) > l.opts.MaxBufferedBytes {
		l.full++
		return ErrFull
	}
	return nil
}

// signal wakes the flusher.
func (l *Log) signal() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// WaitDurable blocks until record seq is durable per the sync mode (see
// SyncMode) and returns nil, or returns the log's error if it failed
// before that. It cannot tell a record lost to a failure from a later one
// given the same sequence number after healing: writers that may see
// failures append with a Ticket and call Wait. It returns at once for records already durable, and an
// error for a seq not appended yet.
func (l *Log) WaitDurable(seq uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq >= l.nextSeq {
		return fmt.Errorf("wal: cannot wait for seq %d: last appended is %d", seq, l.nextSeq-1)
	}
	for l.durable < seq {
		if l.err != nil {
			return l.err
		}
		l.cond.Wait()
	}
	return nil
}

// LastSeq returns the sequence number of the last record appended (durable
// or not), or the one before the log's first if none was.
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nextSeq - 1
}

// DurableSeq returns the sequence number of the last record durable per the
// sync mode: WaitDurable(seq) returns at once for seq <= DurableSeq().
func (l *Log) DurableSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable
}

// Close writes and fsyncs every appended record, closes the active segment
// and stops the flusher. It returns the sticky error if the log failed.
// Close is idempotent: later calls wait for the first and return its result.
func (l *Log) Close() error {
	l.mu.Lock()
	first := !l.closed
	l.closed = true
	l.mu.Unlock()
	if first {
		close(l.closing)
	}
	<-l.done
	return l.closeErr
}

// Stats are counters and gauges for metrics. Counters start at Open.
type Stats struct {
	Segments      int    // segment files, the active one included
	Bytes         int64  // bytes in segment files (written, not buffered)
	BufferedBytes int64  // bytes appended but not yet written
	Appends       uint64 // records appended
	Full          uint64 // appends refused with ErrFull
	Fsyncs        uint64 // file fsyncs (segments; directory syncs excluded)
	FsyncTime     time.Duration
	LastFsync     time.Duration // latency of the last fsync
	LastSeq       uint64
	DurableSeq    uint64 // per the sync mode; see DurableSeq
	SyncedSeq     uint64 // last seq fsynced
	Err           error  // the failure, while the log has not healed from it
	Failures      uint64 // write or fsync failures
	Heals         uint64 // healings after failures
}

// Stats returns the log's current stats.
func (l *Log) Stats() Stats {
	var s Stats
	l.mu.Lock()
	s.BufferedBytes = int64(len(l.buf) + l.inflight)
	s.Appends, s.Full = l.appends, l.full
	s.LastSeq, s.DurableSeq, s.SyncedSeq = l.nextSeq-1, l.durable, l.synced
	s.Err = l.err
	s.Failures, s.Heals = l.failures, l.heals
	l.mu.Unlock()
	l.segMu.Lock()
	s.Segments = len(l.segs)
	for _, sg := range l.segs {
		s.Bytes += sg.size
	}
	l.segMu.Unlock()
	s.Fsyncs = l.fsyncs.Load()
	s.FsyncTime = time.Duration(l.fsyncNanos.Load())
	s.LastFsync = time.Duration(l.lastFsync.Load())
	return s
}

// Batch is a reusable sequence of encoded records for AppendBatch. Adding
// encodes and checksums the record into the batch's buffer, outside the
// log's lock, so AppendBatch only copies bytes. The zero value is an empty
// batch. A Batch is not safe for concurrent use.
type Batch struct {
	buf    []byte
	n      int
	atomic []byte // AppendAtomic's encoding of buf
}

// Add appends a record to the batch; the payload is copied.
func (b *Batch) Add(typ byte, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("cannot add %d-byte wal record: %w", len(payload), ErrTooLarge)
	}
	if typ == TypeBatch {
		return ErrReservedType
	}
	h := recordHeader(typ, payload)
	b.buf = append(b.buf, h[:]...)
	b.buf = append(b.buf, payload...)
	b.n++
	return nil
}

// Len returns the number of records in the batch.
func (b *Batch) Len() int { return b.n }

// Size returns the encoded size of the batch in bytes.
func (b *Batch) Size() int { return len(b.buf) }

// Reset empties the batch, keeping its buffer.
func (b *Batch) Reset() {
	b.buf = b.buf[:0]
	b.n = 0
}
