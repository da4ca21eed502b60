package wal

// The flusher: one goroutine that writes what Append queued, fsyncs it as
// one group commit for every waiter, rotates segments, and heals the log
// after a failed write or fsync (see Log for the guarantees).

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"time"
)

// run is the flusher goroutine.
func (l *Log) run() {
	defer close(l.done)
	var tick <-chan time.Time
	if l.opts.Sync == SyncInterval {
		t := time.NewTicker(l.opts.Interval)
		defer t.Stop()
		tick = t.C
	}
	var heal *time.Timer
	var healC <-chan time.Time
	defer func() {
		if heal != nil {
			heal.Stop()
		}
	}()
	for {
		select {
		case <-l.kick:
			l.flush()
		case <-tick:
			l.syncWritten()
		case done := <-l.rotates:
			done <- l.rotateNow()
		case <-healC:
			healC = nil
			if err := l.heal(); err != nil {
				l.logger.Error("wal: cannot heal yet; trying again", "dir", l.dir, "in", l.opts.HealDelay, "err", err)
			}
		case <-l.closing:
			l.flush()
			l.syncWritten()
			var err error
			if l.seg != nil {
				err = l.seg.Close()
			}
			l.mu.Lock()
			if l.err != nil {
				err = l.err
			} else if err != nil {
				err = fmt.Errorf("cannot close wal segment %q: %w", l.segPath, err)
				l.err = err
			}
			l.closeErr = err
			l.cond.Broadcast()
			l.mu.Unlock()
			return
		}
		if healC == nil && l.failed() {
			if heal == nil {
				heal = time.NewTimer(l.opts.HealDelay)
			} else {
				heal.Reset(l.opts.HealDelay)
			}
			healC = heal.C
		}
	}
}

// Rotate writes and fsyncs everything appended so far and starts a new
// segment for what comes next (unless the active segment holds no record
// yet), so that once a snapshot covers every record before it, all older
// segments can go (RemoveBefore). Compaction uses it to make sure no
// segment mixes records it must drop with later ones. It returns the seq
// the new segment starts at: every record before it is durable.
func (l *Log) Rotate() (next uint64, err error) {
	done := make(chan rotated, 1)
	select {
	case l.rotates <- done:
		r := <-done
		return r.next, r.err
	case <-l.done:
		return 0, ErrClosed
	}
}

// rotated is the flusher's answer to Rotate.
type rotated struct {
	next uint64
	err  error
}

// rotateNow is Rotate on the flusher.
func (l *Log) rotateNow() rotated {
	l.flush()
	l.mu.Lock()
	err, next := l.err, l.written+1
	l.mu.Unlock()
	if err != nil {
		return rotated{err: err}
	}
	if l.segRecords == 0 {
		return rotated{next: next}
	}
	if err := l.rotate(next); err != nil {
		l.mu.Lock()
		l.fail(err)
		l.cond.Broadcast()
		l.mu.Unlock()
		return rotated{err: err}
	}
	l.mu.Lock()
	l.synced = l.written // rotate fsynced the old segment
	l.mu.Unlock()
	l.markGood()
	return rotated{next: next}
}

// failed reports whether the log has failed and not healed yet.
func (l *Log) failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err != nil
}

// position is a place in the log: a segment and how far it holds records.
type position struct {
	first   uint64 // the segment's first seq
	size    int64
	records int
}

// markGood notes that everything written to the active segment is durable
// per the sync mode. Flusher only.
func (l *Log) markGood() {
	first, _ := parseSegmentName(filepath.Base(l.segPath))
	l.good = position{first: first, size: l.segSize, records: l.segRecords}
}

// heal cuts the log back to the last durable record after a failure and
// reopens it for appends (see Log). Flusher only.
func (l *Log) heal() error {
	l.removeMu.Lock()
	defer l.removeMu.Unlock()
	if l.seg != nil {
		l.seg.Close() // its state is unknown; the error says nothing new
		l.seg = nil
	}
	g := l.good
	path := filepath.Join(l.dir, SegmentName(g.first))
	// Segments a failed rotation began hold no durable record.
	segs, err := listSegments(l.fs, l.dir)
	if err != nil {
		return err
	}
	for _, sg := range segs {
		if sg.first > g.first {
			p := filepath.Join(l.dir, SegmentName(sg.first))
			if err := l.fs.Remove(p); err != nil {
				return fmt.Errorf("cannot remove wal segment %q begun by a failed write: %w", p, err)
			}
		}
	}
	if err := truncateSync(l.fs, path, g.size); err != nil {
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("cannot sync wal directory %q: %w", l.dir, err)
	}
	f, err := l.fs.OpenAppend(path)
	if err != nil {
		return fmt.Errorf("cannot open wal segment %q: %w", path, err)
	}
	l.seg, l.segPath, l.segSize, l.segRecords, l.unsynced = f, path, g.size, g.records, 0
	l.segMu.Lock()
	for len(l.segs) > 0 && l.segs[len(l.segs)-1].first > g.first {
		l.segs = l.segs[:len(l.segs)-1]
	}
	if n := len(l.segs); n > 0 && l.segs[n-1].first == g.first {
		l.segs[n-1].size = g.size
	} else {
		l.segs = append(l.segs, segment{first: g.first, size: g.size})
	}
	l.segMu.Unlock()

	l.mu.Lock()
	if l.genEnds == nil {
		l.genEnds = map[uint64]genEnd{}
	}
	l.genEnds[l.gen] = genEnd{durable: l.durable, err: l.err}
	delete(l.genEnds, l.gen-maxGenEnds)
	lost := l.nextSeq - 1 - l.durable
	l.gen++
	l.heals++
	l.nextSeq = l.durable + 1
	l.written, l.synced = l.durable, l.durable
	l.buf = l.buf[:0]
	cause := l.err
	l.err = nil
	l.cond.Broadcast()
	l.mu.Unlock()
	l.logger.Warn("wal: healed after a failure; accepting appends again", "dir", l.dir,
		"durable_seq", l.nextSeq-1, "lost_unacknowledged_records", lost, "cause", cause)
	return nil
}

// maxSpare is the capacity above which a drained buffer is dropped rather
// than kept for reuse unless it was at least a quarter full, so one burst
// does not pin MaxBufferedBytes forever.
const maxSpare = 4 << 20

// flush writes everything buffered and, with SyncAlways, fsyncs it.
func (l *Log) flush() {
	l.mu.Lock()
	if l.err != nil || len(l.buf) == 0 {
		l.mu.Unlock()
		return
	}
	batch := l.buf
	first, last := l.written+1, l.nextSeq-1
	l.buf, l.spare = l.spare[:0], nil
	l.inflight = len(batch)
	l.mu.Unlock()

	err := l.write(batch, first)
	synced := false
	if err == nil && l.opts.Sync == SyncAlways {
		err = l.syncSeg()
		synced = err == nil
	}

	l.mu.Lock()
	l.inflight = 0
	if cap(batch) <= maxSpare || len(batch) >= cap(batch)/4 {
		l.spare = batch[:0]
	}
	if err != nil {
		l.fail(err)
	} else {
		l.written = last
		if synced {
			l.synced = last
		}
		l.durable = last
	}
	l.cond.Broadcast()
	l.mu.Unlock()
	if err == nil {
		l.markGood()
	}
}

// write writes a batch of encoded records whose first has sequence number
// seq, rotating to a new segment at a record boundary whenever the next
// record would take the active segment (holding at least one record) past
// SegmentBytes.
func (l *Log) write(batch []byte, seq uint64) error {
	start := 0
	for pos := 0; pos < len(batch); seq++ {
		n := RecordHeaderSize + int(binary.LittleEndian.Uint32(batch[pos:]))
		if l.segRecords > 0 && l.segSize+int64(n) > l.opts.SegmentBytes {
			if err := l.writeSeg(batch[start:pos]); err != nil {
				return err
			}
			if err := l.rotate(seq); err != nil {
				return err
			}
			start = pos
		}
		l.segSize += int64(n)
		l.segRecords++
		pos += n
	}
	return l.writeSeg(batch[start:])
}

// writeSeg writes p to the active segment.
func (l *Log) writeSeg(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if _, err := l.seg.Write(p); err != nil {
		return fmt.Errorf("cannot write wal segment %q: %w", l.segPath, err)
	}
	l.unsynced += len(p)
	l.segMu.Lock()
	l.segs[len(l.segs)-1].size += int64(len(p))
	l.segMu.Unlock()
	return nil
}

// rotate completes the active segment (fsync, close) and starts a new one
// whose first record is first.
func (l *Log) rotate(first uint64) error {
	if err := l.syncSeg(); err != nil {
		return err
	}
	if err := l.seg.Close(); err != nil {
		return fmt.Errorf("cannot close wal segment %q: %w", l.segPath, err)
	}
	l.seg = nil
	if err := l.createSegment(first); err != nil {
		return err
	}
	l.segMu.Lock()
	l.segs = append(l.segs, segment{first: first, size: HeaderSize})
	l.segMu.Unlock()
	return nil
}

// createSegment creates the segment whose first record is first, writes
// and fsyncs its header, fsyncs the directory, and makes it the active
// segment. Syncing the header before the directory entry means a durable
// segment always has a durable header.
func (l *Log) createSegment(first uint64) error {
	path := filepath.Join(l.dir, SegmentName(first))
	f, err := l.fs.Create(path)
	if err != nil {
		return fmt.Errorf("cannot create wal segment %q: %w", path, err)
	}
	l.seg, l.segPath, l.segSize, l.segRecords = f, path, HeaderSize, 0
	if _, err := f.Write(appendHeader(nil, first)); err != nil {
		return fmt.Errorf("cannot write wal segment %q: %w", path, err)
	}
	l.unsynced = HeaderSize
	if err := l.syncSeg(); err != nil {
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("cannot sync wal directory %q: %w", l.dir, err)
	}
	return nil
}

// syncSeg fsyncs the active segment and records the latency.
func (l *Log) syncSeg() error {
	t0 := time.Now()
	err := l.seg.Sync()
	d := time.Since(t0)
	l.fsyncs.Add(1)
	l.fsyncNanos.Add(int64(d))
	l.lastFsync.Store(int64(d))
	if l.opts.OnSync != nil {
		l.opts.OnSync(d, l.unsynced)
	}
	l.unsynced = 0
	if err != nil {
		return fmt.Errorf("cannot sync wal segment %q: %w", l.segPath, err)
	}
	return nil
}

// syncWritten fsyncs the active segment if records were written since the
// last fsync (SyncInterval mode, and at Close).
func (l *Log) syncWritten() {
	l.mu.Lock()
	written, synced, failed := l.written, l.synced, l.err != nil
	l.mu.Unlock()
	if failed || written == synced {
		return
	}
	err := l.syncSeg()
	l.mu.Lock()
	if err != nil {
		l.fail(err)
		l.cond.Broadcast()
	} else {
		l.synced = written
	}
	l.mu.Unlock()
}

// fail makes err the log's error until it heals. l.mu must be held.
func (l *Log) fail(err error) {
	if l.err == nil {
		l.err = err
		l.failures++
		l.logger.Error("wal: failed; refusing appends until it heals", "dir", l.dir, "in", l.opts.HealDelay, "err", err)
	}
}

// RemoveBefore deletes the segments all of whose records have sequence
// numbers below seq, never the active segment, oldest first, and fsyncs the
// directory. It returns how many it removed (also when it fails part way).
// Call it once a snapshot covers everything before seq. Safe for concurrent
// use with appends.
func (l *Log) RemoveBefore(seq uint64) (removed int, err error) {
	l.removeMu.Lock()
	defer l.removeMu.Unlock()
	l.segMu.Lock()
	var firsts []uint64
	for i := 0; i+1 < len(l.segs) && l.segs[i+1].first <= seq; i++ {
		firsts = append(firsts, l.segs[i].first)
	}
	l.segMu.Unlock()
	for _, first := range firsts {
		path := filepath.Join(l.dir, SegmentName(first))
		if err = l.fs.Remove(path); err != nil {
			err = fmt.Errorf("cannot remove wal segment %q: %w", path, err)
			break
		}
		removed++
	}
	if removed > 0 {
		// Only this function removes, and rotation only appends.
		l.segMu.Lock()
		l.segs = append(l.segs[:0:0], l.segs[removed:]...)
		l.segMu.Unlock()
		if serr := l.fs.SyncDir(l.dir); serr != nil && err == nil {
			err = fmt.Errorf("cannot sync wal directory %q: %w", l.dir, serr)
		}
	}
	return removed, err
}
