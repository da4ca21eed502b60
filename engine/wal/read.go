package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
)

// ReplayInfo describes what Replay read and repaired.
type ReplayInfo struct {
	First   uint64 // seq of the first record passed to fn; 0 if none
	Last    uint64 // seq of the last record passed to fn; 0 if none
	Records int    // records passed to fn
	// NextSeq is the sequence number the log continues at: one past its last
	// valid record, or the last segment's first seq if it has no records.
	// 0 if the directory holds no segments.
	NextSeq uint64
	// TornTail reports that the end of the last segment was torn by a crash
	// and was truncated away (or, for a torn segment header, the segment
	// removed). The caller should log it.
	TornTail       bool
	TruncatedBytes int64 // bytes cut from the torn tail
	Segments       int   // segment files read (segments wholly before from are skipped)
}

// Replay calls fn for every record of the log in dir with seq >= from, in
// order, and repairs a torn tail (see the package doc). The payload passed to
// fn is valid only during the call: fn must copy what it keeps.
//
// Segments all of whose records are before from are not read, so damage in
// them goes unnoticed. from == 0 replays whatever the log holds; a from > 0
// earlier than the log's first record returns an error wrapping ErrMissing,
// since records the caller needs are gone. An empty or missing directory is
// an empty log.
//
// Damage that is not a torn tail returns a *CorruptError (wrapping
// ErrCorrupt) after fn has seen every record before it. If fn returns an
// error, Replay stops and returns it wrapped. Replay must not run while a
// Log has dir open.
func Replay(fsys FS, dir string, from uint64, fn func(seq uint64, typ byte, payload []byte) error) (ReplayInfo, error) {
	var info ReplayInfo
	segs, err := listSegments(fsys, dir)
	if err != nil {
		return info, err
	}
	var sc scanner
	var next uint64 // first seq the next segment must have; 0 before the first
	for i, sg := range segs {
		last := i == len(segs)-1
		if !last && segs[i+1].first <= from {
			continue // every record is < from
		}
		path := filepath.Join(dir, SegmentName(sg.first))
		if next == 0 && from > 0 && sg.first > from {
			return info, fmt.Errorf("cannot replay wal %q from seq %d: log starts at seq %d: %w", dir, from, sg.first, ErrMissing)
		}
		if next != 0 && sg.first != next {
			return info, &CorruptError{File: path, Seq: next,
				Reason: fmt.Sprintf("segment starts at seq %d, not %d where the previous one ends (sequence gap or overlap)", sg.first, next)}
		}
		info.Segments++
		res, err := sc.scan(fsys, path, sg.first, last, from, func(seq uint64, typ byte, payload []byte) error {
			if typ == TypeBatch {
				reason, err := forEachInBatch(payload, func(typ byte, payload []byte) error { return fn(seq, typ, payload) })
				if err != nil {
					return fmt.Errorf("wal replay stopped at seq %d: %w", seq, err)
				}
				if reason != "" {
					// The batch's checksum matched: only a writer's bug
					// gets here.
					return &CorruptError{File: path, Seq: seq, Offset: -1, Reason: reason}
				}
			} else if err := fn(seq, typ, payload); err != nil {
				return fmt.Errorf("wal replay stopped at seq %d: %w", seq, err)
			}
			if info.First == 0 {
				info.First = seq
			}
			info.Last = seq
			info.Records++
			return nil
		})
		if err != nil {
			return info, err
		}
		next = sg.first + uint64(res.records)
		if res.bad {
			if !last || !res.tail {
				return info, res.corruptError(path, sg.first)
			}
			n, err := fixTail(fsys, dir, path, res)
			if err != nil {
				return info, err
			}
			info.TornTail = true
			info.TruncatedBytes += n
		}
	}
	info.NextSeq = next
	return info, nil
}

// RepairInfo describes what Repair dropped.
type RepairInfo struct {
	// KeptLast is the seq of the last record kept: the log continues at
	// KeptLast+1. 0 if no segment is left.
	KeptLast uint64
	// DroppedRecords counts the intact records Repair removed: records after
	// the damage that still frame correctly (valid length and checksum,
	// found by resynchronising byte by byte past the damage) in the
	// truncated segment and in every later segment removed. The damaged
	// record itself is not counted (its bounds cannot be trusted), so the
	// number of records lost is at least DroppedRecords, plus one when the
	// damage is in a record.
	DroppedRecords  int
	DroppedBytes    int64 // bytes truncated plus the sizes of removed segments
	RemovedSegments int   // segment files removed
}

// Repair truncates the log in dir at the last good record before the first
// damage of any kind (torn tail, corrupt record, bad header, sequence gap),
// removes every later segment, fsyncs, and says what it dropped. A log
// without damage is left alone. After Repair, Replay succeeds. Repair is for
// an operator who accepts losing the records after the damage; it must not
// run while a Log has dir open.
func Repair(fsys FS, dir string) (RepairInfo, error) {
	var info RepairInfo
	segs, err := listSegments(fsys, dir)
	if err != nil {
		return info, err
	}
	var sc scanner
	var next uint64
	cut := len(segs) // index of the first segment to remove
	for i, sg := range segs {
		path := filepath.Join(dir, SegmentName(sg.first))
		if i > 0 && sg.first != next {
			cut = i
			break
		}
		res, err := sc.scan(fsys, path, sg.first, false, 0, nil)
		if err != nil {
			return info, err
		}
		if res.bad && (res.tornHead || res.badOff < HeaderSize) {
			cut = i
			break
		}
		next = sg.first + uint64(res.records)
		if res.bad {
			rest, err := readRange(fsys, path, res.badOff+1, res.size)
			if err != nil {
				return info, err
			}
			info.DroppedRecords, _ = countRecords(rest, false)
			if err := truncateSync(fsys, path, res.badOff); err != nil {
				return info, err
			}
			info.DroppedBytes += res.size - res.badOff
			cut = i + 1
			break
		}
	}
	for _, sg := range segs[cut:] {
		path := filepath.Join(dir, SegmentName(sg.first))
		size, err := fsys.Size(path)
		if err != nil {
			return info, fmt.Errorf("cannot stat wal segment %q: %w", path, err)
		}
		b, err := readRange(fsys, path, 0, size)
		if err != nil {
			return info, err
		}
		if len(b) >= HeaderSize {
			n, _ := countRecords(b[HeaderSize:], false)
			info.DroppedRecords += n
		}
		if err := fsys.Remove(path); err != nil {
			return info, fmt.Errorf("cannot remove wal segment %q: %w", path, err)
		}
		info.DroppedBytes += size
		info.RemovedSegments++
	}
	if info.RemovedSegments > 0 {
		if err := fsys.SyncDir(dir); err != nil {
			return info, fmt.Errorf("cannot sync wal directory %q: %w", dir, err)
		}
	}
	if cut > 0 && next > 0 {
		info.KeptLast = next - 1
	}
	return info, nil
}

// segment is one segment file of a log.
type segment struct {
	first uint64 // seq of its first record, from its name
	size  int64  // bytes; maintained by Log for Stats only
}

// listSegments returns the segments in dir, oldest first. A missing
// directory has none. Files that are not named like segments are ignored.
func listSegments(fsys FS, dir string) ([]segment, error) {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("cannot list wal directory %q: %w", dir, err)
	}
	var segs []segment
	for _, name := range names {
		if first, ok := parseSegmentName(name); ok {
			segs = append(segs, segment{first: first})
		}
	}
	// Zero-padded names sort numerically; ReadDir sorts by name.
	return segs, nil
}

// scanResult is what scanning one segment found.
type scanResult struct {
	records int   // valid records before any damage
	size    int64 // file size
	// Damage, if bad. badOff is where the valid prefix ends; the file is
	// truncated there to repair it.
	bad      bool
	badOff   int64
	reason   string
	tornHead bool // the header is incomplete or all zeros
	tail     bool // no valid record follows the damage (only if asked)
}

func (r *scanResult) corruptError(path string, first uint64) error {
	return &CorruptError{File: path, Offset: r.badOff, Seq: first + uint64(r.records), Reason: r.reason}
}

// scanner reads segments, reusing its buffers from one to the next. It is
// not safe for concurrent use.
type scanner struct {
	br  *bufio.Reader
	buf []byte // payload buffer
}

// scan reads the segment at path, whose name says its first record is
// first, validating every record and calling fn (if not nil) for those
// with seq >= from. Damage is reported in the result, not as an error; if
// checkTail is set, scan also finds out whether the damage is a torn tail.
// Errors are I/O errors and fn's errors.
func (s *scanner) scan(fsys FS, path string, first uint64, checkTail bool, from uint64,
	fn func(seq uint64, typ byte, payload []byte) error) (scanResult, error) {
	var res scanResult
	size, err := fsys.Size(path)
	if err != nil {
		return res, fmt.Errorf("cannot stat wal segment %q: %w", path, err)
	}
	res.size = size
	f, err := fsys.Open(path)
	if err != nil {
		return res, fmt.Errorf("cannot open wal segment %q: %w", path, err)
	}
	defer f.Close()
	if s.br == nil {
		s.br = bufio.NewReaderSize(nil, 256<<10)
	}
	r := s.br
	r.Reset(io.NewSectionReader(f, 0, size))
	readErr := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.ErrUnexpectedEOF // the file shrank under us
		}
		return fmt.Errorf("cannot read wal segment %q: %w", path, err)
	}

	if ok, err := s.scanHeader(r, f, path, first, size, checkTail, &res, readErr); !ok || err != nil {
		return res, err
	}

	off := int64(HeaderSize)
	seq := first
	var rh [RecordHeaderSize]byte
	for off < size {
		remaining := size - off
		if remaining < RecordHeaderSize {
			res.bad, res.badOff, res.reason = true, off, "incomplete record header"
			break
		}
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			return res, readErr(err)
		}
		n := binary.LittleEndian.Uint32(rh[0:4])
		if n > MaxPayload {
			res.bad, res.badOff, res.reason = true, off, fmt.Sprintf("record length %d exceeds the maximum", n)
			break
		}
		if int64(n) > remaining-RecordHeaderSize {
			res.bad, res.badOff, res.reason = true, off, fmt.Sprintf("record length %d runs past the end of the file", n)
			break
		}
		if cap(s.buf) < int(n) {
			s.buf = make([]byte, n) // n <= MaxPayload and n bytes are in the file
		}
		payload := s.buf[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return res, readErr(err)
		}
		if recordCRC(n, rh[4], payload) != binary.LittleEndian.Uint32(rh[5:9]) {
			res.bad, res.badOff, res.reason = true, off, "record checksum mismatch"
			break
		}
		if fn != nil && seq >= from {
			if err := fn(seq, rh[4], payload); err != nil {
				return res, err
			}
		}
		res.records++
		seq++
		off += RecordHeaderSize + int64(n)
	}
	if res.bad && checkTail {
		res.tail, err = s.nothingValidAfter(f, path, res.badOff+1, size)
	}
	return res, err
}

// scanHeader reads and checks the segment header of f (its first record
// should be first). It reports whether records may follow: if not, res
// says why.
func (s *scanner) scanHeader(r io.Reader, f File, path string, first uint64, size int64, checkTail bool,
	res *scanResult, readErr func(error) error) (bool, error) {
	var hdr [HeaderSize]byte
	h := hdr[:min(size, HeaderSize)]
	if _, err := io.ReadFull(r, h); err != nil {
		return false, readErr(err)
	}
	if len(h) < HeaderSize || isZero(h) {
		res.bad, res.tornHead, res.badOff = true, true, 0
		res.reason = "incomplete segment header"
		if len(h) == HeaderSize {
			res.reason = "zeroed segment header"
		}
		var err error
		if checkTail {
			res.tail, err = s.nothingValidAfter(f, path, 0, size)
		}
		return false, err
	}
	hfirst, reason := checkHeader(h)
	if reason == "" && hfirst != first {
		reason = fmt.Sprintf("segment header says first seq %d", hfirst)
	}
	if reason != "" {
		res.bad, res.badOff, res.reason = true, 0, reason
		return false, nil
	}
	return true, nil
}

// nothingValidAfter reports whether no valid record starts anywhere in
// [start, size) of f: then the damage before start is a torn tail.
func (s *scanner) nothingValidAfter(f File, path string, start, size int64) (bool, error) {
	if size-start < RecordHeaderSize {
		return true, nil
	}
	b := make([]byte, size-start)
	if _, err := f.ReadAt(b, start); err != nil {
		return false, fmt.Errorf("cannot read wal segment %q: %w", path, err)
	}
	n, exhausted := countRecords(b, true)
	return n == 0 && !exhausted, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readRange reads [start, end) of a file.
func readRange(fsys FS, path string, start, end int64) ([]byte, error) {
	if end <= start {
		return nil, nil
	}
	f, err := fsys.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open wal segment %q: %w", path, err)
	}
	defer f.Close()
	b := make([]byte, end-start)
	if _, err := f.ReadAt(b, start); err != nil {
		return nil, fmt.Errorf("cannot read wal segment %q: %w", path, err)
	}
	return b, nil
}

// fixTail repairs the torn tail res found in the last segment: it truncates
// the file to its valid prefix, or removes it if its header is torn, and
// makes that durable. It returns the bytes cut.
func fixTail(fsys FS, dir, path string, res scanResult) (int64, error) {
	if res.tornHead {
		if err := fsys.Remove(path); err != nil {
			return 0, fmt.Errorf("cannot remove torn wal segment %q: %w", path, err)
		}
		if err := fsys.SyncDir(dir); err != nil {
			return 0, fmt.Errorf("cannot sync wal directory %q: %w", dir, err)
		}
		return res.size, nil
	}
	if err := truncateSync(fsys, path, res.badOff); err != nil {
		return 0, err
	}
	return res.size - res.badOff, nil
}

// truncateSync truncates a file and fsyncs it.
func truncateSync(fsys FS, path string, size int64) error {
	if err := fsys.Truncate(path, size); err != nil {
		return fmt.Errorf("cannot truncate wal segment %q: %w", path, err)
	}
	f, err := fsys.OpenAppend(path)
	if err != nil {
		return fmt.Errorf("cannot open wal segment %q: %w", path, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot sync wal segment %q: %w", path, err)
	}
	return nil
}
