package cluster

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/internal/binfmt"
)

// Signal records (partitioned clusters). A node keeps the profiles of
// the partitions it holds only, but relations and popularity must be
// learned from every customer's events (issue 14: "global signals stay
// global"). An event's global effect needs its actor's history (the
// relations join the event's product to the actor's recent items), which
// only the partition's holders have: so a holder's engine, applying an
// event, edits the profile and returns the global effect as a derived
// record (engine.OpSignal; an identify that moves an anonymous history to
// another partition's customer returns an engine.OpMerge) instead of
// applying it. The partition's owner publishes these to <stream>.s; every
// node, holders included, applies them from the stream, in stream order.
// So every node's global signals are the same records in the same order:
// the same state, whichever node owns what.
//
// Every holder of a partition derives the same records (the same
// partition records in the same stream order), each named by its origin:
// the stream sequence and index of the record that produced it. A node
// applies a partition's signal once, the first time its origin comes
// past the partition's high-water mark, so a signal published twice (by
// an owner that published again after a lost ack, or by a standby that
// took over before it saw the old owner's last messages) changes nothing
// the second time. A standby keeps what it derived until it sees it in
// the stream (pending); when it becomes the owner it publishes its
// pending records past the high-water mark: nothing an owner lost while
// dying is missing, since the standby derived it too.

// origin names a derived record: the stream sequence of the message whose
// record produced it, the record's index there, and the derived record's
// rank among those of that record in the same partition (an expiry
// derives one per linked anonymous id it drops).
type origin struct {
	seq      uint64
	idx, sub uint32
}

func (o origin) after(b origin) bool {
	switch {
	case o.seq != b.seq:
		return o.seq > b.seq
	case o.idx != b.idx:
		return o.idx > b.idx
	}
	return o.sub > b.sub
}

// appendOrigin and readOrigin are an origin's encoding in signal
// messages and snapshots.
func appendOrigin(dst []byte, o origin) []byte {
	dst = binfmt.AppendUvarint(dst, o.seq)
	dst = binfmt.AppendUvarint(dst, uint64(o.idx))
	return binfmt.AppendUvarint(dst, uint64(o.sub))
}

func readOrigin(rd *binfmt.Reader) origin {
	return origin{rd.Uvarint(), uint32(rd.Uvarint()), uint32(rd.Uvarint())}
}

// appendSig and readSig are a derived record's encoding in signal
// messages and snapshots: its origin, then appendMsgRecord's op byte and
// length-prefixed record.
func appendSig(dst []byte, o origin, op engine.Op, enc []byte) []byte {
	return appendMsgRecord(appendOrigin(dst, o), enc, op)
}

func readSig(rd *binfmt.Reader) (origin, engine.Op, []byte) {
	o := readOrigin(rd)
	op := engine.Op(rd.Byte())
	return o, op, rd.Bytes()
}

// pendingSig is a record derived here whose copy is not yet in the stream.
type pendingSig struct {
	o   origin
	op  engine.Op
	enc []byte // engine.AppendRecord's encoding
}

type partSignals struct {
	hw      origin       // the newest of the partition's signals applied from the stream
	pending []pendingSig // derived here and not yet seen in the stream, oldest first
	sent    origin       // the newest this node published (acknowledged or in flight)
}

type signals struct {
	mu    sync.Mutex
	parts []partSignals
	wake  chan struct{} // a pending record to publish; buffered 1

	derived []engine.Derived // TakeDerived's buffer; guarded by Node.applyMu
	enc     []byte           // guarded by Node.applyMu
	ranks   map[int]uint32   // by partition: derived records of the current record so far; guarded by mu

	published uint64 // signal messages this node published; guarded by mu
	pubNanos  uint64 // total time from publish to ack
	applied   uint64 // signal records applied (first copies)
	dupes     uint64 // copies skipped
	rejected  uint64 // signal records the engine refused
}

func (s *signals) init(partitions int) {
	s.parts = make([]partSignals, partitions)
	s.wake = make(chan struct{}, 1)
	s.ranks = map[int]uint32{}
}

// takeDerived files the records the engine derived from the message at
// seq as pending in their partitions and wakes the publisher. Called
// under applyMu.
func (n *Node) takeDerived(seq uint64) {
	s := &n.sig
	s.derived = n.e.TakeDerived(s.derived[:0])
	if len(s.derived) == 0 {
		return
	}
	s.mu.Lock()
	for i := range s.derived {
		d := &s.derived[i]
		p := Partition(d.Actor, n.partitions)
		// Its rank among what the same record derived in the same
		// partition: every holder derives the same records in the same
		// order, so the same ranks.
		if i == 0 || s.derived[i-1].Index != d.Index {
			clear(s.ranks)
		}
		o := origin{seq: seq, idx: uint32(d.Index), sub: s.ranks[p]}
		s.ranks[p]++
		ps := &s.parts[p]
		if !o.after(ps.hw) { // seen in the stream already (a replay)
			continue
		}
		s.enc = engine.AppendRecord(s.enc[:0], &d.Rec)
		ps.pending = append(ps.pending, pendingSig{o: o, op: d.Rec.Op, enc: append([]byte(nil), s.enc...)})
	}
	s.mu.Unlock()
	clear(s.derived) // keep no strings alive
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// applySignals applies a signal message's records whose origins are new,
// through engine.ApplyBatch, and drops them from what is pending here.
// Called under applyMu. A malformed message is skipped on every node
// alike (from the fault on).
func (n *Node) applySignals(seq uint64, b []byte) error {
	s := &n.sig
	recs := n.recs[:0]
	rd := binfmt.NewReader(b)
	var err error
	s.mu.Lock()
	for i := 0; rd.Len() > 0; i++ {
		p := rd.Uvarint()
		o, op, enc := readSig(rd)
		if err = rd.Err(); err == nil && p >= uint64(n.partitions) {
			err = fmt.Errorf("partition %d of %d", p, n.partitions)
		}
		if err != nil {
			err = fmt.Errorf("%w: signal message %d, record %d: %w", ErrBadMessage, seq, i, err)
			break
		}
		ps := &s.parts[p]
		if !o.after(ps.hw) {
			s.dupes++
			continue
		}
		var r engine.Record
		if !derivedOp(op) {
			err = fmt.Errorf("%w: signal message %d, record %d: %v is not a derived record", ErrBadMessage, seq, i, op)
			break
		}
		if err = engine.DecodeRecord(op, enc, &r); err != nil {
			err = fmt.Errorf("%w: signal message %d, record %d: %w", ErrBadMessage, seq, i, err)
			break
		}
		recs = append(recs, r)
		ps.hw = o
		k := 0
		for k < len(ps.pending) && !ps.pending[k].o.after(o) {
			k++
		}
		if k > 0 {
			clear(ps.pending[:k])
			ps.pending = ps.pending[k:]
		}
	}
	s.applied += uint64(len(recs))
	s.mu.Unlock()
	if cap(n.errs) < len(recs) {
		n.errs = make([]error, len(recs))
	}
	verdicts := n.errs[:len(recs)]
	n.e.ApplyBatch(recs, verdicts)
	bad := 0
	for _, v := range verdicts {
		if v != nil {
			bad++
			if bad == 1 {
				n.opts.Log.Error("a signal record was refused", "seq", seq, "err", v)
			}
		}
	}
	if bad > 0 {
		s.mu.Lock()
		s.rejected += uint64(bad)
		s.mu.Unlock()
	}
	clear(recs)
	clear(verdicts)
	n.recs = recs
	return err
}

// derivedOp reports whether op is one an engine derives (what signal
// messages may hold): anything else there is a bug or a foreign writer,
// and applying it would derive records of its own.
func derivedOp(op engine.Op) bool {
	switch op {
	case engine.OpSignal, engine.OpMerge, engine.OpExpire, engine.OpForget:
		return true
	}
	return false
}

// signalLoop publishes the pending signal records of the partitions this
// node owns: when records are derived, and on the heartbeat (a partition
// taken over from a lost owner is published on the next beat). One
// message at a time, each waited for: what piles up meanwhile goes in the
// next, so messages grow with the load rather than their number.
func (n *Node) signalLoop() {
	defer close(n.sigDone)
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	var buf []byte
	for {
		select {
		case <-n.stop:
			return
		case <-n.sig.wake:
		case <-t.C:
		}
		for n.ready.Load() {
			var parts []int
			buf, parts = n.collectSignals(buf[:0])
			if len(parts) == 0 {
				break
			}
			if err := n.publishSignals(buf); err != nil {
				n.opts.Log.Warn("cannot publish signal records; trying again", "node", n.opts.Name, "err", err)
				n.unsend(parts)
				break
			}
		}
	}
}

// collectSignals appends to buf the pending records of the partitions
// this node owns that it has not published, up to MaxMsgBytes, and marks
// them sent; it returns the partitions they came from.
func (n *Node) collectSignals(buf []byte) ([]byte, []int) {
	t := n.owners.Load()
	s := &n.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []int
	for p := range s.parts {
		ps := &s.parts[p]
		if !t.mine[p] || len(ps.pending) == 0 {
			continue
		}
		from := ps.hw
		if ps.sent.after(from) {
			from = ps.sent
		}
		added := false
		for i := range ps.pending {
			ent := &ps.pending[i]
			if !ent.o.after(from) {
				continue
			}
			if len(buf)+len(ent.enc)+32 > n.opts.MaxMsgBytes && len(buf) > 0 {
				break
			}
			buf = binfmt.AppendUvarint(buf, uint64(p))
			buf = appendSig(buf, ent.o, ent.op, ent.enc)
			ps.sent = ent.o
			added = true
		}
		if added {
			parts = append(parts, p)
		}
		if len(buf) >= n.opts.MaxMsgBytes/2 {
			break
		}
	}
	return buf, parts
}

// unsend forgets that the records of parts were sent: a publish that
// failed is done again from the high-water mark.
func (n *Node) unsend(parts []int) {
	s := &n.sig
	s.mu.Lock()
	for _, p := range parts {
		s.parts[p].sent = origin{}
	}
	s.mu.Unlock()
}

// publishSignals publishes one signal message and waits for its ack. Its
// id is a hash of its bytes, so the same message published again is
// stored once.
func (n *Node) publishSignals(payload []byte) error {
	start := time.Now()
	m := &outMsg{id: "sig-" + strconv.FormatUint(xxhash.Sum64(payload), 16), subject: n.subject + ".s", data: payload}
	f, err := n.publish(m)
	if err != nil {
		return err
	}
	timer := time.NewTimer(n.opts.WriteTimeout)
	defer timer.Stop()
	if _, err := n.awaitStored(m, f, timer.C); err != nil {
		return err
	}
	s := &n.sig
	s.mu.Lock()
	s.published++
	s.pubNanos += uint64(time.Since(start))
	s.mu.Unlock()
	return nil
}

// PartitionState is one partition's signal state on this node.
type PartitionState struct {
	Partition int
	Owned     bool // this node owns it now
	Held      bool // this node holds it (owner or standby)
	// Pending: signal records derived here from the partition's events
	// and not yet in the stream: on the owner, its publishing lag; on a
	// standby, what it would publish if it took over now.
	Pending int
	// Oldest: the stream sequence of the oldest pending record's origin
	// (0: none).
	Oldest uint64
}

// PartitionStates returns the signal state of the partitions this node
// holds.
func (n *Node) PartitionStates() []PartitionState {
	if !n.layout.partitioned() {
		return nil
	}
	t := n.owners.Load()
	s := &n.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []PartitionState
	for p := range s.parts {
		if !n.layout.holds(n.opts.Name, p) {
			continue
		}
		ps := &s.parts[p]
		st := PartitionState{Partition: p, Owned: t.mine[p], Held: true, Pending: len(ps.pending)}
		if len(ps.pending) > 0 {
			st.Oldest = ps.pending[0].o.seq
		}
		out = append(out, st)
	}
	return out
}

// PendingSignals is how many derived records this node holds that are not
// yet in the stream (0 when the cluster is quiet and caught up).
func (n *Node) PendingSignals() int {
	count, _ := n.pendingSignals()
	return count
}

// pendingSignals returns how many derived records this node holds that
// are not yet in the stream, and the stream sequence of the oldest's
// origin (0: none).
func (n *Node) pendingSignals() (count int, oldest uint64) {
	s := &n.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.parts {
		ps := &s.parts[p]
		count += len(ps.pending)
		if len(ps.pending) > 0 && (oldest == 0 || ps.pending[0].o.seq < oldest) {
			oldest = ps.pending[0].o.seq
		}
	}
	return count, oldest
}

// waitDerived returns once what the records up to seq derived is applied
// on every live node: no node holds a pending record from them any more
// (each saw its copy in the stream), and every node applied the stream
// up to its end as of then (where the copies are). A write that links an
// anonymous id to an actor of another partition waits for it: the
// history arrives in a merge record, and the cookie's next request is
// answered by the customer's owner.
func (n *Node) waitDerived(ctx context.Context, seq uint64) error {
	if err := n.waitPending(ctx, seq); err != nil {
		return err
	}
	if err := n.Sync(ctx); err != nil {
		return err
	}
	return n.waitPeers(ctx, n.applied.Load())
}

// waitPending returns once neither this node nor a live peer holds a
// record derived from the stream up to seq that is not in the stream yet
// (a compaction waits for none at all: seq math.MaxUint64).
func (n *Node) waitPending(ctx context.Context, seq uint64) error {
	for {
		busy := ""
		if _, oldest := n.pendingSignals(); oldest != 0 && oldest <= seq {
			busy = n.opts.Name
		}
		for name, st := range n.livePeerStates() {
			if st.pendingOldest != 0 && st.pendingOldest <= seq {
				busy = name
			}
		}
		if busy == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s holds derived records not in the stream yet: %w", busy, ctx.Err())
		case <-n.stop:
			return ErrClosed
		case <-time.After(time.Millisecond):
		}
	}
}

// SignalStats are a partitioned node's signal counters.
type SignalStats struct {
	Published      uint64        // signal messages this node published
	PublishLatency time.Duration // mean time from their publish to ack
	Applied        uint64        // signal records applied (first copies)
	Duplicates     uint64        // copies skipped
	Rejected       uint64        // records the engine refused
}

func (n *Node) signalStats() SignalStats {
	s := &n.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SignalStats{Published: s.published, Applied: s.applied, Duplicates: s.dupes, Rejected: s.rejected}
	if s.published > 0 {
		st.PublishLatency = time.Duration(s.pubNanos / s.published)
	}
	return st
}

// encodeSignalState appends the signal state a snapshot must keep: each
// partition's high-water mark and pending records (a standby restarting
// from the snapshot would otherwise lose records derived before it and
// published after it). Called under applyMu.
func (n *Node) encodeSignalState(dst []byte) []byte {
	s := &n.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	dst = binfmt.AppendUvarint(dst, uint64(len(s.parts)))
	for p := range s.parts {
		ps := &s.parts[p]
		dst = appendOrigin(dst, ps.hw)
		dst = binfmt.AppendUvarint(dst, uint64(len(ps.pending)))
		for _, ent := range ps.pending {
			dst = appendSig(dst, ent.o, ent.op, ent.enc)
		}
	}
	return dst
}

// decodeSignalState restores what encodeSignalState wrote.
func (n *Node) decodeSignalState(b []byte) error {
	rd := binfmt.NewReader(b)
	if count := rd.Uvarint(); rd.Err() == nil && count != uint64(n.partitions) {
		return fmt.Errorf("%w: signal state of %d partitions, the stream has %d", ErrBadSnapshot, count, n.partitions)
	}
	parts := make([]partSignals, n.partitions) // taken whole, or not at all
	for p := range parts {
		ps := &parts[p]
		ps.hw = readOrigin(rd)
		cnt := rd.Uvarint()
		if cnt > uint64(rd.Len()) {
			return fmt.Errorf("%w: signal state: %d pending records in %d bytes", ErrBadSnapshot, cnt, rd.Len())
		}
		ps.pending = make([]pendingSig, 0, cnt)
		for range cnt {
			o, op, enc := readSig(rd)
			ps.pending = append(ps.pending, pendingSig{o: o, op: op, enc: append([]byte(nil), enc...)})
		}
	}
	if err := rd.Err(); err != nil {
		return fmt.Errorf("%w: signal state: %w", ErrBadSnapshot, err)
	}
	s := &n.sig
	s.mu.Lock()
	s.parts = parts
	s.mu.Unlock()
	return nil
}

// isSignalMsg reports whether a stream message holds signal records.
func (n *Node) isSignalMsg(msg jetstream.Msg) bool { return msg.Subject() == n.subject+".s" }
