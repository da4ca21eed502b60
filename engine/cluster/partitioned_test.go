package cluster

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/internal/binfmt"
)

// partitioned makes a test cluster partitioned: members n1..nN, one
// standby per partition.
func (c *testCluster) partitioned(size int) {
	members := make([]string, size)
	for i := range members {
		members[i] = fmt.Sprintf("n%d", i+1)
	}
	prev := c.mod
	c.mod = func(o *Options) {
		o.Members, o.Standbys = members, 1
		if prev != nil {
			prev(o)
		}
	}
}

// startPartitioned starts a partitioned cluster of three servers and
// nodes, the stream at replicas, each node announcing an HTTP URL
// (withURLs), and writes global through n1.
func startPartitioned(t *testing.T, replicas int, global []engine.Record) *testCluster {
	t.Helper()
	c := &testCluster{}
	c.partitioned(3)
	withURLs(c)
	c.start(t, 3, replicas)
	writeAll(t, c.nodes[0], global, 200)
	return c
}

// quiet waits until every live node has applied the whole stream and
// holds no signal record that is not in it, twice in a row (a signal
// published meanwhile extends the stream).
func (c *testCluster) quiet(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for calm := 0; calm < 2; {
		c.syncAll(t)
		busy := false
		for _, n := range c.nodes {
			if n != nil && n.PendingSignals() > 0 {
				busy = true
			}
		}
		if busy {
			calm = 0
			if time.Now().After(deadline) {
				t.Fatal("signal records still pending after 60 s")
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		calm++
	}
}

// ownerEngine is the engine of the node that owns actor's partition, as
// node from sees it (Route).
func (c *testCluster) ownerEngine(t *testing.T, from *Node, actor string, anon bool) *Node {
	t.Helper()
	url, err := from.Route(actor, anon)
	if err != nil {
		t.Fatalf("route %s from %s: %v", actor, from.Name(), err)
	}
	if url == "" {
		return from
	}
	for _, n := range c.nodes {
		if n != nil && n.opts.HTTPURL == url {
			return n
		}
	}
	t.Fatalf("route %s from %s: %q is no live node", actor, from.Name(), url)
	return nil
}

// withURLs gives each node of a test cluster an HTTP URL to announce (no
// server listens there: tests map it back to the node).
func withURLs(c *testCluster) {
	prev := c.mod
	c.mod = func(o *Options) {
		o.HTTPURL = "http://" + o.Name + ".test"
		if prev != nil {
			prev(o)
		}
	}
}

func TestPartitionedCluster(t *testing.T) {
	global, events := smallWorld(t, 300, 120)
	c := startPartitioned(t, 3, global)

	// The layout: every partition held by two of the three nodes, each
	// node holding about two thirds.
	for _, n := range c.nodes {
		owned, standby := n.Ownership()
		if held := len(owned) + len(standby); held < 30 || held > 56 {
			t.Fatalf("%s holds %d of 64 partitions (owned %d, standby %d): want about 43", n.Name(), held, len(owned), len(standby))
		}
	}
	// Writes through every node, in turn; each acknowledged write is seen
	// at once by the actor's owner, from whichever node it is asked.
	for i := 0; len(events) > 0; i++ {
		b := events[:min(50, len(events))]
		events = events[len(b):]
		errs := make([]error, len(b))
		if err := c.nodes[i%3].Write(b, errs); err != nil {
			t.Fatal(err)
		}
		last := b[len(b)-1].Event
		actor := first(last.Customer, last.AnonymousID)
		o := c.ownerEngine(t, c.nodes[(i+1)%3], actor, last.Customer == "")
		if _, ok := o.Engine().Profile(actor, last.Customer == ""); !ok {
			t.Fatalf("write %d acknowledged, but %s (owner of %s) has no profile of it", i, o.Name(), actor)
		}
	}
	_, events = smallWorld(t, 300, 120)
	c.quiet(t)

	// Memory: a node keeps the profiles of its partitions only.
	total := len(actorsOf(events))
	for _, n := range c.nodes {
		if p := n.Engine().Stats().Profiles; p >= total || p < total/3 {
			t.Fatalf("%s keeps %d profiles of %d: want about two thirds", n.Name(), p, total)
		}
	}
	ref := referenceEngine(t, c.servers[0].ClientURL())
	checkOwners(t, c, ref, actorsOf(events))
}

// checkOwners fails unless every actor's picks on its owner (as each node
// routes it) equal the reference's, and the global signals are the same
// on every node (a cold actor's picks, relations, popularity).
func checkOwners(t *testing.T, c *testCluster, ref *engine.Engine, qs []engine.Query) {
	t.Helper()
	nonEmpty := 0
	for _, q := range qs {
		actor := first(q.Customer, q.AnonymousID)
		for _, from := range c.nodes {
			if from == nil {
				continue
			}
			o := c.ownerEngine(t, from, actor, q.Customer == "")
			w, g := picksOf(ref, q), picksOf(o.Engine(), q)
			if g != w {
				t.Fatalf("%s (owner of %s as %s routes it) answers differently:\n got  %s\n want %s", o.Name(), actor, from.Name(), g, w)
			}
			if w != "" {
				nonEmpty++
			}
		}
	}
	if nonEmpty == 0 {
		t.Fatal("no actor got picks")
	}
	cold := engine.Query{Customer: "nobody-at-all"}
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		if g, w := picksOf(n.Engine(), cold), picksOf(ref, cold); g != w {
			t.Fatalf("%s's global signals differ: a cold customer's picks\n got  %s\n want %s", n.Name(), g, w)
		}
		for _, q := range qs[:min(20, len(qs))] {
			ps := n.Engine().PicksInto(nil, &engine.Query{Customer: q.Customer, AnonymousID: q.AnonymousID, K: 3, Now: testNow.UnixMilli()})
			for _, p := range ps {
				g, _ := n.Engine().Related(p.Item.ID, 10)
				w, _ := ref.Related(p.Item.ID, 10)
				if fmt.Sprint(g) != fmt.Sprint(w) {
					t.Fatalf("%s: related of %s\n got  %v\n want %v", n.Name(), p.Item.ID, g, w)
				}
			}
		}
	}
}

// referenceEngine is the single node fed the records the cluster holds,
// in the order the cluster learned their global effects: it reads the
// stream, applies catalog, stock and identity records where they are,
// and each event where the first copy of its signal record is (an
// event's global effect takes effect there on every node). Every actor's
// events keep their stream order, so its profile is the same as its
// holders'. Identify and erase records are applied where they are: the
// tests write them when the cluster is quiet.
func referenceEngine(t *testing.T, url string) *engine.Engine {
	t.Helper()
	r := newReference()
	r.advance(t, url)
	return r.e
}

// reference is referenceEngine's state, to read on from where it stopped
// (the stream may be trimmed since).
type reference struct {
	e      *engine.Engine
	events map[origin]engine.Record
	hw     []origin
	seq    uint64 // the last message read
}

func newReference() *reference {
	return &reference{e: engine.New(testEngine()), events: map[origin]engine.Record{}}
}

// advance reads the stream from after the last message read to its end.
func (ref *reference) advance(t *testing.T, url string) {
	t.Helper()
	readStream(t, url, "OMNIPICK", ref.seq, func(seq uint64, subject string, data []byte) {
		ref.seq = seq
		if subject != "omnipick.s" {
			err := decodeMsg(data, func(i int, r *engine.Record) {
				if r.Op == engine.OpEvent {
					ref.events[origin{seq: seq, idx: uint32(i)}] = *r
					return
				}
				ref.e.Apply(r)
			})
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		rd := binfmt.NewReader(data)
		for rd.Len() > 0 {
			p := rd.Uvarint()
			o, op, _ := readSig(rd)
			if rd.Err() != nil {
				t.Fatal(rd.Err())
			}
			for uint64(len(ref.hw)) <= p {
				ref.hw = append(ref.hw, origin{})
			}
			if !o.after(ref.hw[p]) {
				continue
			}
			ref.hw[p] = o
			if op != engine.OpSignal {
				continue // a merge, forget or expire: the reference did it at the record
			}
			r, ok := ref.events[origin{seq: o.seq, idx: o.idx}]
			if !ok {
				t.Fatalf("a signal names record %d of message %d, which is no event", o.idx, o.seq)
			}
			delete(ref.events, origin{seq: o.seq, idx: o.idx})
			if err := ref.e.Apply(&r); err != nil {
				t.Fatalf("the reference refuses the event of signal %v: %v", o, err)
			}
		}
	})
}

// readStream calls fn with every message of the stream after sequence
// from, in order.
func readStream(t *testing.T, url, stream string, from uint64, fn func(seq uint64, subject string, data []byte)) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if info.State.LastSeq <= from {
		return
	}
	cfg := jetstream.OrderedConsumerConfig{}
	if from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from+1
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer it.Stop()
	watchdog := time.AfterFunc(60*time.Second, it.Stop)
	defer watchdog.Stop()
	for seq := from; seq < info.State.LastSeq; {
		msg, err := it.Next()
		if err != nil {
			t.Fatalf("next after %d of %d: %v", seq, info.State.LastSeq, err)
		}
		meta, _ := msg.Metadata()
		seq = meta.Sequence.Stream
		fn(seq, msg.Subject(), msg.Data())
	}
}

// crossPair returns an anonymous id and a customer whose partitions have
// different holders: a holder of the cookie's that does not hold the
// customer's (it must send the history on: an OpMerge) and one of the
// customer's that does not hold the cookie's (it receives it).
func crossPair(t *testing.T, n *Node, tag string) (anon, customer string) {
	t.Helper()
	for i := range 10000 {
		a, cu := fmt.Sprintf("cookie-%s-%d", tag, i), fmt.Sprintf("cust-%s-%d", tag, i)
		pa, pc := Partition(a, n.partitions), Partition(cu, n.partitions)
		sends := slices.ContainsFunc(n.layout.holders[pa], func(h string) bool { return !n.layout.holds(h, pc) })
		gets := slices.ContainsFunc(n.layout.holders[pc], func(h string) bool { return !n.layout.holds(h, pa) })
		if sends && gets {
			return a, cu
		}
	}
	t.Fatal("no pair of partitions with different holders")
	return "", ""
}

func TestPartitionedIdentifyAcrossPartitions(t *testing.T) {
	global, _ := smallWorld(t, 200, 10)
	c := startPartitioned(t, 1, global)
	var products []string
	for _, r := range global {
		if r.Op == engine.OpProduct && len(products) < 12 {
			products = append(products, r.Product.ID)
		}
	}
	anon, cust := crossPair(t, c.nodes[0], "x")
	anon2, _ := crossPair(t, c.nodes[0], "y") // a second cookie, linked to the first (a chain)
	minute := func(at int) time.Time { return testNow.Add(time.Duration(at-100) * time.Minute) }
	var recs []engine.Record
	for i, p := range products[:6] {
		recs = append(recs, actorEvent(anon, true, engine.EventView, p, minute(i)))
		recs = append(recs, actorEvent(anon2, true, engine.EventView, products[11-i], minute(i)))
	}
	recs = append(recs, actorEvent(cust, false, engine.EventView, products[7], minute(10)))
	writeAll(t, c.nodes[1], recs, 100)
	c.quiet(t)
	// One identify at a time: two merges into one actor from different
	// partitions at once may land in either order (docs/cluster.md,
	// "Guarantees"); every node applies the stream's, a single node
	// merges in record order.
	writeAll(t, c.nodes[2], []engine.Record{{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: anon2, ToAnonymousID: anon}}}, 10)
	c.quiet(t)
	writeAll(t, c.nodes[1], []engine.Record{{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: anon, Customer: cust}}}, 10)
	// Acknowledged: the cookies' history is with the customer's owner
	// already (the identify waited for the merge records).
	if pv, _ := c.ownerEngine(t, c.nodes[0], anon, true).Engine().Profile(cust, false); len(pv.Views) < 12 {
		t.Fatalf("right after the identify, the customer's owner has %d views of its cookies': want 12", len(pv.Views))
	}
	c.quiet(t)
	// Later events of both cookies land on the customer, wherever it is.
	writeAll(t, c.nodes[0], []engine.Record{actorEvent(anon, true, engine.EventView, products[8], minute(20)), actorEvent(anon2, true, engine.EventCartAdd, products[9], minute(21))}, 10)
	c.quiet(t)

	ref := referenceEngine(t, c.servers[0].ClientURL())
	want, _ := ref.Profile(cust, false)
	o := c.ownerEngine(t, c.nodes[0], cust, false)
	got, ok := o.Engine().Profile(cust, false)
	if !ok || len(got.Views) != len(want.Views) || len(got.Views) < 12 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("customer %s on its owner %s:\n got  %+v\n want %+v", cust, o.Name(), got, want)
	}
	checkOwners(t, c, ref, []engine.Query{{Customer: cust}, {AnonymousID: anon}, {AnonymousID: anon2}})
}

// TestPartitionedFailover kills the owner of partitions while writers go
// on through the other nodes: its partitions are served again by their
// standbys within 5 s, every acknowledged event is there, and a restarted
// node catches up from its snapshot.
func TestPartitionedFailover(t *testing.T) {
	global, events := smallWorld(t, 300, 150)
	c := startPartitioned(t, 3, global)
	half := len(events) / 2
	writeAll(t, c.nodes[1], events[:half], 50)
	c.quiet(t)
	victim := 2
	if _, err := c.nodes[victim].Snapshot(); err != nil {
		t.Fatal(err)
	}
	owned, _ := c.nodes[victim].Ownership()
	if len(owned) == 0 {
		t.Fatal("the victim owns nothing")
	}

	// Writers through the two survivors; the victim is killed midway.
	var mu sync.Mutex
	var acked []engine.Record
	rest := events[half:]
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w * 25; i < len(rest); i += 50 {
				b := rest[i:min(i+25, len(rest))]
				errs := make([]error, len(b))
				if err := c.nodes[w].Write(b, errs); err != nil {
					t.Errorf("write through n%d: %v", w+1, err)
					return
				}
				mu.Lock()
				acked = append(acked, b...)
				mu.Unlock()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	killed := time.Now()
	c.kill(victim)
	// Its partitions served again: the survivors route them to a live
	// node that holds them.
	var servedIn time.Duration
	for {
		ok := true
		for _, p := range owned {
			for _, n := range c.nodes[:2] {
				if o := n.owners.Load().owner[p]; o == "" || o == fmt.Sprintf("n%d", victim+1) {
					ok = false
				}
			}
		}
		if ok {
			servedIn = time.Since(killed)
			break
		}
		if time.Since(killed) > 10*time.Second {
			t.Fatal("the lost node's partitions are not served again after 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("partitions of the killed node served again after %v", servedIn)
	if servedIn > 5*time.Second {
		t.Errorf("failover took %v: want within 5 s", servedIn)
	}
	wg.Wait()
	c.quiet(t)
	if c.nodes[0].Stats().Failovers+c.nodes[1].Stats().Failovers == 0 {
		t.Error("no survivor counted a failover")
	}
	ref := referenceEngine(t, c.servers[0].ClientURL())
	// Every acknowledged event is on its actor's owner.
	for _, r := range acked {
		actor := first(r.Event.Customer, r.Event.AnonymousID)
		o := c.ownerEngine(t, c.nodes[0], actor, r.Event.Customer == "")
		pv, ok := o.Engine().Profile(actor, r.Event.Customer == "")
		if !ok {
			t.Fatalf("acknowledged event of %s lost: %s has no profile", actor, o.Name())
		}
		w, _ := ref.Profile(actor, r.Event.Customer == "")
		if fmt.Sprint(pv) != fmt.Sprint(w) {
			t.Fatalf("%s on %s:\n got  %+v\n want %+v", actor, o.Name(), pv, w)
		}
	}
	checkOwners(t, c, ref, actorsOf(events))

	// The killed node comes back: from its snapshot and the stream.
	c.startServer(t, victim)
	c.openNode(t, victim)
	c.quiet(t)
	waitFor(t, 10*time.Second, "the returned node to own its partitions again", func() bool {
		o, _ := c.nodes[victim].Ownership()
		return len(o) == len(owned)
	})
	ref = referenceEngine(t, c.servers[0].ClientURL())
	checkOwners(t, c, ref, actorsOf(events))
}

func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		members  []string
		standbys int
	}{
		{[]string{"n1"}, 1},
		{[]string{"n1", "n2"}, 1},
		{[]string{"n1", "n2", "n3"}, 1},
		{[]string{"n3", "n1", "n2", "n4", "n5"}, 2},
	} {
		l := newLayout(tc.members, tc.standbys, 64)
		holds := map[string]int{}
		for p, hs := range l.holders {
			want := min(1+tc.standbys, len(tc.members))
			if len(hs) != want || len(slices.Compact(slices.Sorted(slices.Values(hs)))) != want {
				t.Fatalf("%v: partition %d held by %v: want %d distinct", tc.members, p, hs, want)
			}
			for _, h := range hs {
				holds[h]++
			}
		}
		// Spread: each member holds its share within a factor of two.
		share := 64 * min(1+tc.standbys, len(tc.members)) / len(tc.members)
		for _, m := range tc.members {
			if holds[m] < share/2 || holds[m] > share*2 {
				t.Fatalf("%v: %s holds %d partitions: want about %d", tc.members, m, holds[m], share)
			}
		}
		// Owners balanced within one; a member's partitions' standbys
		// spread over the others.
		first := map[string]int{}
		standbyOf := map[string]map[string]int{}
		for _, hs := range l.holders {
			first[hs[0]]++
			for _, h := range hs[1:] {
				if standbyOf[hs[0]] == nil {
					standbyOf[hs[0]] = map[string]int{}
				}
				standbyOf[hs[0]][h]++
			}
		}
		for _, m := range tc.members {
			if first[m] < 64/len(tc.members) || first[m] > 64/len(tc.members)+1 {
				t.Fatalf("%v: %s is first holder of %d partitions: want %d or %d", tc.members, m, first[m], 64/len(tc.members), 64/len(tc.members)+1)
			}
			if tc.standbys > 0 && len(tc.members) > 1 && len(standbyOf[m]) != len(tc.members)-1 {
				t.Fatalf("%v: %s's partitions stand by on %v: want every other member", tc.members, m, standbyOf[m])
			}
		}
		// The same members in another order give the same layout.
		rev := slices.Clone(tc.members)
		slices.Reverse(rev)
		if l2 := newLayout(rev, tc.standbys, 64); fmt.Sprint(l2.holders) != fmt.Sprint(l.holders) {
			t.Fatalf("%v: the layout depends on the members' order", tc.members)
		}
	}
	if _, err := parseMembers("n1,n1"); err == nil {
		t.Fatal("a member twice is accepted")
	}
	if _, err := parseMembers("n1,,n2"); err == nil {
		t.Fatal("an empty member is accepted")
	}
}

// TestPartitionedTrimAndReplace: every member shares its own snapshots,
// the stream is trimmed below the oldest member's, and a member whose
// disk is lost (same name, empty folder) comes back from its own shared
// snapshot and the stream.
func TestPartitionedTrimAndReplace(t *testing.T) {
	global, events := smallWorld(t, 200, 80)
	c := startPartitioned(t, 3, global)
	half := len(events) / 2
	writeAll(t, c.nodes[1], events[:half], 50)
	c.quiet(t)
	// Before every member shared a snapshot, nothing is trimmed.
	if _, err := c.nodes[0].Snapshot(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitFor(t, 5*time.Second, "n1's shared snapshot announced", func() bool { return c.nodes[1].memberShared()["n1"] > 0 })
	if ti, err := c.nodes[0].Trim(ctx); err != nil || ti.Purged != 0 {
		t.Fatalf("trim with members without a shared snapshot: %+v %v; want nothing purged", ti, err)
	}
	for _, n := range c.nodes[1:] {
		if _, err := n.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	ref := newReference() // read before the trim, on after
	ref.advance(t, c.servers[0].ClientURL())
	waitFor(t, 5*time.Second, "every member's shared snapshot announced", func() bool {
		for _, s := range c.nodes[0].memberShared() {
			if s == 0 {
				return false
			}
		}
		return true
	})
	ti, err := c.nodes[0].Trim(ctx)
	if err != nil || ti.Purged == 0 {
		t.Fatalf("trim: %+v %v; want messages purged", ti, err)
	}
	writeAll(t, c.nodes[2], events[half:], 50)
	c.quiet(t)

	// n3's disk is lost: it comes back with an empty folder.
	victim := 2
	c.kill(victim)
	if err := os.RemoveAll(c.nodeDir(victim)); err != nil {
		t.Fatal(err)
	}
	c.startServer(t, victim)
	c.openNode(t, victim)
	c.quiet(t)
	if st := c.nodes[victim].Stats(); st.SnapshotSeq == 0 || st.SnapshotSeq < ti.Floor {
		t.Fatalf("the replaced node started from snapshot %d: want its shared one, at %d or later", st.SnapshotSeq, ti.Floor)
	}
	ref.advance(t, c.servers[0].ClientURL())
	checkOwners(t, c, ref.e, actorsOf(events))
}
