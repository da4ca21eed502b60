package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/internal/binfmt"
)

// appendMsgRecord adds one record to a message payload: op, length, the
// record in the write-ahead log's encoding (engine.AppendRecord).
func appendMsgRecord(dst, enc []byte, op engine.Op) []byte {
	dst = append(dst, byte(op))
	dst = binfmt.AppendUvarint(dst, uint64(len(enc)))
	return append(dst, enc...)
}

// decodeMsg calls fn for every record of a message payload, in order.
func decodeMsg(b []byte, fn func(i int, r *engine.Record)) error {
	rd := binfmt.NewReader(b)
	var rec engine.Record
	for i := 0; rd.Len() > 0; i++ {
		op := engine.Op(rd.Byte())
		enc := rd.Bytes()
		if err := rd.Err(); err != nil {
			return fmt.Errorf("%w: record %d: %w", ErrBadMessage, i, err)
		}
		rec = engine.Record{}
		if err := engine.DecodeRecord(op, enc, &rec); err != nil {
			return fmt.Errorf("%w: record %d: %w", ErrBadMessage, i, err)
		}
		fn(i, &rec)
	}
	return nil
}

// startApplier consumes the stream from after seq with an ordered consumer
// (it recreates itself after a server is lost, resuming where it was).
func (n *Node) startApplier(ctx context.Context, seq uint64) error {
	it, err := n.consume(ctx, seq)
	if err != nil {
		return err
	}
	n.iter = it
	go n.applyLoop(it)
	return nil
}

// consume makes an ordered consumer of the stream from after seq.
func (n *Node) consume(ctx context.Context, seq uint64) (jetstream.MessagesContext, error) {
	// One attempt at each reset inside the client: its own retries back
	// off up to 10 s apiece while a stream leader is being elected; the
	// apply loop makes a fresh consumer at once instead.
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, MaxResetAttempts: 1}
	if seq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq+1
	}
	// A server that just restarted may take a while to serve JetStream
	// requests again (it catches up with the cluster first): retry.
	var cons jetstream.Consumer
	for wait := 2 * time.Second; ; wait = min(2*wait, 8*time.Second) {
		cctx, cancel := context.WithTimeout(ctx, wait)
		var err error
		cons, err = n.stream.OrderedConsumer(cctx, cfg)
		cancel()
		if err == nil {
			break
		}
		n.opts.Log.Info("waiting to consume the stream", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cannot consume stream %s: %w", n.opts.Stream, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	// The ordered consumer lives on one server (the stream leader's when
	// it was made): when that server is lost, missed heartbeats are how
	// the client notices and makes another. Half-second heartbeats bound
	// that to about a second (the default, half the 30 s pull expiry,
	// stalled this node's applies ~10-30 s after a leader was killed).
	it, err := cons.Messages(jetstream.PullExpiry(2*time.Second), jetstream.PullHeartbeat(500*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("cannot consume stream %s: %w", n.opts.Stream, err)
	}
	return it, nil
}

func (n *Node) applyLoop(it jetstream.MessagesContext) {
	defer close(n.done)
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			select {
			case <-n.stop:
				return
			default:
			}
			// The ordered consumer gave up (a server lost while it
			// was being remade): make another from what was applied.
			n.opts.Log.Warn("the stream's consumer closed: making another", "node", n.opts.Name, "applied", n.applied.Load())
			if it = n.remakeConsumer(); it == nil {
				return
			}
			continue
		}
		if err != nil {
			// Heartbeats missed while a server is lost: the ordered
			// consumer recreates itself; keep asking.
			n.opts.Log.Warn("consuming the stream", "node", n.opts.Name, "err", err)
			select {
			case <-n.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		n.applyMsg(msg)
	}
}

// stallWatch notices a consumer that stopped delivering while the stream
// holds messages not applied here.
type stallWatch struct {
	applied uint64
	since   time.Time
}

// stalled reports whether nothing was applied for at least after while
// the stream's end is beyond what was applied.
func (w *stallWatch) stalled(now time.Time, applied, last uint64, after time.Duration) bool {
	if last <= applied { // caught up: the clock starts when it falls behind
		w.applied, w.since = applied, time.Time{}
		return false
	}
	if applied != w.applied || w.since.IsZero() {
		w.applied, w.since = applied, now
		return false
	}
	if now.Sub(w.since) < after {
		return false
	}
	w.since = now // once per period
	return true
}

// restartConsumer stops the current consumer, so the apply loop makes
// another from what was applied. Stop may wait for a reset in progress
// inside the client: it runs on its own.
func (n *Node) restartConsumer() {
	n.opts.Log.Warn("the stream's consumer stalled: making another", "node", n.opts.Name,
		"applied", n.applied.Load(), "stream_last", n.last.Load())
	n.stats.stalls.Add(1)
	n.iterMu.Lock()
	it := n.iter
	n.iterMu.Unlock()
	go it.Stop()
}

// remakeConsumer makes a new consumer from after the last applied message,
// retrying until it succeeds or the node stops (nil).
func (n *Node) remakeConsumer() jetstream.MessagesContext {
	ctx, cancel := n.stopContext()
	defer cancel()
	it, err := n.consume(ctx, n.applied.Load())
	if err != nil {
		return nil
	}
	n.iterMu.Lock()
	n.iter = it
	n.iterMu.Unlock()
	select {
	case <-n.stop: // halt may have stopped the old iterator only
		it.Stop()
	default:
	}
	return it
}

// applyMsg applies one message's records through engine.Apply, the one
// function every state change goes through, and wakes the writes waiting
// for it. A malformed message is skipped on every node alike.
func (n *Node) applyMsg(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		n.opts.Log.Error("message without metadata", "err", err)
		return
	}
	seq := meta.Sequence.Stream
	id := msg.Headers().Get(nats.MsgIdHdr)
	n.mu.Lock()
	w := n.waiters[id]
	delete(n.waiters, id)
	n.mu.Unlock()

	start := time.Now()
	n.applyMu.Lock()
	if seq <= n.applied.Load() {
		n.applyMu.Unlock() // already in the snapshot
		if w != nil {
			close(w.done)
		}
		return
	}
	if prev := n.applied.Load(); seq > prev+1 {
		n.noteGap(prev, seq)
	}
	if n.layout.partitioned() && n.isSignalMsg(msg) {
		err = n.applySignals(seq, msg.Data())
		n.applied.Store(seq)
		n.applyMu.Unlock()
		n.finishMsg(seq, 0, w, start, err)
		return
	}
	// The records are decoded first, then applied as one batch
	// (ApplyBatch: Apply's state, the profile edits in parallel). Of a
	// malformed message, the records before the fault are applied.
	recs := n.recs[:0]
	err = decodeMsg(msg.Data(), func(_ int, r *engine.Record) { recs = append(recs, *r) })
	if cap(n.errs) < len(recs) {
		n.errs = make([]error, len(recs))
	}
	verdicts := n.errs[:len(recs)]
	n.e.ApplyBatch(recs, verdicts)
	count, erased := len(recs), false
	for i := range recs {
		erased = erased || recs[i].Op == engine.OpErase
		if w != nil && i < len(w.verdicts) {
			w.verdicts[i] = verdicts[i]
		}
	}
	clear(recs) // keep no strings alive until the next message
	clear(verdicts)
	n.recs = recs
	if n.layout.partitioned() {
		n.takeDerived(seq)
	}
	n.applied.Store(seq)
	n.applyMu.Unlock()
	if erased {
		n.eraseSeq.Store(seq)
		n.eraseAt.CompareAndSwap(0, time.Now().UnixNano())
	}
	n.finishMsg(seq, count, w, start, err)
}

// finishMsg counts an applied message, wakes the write waiting for it and
// the waits for its sequence, and announces the progress.
func (n *Node) finishMsg(seq uint64, count int, w *waiter, start time.Time, err error) {
	n.stats.records.Add(uint64(count))
	n.stats.applied.Add(1)
	n.stats.applyNanos.Add(uint64(time.Since(start)))
	if err != nil {
		n.opts.Log.Error("skipped a malformed message", "seq", seq, "err", err)
	}
	if w != nil {
		close(w.done)
	}
	n.releaseSeq(seq)
	n.announce()
}

func (n *Node) releaseSeq(seq uint64) {
	n.mu.Lock()
	keep := n.seqWaits[:0]
	for _, sw := range n.seqWaits {
		if sw.seq <= seq {
			close(sw.ch)
		} else {
			keep = append(keep, sw)
		}
	}
	clear(n.seqWaits[len(keep):])
	n.seqWaits = keep
	n.mu.Unlock()
}

// noteGap records that the stream delivered seq after prev: the messages
// between were trimmed before this node applied them (it was not heard
// from while the stream was trimmed past it, or joined as it was). The
// node's state lacks them: it marks itself stale (staleErr), and Open
// starts again from a shared snapshot. Called under applyMu.
func (n *Node) noteGap(prev, seq uint64) {
	n.stats.gaps.Add(1)
	n.gapAt.CompareAndSwap(0, seq)
	n.opts.Log.Error("records missing from the stream: trimmed before this node applied them", "node", n.opts.Name,
		"applied", prev, "next", seq)
}

// stopContext is a context canceled when the node stops (or cancel is
// called).
func (n *Node) stopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
