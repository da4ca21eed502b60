package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/omnipick/omnipick/engine"
)

// A node's snapshot is its recovery point: the engine's state after it
// applied the stream up to a sequence, which the file name and header
// hold. Restart loads it and consumes the stream from the next sequence
// (DeliverByStartSequence), so a node keeps no write-ahead log.
//
//	header:  "OMNICS01" | seq u64 | crc32c(header) u32
//	body:    zstd(engine capture)
//	trailer: raw length u64 | crc32c(raw) u32 | "OCS!"
//
// A partitioned cluster's node (signals.go) writes version 2, whose body
// also holds its signal state (each partition's high-water mark and
// pending records), so that a restart neither applies a signal twice nor
// loses one it derived before the snapshot and would have to publish:
//
//	header:  "OMNICS02" | seq u64 | crc32c(header) u32
//	body:    zstd(engine capture | signal state | len(signal state) u64)
const (
	snapMagic    = "OMNICS01"
	snapMagicV2  = "OMNICS02"
	snapEnd      = "OCS!"
	snapPrefix   = "cluster-snap-"
	snapSuffix   = ".omnisnap"
	snapHdrSize  = 8 + 8 + 4
	snapTailSize = 8 + 4 + 4
	snapsKept    = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBadSnapshot marks a snapshot file that fails its checks.
var ErrBadSnapshot = errors.New("bad cluster snapshot")

// Snapshot writes the engine's state as of the last applied message and
// returns its stream sequence. Older snapshots beyond the newest two are
// removed. The node that leads (the smallest live name) also puts it in
// the shared bucket, where joining and lagging nodes find it.
func (n *Node) Snapshot() (uint64, error) {
	return n.snapshot(context.Background())
}

func (n *Node) snapshot(ctx context.Context) (uint64, error) {
	seq, _, err := n.snapshotLocal()
	// A partitioned node shares its own snapshots (no other node's holds
	// its partitions); otherwise the leading node shares for all.
	if err != nil || seq == 0 || !n.leads() && !n.layout.partitioned() {
		return seq, err
	}
	ctx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	if _, err := n.upload(ctx, seq, 0); err != nil {
		return seq, err
	}
	return seq, nil
}

// snapshotLocal writes a snapshot into the node's folder and returns its
// sequence and path. A node that missed trimmed records (ErrTrimmed) does
// not: its state lacks them.
func (n *Node) snapshotLocal() (uint64, string, error) {
	if n.opts.Dir == "" {
		return 0, "", nil
	}
	if err := n.staleErr(); err != nil {
		return 0, "", err
	}
	n.snapMu.Lock()
	defer n.snapMu.Unlock()
	n.applyMu.Lock()
	seq := n.applied.Load()
	c := n.e.BeginSnapshot()
	var sigState []byte
	if n.layout.partitioned() {
		sigState = n.encodeSignalState(nil)
	}
	n.applyMu.Unlock()
	dir := n.snapDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.WriteTo(io.Discard)
		return 0, "", fmt.Errorf("cannot create %q: %w", dir, err)
	}
	name := filepath.Join(dir, snapName(seq))
	if err := writeSnapshot(name, seq, c, sigState); err != nil {
		return 0, "", err
	}
	n.snapSeq.Store(seq)
	seqs, _ := listSnapshots(dir)
	for i := 0; i+snapsKept < len(seqs); i++ {
		os.Remove(filepath.Join(dir, snapName(seqs[i])))
	}
	return seq, name, nil
}

// dropLocalBelow removes the node's snapshot files older than seq and
// returns how many went.
func (n *Node) dropLocalBelow(seq uint64) int {
	if n.opts.Dir == "" {
		return 0
	}
	dir := n.snapDir()
	seqs, _ := listSnapshots(dir)
	removed := 0
	for _, s := range seqs {
		if s < seq && os.Remove(filepath.Join(dir, snapName(s))) == nil {
			removed++
		}
	}
	if removed > 0 {
		syncDir(dir)
	}
	return removed
}

// writeSnapshot writes the snapshot at seq: version 2 with sigState when
// it is not nil (a partitioned node's), else version 1.
func writeSnapshot(name string, seq uint64, c *engine.Capture, sigState []byte) error {
	tmp := name + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		c.WriteTo(io.Discard)
		return fmt.Errorf("cannot create snapshot %q: %w", tmp, err)
	}
	fail := func(what string, err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("cannot write snapshot %q: %s: %w", tmp, what, err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	magic := snapMagic
	if sigState != nil {
		magic = snapMagicV2
	}
	hdr := append([]byte(magic), binary.LittleEndian.AppendUint64(nil, seq)...)
	hdr = binary.LittleEndian.AppendUint32(hdr, crc32.Checksum(hdr, castagnoli))
	bw.Write(hdr)
	zw, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		c.WriteTo(io.Discard)
		return fail("zstd", err)
	}
	crc := crc32.New(castagnoli)
	mw := io.MultiWriter(zw, crc)
	raw, err := c.WriteTo(mw)
	if err == nil && sigState != nil {
		var k int
		k, err = mw.Write(binary.LittleEndian.AppendUint64(sigState, uint64(len(sigState))))
		raw += int64(k)
	}
	if err != nil {
		zw.Close()
		return fail("state", err)
	}
	if err := zw.Close(); err != nil {
		return fail("zstd", err)
	}
	tail := binary.LittleEndian.AppendUint64(nil, uint64(raw))
	tail = binary.LittleEndian.AppendUint32(tail, crc.Sum32())
	bw.Write(append(tail, snapEnd...))
	if err := bw.Flush(); err != nil {
		return fail("flush", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot close snapshot %q: %w", tmp, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("cannot rename snapshot into place: %w", err)
	}
	return syncDir(filepath.Dir(name))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot sync %q: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot sync %q: %w", dir, err)
	}
	return nil
}

// ReadSnapshot checks a cluster snapshot file (its header and body
// checksums) and returns its stream sequence and its body, uncompressed:
// the engine state and, in a version 2 snapshot, the signal state, all of
// what it holds, for tools and tests that inspect one.
func ReadSnapshot(name string) (uint64, []byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot read snapshot: %w", err)
	}
	seq, _, raw, err := parseSnapshot(name, b)
	return seq, raw, err
}

// parseSnapshot checks a snapshot's bytes (a file's or a shared object's,
// named name in errors) and returns its sequence, whether it is a version
// 2 snapshot (snapMagicV2: with signal state) and its raw body.
func parseSnapshot(name string, b []byte) (seq uint64, v2 bool, raw []byte, err error) {
	if len(b) < snapHdrSize+snapTailSize || string(b[:8]) != snapMagic && string(b[:8]) != snapMagicV2 || string(b[len(b)-4:]) != snapEnd {
		return 0, false, nil, fmt.Errorf("%w: %s: truncated or not a snapshot", ErrBadSnapshot, name)
	}
	if crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:20]) {
		return 0, false, nil, fmt.Errorf("%w: %s: header checksum", ErrBadSnapshot, name)
	}
	v2 = string(b[:8]) == snapMagicV2
	seq = binary.LittleEndian.Uint64(b[8:16])
	tail := b[len(b)-snapTailSize:]
	zr, err := zstd.NewReader(bytes.NewReader(b[snapHdrSize:len(b)-snapTailSize]), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return 0, false, nil, fmt.Errorf("%w: %s: %w", ErrBadSnapshot, name, err)
	}
	defer zr.Close()
	raw, err = io.ReadAll(zr)
	if err != nil {
		return 0, false, nil, fmt.Errorf("%w: %s: %w", ErrBadSnapshot, name, err)
	}
	if uint64(len(raw)) != binary.LittleEndian.Uint64(tail[:8]) || crc32.Checksum(raw, castagnoli) != binary.LittleEndian.Uint32(tail[8:12]) {
		return 0, false, nil, fmt.Errorf("%w: %s: body checksum", ErrBadSnapshot, name)
	}
	return seq, v2, raw, nil
}

// snapParts splits a snapshot's raw body (parseSnapshot's) into the
// engine state and the signal state (nil in a version 1 snapshot); v2 is
// parseSnapshot's version report.
func snapParts(name string, v2 bool, raw []byte) (eng, sigState []byte, err error) {
	if !v2 {
		return raw, nil, nil
	}
	if len(raw) < 8 {
		return nil, nil, fmt.Errorf("%w: %s: no signal state", ErrBadSnapshot, name)
	}
	n := binary.LittleEndian.Uint64(raw[len(raw)-8:])
	if n > uint64(len(raw)-8) {
		return nil, nil, fmt.Errorf("%w: %s: signal state of %d bytes in %d", ErrBadSnapshot, name, n, len(raw))
	}
	end := uint64(len(raw) - 8)
	return raw[:end-n], raw[end-n : end], nil
}

// snapName is the file (and shared object) name of the snapshot at seq.
func snapName(seq uint64) string { return fmt.Sprintf("%s%020d%s", snapPrefix, seq, snapSuffix) }

// snapSeqOf parses a snapshot name; false when it is not one.
func snapSeqOf(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, snapPrefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, snapSuffix)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// writeSnapshotBytes puts a snapshot fetched from the shared bucket into
// the local folder, as Snapshot would have written it.
func writeSnapshotBytes(dir string, seq uint64, b []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create %q: %w", dir, err)
	}
	name := filepath.Join(dir, snapName(seq))
	tmp := name + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("cannot create snapshot %q: %w", tmp, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot write snapshot %q: %w", name, err)
	}
	return syncDir(dir)
}

func listSnapshots(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		if v, ok := snapSeqOf(e.Name()); ok {
			seqs = append(seqs, v)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// loadLocal returns an engine from the newest good snapshot in the node's
// folder at minSeq or later and its sequence; a nil engine when there is
// none. A damaged one is passed over (the stream holds everything after
// an older one, unless trimmed: hence minSeq).
func (n *Node) loadLocal(minSeq uint64) (*engine.Engine, uint64, error) {
	if n.opts.Dir == "" {
		return nil, 0, nil
	}
	sdir := n.snapDir()
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		return nil, 0, fmt.Errorf("cannot create %q: %w", sdir, err)
	}
	seqs, err := listSnapshots(sdir)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot list snapshots: %w", err)
	}
	for i := len(seqs) - 1; i >= 0 && seqs[i] >= minSeq; i-- {
		name := filepath.Join(sdir, snapName(seqs[i]))
		b, err := os.ReadFile(name)
		if err == nil {
			var e *engine.Engine
			var seq uint64
			if e, seq, err = n.engineFrom(name, b, seqs[i]); err == nil {
				n.opts.Log.Info("loaded cluster snapshot", "file", name, "seq", seq)
				return e, seq, nil
			}
		}
		n.opts.Log.Warn("skipping a damaged snapshot", "file", name, "err", err)
	}
	return nil, 0, nil
}

// engineFrom checks a snapshot's bytes (named name in errors) and returns
// the engine it holds and its sequence (which must be want, the one its
// name says); a partitioned node also takes its signal state, only from a
// snapshot it accepts. A snapshot of the other kind (with signal state for a
// fully replicated node, or without for a partitioned one) is refused.
func (n *Node) engineFrom(name string, b []byte, want uint64) (*engine.Engine, uint64, error) {
	seq, v2, raw, err := parseSnapshot(name, b)
	if err != nil {
		return nil, 0, err
	}
	if seq != want {
		return nil, 0, fmt.Errorf("%w: %s holds sequence %d", ErrBadSnapshot, name, seq)
	}
	eng, sigState, err := snapParts(name, v2, raw)
	if err != nil {
		return nil, 0, err
	}
	if (sigState != nil) != n.layout.partitioned() {
		return nil, 0, fmt.Errorf("%w: %s: a partitioned node's snapshot is not a fully replicated one's, nor the reverse", ErrBadSnapshot, name)
	}
	e, err := engine.LoadSnapshot(n.opts.Engine, eng)
	if err != nil {
		return nil, 0, err
	}
	if sigState != nil {
		if err := n.decodeSignalState(sigState); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", name, err)
		}
	}
	return e, seq, nil
}
