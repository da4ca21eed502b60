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
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

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
const (
	snapMagic    = "OMNICS01"
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
// removed.
func (n *Node) Snapshot() (uint64, error) {
	if n.opts.Dir == "" {
		return 0, nil
	}
	n.applyMu.Lock()
	seq := n.applied.Load()
	c := n.e.BeginSnapshot()
	n.applyMu.Unlock()
	dir := filepath.Join(n.opts.Dir, "snapshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.WriteTo(io.Discard)
		return 0, fmt.Errorf("cannot create %q: %w", dir, err)
	}
	name := filepath.Join(dir, fmt.Sprintf("%s%020d%s", snapPrefix, seq, snapSuffix))
	if err := writeSnapshot(name, seq, c); err != nil {
		return 0, err
	}
	n.snapSeq.Store(seq)
	seqs, _ := listSnapshots(dir)
	for i := 0; i+snapsKept < len(seqs); i++ {
		os.Remove(filepath.Join(dir, fmt.Sprintf("%s%020d%s", snapPrefix, seqs[i], snapSuffix)))
	}
	return seq, nil
}

func writeSnapshot(name string, seq uint64, c *engine.Capture) error {
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
	hdr := append([]byte(snapMagic), binary.LittleEndian.AppendUint64(nil, seq)...)
	hdr = binary.LittleEndian.AppendUint32(hdr, crc32.Checksum(hdr, castagnoli))
	bw.Write(hdr)
	zw, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		c.WriteTo(io.Discard)
		return fail("zstd", err)
	}
	crc := crc32.New(castagnoli)
	raw, err := c.WriteTo(io.MultiWriter(zw, crc))
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

// readSnapshot returns the sequence and raw engine state of a snapshot.
func readSnapshot(name string) (uint64, []byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot read snapshot: %w", err)
	}
	if len(b) < snapHdrSize+snapTailSize || string(b[:8]) != snapMagic || string(b[len(b)-4:]) != snapEnd {
		return 0, nil, fmt.Errorf("%w: %s: truncated or not a snapshot", ErrBadSnapshot, name)
	}
	if crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:20]) {
		return 0, nil, fmt.Errorf("%w: %s: header checksum", ErrBadSnapshot, name)
	}
	seq := binary.LittleEndian.Uint64(b[8:16])
	tail := b[len(b)-snapTailSize:]
	zr, err := zstd.NewReader(bytes.NewReader(b[snapHdrSize:len(b)-snapTailSize]), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s: %w", ErrBadSnapshot, name, err)
	}
	defer zr.Close()
	raw, err := io.ReadAll(zr)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s: %w", ErrBadSnapshot, name, err)
	}
	if uint64(len(raw)) != binary.LittleEndian.Uint64(tail[:8]) || crc32.Checksum(raw, castagnoli) != binary.LittleEndian.Uint32(tail[8:12]) {
		return 0, nil, fmt.Errorf("%w: %s: body checksum", ErrBadSnapshot, name)
	}
	return seq, raw, nil
}

func listSnapshots(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		s, ok := strings.CutPrefix(e.Name(), snapPrefix)
		if s, ok2 := strings.CutSuffix(s, snapSuffix); ok && ok2 {
			if v, err := strconv.ParseUint(s, 10, 64); err == nil {
				seqs = append(seqs, v)
			}
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// loadSnapshot returns an engine from the newest good snapshot in dir and
// its sequence; a fresh engine and 0 when there is none. A damaged one is
// passed over (the stream holds everything after the older one).
func loadSnapshot(dir string, opts engine.Options, log *slog.Logger) (*engine.Engine, uint64, error) {
	if dir == "" {
		return engine.New(opts), 0, nil
	}
	sdir := filepath.Join(dir, "snapshots")
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		return nil, 0, fmt.Errorf("cannot create %q: %w", sdir, err)
	}
	seqs, err := listSnapshots(sdir)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot list snapshots: %w", err)
	}
	for i := len(seqs) - 1; i >= 0; i-- {
		name := filepath.Join(sdir, fmt.Sprintf("%s%020d%s", snapPrefix, seqs[i], snapSuffix))
		seq, raw, err := readSnapshot(name)
		if err == nil {
			var e *engine.Engine
			if e, err = engine.LoadSnapshot(opts, raw); err == nil {
				log.Info("loaded cluster snapshot", "file", name, "seq", seq)
				return e, seq, nil
			}
		}
		log.Warn("skipping a damaged snapshot", "file", name, "err", err)
	}
	return engine.New(opts), 0, nil
}

// background reads the stream's end each second (for the lag figure and
// the stall watchdog) and, unless NoBackground, snapshots on a timer when
// records were applied since the last.
func (n *Node) background() {
	defer close(n.bg)
	tick := time.NewTicker(min(time.Second, n.opts.SnapshotEvery))
	defer tick.Stop()
	last := time.Now()
	var stall stallWatch
	for {
		select {
		case <-n.stop:
			return
		case now := <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if info, err := n.stream.Info(ctx); err == nil {
				n.noteLast(info.State.LastSeq)
			}
			cancel()
			if stall.stalled(now, n.applied.Load(), n.last.Load(), n.opts.StallAfter) {
				n.restartConsumer()
			}
			if n.opts.NoBackground || n.applied.Load() == n.snapSeq.Load() || now.Sub(last) < n.opts.SnapshotEvery {
				continue
			}
			if _, err := n.Snapshot(); err != nil {
				n.opts.Log.Error("snapshot failed", "err", err)
			}
			last = now
		}
	}
}
