package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Every ready node announces how far it has applied the stream, on the
// core NATS subject <stream>.applied, after each message it applies and
// on a heartbeat. A write waits, after its own node applied it, until
// every node heard from within PeerTimeout has applied it too: so an
// acknowledged write is visible to the next request on any live node.
// A node that stops announcing (lost) is no longer waited for after
// PeerTimeout; one still catching up announces nothing until it is ready
// (it serves no requests before).

const heartbeat = 250 * time.Millisecond

type peers struct {
	mu      sync.Mutex
	seen    map[string]peerState
	changed chan struct{} // closed and replaced when a peer advances
	// shared: each member's newest shared snapshot as it announced it,
	// kept after it is lost (a partitioned cluster trims no record a
	// member would need to recover).
	shared map[string]uint64
}

type peerState struct {
	seq  uint64 // applied
	snap uint64 // its newest snapshot's sequence: where it recovers from
	url  string // its HTTP base URL, where requests it owns are forwarded
	// pendingOldest: the stream sequence of the origin of the oldest
	// record it derived that is not yet in the stream (partitioned
	// clusters; 0: none)
	pendingOldest uint64
	at            time.Time
}

func (n *Node) startPeers() error {
	n.peers = peers{seen: map[string]peerState{}, changed: make(chan struct{}), shared: map[string]uint64{}}
	sub, err := n.nc.Subscribe(n.subject+".applied", n.onAnnounce)
	if err != nil {
		return fmt.Errorf("cannot subscribe to the nodes' progress: %w", err)
	}
	n.peerSub = sub
	if n.compactSub, err = n.nc.Subscribe(n.subject+".compact", n.onCompact); err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("cannot subscribe to compaction requests: %w", err)
	}
	go n.announceLoop()
	return nil
}

func (n *Node) onAnnounce(m *nats.Msg) {
	name, seqText, ok := strings.Cut(string(m.Data), " ")
	if !ok || name == n.opts.Name {
		return
	}
	p := &n.peers
	if seqText == goneMark {
		p.mu.Lock()
		delete(p.seen, name)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		n.refreshOwners() // its partitions go to their standbys at once
		return
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return
	}
	// The snapshot's sequence rides in a header, which a node of an
	// earlier version neither sends nor reads: one without it counts as
	// having no snapshot (nothing is trimmed while it is heard from).
	snap, _ := strconv.ParseUint(m.Header.Get(snapHeader), 10, 64)
	shared, _ := strconv.ParseUint(m.Header.Get(sharedHeader), 10, 64)
	url := m.Header.Get(httpHeader)
	oldest, _ := strconv.ParseUint(m.Header.Get(oldestHeader), 10, 64)
	p.mu.Lock()
	prev, known := p.seen[name]
	p.seen[name] = peerState{seq: seq, snap: snap, url: url, pendingOldest: oldest, at: time.Now()}
	if shared > 0 {
		p.shared[name] = shared
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	// A node that appears (or comes back, or moves) may own partitions.
	if !known || prev.url != url || time.Since(prev.at) > n.opts.PeerTimeout {
		n.refreshOwners()
	}
}

// announce tells the other nodes how far this one has applied.
func (n *Node) announce() {
	if n.ready.Load() {
		m := nats.NewMsg(n.subject + ".applied")
		m.Data = []byte(n.opts.Name + " " + strconv.FormatUint(n.applied.Load(), 10))
		m.Header.Set(snapHeader, strconv.FormatUint(n.snapSeq.Load(), 10))
		if s := n.sharedSeq.Load(); s > 0 {
			m.Header.Set(sharedHeader, strconv.FormatUint(s, 10))
		}
		if n.opts.HTTPURL != "" {
			m.Header.Set(httpHeader, n.opts.HTTPURL)
		}
		if n.layout.partitioned() {
			_, oldest := n.pendingSignals()
			m.Header.Set(oldestHeader, strconv.FormatUint(oldest, 10))
		}
		n.nc.PublishMsg(m)
	}
}

// snapHeader carries an announcing node's snapshot sequence: where it
// recovers from, which trimming must keep.
const snapHeader = "Omnipick-Snapshot-Seq"

// sharedHeader carries a member's newest shared snapshot sequence
// (partitioned clusters: each member shares its own), httpHeader its HTTP
// base URL.
const (
	sharedHeader = "Omnipick-Shared-Seq"
	httpHeader   = "Omnipick-HTTP"
	// oldestHeader: the stream sequence of the origin of the oldest
	// record the node derived that is not in the stream yet (0: none); a
	// compaction waits for none, an identify for none up to its own.
	oldestHeader = "Omnipick-Pending-Oldest"
)

// goneMark is announced by a node that closes: writes stop waiting for it
// at once rather than after PeerTimeout.
const goneMark = "-"

func (n *Node) announceGone() {
	n.nc.Publish(n.subject+".applied", []byte(n.opts.Name+" "+goneMark))
	n.nc.Flush()
}

func (n *Node) announceLoop() {
	defer close(n.peersDone)
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.refreshOwners() // a peer not heard from for PeerTimeout loses its partitions
			n.announce()
		}
	}
}

// waitPeers returns once every node heard from within PeerTimeout has
// applied the stream up to seq.
func (n *Node) waitPeers(ctx context.Context, seq uint64) error {
	for {
		p := &n.peers
		p.mu.Lock()
		behind, changed := "", p.changed
		for name, st := range p.seen {
			if time.Since(st.at) > n.opts.PeerTimeout {
				delete(p.seen, name) // lost, or gone: no longer waited for
				continue
			}
			if st.seq < seq {
				behind = name
			}
		}
		p.mu.Unlock()
		if behind == "" {
			return nil
		}
		select {
		case <-changed:
		case <-time.After(heartbeat):
		case <-n.stop:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("node %s has not applied %d: %w", behind, seq, ctx.Err())
		}
	}
}

// Peers returns the nodes this one hears from and how far each applied.
func (n *Node) Peers() map[string]uint64 {
	return n.livePeers(func(st peerState) uint64 { return st.seq })
}

// peerSnaps returns the snapshot sequences the live nodes announce.
func (n *Node) peerSnaps() map[string]uint64 {
	return n.livePeers(func(st peerState) uint64 { return st.snap })
}

// livePeers returns a figure of every node heard from within PeerTimeout.
func (n *Node) livePeers(figure func(peerState) uint64) map[string]uint64 {
	live := n.livePeerStates()
	out := make(map[string]uint64, len(live))
	for name, st := range live {
		out[name] = figure(st)
	}
	return out
}

// livePeerStates returns what the nodes heard from within PeerTimeout
// last announced.
func (n *Node) livePeerStates() map[string]peerState {
	p := &n.peers
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]peerState, len(p.seen))
	for name, st := range p.seen {
		if time.Since(st.at) <= n.opts.PeerTimeout {
			out[name] = st
		}
	}
	return out
}

// memberShared returns the newest shared snapshot each member announced,
// lost members included (0: none heard of).
func (n *Node) memberShared() map[string]uint64 {
	p := &n.peers
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]uint64, len(n.layout.members))
	for _, m := range n.layout.members {
		out[m] = p.shared[m]
	}
	out[n.opts.Name] = n.sharedSeq.Load() // a node hears its own announcements not
	return out
}
