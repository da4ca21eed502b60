package cluster

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omnipick/omnipick/engine"
)

func TestLeads(t *testing.T) {
	for _, tc := range []struct {
		self  string
		peers []string
		want  bool
	}{
		{"n1", nil, true},
		{"n1", []string{"n2", "n3"}, true},
		{"n2", []string{"n1", "n3"}, false},
		{"n3", []string{"n2"}, false},
		{"b", []string{"a10", "c"}, false},
	} {
		n := &Node{opts: Options{Name: tc.self, PeerTimeout: time.Minute}, peers: peers{seen: map[string]peerState{}, changed: make(chan struct{})}}
		for _, p := range tc.peers {
			n.peers.seen[p] = peerState{at: time.Now()}
		}
		if got := n.leads(); got != tc.want {
			t.Errorf("%s hearing %v: leads %v, want %v", tc.self, tc.peers, got, tc.want)
		}
	}
}

// rawMsg is a stream message as JetStream holds it.
type rawMsg struct {
	seq  uint64
	id   string
	data []byte
}

// streamMessages reads every message the stream holds, raw.
func streamMessages(t *testing.T, url, stream string) []rawMsg {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []rawMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, rawMsg{seq: seq, id: m.Header.Get(nats.MsgIdHdr), data: m.Data})
	}
	return out
}

// TestClusterBackground runs the timers: the leading node publishes
// expiry records through the stream and every node drops the same
// anonymous profiles; snapshots are shared and the stream trimmed on
// time; an erasure is compacted away on time.
func TestClusterBackground(t *testing.T) {
	c := &testCluster{mod: func(o *Options) {
		o.AnonymousTTL, o.ExpireEvery = 24*time.Hour, 100*time.Millisecond
		o.NoBackground, o.SnapshotEvery, o.TrimEvery, o.EraseCompactAfter = false, 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	}}
	c.start(t, 3, 3)
	global, _ := smallWorld(t, 100, 30)
	writeAll(t, c.nodes[1], global, 200)
	now := testNow.UnixMilli()
	old := now - 48*3600*1000
	pid := global[len(global)-1]
	for _, r := range global {
		if r.Op == engine.OpProduct {
			pid = r
			break
		}
	}
	p := pid.Product.ID
	writeAll(t, c.nodes[2], []engine.Record{
		{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, AnonymousID: "ck-old", Product: p, TS: old}},
		{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, AnonymousID: "ck-new", Product: p, TS: now}},
		{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, Customer: "cust-old", Product: p, TS: old}},
	}, 10)
	waitFor(t, 30*time.Second, "the old cookie's expiry on every node", func() bool {
		for _, n := range c.nodes {
			if _, ok := n.Engine().Profile("ck-old", true); ok {
				return false
			}
		}
		return true
	})
	c.syncAll(t)
	for i, n := range c.nodes {
		_, okNew := n.Engine().Profile("ck-new", true)
		_, okCust := n.Engine().Profile("cust-old", false)
		if !okNew || !okCust {
			t.Fatalf("node %d after expiry: new cookie %v, customer %v; want both", i+1, okNew, okCust)
		}
	}
	byNode := map[string]int{}
	for _, m := range streamMessages(t, c.servers[0].ClientURL(), "OMNIPICK") {
		decodeMsg(m.data, func(_ int, r *engine.Record) {
			if r.Op == engine.OpExpire {
				name, _, _ := strings.Cut(m.id, "-")
				byNode[name]++
				if want := now - 24*3600*1000; r.Expire.Before != want {
					t.Errorf("expiry record before %d, want %d (the engine's clock less the TTL)", r.Expire.Before, want)
				}
			}
		})
	}
	// n1 has the smallest name: it expires for all. Another node does too
	// only when it did not hear from n1 for PeerTimeout (harmless).
	if byNode["n1"] == 0 {
		t.Fatalf("expiry records by node: %v; want some by n1", byNode)
	}
	t.Logf("expiry records by node: %v", byNode)

	// Trimmed on time: every node snapshots, n1 shares, n1 trims.
	waitFor(t, 30*time.Second, "the stream trimmed", func() bool { return c.nodes[0].Stats().LastTrimFloor > 0 })
	errs := []error{nil}
	if err := c.nodes[2].Write([]engine.Record{{Op: engine.OpErase, Erase: engine.Erase{Customer: "cust-old"}}}, errs); err != nil || errs[0] != nil {
		t.Fatalf("erase: %v %v", err, errs[0])
	}
	erasedAt := c.nodes[2].Applied()
	waitFor(t, 60*time.Second, "the erasure compacted away", func() bool {
		for _, n := range c.nodes {
			if n.eraseSeq.Load() != 0 || n.first.Load() <= erasedAt {
				return false
			}
		}
		return true
	})
	// Closed (their timers keep snapshotting, uploading and trimming
	// otherwise) before everything is read back raw.
	bucket := c.nodes[0].bucketName()
	for i := len(c.nodes) - 1; i >= 0; i-- {
		if err := c.nodes[i].Close(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.nodes {
		if found := snapshotsHolding(t, c.nodeDir(i), "cust-old"); len(found) > 0 {
			t.Fatalf("node %d's snapshots hold the erased id: %v", i+1, found)
		}
	}
	if st := c.nodes[0].Stats(); st.LastUploadSeq < erasedAt || st.SharedSnapshots == 0 || st.Trimmed == 0 {
		t.Fatalf("n1's figures: %+v", st)
	}
	for i := range c.nodes {
		c.nodes[i] = nil
	}
	if found := objectsHolding(t, obsOn(t, c.servers[1].ClientURL(), bucket), "cust-old"); len(found) > 0 {
		t.Fatalf("shared snapshots hold the erased id: %v", found)
	}
	if found := messagesHolding(t, c.servers[0].ClientURL(), "cust-old"); len(found) > 0 {
		t.Fatalf("messages hold the erased id: %v", found)
	}
}

// obsOn opens a bucket on a connection of its own.
func obsOn(t *testing.T, url, bucket string) jetstream.ObjectStore {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs, err := js.ObjectStore(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

// snapshotsHolding returns the snapshot files under dir whose bytes or
// content hold id; it fails on a file that does not pass its checks.
func snapshotsHolding(t *testing.T, dir, id string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, snapSuffix) {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil // removed by a newer snapshot meanwhile
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _, raw, err := parseSnapshot(path, b)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(id)) || bytes.Contains(raw, []byte(id)) {
			found = append(found, path)
		}
		return nil
	})
	return found
}

// objectsHolding returns the shared snapshots whose content holds id.
func objectsHolding(t *testing.T, obs jetstream.ObjectStore, id string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, in := range infos {
		b, err := obs.GetBytes(ctx, in.Name)
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			continue // removed by a newer upload meanwhile
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _, raw, err := parseSnapshot(in.Name, b)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(id)) || bytes.Contains(raw, []byte(id)) {
			found = append(found, in.Name+" ("+in.Description+")")
		}
	}
	return found
}

// messagesHolding returns the sequences of the stream's messages holding id.
func messagesHolding(t *testing.T, url, id string) []uint64 {
	t.Helper()
	var found []uint64
	for _, m := range streamMessages(t, url, "OMNIPICK") {
		if bytes.Contains(m.data, []byte(id)) {
			found = append(found, m.seq)
		}
	}
	return found
}

// TestClusterSharedSnapshots: snapshots shared through the bucket let a
// brand-new node join and a node the stream was trimmed past recover;
// with no usable snapshot a node is refused; an erasure followed by
// Compact leaves the id in no snapshot, shared snapshot or message.
func TestClusterSharedSnapshots(t *testing.T) {
	global, events := smallWorld(t, 200, 90)
	c := startCluster(t, 3, 3)
	qs := actorsOf(events)
	url := c.servers[0].ClientURL()
	half := len(events) / 2
	writeAll(t, c.nodes[0], global, 200)
	writeAll(t, c.nodes[1], events[:half], 50)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("the leader shares its snapshot; a brand-new node starts from it", func(t *testing.T) {
		seq, err := c.nodes[0].Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if seq2, err := c.nodes[1].Snapshot(); err != nil || seq2 != seq {
			t.Fatalf("n2 snapshot: %d %v, want %d", seq2, err, seq)
		}
		shared, err := c.nodes[2].sharedSeqs(ctx)
		if err != nil || !slices.Equal(shared, []uint64{seq}) {
			t.Fatalf("shared snapshots %v (%v); want only n1's %d (n2 does not lead)", shared, err, seq)
		}
		n4, err := c.open(0, "n4", filepath.Join(c.root, "node4"))
		if err != nil {
			t.Fatal(err)
		}
		defer n4.Close()
		if got := n4.Stats().SnapshotSeq; got != seq {
			t.Fatalf("the new node started from sequence %d, want the shared snapshot's %d", got, seq)
		}
		writeAll(t, c.nodes[2], events[half:half+10], 10)
		c.syncAll(t)
		if err := n4.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		comparePicks(t, c.nodes[0].Engine(), qs, n4.Engine())
	})

	t.Run("trim keeps what the oldest live snapshot needs", func(t *testing.T) {
		// n3 has no snapshot yet: nothing can go.
		ti, err := c.nodes[0].Trim(ctx)
		if err != nil || ti.Purged != 0 || ti.FirstSeq > 1 {
			t.Fatalf("trim with a node lacking a snapshot: %+v %v; want nothing trimmed", ti, err)
		}
		n3seq, err := c.nodes[2].Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[1].announce()
		c.nodes[2].announce()
		waitFor(t, 10*time.Second, "n2's and n3's snapshots announced", func() bool {
			ps := c.nodes[0].peerSnaps()
			return ps["n2"] == c.nodes[1].snapSeq.Load() && ps["n3"] == n3seq
		})
		floor := c.nodes[0].snapSeq.Load() // n1's, shared, older than n3's
		ti, err = c.nodes[0].Trim(ctx)
		if err != nil || ti.Floor != floor || ti.FirstSeq != floor+1 || ti.Purged == 0 {
			t.Fatalf("trim: %+v %v; want floor %d, first %d", ti, err, floor, floor+1)
		}
		if st := c.nodes[1].Stats(); st.Lag != 0 && st.Applied < floor {
			t.Fatalf("n2 after the trim: %+v", st)
		}
	})

	t.Run("a node the stream was trimmed past recovers from the shared snapshot", func(t *testing.T) {
		old := c.nodes[2].snapSeq.Load()
		if err := c.nodes[2].Close(); err != nil {
			t.Fatal(err)
		}
		c.nodes[2] = nil
		writeAll(t, c.nodes[1], events[half+10:], 50)
		seq, err := c.nodes[0].Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.nodes[1].Snapshot(); err != nil {
			t.Fatal(err)
		}
		c.nodes[0].announce()
		c.nodes[1].announce()
		waitFor(t, 10*time.Second, "n3 forgotten and n2's snapshot announced", func() bool {
			ps := c.nodes[0].peerSnaps()
			_, n3 := ps["n3"]
			return !n3 && ps["n2"] == c.nodes[1].snapSeq.Load()
		})
		ti, err := c.nodes[0].Trim(ctx)
		if err != nil || ti.FirstSeq != seq+1 || seq <= old {
			t.Fatalf("trim: %+v %v; want first %d past n3's snapshot %d", ti, err, seq+1, old)
		}
		c.openNode(t, 2)
		if got := c.nodes[2].Stats().SnapshotSeq; got != seq {
			t.Fatalf("n3 restarted from %d, want the shared snapshot's %d", got, seq)
		}
		local, _ := listSnapshots(filepath.Join(c.nodeDir(2), "snapshots"))
		if slices.Contains(local, old) {
			t.Fatalf("n3 kept its snapshot %d the stream was trimmed past: %v", old, local)
		}
		c.syncAll(t)
		comparePicks(t, c.nodes[0].Engine(), qs, c.nodes[1].Engine(), c.nodes[2].Engine())
	})

	t.Run("no usable snapshot: a node is refused, a damaged shared one is not used", func(t *testing.T) {
		seqs, err := c.nodes[0].sharedSeqs(ctx)
		if err != nil || len(seqs) == 0 {
			t.Fatalf("shared: %v %v", seqs, err)
		}
		newest := seqs[len(seqs)-1]
		good, err := c.nodes[0].obs.GetBytes(ctx, snapName(newest))
		if err != nil {
			t.Fatal(err)
		}
		bad := slices.Clone(good)
		bad[len(bad)/2] ^= 0x55 // a flipped bit in the zstd body: the checksums catch it
		if _, err := c.nodes[0].obs.PutBytes(ctx, snapName(newest), bad); err != nil {
			t.Fatal(err)
		}
		for _, s := range seqs[:len(seqs)-1] {
			if err := c.nodes[0].obs.Delete(ctx, snapName(s)); err != nil {
				t.Fatal(err)
			}
		}
		_, err = c.open(1, "n5", filepath.Join(c.root, "node5"))
		if !errors.Is(err, ErrTrimmed) {
			t.Fatalf("a new node with only a damaged shared snapshot: %v; want ErrTrimmed", err)
		}
		t.Logf("refused: %v", err)
		if _, err := c.nodes[0].obs.PutBytes(ctx, snapName(newest), good); err != nil {
			t.Fatal(err)
		}
		n5, err := c.open(1, "n5", filepath.Join(c.root, "node5"))
		if err != nil {
			t.Fatal(err)
		}
		n5.Close()
	})

	t.Run("after an erasure and Compact the id is in no snapshot, shared snapshot or message", func(t *testing.T) {
		const id = "erase-me-7f3a9c"
		var p string
		for _, r := range global {
			if r.Op == engine.OpProduct {
				p = r.Product.ID
				break
			}
		}
		writeAll(t, c.nodes[2], []engine.Record{
			{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventView, Customer: id, Product: p, TS: testNow.UnixMilli()}},
			{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventCartAdd, Customer: id, Product: p, TS: testNow.UnixMilli()}},
		}, 10)
		c.syncAll(t)
		for _, n := range c.nodes {
			if _, err := n.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
		// The checks below can see the id before the erasure.
		for i := range c.nodes {
			if len(snapshotsHolding(t, c.nodeDir(i), id)) == 0 {
				t.Fatalf("no snapshot of node %d holds the id: the check proves nothing", i+1)
			}
		}
		if len(objectsHolding(t, c.nodes[0].obs, id)) == 0 || len(messagesHolding(t, url, id)) == 0 {
			t.Fatal("no shared snapshot or message holds the id: the check proves nothing")
		}
		errs := []error{nil}
		if err := c.nodes[1].Write([]engine.Record{{Op: engine.OpErase, Erase: engine.Erase{Customer: id}}}, errs); err != nil || errs[0] != nil {
			t.Fatalf("erase: %v %v", err, errs[0])
		}
		writeAll(t, c.nodes[0], events[:5], 5) // writes after it stay
		ci, err := c.nodes[1].Compact(ctx)     // not the leader: any node coordinates
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("compact: %+v", ci)
		if ci.Nodes != 3 || ci.Trim.FirstSeq < ci.Target+1 {
			t.Fatalf("compact: %+v; want 3 nodes and the stream trimmed up to the target", ci)
		}
		for i, n := range c.nodes {
			if found := snapshotsHolding(t, c.nodeDir(i), id); len(found) > 0 {
				t.Fatalf("node %d's snapshots still hold the erased id: %v", i+1, found)
			}
			if local, _ := listSnapshots(filepath.Join(c.nodeDir(i), "snapshots")); len(local) != 1 || local[0] < ci.Target {
				t.Fatalf("node %d keeps snapshots %v; want one at %d or later", i+1, local, ci.Target)
			}
			if _, ok := n.Engine().Profile(id, false); ok {
				t.Fatalf("node %d still knows the erased customer", i+1)
			}
		}
		if found := objectsHolding(t, c.nodes[0].obs, id); len(found) > 0 {
			t.Fatalf("shared snapshots still hold the erased id: %v", found)
		}
		if found := messagesHolding(t, url, id); len(found) > 0 {
			t.Fatalf("stream messages still hold the erased id: %v", found)
		}
		if seqs, _ := c.nodes[0].sharedSeqs(ctx); len(seqs) == 0 || seqs[0] < ci.Target {
			t.Fatalf("shared snapshots %v; want only ones at %d or later", seqs, ci.Target)
		}
		// And the cluster goes on: a write, a node restarted from the
		// compacted state.
		writeAll(t, c.nodes[0], events[5:10], 5)
		if err := c.nodes[2].Close(); err != nil {
			t.Fatal(err)
		}
		c.openNode(t, 2)
		c.syncAll(t)
		comparePicks(t, c.nodes[0].Engine(), qs, c.nodes[1].Engine(), c.nodes[2].Engine())
		if _, ok := c.nodes[2].Engine().Profile(id, false); ok {
			t.Fatal("the restarted node knows the erased customer")
		}
	})
}

// gapMsg is a stream message as the consumer hands it over, for applyMsg.
type gapMsg struct {
	jetstream.Msg // the methods applyMsg does not call
	seq           uint64
	data          []byte
}

func (m gapMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}}, nil
}
func (m gapMsg) Data() []byte         { return m.data }
func (m gapMsg) Headers() nats.Header { return nats.Header{} }
func (m gapMsg) Subject() string      { return "omnipick.b" }
func (m gapMsg) Reply() string        { return "" }

// TestGapMakesStale: a node handed a message past the one after its last
// (the stream was trimmed past it) marks itself stale: it refuses writes
// and snapshots, so its incomplete state is neither served as written nor
// kept as a recovery point.
func TestGapMakesStale(t *testing.T) {
	o := Options{Name: "n1", Dir: t.TempDir()}
	o.setDefaults()
	n := &Node{opts: o, e: engine.New(testEngine()), waiters: map[string]*waiter{}}
	loc := engine.Record{Op: engine.OpLocation, Location: engine.Location{ID: "L1", Name: "Store 1"}}
	data := appendMsgRecord(nil, engine.AppendRecord(nil, &loc), loc.Op)
	for _, tc := range []struct {
		seq       uint64
		wantStale bool
	}{{1, false}, {2, false}, {5, true}, {6, true}} {
		n.applyMsg(gapMsg{seq: tc.seq, data: data})
		if got := n.staleErr() != nil; got != tc.wantStale {
			t.Fatalf("after message %d: stale %v, want %v", tc.seq, got, tc.wantStale)
		}
	}
	if err := n.Write([]engine.Record{loc}, []error{nil}); !errors.Is(err, ErrTrimmed) {
		t.Fatalf("write on a stale node: %v; want ErrTrimmed", err)
	}
	if _, err := n.Snapshot(); !errors.Is(err, ErrTrimmed) {
		t.Fatalf("snapshot on a stale node: %v; want ErrTrimmed", err)
	}
	if got := n.gapAt.Load(); got != 5 {
		t.Fatalf("gap noted at %d, want 5", got)
	}
}
