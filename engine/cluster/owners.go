package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Ownership in a partitioned cluster. The cluster's members (node names)
// and how many standbys each partition has are fixed when the stream is
// created (its metadata, like the partition count). Partition p is held by
// 1+Standbys members, in a fixed order (newLayout: each member first for
// P/N partitions, their standbys spread over the others). A holder keeps
// p's profiles and applies p's records; the others keep none of them.
//
// The owner of p is its first holder that is live: this node, or a node
// heard from within PeerTimeout (peers.go). Every node computes it from
// what it hears; no agreement is needed for correctness, because what an
// owner does for its partition (publishing the signal records its events
// produce, signals.go) is the same whichever holder does it: the records
// are a function of the partition's records in stream order, and every
// node applies a partition's signals once, by origin. Two nodes that both
// believe they own p for a moment publish the same records twice; the
// second copy is skipped everywhere. This is why the map is computed and
// not stored in a KV bucket: a bucket would need a leader to write it and
// a failover to wait for that write, and would add nothing that makes an
// answer right.

// Metadata keys of a partitioned cluster's stream.
const (
	membersKey  = "omnipick_members"
	standbysKey = "omnipick_standbys"
)

// ErrNoOwner: no holder of an actor's partition is live.
var ErrNoOwner = errors.New("no live node holds the partition")

// layout is who holds each partition. It is fixed for the stream's life.
type layout struct {
	members  []string   // sorted
	standbys int        // holders beyond the owner
	holders  [][]string // by partition: the holders, in preference order
}

// newLayout computes the holders of every partition: with the members
// sorted by name, partition p's first holder is member p mod N, and its
// standbys the members at offsets 1+(q+k) mod (N-1), k = 0..standbys-1,
// from it, where q = p div N. Each member is first holder of P/N
// partitions (give or take one), and the standbys of one member's
// partitions cycle through all the others, so a lost member's load is
// spread over the survivors rather than falling on one.
func newLayout(members []string, standbys, partitions int) layout {
	l := layout{members: slices.Sorted(slices.Values(members)), standbys: max(0, min(standbys, len(members)-1))}
	n := len(l.members)
	l.holders = make([][]string, partitions)
	for p := range partitions {
		o := p % n
		hs := make([]string, 1, 1+l.standbys)
		hs[0] = l.members[o]
		for k := range l.standbys {
			hs = append(hs, l.members[(o+1+(p/n+k)%(n-1))%n])
		}
		l.holders[p] = hs
	}
	return l
}

// partitioned reports whether the cluster has owners per partition; a
// cluster created without members is fully replicated (every node holds
// every partition).
func (l *layout) partitioned() bool { return len(l.members) > 0 }

// holds reports whether member m holds partition p.
func (l *layout) holds(m string, p int) bool { return slices.Contains(l.holders[p], m) }

// parseMembers reads a stream's member list: names separated by commas.
func parseMembers(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	ms := strings.Split(s, ",")
	seen := map[string]bool{}
	for _, m := range ms {
		if m == "" || strings.ContainsAny(m, " #") || seen[m] {
			return nil, fmt.Errorf("bad member list %q: names must be unique, non-empty, without spaces or '#'", s)
		}
		seen[m] = true
	}
	return ms, nil
}

// owner returns the owner of partition p as this node sees it: its first
// holder that is this node or a live peer.
func (n *Node) owner(p int, live map[string]peerState) (string, bool) {
	for _, h := range n.layout.holders[p] {
		if h == n.opts.Name {
			return h, true
		}
		if _, ok := live[h]; ok {
			return h, true
		}
	}
	return "", false
}

// owners is the ownership as this node last computed it (refreshOwners):
// Route reads it on every forwarded request, without a lock or an
// allocation.
type owners struct {
	owner []string // by partition; "" when no holder is live
	url   []string // by partition: the owner's HTTP base URL; "" for this node
	mine  []bool   // by partition: this node owns it
}

// refreshOwners computes who owns each partition from the peers heard
// from now. Called on the heartbeat, and when a peer appears or leaves.
func (n *Node) refreshOwners() {
	if !n.layout.partitioned() {
		return
	}
	n.ownersMu.Lock()
	defer n.ownersMu.Unlock()
	live := n.livePeerStates()
	t := &owners{owner: make([]string, n.partitions), url: make([]string, n.partitions), mine: make([]bool, n.partitions)}
	prev := n.owners.Load()
	for p := range n.partitions {
		o, ok := n.owner(p, live)
		if !ok {
			continue
		}
		t.owner[p] = o
		t.mine[p] = o == n.opts.Name
		if !t.mine[p] {
			t.url[p] = live[o].url
		}
		if t.mine[p] && prev != nil && !prev.mine[p] && n.ready.Load() {
			n.stats.failovers.Add(1)
			n.opts.Log.Info("took over a partition", "node", n.opts.Name, "partition", p, "was", prev.owner[p])
		}
	}
	n.owners.Store(t)
}

// Partitioned reports whether partitions have owners (the stream was
// created with members); otherwise every node holds everything.
func (n *Node) Partitioned() bool { return n.layout.partitioned() }

// Route says where requests about an actor (an anonymous id with anon)
// are answered: "" here (this node owns the partition of the actor its
// links lead to, or every node holds everything), else the HTTP base URL
// of the owner. ErrNoOwner when no holder is live, or the owner announced
// no address.
func (n *Node) Route(actor string, anon bool) (string, error) {
	if !n.layout.partitioned() {
		return "", nil
	}
	return n.ownerURL(n.owners.Load(), n.partitionOf(actor, anon))
}

// ownerURL is the HTTP base URL of partition p's owner in t: "" for this
// node; ErrNoOwner when no holder is live, or the owner announced no
// address.
func (n *Node) ownerURL(t *owners, p int) (string, error) {
	switch {
	case t.owner[p] == "":
		return "", fmt.Errorf("%w: partition %d (holders %v)", ErrNoOwner, p, n.layout.holders[p])
	case t.mine[p]:
		return "", nil
	case t.url[p] == "":
		return "", fmt.Errorf("%w: owner %s of partition %d announced no HTTP address", ErrNoOwner, t.owner[p], p)
	}
	return t.url[p], nil
}

// partitionOf is the partition of an actor (an anonymous id with anon),
// links followed: an anonymous id's history may live with a customer of
// another partition.
func (n *Node) partitionOf(actor string, anon bool) int {
	if anon {
		actor, _ = n.e.Resolve(actor, anon)
	}
	return Partition(actor, n.partitions)
}

// Owns reports whether this node owns the partition of an actor (an
// anonymous id with anon, links followed) now; every node does when
// partitions have no owners.
func (n *Node) Owns(actor string, anon bool) bool {
	if !n.layout.partitioned() {
		return true
	}
	return n.owners.Load().mine[n.partitionOf(actor, anon)]
}

// OwnerURLs returns the HTTP base URLs of the other live nodes that own
// partitions now, for requests over every actor (audiences); ErrNoOwner
// when a partition has no live holder or its owner no address.
func (n *Node) OwnerURLs() ([]string, error) {
	if !n.layout.partitioned() {
		return nil, nil
	}
	t := n.owners.Load()
	var urls []string
	for p := range n.partitions {
		u, err := n.ownerURL(t, p)
		if err != nil {
			return nil, err
		}
		if u != "" && !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	slices.Sort(urls)
	return urls, nil
}

// Ownership lists the partitions this node owns now, and those it holds
// as a standby (a live holder comes before it).
func (n *Node) Ownership() (owned, standby []int) {
	if !n.layout.partitioned() {
		for p := range n.partitions {
			owned = append(owned, p)
		}
		return owned, nil
	}
	t := n.owners.Load()
	for p := range n.partitions {
		switch {
		case t.mine[p]:
			owned = append(owned, p)
		case n.layout.holds(n.opts.Name, p):
			standby = append(standby, p)
		}
	}
	return owned, standby
}

// heldSet is the engine's Options.Holds of this node: the actors whose
// partitions it holds.
func (n *Node) heldSet() func(actor string) bool {
	held := make([]bool, n.partitions)
	for p := range held {
		held[p] = n.layout.holds(n.opts.Name, p)
	}
	return func(actor string) bool { return held[Partition(actor, n.partitions)] }
}
