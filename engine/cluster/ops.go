package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omnipick/omnipick/engine"
)

// The cluster's housekeeping: anonymous-profile expiry, shared snapshots,
// stream trimming and compaction after an erasure. Whatever one node does
// for all (expiry records, uploads, trims, erasure compactions on a timer)
// is done by the node that leads: the smallest name among itself and the
// nodes it hears from. Two nodes may both believe they lead for a moment
// (one not heard for PeerTimeout): then both do it, which is harmless —
// a second expiry record drops what the first left (every node applies
// both, in stream order), a second upload or trim repeats the first's
// rule on the same figures.

// leads reports whether this node has the smallest name among the live
// nodes it hears from.
func (n *Node) leads() bool {
	for name := range n.Peers() {
		if name < n.opts.Name {
			return false
		}
	}
	return true
}

// staleErr is ErrTrimmed once this node found records missing from what
// it consumed (the stream was trimmed past it while it was not heard
// from): its state lacks them, so it takes no writes and no snapshots.
func (n *Node) staleErr() error {
	if g := n.gapAt.Load(); g != 0 {
		return fmt.Errorf("%w: records before sequence %d were trimmed before this node applied them; restart it (it loads the newest shared snapshot)", ErrTrimmed, g)
	}
	return nil
}

// background reads the stream's state each second, for the lag figure
// and the stall watchdog. Housekeeping, which may wait on the network for
// long, runs apart so the watchdog never waits for it.
func (n *Node) background() {
	defer close(n.bg)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var stall stallWatch
	for {
		select {
		case <-n.stop:
			return
		case now := <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if info, err := n.stream.Info(ctx); err == nil {
				n.noteLast(info.State.LastSeq)
				n.first.Store(info.State.FirstSeq)
			}
			cancel()
			if stall.stalled(now, n.applied.Load(), n.last.Load(), n.opts.StallAfter) {
				n.restartConsumer()
			}
		}
	}
}

// housekeeping writes expiry records when this node leads and, unless
// NoBackground, snapshots on a timer when records were applied since the
// last and, when it leads, compacts after erasures and trims the stream.
// Its network calls end when the node closes.
func (n *Node) housekeeping() {
	defer close(n.hk)
	ctx, cancel := n.stopContext()
	defer cancel()
	tick := time.NewTicker(min(time.Second, n.opts.SnapshotEvery, n.opts.ExpireEvery, n.opts.TrimEvery, n.opts.EraseCompactAfter))
	defer tick.Stop()
	lastSnap, lastExpire, lastTrim := time.Now(), time.Now(), time.Now()
	for {
		select {
		case <-n.stop:
			return
		case now := <-tick.C:
			if n.opts.AnonymousTTL > 0 && now.Sub(lastExpire) >= n.opts.ExpireEvery {
				lastExpire = now
				if n.leads() {
					n.expire()
				}
			}
			if n.opts.NoBackground {
				continue
			}
			if at := n.eraseAt.Load(); at != 0 && now.Sub(time.Unix(0, at)) >= n.opts.EraseCompactAfter && n.leads() {
				cctx, cancel := context.WithTimeout(ctx, 2*uploadTimeout)
				if _, err := n.Compact(cctx); err != nil {
					n.opts.Log.Error("compaction after an erasure failed; trying again", "err", err)
				} else {
					n.opts.Log.Info("compacted the cluster after an erasure")
				}
				cancel()
				lastSnap, lastTrim = now, now
				continue
			}
			if n.applied.Load() != n.snapSeq.Load() && now.Sub(lastSnap) >= n.opts.SnapshotEvery {
				if _, err := n.snapshot(ctx); err != nil {
					n.opts.Log.Error("snapshot failed", "err", err)
				}
				lastSnap = now
			}
			if now.Sub(lastTrim) >= n.opts.TrimEvery && n.leads() {
				lastTrim = now
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				if _, err := n.Trim(cctx); err != nil {
					n.opts.Log.Error("trimming the stream failed", "err", err)
				}
				cancel()
			}
		}
	}
}

// expire publishes the record that drops the anonymous profiles unused
// for AnonymousTTL; every node applies it from the stream, so every node
// drops the same ones.
func (n *Node) expire() {
	before := n.e.Options().Now().Add(-n.opts.AnonymousTTL).UnixMilli()
	rec := []engine.Record{{Op: engine.OpExpire, Expire: engine.Expire{Before: before}}}
	if err := n.Write(rec, []error{nil}); err != nil {
		n.opts.Log.Error("cannot expire anonymous profiles; trying again later", "err", err)
		return
	}
	n.stats.expiries.Add(1)
}

// TrimInfo says what a trim did.
type TrimInfo struct {
	Floor    uint64 // every record at or below it is covered by a snapshot every node can load
	FirstSeq uint64 // the stream's first sequence afterwards
	Purged   uint64 // messages removed
}

// Trim removes from the stream the messages every node can do without:
// those at or below the newest shared snapshot's sequence, and no higher
// than the oldest snapshot a live node announces (its own recovery point)
// nor this node's. A node heard from with no snapshot yet keeps
// everything. Run by the leading node on a timer (TrimEvery).
func (n *Node) Trim(ctx context.Context) (TrimInfo, error) {
	floor := n.snapSeq.Load()
	for _, snap := range n.peerSnaps() {
		floor = min(floor, snap)
	}
	if n.layout.partitioned() {
		// Each member recovers from its own shared snapshot: keep what
		// the oldest of them needs, lost members' included (a member
		// never heard of holds everything back).
		for _, s := range n.memberShared() { // this node's included
			floor = min(floor, s)
		}
	} else {
		seqs, err := n.sharedSeqs(ctx)
		if err != nil {
			return TrimInfo{}, err
		}
		if len(seqs) == 0 {
			floor = 0
		} else {
			floor = min(floor, seqs[len(seqs)-1])
		}
	}
	ti, err := n.purge(ctx, floor)
	if err == nil && ti.Purged > 0 {
		_, err = n.pruneShared(ctx, 0) // those the trim made useless
	}
	return ti, err
}

// purge removes the stream's messages at or below floor.
func (n *Node) purge(ctx context.Context, floor uint64) (TrimInfo, error) {
	ti := TrimInfo{Floor: floor}
	info, err := n.stream.Info(ctx)
	if err != nil {
		return ti, fmt.Errorf("cannot read the stream: %w", err)
	}
	ti.FirstSeq = info.State.FirstSeq
	if floor == 0 || floor+1 <= info.State.FirstSeq {
		return ti, nil
	}
	if err := n.stream.Purge(ctx, jetstream.WithPurgeSequence(floor+1)); err != nil {
		return ti, fmt.Errorf("cannot trim the stream below %d: %w", floor+1, err)
	}
	if after, err := n.stream.Info(ctx); err == nil {
		ti.FirstSeq = after.State.FirstSeq
		ti.Purged = info.State.Msgs - min(info.State.Msgs, after.State.Msgs)
		n.first.Store(after.State.FirstSeq)
	}
	n.stats.trimSeq.Store(floor)
	n.stats.trimAt.Store(time.Now().UnixNano())
	n.stats.trimmed.Add(ti.Purged)
	n.opts.Log.Info("trimmed the stream", "node", n.opts.Name, "below", floor+1, "purged", ti.Purged)
	return ti, nil
}

// CompactInfo says what a cluster compaction did.
type CompactInfo struct {
	Target           uint64 // the stream's end when it began: every node's snapshots now start at or after it
	Seq              uint64 // this node's snapshot, shared
	Path             string
	RemovedSnapshots int // this node's older snapshot files
	RemovedShared    int // older shared snapshots
	Nodes            int // nodes that compacted, this one included
	Trim             TrimInfo
}

// Compact makes what the cluster keeps hold only the current state, so
// that an erased actor is in no snapshot, shared snapshot or stream
// message: every live node snapshots at or past the stream's end as of
// now and deletes its older snapshots, this node shares its snapshot and
// deletes the older shared ones, and the stream is trimmed up to the
// oldest of the new snapshots. It fails (trimming nothing) when a live
// node did not answer. Served as POST /v1/admin/compact.
func (n *Node) Compact(ctx context.Context) (CompactInfo, error) {
	var ci CompactInfo
	if err := n.membersLive(); err != nil {
		return ci, err
	}
	// A partitioned cluster's signal records carry actor ids too (scans,
	// baskets, merges, erasures' global part): the target must come after
	// every node published and applied the ones it holds.
	if err := n.waitPending(ctx, math.MaxUint64); err != nil {
		return ci, err
	}
	if err := n.Sync(ctx); err != nil {
		return ci, err
	}
	ci.Target = n.applied.Load()
	// Ask the others first: they snapshot while this node does.
	want := n.Peers()
	inbox := nats.NewInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return ci, fmt.Errorf("cannot ask the nodes to compact: %w", err)
	}
	defer sub.Unsubscribe()
	if err := n.nc.PublishRequest(n.subject+".compact", inbox, []byte(n.opts.Name+" "+strconv.FormatUint(ci.Target, 10))); err != nil {
		return ci, fmt.Errorf("cannot ask the nodes to compact: %w", err)
	}
	floor, err := n.compactLocal(ci.Target, &ci)
	if err != nil {
		return ci, err
	}
	if ci.RemovedShared, err = n.upload(ctx, ci.Seq, ci.Target); err != nil {
		return ci, err
	}
	ci.Nodes = 1
	var errs []error
	for len(want) > 0 {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			names := make([]string, 0, len(want))
			for name := range want {
				names = append(names, name)
			}
			errs = append(errs, fmt.Errorf("nodes %v did not compact: %w", names, err))
			break
		}
		name, rest, _ := strings.Cut(string(m.Data), " ")
		if _, ok := want[name]; !ok {
			continue
		}
		delete(want, name)
		seq, perr := strconv.ParseUint(rest, 10, 64)
		if perr != nil {
			errs = append(errs, fmt.Errorf("node %s: %s", name, rest))
			continue
		}
		ci.Nodes++
		floor = min(floor, seq)
	}
	if err := errors.Join(errs...); err != nil {
		return ci, fmt.Errorf("cannot compact the cluster (the stream is not trimmed): %w", err)
	}
	if ci.Trim, err = n.purge(ctx, floor); err != nil {
		return ci, err
	}
	// Again after the trim: a shared snapshot older than the target put
	// meanwhile (by a node that believed it led) goes too. Done even when
	// the node is closing: the stream is trimmed already.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	removed, err := n.pruneShared(pctx, ci.Target)
	ci.RemovedShared += removed
	return ci, err
}

// uploadOwn shares a partitioned node's compacted snapshot and deletes its
// shared ones older than target (a fully replicated cluster's compaction
// shares the coordinator's only).
func (n *Node) uploadOwn(ctx context.Context, seq, target uint64) (int, error) {
	if !n.layout.partitioned() {
		return 0, nil
	}
	return n.upload(ctx, seq, target)
}

// ErrMemberDown: a partitioned cluster's compaction needs every member:
// it trims the stream past every snapshot older than its target, and a
// member that is down recovers from its own (no other node holds its
// partitions only), so it could not come back.
var ErrMemberDown = errors.New("a member of the cluster is down")

// membersLive is nil when partitions have no owners or every member is
// live.
func (n *Node) membersLive() error {
	if !n.layout.partitioned() {
		return nil
	}
	live := n.livePeerStates()
	for _, m := range n.layout.members {
		if _, ok := live[m]; !ok && m != n.opts.Name {
			return fmt.Errorf("%w: %s is not heard from; a compaction now would trim what it needs to recover (bring it back first)", ErrMemberDown, m)
		}
	}
	return nil
}

// compactLocal makes this node's newest snapshot cover target (a new one
// when it does not) and deletes the older ones; it returns the snapshot's
// sequence. The caller has waited for target to be applied.
func (n *Node) compactLocal(target uint64, ci *CompactInfo) (uint64, error) {
	if n.opts.Dir == "" {
		return 0, fmt.Errorf("cannot compact: the node has no data folder")
	}
	n.compactMu.Lock()
	defer n.compactMu.Unlock()
	seq := n.snapSeq.Load()
	path := ""
	if seq < target {
		var err error
		if seq, path, err = n.snapshotLocal(); err != nil {
			return 0, err
		}
	}
	if path == "" {
		path = n.snapPath(seq)
	}
	removed := n.dropLocalBelow(seq)
	if ci != nil {
		ci.Seq, ci.Path, ci.RemovedSnapshots = seq, path, removed
	}
	if es := n.eraseSeq.Load(); es != 0 && es <= seq {
		n.eraseSeq.CompareAndSwap(es, 0)
		n.eraseAt.Store(0)
	}
	n.opts.Log.Info("compacted", "node", n.opts.Name, "target", target, "snapshot_seq", seq, "removed_snapshots", removed)
	return seq, nil
}

// onCompact serves another node's compaction request: once this node has
// applied the target, it compacts and answers "name seq" (or "name
// error").
func (n *Node) onCompact(m *nats.Msg) {
	from, seqText, _ := strings.Cut(string(m.Data), " ")
	target, err := strconv.ParseUint(seqText, 10, 64)
	if from == n.opts.Name || err != nil || !n.ready.Load() {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		reply := n.opts.Name + " "
		if err := n.WaitApplied(ctx, target); err != nil {
			reply += "cannot apply the stream up to the target: " + err.Error()
		} else if seq, err := n.compactLocal(target, nil); err != nil {
			reply += err.Error()
		} else if _, err := n.uploadOwn(ctx, seq, target); err != nil {
			reply += err.Error()
		} else {
			reply += strconv.FormatUint(seq, 10)
		}
		m.Respond([]byte(reply))
	}()
}
