package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/omnipick/omnipick/engine"
)

// Snapshots are shared through a JetStream Object Store bucket
// (<stream>_SNAPSHOTS, the stream's replicas): the leading node puts each
// of its snapshots there (newest SharedSnapshots kept), so a brand-new node,
// or one whose own snapshot is older than the stream's first sequence
// (trimmed since), loads the newest one and consumes from its sequence.
// Integrity: the bucket checks each object's SHA-256 digest as it is read,
// and the snapshot's own checksums (header, body) are checked before use.

// uploadTimeout bounds one snapshot's upload.
const uploadTimeout = 5 * time.Minute

// ErrTrimmed: the stream no longer holds records this node needs (they
// were trimmed below its snapshot) and no shared snapshot covers them.
var ErrTrimmed = errors.New("the stream was trimmed past this node's state")

func (n *Node) bucketName() string { return n.opts.Stream + "_SNAPSHOTS" }

// sharedPrefix starts the names of this node's shared snapshots. In a
// partitioned cluster a node's snapshot holds only the profiles of its
// partitions, so each member shares its own ("n2.cluster-snap-...") and
// recovers from its own; in a fully replicated one any node's will do
// and the names have no prefix.
func (n *Node) sharedPrefix() string {
	if n.layout.partitioned() {
		return n.opts.Name + "."
	}
	return ""
}

// sharedName is the object name of this node's shared snapshot at seq.
func (n *Node) sharedName(seq uint64) string { return n.sharedPrefix() + snapName(seq) }

// openBucket opens the shared snapshot bucket, creating it with the
// stream's replicas when it does not exist.
func (n *Node) openBucket(ctx context.Context) error {
	cfg := jetstream.ObjectStoreConfig{Bucket: n.bucketName(), Description: "omnipick cluster snapshots",
		Storage: jetstream.FileStorage, Replicas: n.stream.CachedInfo().Config.Replicas}
	return n.untilAnswered(ctx, "the snapshot bucket", func(cctx context.Context) (bool, error) {
		obs, err := n.js.ObjectStore(cctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			obs, err = n.js.CreateObjectStore(cctx, cfg)
			if errors.Is(err, jetstream.ErrBucketExists) {
				obs, err = n.js.ObjectStore(cctx, cfg.Bucket)
			}
		}
		if err != nil {
			return true, fmt.Errorf("cannot create or find snapshot bucket %s: %w", cfg.Bucket, err)
		}
		n.obs = obs
		return false, nil
	})
}

// sharedSeqs lists the sequences of the shared snapshots, oldest first.
func (n *Node) sharedSeqs(ctx context.Context) ([]uint64, error) {
	// The client's List waits for a marker an empty bucket sends only when
	// its stream answered a first request; on a bucket just created it can
	// wait forever. An empty bucket is told from its stream instead, and
	// List is bounded and tried again.
	var err error
	for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
		var seqs []uint64
		if seqs, err = n.listShared(ctx); err == nil {
			return seqs, nil
		}
	}
	return nil, fmt.Errorf("cannot list shared snapshots: %w", err)
}

func (n *Node) listShared(ctx context.Context) ([]uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := n.obs.Status(cctx)
	if err != nil {
		return nil, err
	}
	if bs, ok := st.(*jetstream.ObjectBucketStatus); ok && bs.StreamInfo().State.Msgs == 0 {
		return nil, nil
	}
	infos, err := n.obs.List(cctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	prefix := n.sharedPrefix()
	for _, in := range infos {
		name, ok := strings.CutPrefix(in.Name, prefix)
		if !ok {
			continue
		}
		if s, ok := snapSeqOf(name); ok {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// upload puts the local snapshot at seq in the bucket, then deletes the
// shared snapshots older than below and those beyond the newest
// SharedSnapshots; it returns how many it deleted.
func (n *Node) upload(ctx context.Context, seq, below uint64) (int, error) {
	name := n.sharedName(seq)
	f, err := os.Open(n.snapPath(seq))
	if err != nil {
		return 0, fmt.Errorf("cannot share snapshot: %w", err)
	}
	defer f.Close()
	start := time.Now()
	info, err := n.obs.Put(ctx, jetstream.ObjectMeta{Name: name, Description: "by " + n.opts.Name}, f)
	if err != nil {
		return 0, fmt.Errorf("cannot share snapshot %s: %w", name, err)
	}
	n.stats.uploadSeq.Store(seq)
	n.stats.uploadAt.Store(time.Now().UnixNano())
	n.sharedSeq.Store(max(n.sharedSeq.Load(), seq))
	n.opts.Log.Info("shared snapshot", "node", n.opts.Name, "seq", seq, "bytes", info.Size, "took", time.Since(start))
	// Pruned even when the node is closing: an upload that landed after a
	// compaction pruned is deleted here (below).
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return n.pruneShared(pctx, below)
}

// pruneShared deletes the shared snapshots older than below, those the
// stream was trimmed past (of no use for recovery: seq+1 < first) and
// those beyond the newest SharedSnapshots; it returns how many went. The
// stream's first sequence is read after the list: an upload that lands
// after a compaction pruned (a node that believed it led, with a snapshot
// taken before) is deleted by its own prune, which follows the
// compaction's trim.
func (n *Node) pruneShared(ctx context.Context, below uint64) (int, error) {
	seqs, err := n.sharedSeqs(ctx)
	if err != nil {
		return 0, err
	}
	info, err := n.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("cannot read the stream: %w", err)
	}
	if first := info.State.FirstSeq; first > 1 {
		below = max(below, first-1)
	}
	n.stats.shared.Store(uint64(len(seqs)))
	removed := 0
	for i, s := range seqs {
		if s >= below && i+n.opts.SharedSnapshots >= len(seqs) {
			continue
		}
		if err := n.obs.Delete(ctx, n.sharedName(s)); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return removed, fmt.Errorf("cannot delete shared snapshot %d: %w", s, err)
		}
		removed++
	}
	n.stats.shared.Store(uint64(len(seqs) - removed))
	return removed, nil
}

// loadShared returns an engine from the newest good shared snapshot at
// minSeq or later, and its sequence; a nil engine when there is none. The
// snapshot is also written to the local folder, so a restart need not
// fetch it again. newest is the newest shared snapshot it listed (0:
// none), good or not.
func (n *Node) loadShared(ctx context.Context, minSeq uint64) (e *engine.Engine, seq, newest uint64, err error) {
	seqs, err := n.sharedSeqs(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	if len(seqs) > 0 {
		newest = seqs[len(seqs)-1]
	}
	for i := len(seqs) - 1; i >= 0 && seqs[i] >= minSeq; i-- {
		name := n.sharedName(seqs[i])
		b, err := n.obs.GetBytes(ctx, name) // checks the object's digest
		if err == nil {
			var seq uint64
			var e *engine.Engine
			e, seq, err = n.engineFrom(n.bucketName()+"/"+name, b, seqs[i])
			if err == nil {
				n.opts.Log.Info("loaded a shared snapshot", "node", n.opts.Name, "object", name, "seq", seq)
				if n.opts.Dir != "" {
					if err := writeSnapshotBytes(n.snapDir(), seq, b); err != nil {
						n.opts.Log.Warn("cannot keep the shared snapshot locally", "err", err)
					}
				}
				return e, seq, newest, nil
			}
		}
		n.opts.Log.Warn("skipping a shared snapshot", "object", name, "err", err)
	}
	return nil, 0, newest, nil
}

// recover builds the node's engine: from its own newest snapshot when the
// stream still holds every record after it; else (a new node, or one
// whose snapshot the stream was trimmed past) from the newest shared one;
// else, when the stream was never trimmed, from nothing. A node the
// stream was trimmed past with no usable snapshot is refused (ErrTrimmed):
// it would miss records. listed reports whether it listed the shared
// snapshots (loadShared), and newestShared is then the newest (0: none).
func (n *Node) recover(ctx context.Context) (e *engine.Engine, seq, newestShared uint64, listed bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	info, err := n.stream.Info(cctx)
	cancel()
	if err != nil {
		return nil, 0, 0, false, fmt.Errorf("cannot read stream %s: %w", n.opts.Stream, err)
	}
	// A snapshot at s needs records s+1 on: s+1 >= first.
	var minSeq uint64
	if first := info.State.FirstSeq; first > 1 {
		minSeq = first - 1
	}
	n.first.Store(info.State.FirstSeq)
	e, seq, err = n.loadLocal(minSeq)
	if err != nil {
		return nil, 0, 0, false, err
	}
	if e == nil {
		sctx, cancel := context.WithTimeout(ctx, uploadTimeout)
		e, seq, newestShared, err = n.loadShared(sctx, minSeq)
		cancel()
		if err != nil {
			return nil, 0, 0, false, err
		}
		listed = true
	}
	if e == nil {
		if minSeq > 0 {
			return nil, 0, 0, false, fmt.Errorf("%w: stream %s starts at sequence %d, and neither %s nor bucket %s holds a snapshot at %d or later",
				ErrTrimmed, n.opts.Stream, info.State.FirstSeq, n.snapDir(), n.bucketName(), minSeq)
		}
		return engine.New(n.opts.Engine), 0, newestShared, listed, nil
	}
	// Snapshots the stream was trimmed past are of no more use (and may
	// hold what an erasure removed since).
	if dropped := n.dropLocalBelow(minSeq); dropped > 0 {
		n.opts.Log.Info("removed snapshots older than the stream's first sequence", "removed", dropped, "first", info.State.FirstSeq)
	}
	return e, seq, newestShared, listed, nil
}
