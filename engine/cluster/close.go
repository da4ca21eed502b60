package cluster

import (
	"errors"
	"time"
)

// Close stops applying, takes a final snapshot when records were applied
// since the last, and closes the connection it opened. Writes in flight get
// ErrClosed. The stream keeps everything: nothing acknowledged is lost.
func (n *Node) Close() error {
	if !n.halt() {
		return nil
	}
	n.announceGone()
	var errs []error
	if n.applied.Load() != n.snapSeq.Load() && n.staleErr() == nil {
		if _, _, err := n.snapshotLocal(); err != nil {
			errs = append(errs, err)
		}
	}
	n.closeConn()
	return errors.Join(errs...)
}

// halt stops writes, the applier and the snapshot timer; false when the
// node was already closed.
func (n *Node) halt() bool {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return false
	}
	n.closed = true
	n.mu.Unlock()
	close(n.stop)
	n.iterMu.Lock()
	n.iter.Stop()
	n.iterMu.Unlock()
	<-n.done
	<-n.bg
	<-n.hk
	<-n.sigDone
	<-n.peersDone
	n.peerSub.Unsubscribe()
	n.compactSub.Unsubscribe()
	n.ready.Store(false)
	return true
}

func (n *Node) closeConn() {
	if n.ownConn {
		n.nc.Close()
	}
}

// Stats are a node's counters, for /healthz and /metrics.
type Stats struct {
	Node             string
	Partitions       int
	Applied          uint64        // stream sequence of the last message applied
	StreamLast       uint64        // the stream's last sequence, read each second
	Lag              uint64        // messages in the stream not applied here yet
	SnapshotSeq      uint64        // stream sequence of the newest snapshot
	Records          uint64        // records applied since start
	Writes           uint64        // writes acknowledged through this node
	Messages         uint64        // messages they were packed into
	Republished      uint64        // messages published again after no ack came (leader elections)
	ConsumerRestarts uint64        // consumers made again after a stall (a lost server)
	PublishLatency   time.Duration // mean time from publish to the batch's last ack
	ApplyPerMessage  time.Duration // mean time to apply one message
	Connected        bool

	StreamFirst     uint64    // the stream's first sequence, read each second
	Leads           bool      // this node expires, shares snapshots and trims for all
	LastTrimFloor   uint64    // the last trim by this node removed the messages at or below this
	LastTrim        time.Time // zero: none since start
	Trimmed         uint64    // messages this node trimmed since start
	LastUploadSeq   uint64    // sequence of the last snapshot this node shared
	LastUpload      time.Time // zero: none since start
	SharedSnapshots uint64    // snapshots in the bucket, as last counted by this node
	Expiries        uint64    // expiry records this node published
	Stale           error     // ErrTrimmed when this node missed trimmed records; nil normally

	// A partitioned cluster's (Partitioned):
	Partitioned    bool
	Failovers      uint64           // partitions this node came to own after it was ready (their owner was lost)
	PendingSignals int              // signal records derived here and not yet in the stream
	Signals        SignalStats      // the signal records this node published and applied
	PartitionState []PartitionState // the partitions this node holds
}

// Stats returns current counters.
func (n *Node) Stats() Stats {
	s := Stats{Node: n.opts.Name, Partitions: n.partitions, Applied: n.applied.Load(), SnapshotSeq: n.snapSeq.Load(),
		Records: n.stats.records.Load(), Writes: n.stats.writes.Load(), Messages: n.stats.published.Load(), Republished: n.stats.republished.Load(), ConsumerRestarts: n.stats.stalls.Load(),
		Connected: n.nc.IsConnected(), StreamLast: n.last.Load()}
	if s.StreamLast > s.Applied {
		s.Lag = s.StreamLast - s.Applied
	}
	if s.Writes > 0 {
		s.PublishLatency = time.Duration(n.stats.pubNanos.Load() / s.Writes)
	}
	s.StreamFirst, s.Leads, s.Stale = n.first.Load(), n.leads(), n.staleErr()
	s.LastTrimFloor, s.Trimmed, s.LastUploadSeq = n.stats.trimSeq.Load(), n.stats.trimmed.Load(), n.stats.uploadSeq.Load()
	s.SharedSnapshots, s.Expiries = n.stats.shared.Load(), n.stats.expiries.Load()
	if at := n.stats.trimAt.Load(); at != 0 {
		s.LastTrim = time.Unix(0, at)
	}
	if at := n.stats.uploadAt.Load(); at != 0 {
		s.LastUpload = time.Unix(0, at)
	}
	if m := n.stats.applied.Load(); m > 0 {
		s.ApplyPerMessage = time.Duration(n.stats.applyNanos.Load() / m)
	}
	if n.layout.partitioned() {
		s.Partitioned, s.Failovers = true, n.stats.failovers.Load()
		s.PendingSignals, s.Signals, s.PartitionState = n.PendingSignals(), n.signalStats(), n.PartitionStates()
	}
	return s
}
