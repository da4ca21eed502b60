package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/omnipick/omnipick/engine"
)

// Options configure a Node.
type Options struct {
	URL    string         // NATS client URL(s), comma-separated
	Conn   *nats.Conn     // or an open connection (the node does not close it)
	Name   string         // this node's name, for logs and /healthz
	Dir    string         // data folder: snapshots (no write-ahead log: the stream is the log)
	Engine engine.Options // options of the engine the node builds
	Log    *slog.Logger   // default: discard

	Stream     string // stream name; default "OMNIPICK"; subjects are its lower case
	Partitions int    // partitions of a new cluster; default 64; an existing stream's count wins
	Replicas   int    // stream replicas of a new cluster; default 3

	// Members, set when the stream is created, makes a partitioned
	// cluster: each partition is held by 1+Standbys of these nodes
	// (owners.go), which alone keep its profiles. Empty: every node holds
	// every partition. An existing stream's members and standbys win.
	Members  []string
	Standbys int // holders of a partition beyond its owner (0: none; serve's -standbys defaults to 1)
	// HTTPURL is this node's HTTP base URL ("http://10.0.0.1:7070"),
	// announced to the others: requests about the actors it owns are
	// forwarded there.
	HTTPURL string

	// Window is the number of published messages awaiting JetStream's ack
	// before further publishes wait (up to StallWait, then ErrOverloaded).
	Window    int           // default 4096
	StallWait time.Duration // default 5 s
	// WriteTimeout bounds how long a write waits for its acks and for this
	// node to apply it; default 30 s.
	WriteTimeout time.Duration
	// AckWait is how long a published message waits for its ack before it
	// is published again (same id: stored once); default 1 s. It bounds
	// how long a write stalls beyond the election of a new stream leader.
	AckWait time.Duration
	// PeerTimeout: a node not heard from for this long is no longer waited
	// for by writes (it is lost); default 2 s.
	PeerTimeout time.Duration
	MaxMsgBytes int // records per message up to this size; default 256 KiB

	// StallAfter: when the stream holds messages this node has not
	// applied and none arrived for this long, the consumer is made
	// again (a consumer whose server was lost can wait out a long
	// backoff inside the client); default 3 s.
	StallAfter time.Duration

	SnapshotEvery time.Duration // snapshot this often when records were applied; default 10 min
	// NoBackground: no snapshot, trim or erasure-compaction timer (tests
	// call Snapshot, Trim and Compact by hand); expiry still runs.
	NoBackground bool

	// AnonymousTTL: every ExpireEvery the leading node publishes an
	// engine.OpExpire record dropping anonymous profiles unused this long,
	// as the single-node store writes one to its log (default 30 days;
	// negative: never). ExpireEvery defaults to 1 hour.
	AnonymousTTL time.Duration
	ExpireEvery  time.Duration
	// SharedSnapshots: how many snapshots the shared bucket keeps; default 3.
	SharedSnapshots int
	// TrimEvery: how often the leading node trims the stream; default 10 min.
	TrimEvery time.Duration
	// EraseCompactAfter: after an erasure, the leading node compacts the
	// cluster (Compact) within this long; default 10 min.
	EraseCompactAfter time.Duration
}

func (o *Options) setDefaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Stream == "" {
		o.Stream = "OMNIPICK"
	}
	if o.Partitions <= 0 {
		o.Partitions = DefaultPartitions
	}
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	o.Standbys = max(o.Standbys, 0)
	if o.Window <= 0 {
		o.Window = 4096
	}
	if o.StallWait <= 0 {
		o.StallWait = 5 * time.Second
	}
	if o.PeerTimeout <= 0 {
		o.PeerTimeout = 2 * time.Second
	}
	if o.AckWait <= 0 {
		o.AckWait = time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.MaxMsgBytes <= 0 {
		o.MaxMsgBytes = 256 << 10
	}
	if o.StallAfter <= 0 {
		o.StallAfter = 3 * time.Second
	}
	if o.SnapshotEvery <= 0 {
		o.SnapshotEvery = 10 * time.Minute
	}
	if o.AnonymousTTL == 0 {
		o.AnonymousTTL = 30 * 24 * time.Hour
	}
	if o.ExpireEvery <= 0 {
		o.ExpireEvery = time.Hour
	}
	if o.SharedSnapshots <= 0 {
		o.SharedSnapshots = 3
	}
	if o.TrimEvery <= 0 {
		o.TrimEvery = 10 * time.Minute
	}
	if o.EraseCompactAfter <= 0 {
		o.EraseCompactAfter = 10 * time.Minute
	}
}

// Errors of a node.
var (
	ErrClosed      = errors.New("cluster node closed")
	ErrRecordLarge = errors.New("record larger than a message may be")
	ErrBadMessage  = errors.New("malformed message in the stream")
	ErrNotMember   = errors.New("not a member of the cluster")
)

const partitionsKey = "omnipick_partitions"

// Node is one omnipick process of a cluster: it publishes writes to the
// stream and applies the whole stream, in stream order, to its engine.
// Safe for concurrent use.
type Node struct {
	opts       Options
	nc         *nats.Conn
	ownConn    bool
	js         jetstream.JetStream
	stream     jetstream.Stream
	obs        jetstream.ObjectStore // shared snapshots
	subject    string                // subject prefix
	partitions int
	layout     layout // who holds each partition; empty: every node holds everything
	e          *engine.Engine

	ownersMu  sync.Mutex             // one refreshOwners at a time
	owners    atomic.Pointer[owners] // who owns each partition now, as this node sees it
	sig       signals                // a partitioned node's signal records (signals.go)
	sharedSeq atomic.Uint64          // this node's newest shared snapshot (partitioned clusters)

	applyMu   sync.Mutex      // one apply at a time; a snapshot begins under it
	recs      []engine.Record // the message being applied; guarded by applyMu
	errs      []error         // its records' verdicts; guarded by applyMu
	snapMu    sync.Mutex      // one snapshot written at a time
	compactMu sync.Mutex      // one compaction at a time
	applied   atomic.Uint64
	snapSeq   atomic.Uint64
	last      atomic.Uint64 // the stream's last sequence, as last read (background, Sync)
	first     atomic.Uint64 // the stream's first sequence, as last read
	gapAt     atomic.Uint64 // first sequence after records found missing (trimmed past): see staleErr
	eraseSeq  atomic.Uint64 // newest erasure applied and not yet compacted past
	eraseAt   atomic.Int64  // when the first such erasure was applied (unix nanos)

	idPrefix string // message ids: unique per process, so restarts are not deduplicated
	nextID   atomic.Uint64

	mu       sync.Mutex
	waiters  map[string]*waiter // by message id: writes waiting for this node to apply them
	seqWaits []seqWait
	closed   bool

	stats stats

	peers      peers
	peerSub    *nats.Subscription
	compactSub *nats.Subscription
	peersDone  chan struct{} // the announcer returned
	ready      atomic.Bool   // caught up at Open: announces its progress

	iterMu sync.Mutex // iter is replaced when a consumer is remade
	iter   jetstream.MessagesContext
	stop   chan struct{}
	done   chan struct{} // the applier returned
	bg     chan struct{} // the stream watcher returned
	hk     chan struct{} // housekeeping returned
	// sigDone: the signal publisher returned (closed at once when
	// partitions have no owners)
	sigDone chan struct{}
}

type waiter struct {
	idx      []int   // indexes into the write's records
	verdicts []error // the engine's, by message record, filled by the applier before done
	done     chan struct{}
}

type seqWait struct {
	seq uint64
	ch  chan struct{}
}

type stats struct {
	published   atomic.Uint64 // messages acked
	records     atomic.Uint64 // records applied
	pubNanos    atomic.Uint64 // total ack latency of writes
	writes      atomic.Uint64
	applyNanos  atomic.Uint64
	applied     atomic.Uint64 // messages applied
	republished atomic.Uint64 // messages published again after no ack came
	stalls      atomic.Uint64 // consumers made again by the stall watchdog
	gaps        atomic.Uint64 // messages found missing before the one applied
	expiries    atomic.Uint64 // expiry records published
	trimSeq     atomic.Uint64 // the last trim's floor
	trimAt      atomic.Int64
	trimmed     atomic.Uint64 // messages trimmed
	uploadSeq   atomic.Uint64 // the last shared snapshot's sequence
	uploadAt    atomic.Int64
	shared      atomic.Uint64 // snapshots in the bucket, as last counted
	failovers   atomic.Uint64 // partitions this node came to own after it was ready
}

// Open joins the stream (creating it on a new cluster), loads the newest
// usable snapshot (its own, or a shared one when it has none or the stream
// was trimmed past its own) and applies the stream from the snapshot's
// sequence on. It returns once the node has applied the stream up to its
// end as of Open; ErrTrimmed when the stream no longer holds records the
// node needs and no snapshot covers them.
func Open(ctx context.Context, opts Options) (*Node, error) {
	opts.setDefaults()
	for attempt := 1; ; attempt++ {
		n, err := open(ctx, opts)
		// Trimmed between the check of the stream's first sequence and
		// the consumer's start: the next attempt sees the new first
		// sequence and loads a snapshot past it.
		if errors.Is(err, errTrimmedAtOpen) && attempt < 3 {
			opts.Log.Warn("the stream was trimmed while this node joined it: joining again", "node", opts.Name, "err", err)
			continue
		}
		return n, err
	}
}

var errTrimmedAtOpen = fmt.Errorf("%w while the node joined", ErrTrimmed)

func open(ctx context.Context, opts Options) (*Node, error) {
	n := &Node{opts: opts, subject: strings.ToLower(opts.Stream), idPrefix: opts.Name + "-" + nuid.Next() + "-",
		waiters: map[string]*waiter{}, stop: make(chan struct{}), done: make(chan struct{}), bg: make(chan struct{}), hk: make(chan struct{}), peersDone: make(chan struct{}),
		sigDone: make(chan struct{})}
	var err error
	if opts.Conn != nil {
		n.nc = opts.Conn
	} else {
		n.nc, err = nats.Connect(opts.URL, nats.Name("omnipick "+opts.Name), nats.MaxReconnects(-1),
			nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true))
		if err != nil {
			return nil, fmt.Errorf("cannot connect to NATS at %s: %w", opts.URL, err)
		}
		n.ownConn = true
	}
	n.js, err = jetstream.New(n.nc, jetstream.WithPublishAsyncMaxPending(opts.Window),
		jetstream.WithPublishAsyncTimeout(opts.AckWait))
	if err != nil {
		n.closeConn()
		return nil, fmt.Errorf("cannot use JetStream: %w", err)
	}
	if err := n.joinStream(ctx); err != nil {
		n.closeConn()
		return nil, err
	}
	if err := n.openBucket(ctx); err != nil {
		n.closeConn()
		return nil, err
	}
	if n.layout.partitioned() {
		// The engine keeps the profiles of this node's partitions only
		// and turns their events' global effects into signal records.
		n.sig.init(n.partitions)
		n.opts.Engine.Holds = n.heldSet()
		n.refreshOwners()
	}
	e, seq, newestShared, listed, err := n.recover(ctx)
	if err != nil {
		n.closeConn()
		return nil, err
	}
	if n.layout.partitioned() {
		// This node's newest shared snapshot: recover's listing when it
		// made one (only this node uploads under its prefix, and not yet).
		if !listed {
			if seqs, err := n.sharedSeqs(ctx); err == nil && len(seqs) > 0 {
				newestShared = seqs[len(seqs)-1]
			}
		}
		if newestShared > 0 {
			n.sharedSeq.Store(newestShared)
		}
	}
	n.e = e
	n.applied.Store(seq)
	n.snapSeq.Store(seq)
	if err := n.startPeers(); err != nil {
		n.closeConn()
		return nil, err
	}
	heardFrom := time.Now().Add(2 * heartbeat)
	if err := n.startApplier(ctx, seq); err != nil {
		close(n.stop)
		<-n.peersDone
		n.closeConn()
		return nil, err
	}
	go n.background()
	go n.housekeeping()
	if n.layout.partitioned() {
		go n.signalLoop()
	} else {
		close(n.sigDone)
	}
	err = n.Sync(ctx)
	if err == nil && n.gapAt.Load() != 0 {
		err = fmt.Errorf("%w: %w", errTrimmedAtOpen, n.staleErr())
	}
	if err != nil {
		n.halt() // no final snapshot: the state may lack records
		n.closeConn()
		if errors.Is(err, ErrTrimmed) {
			return nil, err
		}
		return nil, fmt.Errorf("cannot catch up with the stream: %w", err)
	}
	// Writes wait for the nodes heard from: hear every live node's
	// heartbeat once before taking any, or the first would wait for none.
	select {
	case <-time.After(time.Until(heardFrom)):
	case <-ctx.Done():
	}
	n.ready.Store(true)
	n.refreshOwners()
	n.announce()
	opts.Log.Info("cluster node ready", "node", opts.Name, "stream", opts.Stream, "partitions", n.partitions,
		"snapshot_seq", seq, "applied", n.applied.Load())
	return n, nil
}

// joinStream creates the stream, or reads the partition count of the one
// that exists. A new JetStream cluster elects its meta leader a few seconds
// after its servers start: until then creation fails, so it is retried.
func (n *Node) joinStream(ctx context.Context) error {
	cfg := jetstream.StreamConfig{
		Name: n.opts.Stream, Subjects: []string{n.subject + ".p.*", n.subject + ".b", n.subject + ".m"},
		Replicas: n.opts.Replicas, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
		Metadata: map[string]string{partitionsKey: strconv.Itoa(n.opts.Partitions)},
	}
	if len(n.opts.Members) > 0 {
		cfg.Subjects = append(cfg.Subjects, n.subject+".s")
		cfg.Metadata[membersKey] = strings.Join(n.opts.Members, ",")
		cfg.Metadata[standbysKey] = strconv.Itoa(n.opts.Standbys)
	}
	return n.untilAnswered(ctx, "JetStream", func(cctx context.Context) (bool, error) {
		s, err := n.js.Stream(cctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = n.js.CreateStream(cctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				s, err = n.js.Stream(cctx, cfg.Name)
			}
		}
		if err != nil {
			return true, fmt.Errorf("cannot create or find stream %s: %w", cfg.Name, err)
		}
		p, perr := strconv.Atoi(s.CachedInfo().Config.Metadata[partitionsKey])
		if perr != nil || p <= 0 {
			return false, fmt.Errorf("stream %s has no valid %s in its metadata: %w", cfg.Name, partitionsKey, ErrBadMessage)
		}
		n.stream, n.partitions = s, p
		return false, n.readLayout(s.CachedInfo().Config)
	})
}

// readLayout reads the members and standbys of an existing stream's
// metadata: a partitioned cluster's layout is fixed when it is created.
func (n *Node) readLayout(cfg jetstream.StreamConfig) error {
	members, err := parseMembers(cfg.Metadata[membersKey])
	if err != nil {
		return fmt.Errorf("stream %s: %w: %w", cfg.Name, err, ErrBadMessage)
	}
	if len(members) == 0 {
		if len(n.opts.Members) > 0 {
			n.opts.Log.Warn("stream was created without members: every node holds every partition", "stream", cfg.Name)
		}
		return nil
	}
	if !slices.Contains(members, n.opts.Name) {
		return fmt.Errorf("%w: node %q is not a member of stream %s (members %v)", ErrNotMember, n.opts.Name, cfg.Name, members)
	}
	standbys, err := strconv.Atoi(cfg.Metadata[standbysKey])
	if err != nil || standbys < 0 {
		return fmt.Errorf("stream %s has no valid %s in its metadata: %w", cfg.Name, standbysKey, ErrBadMessage)
	}
	n.layout = newLayout(members, standbys, n.partitions)
	return nil
}

// untilAnswered calls try, with 10 s for each call, until it succeeds or
// fails for good (retry false), ctx ends or a minute has passed: a new
// JetStream cluster answers its API only once it has elected a meta
// leader, a few seconds after its servers start. what names the wait in
// the log.
func (n *Node) untilAnswered(ctx context.Context, what string, try func(context.Context) (retry bool, err error)) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		retry, err := try(cctx)
		cancel()
		if err == nil || !retry || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		n.opts.Log.Info("waiting for "+what, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Engine returns the engine, for reads.
func (n *Node) Engine() *engine.Engine { return n.e }

// Partitions is the cluster's partition count.
func (n *Node) Partitions() int { return n.partitions }

// Name is the node's name.
func (n *Node) Name() string { return n.opts.Name }

// Applied is the stream sequence of the last message this node applied.
func (n *Node) Applied() uint64 { return n.applied.Load() }

// snapPath is the local file of the snapshot at seq.
func (n *Node) snapPath(seq uint64) string {
	return filepath.Join(n.snapDir(), snapName(seq))
}

// snapDir is the folder of the node's own snapshots.
func (n *Node) snapDir() string { return filepath.Join(n.opts.Dir, "snapshots") }
