package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omnipick/omnipick/engine"
)

// Write publishes recs to the stream and returns once JetStream has
// acknowledged every message of the batch (stored on a majority of its
// replicas) and this node has applied them: errs[i] is the engine's
// verdict on recs[i]. It implements api.Writer.
//
// Records are grouped by subject (an actor's partition, or the broadcast
// subject) and packed into messages, each stored whole or not at all;
// an actor's records keep their order. An error means the batch was not
// acknowledged: some of its messages may still be in the stream, so a
// client retries with event ids (applied once) to be safe.
// engine.ErrOverloaded when the publish window stayed full for StallWait.
func (n *Node) Write(recs []engine.Record, errs []error) error {
	if len(recs) == 0 {
		return nil
	}
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := n.staleErr(); err != nil {
		return err
	}
	stampTimes(recs, n.e.Options().Now)
	msgs, err := n.pack(recs)
	if err != nil {
		return err
	}
	start := time.Now()
	timer := time.NewTimer(n.opts.WriteTimeout)
	defer timer.Stop()
	futures := make([]jetstream.PubAckFuture, len(msgs))
	var pubErr error
	for i := range msgs {
		if futures[i], pubErr = n.publish(&msgs[i]); pubErr != nil {
			break
		}
	}
	var last uint64
	for i := 0; pubErr == nil && i < len(msgs); i++ {
		var seq uint64
		seq, pubErr = n.awaitStored(&msgs[i], futures[i], timer.C)
		last = max(last, seq)
	}
	if pubErr != nil {
		n.forget(msgs)
		return pubErr
	}
	n.stats.writes.Add(1)
	n.stats.published.Add(uint64(len(msgs)))
	n.stats.pubNanos.Add(uint64(time.Since(start)))
	// Durable now; visible here once this node applied every message.
	for _, m := range msgs {
		select {
		case <-m.w.done:
			for j, i := range m.w.idx {
				errs[i] = m.w.verdicts[j]
			}
		case <-n.stop:
			return ErrClosed
		case <-timer.C:
			n.forget(msgs)
			return fmt.Errorf("acknowledged by JetStream but not applied here within %s: %w", n.opts.WriteTimeout, context.DeadlineExceeded)
		}
	}
	// And on every other live node, so the next request anywhere sees it.
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(n.opts.WriteTimeout))
	defer cancel()
	if err := n.waitPeers(ctx, last); err != nil {
		return fmt.Errorf("acknowledged by JetStream but not yet visible everywhere: %w", err)
	}
	if n.layout.partitioned() && hasIdentify(recs) {
		if err := n.waitDerived(ctx, last); err != nil {
			return fmt.Errorf("acknowledged by JetStream but the history it moves not yet visible everywhere: %w", err)
		}
	}
	return nil
}

// hasIdentify reports whether recs link an anonymous id (whose history
// may move to another partition in a merge record).
func hasIdentify(recs []engine.Record) bool {
	for i := range recs {
		if recs[i].Op == engine.OpIdentify {
			return true
		}
	}
	return false
}

// publish sends one message of a write, with its id: a message published
// again (after an ack that did not come) is stored once (JetStream
// deduplicates ids within the stream's 2-minute window).
func (n *Node) publish(m *outMsg) (jetstream.PubAckFuture, error) {
	msg := &nats.Msg{Subject: m.subject, Data: m.data}
	f, err := n.js.PublishMsgAsync(msg, jetstream.WithMsgID(m.id), jetstream.WithStallWait(n.opts.StallWait))
	if err != nil {
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			err = fmt.Errorf("%w: %w", engine.ErrOverloaded, err)
		}
		return nil, fmt.Errorf("cannot publish: %w", err)
	}
	return f, nil
}

// awaitStored returns once JetStream acknowledged m, publishing it again
// each time an ack does not come within AckWait (while a lost stream
// leader is replaced, messages sent to it are dropped), until the write's
// deadline.
func (n *Node) awaitStored(m *outMsg, f jetstream.PubAckFuture, deadline <-chan time.Time) (uint64, error) {
	for {
		select {
		case <-n.stop:
			return 0, ErrClosed
		case ack := <-f.Ok():
			return ack.Sequence, nil
		case err := <-f.Err():
			n.opts.Log.Debug("publishing again", "id", m.id, "err", err)
		case <-deadline:
			return 0, fmt.Errorf("JetStream did not acknowledge a message in time: %w", context.DeadlineExceeded)
		}
		n.stats.republished.Add(1)
		var err error
		for f, err = n.publish(m); err != nil; f, err = n.publish(m) {
			select {
			case <-n.stop:
				return 0, ErrClosed
			case <-deadline:
				return 0, err
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

type outMsg struct {
	id      string
	subject string
	data    []byte
	w       *waiter
}

// pack puts recs, in their order, into messages of at most MaxMsgBytes
// and registers a waiter for each. A message whose records all belong to
// one partition (or are all broadcast) goes to that subject; one that
// mixes them to <stream>.m. Keeping the request's order (rather than one
// message per partition) keeps the rule "same records, same order, same
// state" against a single node fed the requests as they came: global
// signals (popularity, relations) depend on the order across actors. It
// also sends a batch as one message: 2-3x the ingest of one message per
// partition at R=3 (docs/cluster.md).
func (n *Node) pack(recs []engine.Record) ([]outMsg, error) {
	var msgs []outMsg
	var enc []byte
	var cur *outMsg
	for i := range recs {
		enc = engine.AppendRecord(enc[:0], &recs[i])
		if len(enc)+16 > n.opts.MaxMsgBytes {
			return nil, fmt.Errorf("record %d (%d bytes): %w", i, len(enc), ErrRecordLarge)
		}
		subj := subjectOf(n.subject, &recs[i], n.partitions)
		if cur == nil || len(cur.data)+len(enc)+16 > n.opts.MaxMsgBytes {
			msgs = append(msgs, outMsg{id: n.idPrefix + strconv.FormatUint(n.nextID.Add(1), 10),
				subject: subj, w: &waiter{done: make(chan struct{})}})
			cur = &msgs[len(msgs)-1]
		} else if cur.subject != subj {
			cur.subject = n.subject + ".m"
		}
		cur.data = appendMsgRecord(cur.data, enc, recs[i].Op)
		cur.w.idx = append(cur.w.idx, i)
		cur.w.verdicts = append(cur.w.verdicts, nil)
	}
	n.mu.Lock()
	for _, m := range msgs {
		n.waiters[m.id] = m.w
	}
	n.mu.Unlock()
	return msgs, nil
}

func (n *Node) forget(msgs []outMsg) {
	n.mu.Lock()
	for _, m := range msgs {
		delete(n.waiters, m.id)
	}
	n.mu.Unlock()
}

// stampTimes gives events and campaigns without a time the time of receipt
// before they are published, so every node applies the same record.
func stampTimes(recs []engine.Record, now func() time.Time) {
	var ms int64
	for i := range recs {
		r := &recs[i]
		var ts *int64
		switch r.Op {
		case engine.OpEvent:
			ts = &r.Event.TS
		case engine.OpCampaign:
			ts = &r.Campaign.TS
		}
		if ts == nil || *ts != 0 {
			continue
		}
		if ms == 0 {
			ms = now().UnixMilli()
		}
		*ts = ms
	}
}

// Sync returns once this node has applied the stream up to its last
// message as of the call: after it, the node answers as of every write
// acknowledged before the call, whichever node took it.
func (n *Node) Sync(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	info, err := n.stream.Info(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot read the stream's end: %w", err)
	}
	n.noteLast(info.State.LastSeq)
	return n.WaitApplied(ctx, info.State.LastSeq)
}

// WaitApplied returns once the node has applied the stream up to seq.
func (n *Node) WaitApplied(ctx context.Context, seq uint64) error {
	n.mu.Lock()
	if n.applied.Load() >= seq {
		n.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	n.seqWaits = append(n.seqWaits, seqWait{seq: seq, ch: ch})
	n.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-n.stop:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("applied %d of %d: %w", n.applied.Load(), seq, ctx.Err())
	}
}

// noteLast records a stream end seen, for the lag figure.
func (n *Node) noteLast(seq uint64) {
	for {
		cur := n.last.Load()
		if seq <= cur || n.last.CompareAndSwap(cur, seq) {
			return
		}
	}
}
