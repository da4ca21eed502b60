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
}

type peerState struct {
	seq  uint64 // applied
	snap uint64 // its newest snapshot's sequence: where it recovers from
	at   time.Time
}

func (n *Node) startPeers() error {
	n.peers = peers{seen: map[string]peerState{}, changed: make(chan struct{})}
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
	p.mu.Lock()
	p.seen[name] = peerState{seq: seq, snap: snap, at: time.Now()}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// announce tells the other nodes how far this one has applied.
func (n *Node) announce() {
	if n.ready.Load() {
		m := nats.NewMsg(n.subject + ".applied")
		m.Data = []byte(n.opts.Name + " " + strconv.FormatUint(n.applied.Load(), 10))
		m.Header.Set(snapHeader, strconv.FormatUint(n.snapSeq.Load(), 10))
		n.nc.PublishMsg(m)
	}
}

// snapHeader carries an announcing node's snapshot sequence: where it
// recovers from, which trimming must keep.
const snapHeader = "Omnipick-Snapshot-Seq"

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
	p := &n.peers
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]uint64, len(p.seen))
	for name, st := range p.seen {
		if time.Since(st.at) <= n.opts.PeerTimeout {
			out[name] = figure(st)
		}
	}
	return out
}
