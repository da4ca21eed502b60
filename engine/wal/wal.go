// Package wal is Omnipick's write-ahead log: every state change is appended
// here as a record (a 1-byte type and opaque payload bytes) before the client
// gets its 2xx, and replayed at start-up. The package knows nothing about
// what payloads mean.
//
// # File format (frozen)
//
// A log is a directory of segment files, each named after the sequence
// number of its first record: wal-%020d.log (wal-00000000000000000001.log).
// Integers are little-endian. A segment is a header followed by records:
//
//	segment header, 22 bytes:
//	+----------------+----------+----------------+------------+
//	| magic          | version  | first seq      | header crc |
//	| "OMNIWAL\x00"  | uint16   | uint64         | uint32     |
//	| 8 bytes        | = 1      | = name's seq   | CRC-32C of |
//	|                |          |                | bytes 0-17 |
//	+----------------+----------+----------------+------------+
//	 0                8          10               18           22
//
//	record, 9 + length bytes, repeated to the end of the file:
//	+----------------+------+----------------+--------------------+
//	| length         | type | crc            | payload            |
//	| uint32         | byte | uint32         | length bytes       |
//	+----------------+------+----------------+--------------------+
//	 0                4      5                9                    9+length
//
//	crc = CRC-32C (Castagnoli) of length, type and payload, in that order
//	(bytes 0-4 then 9-end; the crc field itself is skipped).
//
// A record of type TypeBatch (0xFF) is a batch: its payload is a sequence
// of records, none of them a batch, each framed without a checksum (the
// batch's covers them all, and a frame that looked like a record would
// make a torn batch look like corruption):
//
//	+----------------+------+--------------------+
//	| length         | type | payload            |
//	| uint32         | byte | length bytes       |
//	+----------------+------+--------------------+
//
// A batch It takes one sequence number and is written, torn and
// checksummed as one record, so after a crash a batch is wholly there or
// wholly absent; Replay hands its records to the caller one by one, each
// with the batch's sequence number. Other type values are the caller's.
//
// Records carry no sequence number: it is implied by position. A segment's
// records are numbered first, first+1, ...; the next segment starts where
// the previous one ends, so sequence numbers are contiguous across the
// whole log and start at 1 (or at Options.FirstSeq). The payload is at most
// MaxPayload bytes. A segment holds whole records only: the writer rotates
// at a record boundary, and fsyncs a segment before it creates the next, so
// every segment but the last is complete.
//
// The constants marked frozen below are part of this format: changing them
// makes existing logs unreadable.
//
// # Recovery
//
// Replay reads the log in order and tells a torn tail from corruption (like
// pebble's record package and badger's WAL iteration):
//
//   - A torn tail is damage at the very end of the last segment that a crash
//     during a write explains: an incomplete record header, a payload cut
//     short by the end of the file, or a checksum mismatch, with no valid
//     record anywhere after it; or a last segment whose header is
//     incomplete or all zeros. Replay truncates it away (or removes the
//     header-less segment), fsyncs, and reports it in ReplayInfo. "Valid"
//     is decided by scanning every later byte offset for a record with a
//     sane length and a matching checksum; a torn payload that happens to
//     contain such a frame is reported as corruption, the safe direction.
//   - Anything else is corruption and Replay returns a *CorruptError, which
//     wraps ErrCorrupt and names the file, offset and sequence number:
//     a bad record followed by a valid one, a bad record in a segment that
//     is not the last, a bad segment header, or a gap or overlap in
//     sequence numbers between segments. Start-up must stop; an operator
//     may run Repair, which drops everything from the damage on.
//
// # Concurrency
//
// A *Log is safe for concurrent use. Its lock order: Log.removeMu, then
// Log.segMu; Log.mu is never held together with either. Replay and Repair
// must not run on a directory while a Log has it open.
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// Format constants. Frozen: they are part of the file format.
const (
	// Magic starts every segment file. Frozen.
	Magic = "OMNIWAL\x00"
	// Version is the segment format version. Frozen for version 1.
	Version = 1
	// HeaderSize is the size of a segment header. Frozen.
	HeaderSize = 8 + 2 + 8 + 4
	// RecordHeaderSize is the size of a record's length, type and crc.
	// Frozen.
	RecordHeaderSize = 4 + 1 + 4
	// MaxPayload is the largest payload a record may carry: 64 MiB. Frozen:
	// a reader treats a larger length as corruption.
	MaxPayload = 64 << 20
	// TypeBatch is the type of a batch record, whose payload holds framed
	// records (see the package doc). Frozen; callers must not use it.
	TypeBatch byte = 0xFF
)

// Errors returned by the package.
var (
	// ErrCorrupt is wrapped by every error that reports a damaged log.
	ErrCorrupt = errors.New("wal: corrupt log")
	// ErrMissing is returned by Replay when the log starts after the
	// sequence number asked for: records the caller needs are gone.
	ErrMissing = errors.New("wal: records missing")
	// ErrFull is returned by Append when Options.MaxBufferedBytes of records
	// are waiting to be written; the caller should push back (HTTP 503).
	ErrFull = errors.New("wal: write buffer full")
	// ErrClosed is returned by appends to a closed Log.
	ErrClosed = errors.New("wal: log closed")
	// ErrTooLarge is returned for a payload larger than MaxPayload.
	ErrTooLarge = errors.New("wal: payload too large")
	// ErrReservedType is returned for a record of type TypeBatch appended
	// by the caller.
	ErrReservedType = errors.New("wal: record type 0xFF is reserved for batches")
	// ErrLost is wrapped by the error Wait returns for records that a
	// write or fsync failure dropped: they were never durable, and the
	// log has since healed and gone on without them.
	ErrLost = errors.New("wal: records lost to a write failure")
)

// castagnoli is the CRC-32C table; never mutated after initialisation.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CorruptError describes damage that Replay cannot explain as a torn tail.
// It wraps ErrCorrupt.
type CorruptError struct {
	File   string // path of the segment file
	Offset int64  // byte offset of the damage in File
	Seq    uint64 // sequence number of the record at Offset (or the segment's first)
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: corrupt log: %s in %q at offset %d (seq %d)", e.Reason, e.File, e.Offset, e.Seq)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// SegmentName returns the file name of the segment whose first record is
// first: wal-%020d.log.
func SegmentName(first uint64) string {
	return fmt.Sprintf("wal-%020d.log", first)
}

// parseSegmentName returns the first sequence number a segment file name
// encodes, or false if name is not a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	if len(name) != 28 || !strings.HasPrefix(name, "wal-") || !strings.HasSuffix(name, ".log") {
		return 0, false
	}
	digits := name[4:24]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// appendHeader appends a segment header to dst.
func appendHeader(dst []byte, first uint64) []byte {
	start := len(dst)
	dst = append(dst, Magic...)
	dst = binary.LittleEndian.AppendUint16(dst, Version)
	dst = binary.LittleEndian.AppendUint64(dst, first)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// checkHeader validates a segment header and returns its first sequence
// number, or a reason it is bad.
func checkHeader(h []byte) (first uint64, reason string) {
	switch {
	case len(h) < HeaderSize:
		return 0, "incomplete segment header"
	case string(h[:8]) != Magic:
		return 0, "bad segment magic"
	case crc32.Checksum(h[:18], castagnoli) != binary.LittleEndian.Uint32(h[18:22]):
		return 0, "segment header checksum mismatch"
	case binary.LittleEndian.Uint16(h[8:10]) != Version:
		return 0, fmt.Sprintf("unsupported segment version %d", binary.LittleEndian.Uint16(h[8:10]))
	}
	return binary.LittleEndian.Uint64(h[10:18]), ""
}

// recordCRC returns a record's checksum: CRC-32C of its length (4 bytes,
// little-endian), its type and its payload.
func recordCRC(length uint32, typ byte, payload []byte) uint32 {
	// The five header bytes go through the table by hand: crc32.Update's
	// Castagnoli path calls a function variable, which would move a stack
	// buffer holding them to the heap on every record.
	crc := ^uint32(0)
	for _, b := range [5]byte{byte(length), byte(length >> 8), byte(length >> 16), byte(length >> 24), typ} {
		crc = castagnoli[byte(crc)^b] ^ crc>>8
	}
	return crc32.Update(^crc, castagnoli, payload)
}

// recordHeader returns the 9-byte header of a record.
func recordHeader(typ byte, payload []byte) [RecordHeaderSize]byte {
	var h [RecordHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	h[4] = typ
	binary.LittleEndian.PutUint32(h[5:9], recordCRC(uint32(len(payload)), typ, payload))
	return h
}

// recordAt reports whether b holds a valid record at offset p, and its size.
func recordAt(b []byte, p int) (size int, ok bool) {
	if len(b)-p < RecordHeaderSize {
		return 0, false
	}
	n := binary.LittleEndian.Uint32(b[p:])
	if n > MaxPayload || int64(n) > int64(len(b)-p-RecordHeaderSize) {
		return 0, false
	}
	end := p + RecordHeaderSize + int(n)
	if recordCRC(n, b[p+4], b[p+RecordHeaderSize:end]) != binary.LittleEndian.Uint32(b[p+5:]) {
		return 0, false
	}
	return end - p, true
}

// resyncBudget bounds the bytes checksummed while searching damaged bytes
// for valid records, so adversarial input cannot make the search quadratic
// in practice. Running out counts as finding a record: the conservative
// answer (corruption, not a torn tail).
const resyncBudget = 256 << 20

// countRecords counts the valid records in b, resynchronising byte by byte
// past damage. It stops at the first valid record if firstOnly is set. It
// reports exhausted if it ran out of budget before the end.
func countRecords(b []byte, firstOnly bool) (n int, exhausted bool) {
	budget := resyncBudget
	for p := 0; p+RecordHeaderSize <= len(b); {
		size, ok := recordAt(b, p)
		if l := binary.LittleEndian.Uint32(b[p:]); l <= MaxPayload && int64(l) <= int64(len(b)-p-RecordHeaderSize) {
			budget -= int(l) + 5
		}
		budget--
		if ok {
			n++
			if firstOnly {
				return n, false
			}
			p += size
		} else {
			p++
		}
		if budget < 0 {
			return n, true
		}
	}
	return n, false
}

// batchFrameSize is the size of a record's frame inside a batch record.
const batchFrameSize = 4 + 1

// forEachInBatch calls fn for every record framed in a batch record's
// payload, or returns a reason the payload is malformed.
func forEachInBatch(payload []byte, fn func(typ byte, payload []byte) error) (reason string, err error) {
	for p := 0; p < len(payload); {
		if len(payload)-p < batchFrameSize {
			return fmt.Sprintf("batch record ends inside a record frame at offset %d", p), nil
		}
		n := binary.LittleEndian.Uint32(payload[p:])
		typ := payload[p+4]
		if int64(n) > int64(len(payload)-p-batchFrameSize) {
			return fmt.Sprintf("batch record holds a record of %d bytes past its end at offset %d", n, p), nil
		}
		if typ == TypeBatch {
			return "batch record holds a batch", nil
		}
		end := p + batchFrameSize + int(n)
		if err := fn(typ, payload[p+batchFrameSize:end]); err != nil {
			return "", err
		}
		p = end
	}
	return "", nil
}
