package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/cluster"
	"github.com/omnipick/omnipick/engine/store"
	"github.com/omnipick/omnipick/internal/demo"
)

// clusterFlags are serve's flags for cluster mode (docs/cluster.md).
type clusterFlags struct {
	nats       *string
	node       *string
	natsListen *string
	natsRoute  *string
	natsRoutes *string
	replicas   *int
	partitions *int
	members    *string
	standbys   *int
	advertise  *string
	trimEvery  *time.Duration
}

func addClusterFlags(fs *flag.FlagSet) *clusterFlags {
	return &clusterFlags{
		nats:       fs.String("nats", "", "cluster mode on an external NATS JetStream cluster: its client URLs, comma-separated (nats://host:4222,...)"),
		node:       fs.String("node", "", "cluster mode: this node's name, unique in the cluster; default the host name"),
		natsListen: fs.String("nats-listen", "", "cluster mode with an embedded NATS server: its client address (host:port)"),
		natsRoute:  fs.String("nats-cluster", "", "embedded NATS server: its route address (host:port) other servers connect to"),
		natsRoutes: fs.String("nats-routes", "", "embedded NATS server: route addresses (host:port) of every server of the cluster, comma-separated, its own included"),
		replicas:   fs.Int("replicas", 3, "cluster mode: stream replicas when this node creates the cluster (1 for a one-server cluster)"),
		partitions: fs.Int("partitions", cluster.DefaultPartitions, "cluster mode: partitions when this node creates the cluster (fixed afterwards)"),
		members:    fs.String("members", "", "cluster mode: the cluster's node names, comma-separated, when this node creates it: each partition is then held by its owner and -standbys others only (docs/cluster.md); empty: every node holds every partition"),
		standbys:   fs.Int("standbys", 1, "cluster mode with -members: holders of each partition beyond its owner, when this node creates the cluster"),
		advertise:  fs.String("advertise", "", "cluster mode: this node's HTTP base URL as the other nodes reach it, for requests they forward (default http://<-addr>, the host name in place of 0.0.0.0 or ::)"),
		trimEvery:  fs.Duration("trim-every", 10*time.Minute, "cluster mode: how often the leading node trims the stream below the snapshots every node can recover from (docs/cluster.md)"),
	}
}

func (c *clusterFlags) enabled() bool { return *c.nats != "" || *c.natsListen != "" }

// clusterServe is what serve hands to cluster mode besides its flags.
type clusterServe struct {
	addr, dataDir        string
	demo                 bool // load the built-in demo world into an empty stream
	writeKeys, readKeys  []string
	maxBody, maxInFlight int
	engine               engine.Options
	log                  *slog.Logger
	// serve's flags that apply in cluster mode too
	snapEvery, anonTTL, expireEvery, eraseCompact time.Duration
}

// serveCluster runs serve in cluster mode: an embedded NATS server (or an
// external one), a cluster node in place of the durable store, the same
// HTTP API.
func serveCluster(cf *clusterFlags, o clusterServe) error {
	name := *cf.node
	if name == "" {
		name, _ = os.Hostname()
	}
	if *cf.natsListen != "" && *cf.natsRoute == "" && *cf.replicas > 1 {
		return fmt.Errorf("-replicas %d needs a NATS cluster: give -nats-cluster and -nats-routes, or -replicas 1 for one server: %w", *cf.replicas, errBadFlag)
	}
	// One process per data folder, as in single-node mode.
	lock, err := store.LockDir(o.dataDir)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	// The API's port is held from the start: joining the stream can take
	// a while, and a port taken meanwhile (or already) fails now.
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %q: %w", o.addr, err)
	}
	defer ln.Close()
	url := *cf.nats
	var ns *server.Server
	if *cf.natsListen != "" {
		if ns, err = startEmbeddedNATS(cf, name, o.dataDir); err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		url = ns.ClientURL()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var members []string
	if *cf.members != "" {
		members = strings.Split(*cf.members, ",")
	}
	advertise := *cf.advertise
	if advertise == "" {
		advertise = advertiseURL(ln.Addr().String(), name)
	}
	node, err := cluster.Open(ctx, cluster.Options{
		URL: url, Name: name, Dir: filepath.Join(o.dataDir, "cluster"), Engine: o.engine, Log: o.log,
		Replicas: *cf.replicas, Partitions: *cf.partitions, Members: members, Standbys: *cf.standbys, HTTPURL: advertise,
		SnapshotEvery: o.snapEvery, AnonymousTTL: o.anonTTL, ExpireEvery: o.expireEvery,
		EraseCompactAfter: o.eraseCompact, TrimEvery: *cf.trimEvery,
	})
	if err != nil {
		return err
	}
	if o.demo {
		if node.Applied() == 0 {
			n, err := demo.Load(node, time.Now())
			if err != nil {
				node.Close()
				return fmt.Errorf("cannot load demo world: %w", err)
			}
			o.log.Info("demo world loaded into the cluster", "records", n)
		} else {
			o.log.Info("the cluster holds state: demo world not loaded again")
		}
	}
	metrics := api.NewMetrics()
	if err := metrics.Register(nodeCollector{node}); err != nil {
		node.Close()
		return err
	}
	opts := api.Options{
		Addr: o.addr, Listener: ln, Engine: node.Engine(), Writer: node, Log: o.log,
		MaxBodyBytes: o.maxBody, MaxInFlight: o.maxInFlight,
		WriteKeys: o.writeKeys, ReadKeys: o.readKeys, Metrics: metrics,
		Health:      func() []byte { return nodeHealth(node) },
		CompactJSON: func() ([]byte, error) { return compactCluster(node) },
	}
	if node.Partitioned() {
		// Reads about an actor are answered by its partition's owner.
		opts.Route, opts.Owners, opts.Owns = node.Route, node.OwnerURLs, node.Owns
	}
	srv, err := api.New(opts)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		node.Close()
		return err
	}
	o.log.Info("cluster node serving", "node", name, "addr", o.addr, "nats", url, "pid", os.Getpid())
	<-ctx.Done()
	o.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
	defer cancel()
	err = errors.Join(srv.Stop(sctx), node.Close())
	if err == nil {
		o.log.Info("stopped")
	}
	return err
}

// advertiseURL is the HTTP base URL other nodes reach a listener at: its
// address, or the host name (the node's name when there is none) in
// place of an unspecified IP ("0.0.0.0", "::"), which no peer can dial.
func advertiseURL(addr, hostname string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			hostname = h
		}
		host = hostname
	}
	return "http://" + net.JoinHostPort(host, port)
}

func startEmbeddedNATS(cf *clusterFlags, name, dataDir string) (*server.Server, error) {
	host, port, err := splitHostPort(*cf.natsListen)
	if err != nil {
		return nil, fmt.Errorf("-nats-listen: %w", err)
	}
	so := cluster.ServerOptions{Name: name, Host: host, ClientPort: port, ClusterPort: -1,
		StoreDir: filepath.Join(dataDir, "jetstream"), Logs: false}
	if *cf.natsRoute != "" {
		rhost, rport, err := splitHostPort(*cf.natsRoute)
		if err != nil {
			return nil, fmt.Errorf("-nats-cluster: %w", err)
		}
		if rhost != host {
			return nil, fmt.Errorf("-nats-cluster host %q differs from -nats-listen host %q: %w", rhost, host, errBadFlag)
		}
		so.ClusterPort = rport
		for r := range strings.SplitSeq(*cf.natsRoutes, ",") {
			if r = strings.TrimSpace(r); r != "" {
				so.Routes = append(so.Routes, "nats-route://"+r)
			}
		}
	}
	return cluster.StartServer(so)
}

var errBadFlag = errors.New("bad flag")

func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q: %w", p, errBadFlag)
	}
	return host, port, nil
}

// nodeHealth is /healthz in cluster mode: who this node is and what it
// holds: the partitions it owns (answers for) and those it stands by for
// (holds, and takes over when their owner is lost). A fully replicated
// cluster's node owns every partition.
func nodeHealth(n *cluster.Node) []byte {
	st := n.Stats()
	owned, standby := n.Ownership()
	serves := append(append(make([]int, 0, len(owned)+len(standby)), owned...), standby...)
	slices.Sort(serves)
	status := "ok"
	if st.Stale != nil {
		status = "stale: " + st.Stale.Error() // restart it: it loads the newest shared snapshot
	}
	h := map[string]any{
		"status": status, "node": st.Node, "pid": os.Getpid(), "partitions": st.Partitions, "partitioned": st.Partitioned,
		"serves": serves, "owned": nonNil(owned), "standby": nonNil(standby),
		"applied_seq": st.Applied, "stream_first_seq": st.StreamFirst, "stream_last_seq": st.StreamLast, "leads": st.Leads, "lag": st.Lag, "nats_connected": st.Connected,
	}
	if st.Partitioned {
		h["pending_signals"], h["failovers"] = st.PendingSignals, st.Failovers
	}
	b, _ := json.Marshal(h)
	return b
}

// nonNil makes an empty list a JSON [] rather than null.
func nonNil(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

// compactCluster serves POST /v1/admin/compact in cluster mode: every
// node's snapshots, the shared ones and the stream keep nothing older than
// the stream's end as of now (cluster.(*Node).Compact).
func compactCluster(n *cluster.Node) ([]byte, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ci, err := n.Compact(ctx)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"snapshot": ci.Path, "seq": ci.Seq, "removed_snapshots": ci.RemovedSnapshots, "removed_wal_segments": 0, // no local log: kept for clients of the single-node answer
		"target_seq": ci.Target, "nodes": ci.Nodes, "removed_shared_snapshots": ci.RemovedShared,
		"stream_first_seq": ci.Trim.FirstSeq, "purged_messages": ci.Trim.Purged,
		"took_ms": time.Since(start).Milliseconds(),
	})
}

// nodeCollector exports a node's figures at each scrape.
type nodeCollector struct{ n *cluster.Node }

var (
	descApplied = prometheus.NewDesc("omnipick_cluster_applied_seq", "Stream sequence of the last message this node applied.", nil, nil)
	descLag     = prometheus.NewDesc("omnipick_cluster_lag_messages", "Messages in the stream this node has not applied yet (one stream: the lag of every partition).", nil, nil)
	descRecords = prometheus.NewDesc("omnipick_cluster_records_applied_total", "Records this node applied from the stream.", nil, nil)
	descWrites  = prometheus.NewDesc("omnipick_cluster_writes_total", "Writes acknowledged through this node.", nil, nil)
	descPubLat  = prometheus.NewDesc("omnipick_cluster_publish_latency_seconds_mean", "Mean time from a write's publish to JetStream's last ack.", nil, nil)
	descRepub   = prometheus.NewDesc("omnipick_cluster_republished_total", "Messages published again after no ack came (a stream leader lost: the failovers writes rode through).", nil, nil)
	descStalls  = prometheus.NewDesc("omnipick_cluster_consumer_restarts_total", "Stream consumers this node made again after they stopped delivering (a lost server).", nil, nil)
	descSnap    = prometheus.NewDesc("omnipick_cluster_snapshot_seq", "Stream sequence of this node's newest snapshot.", nil, nil)
	descFirst   = prometheus.NewDesc("omnipick_cluster_stream_first_seq", "The stream's first sequence (everything below was trimmed).", nil, nil)
	descLast    = prometheus.NewDesc("omnipick_cluster_stream_last_seq", "The stream's last sequence.", nil, nil)
	descLeads   = prometheus.NewDesc("omnipick_cluster_leads", "1 when this node expires, shares snapshots and trims for the cluster (the smallest live name).", nil, nil)
	descTrimSeq = prometheus.NewDesc("omnipick_cluster_last_trim_floor_seq", "The last trim by this node removed the messages at or below this sequence.", nil, nil)
	descTrimAt  = prometheus.NewDesc("omnipick_cluster_last_trim_timestamp_seconds", "When this node last trimmed the stream (0: not since start).", nil, nil)
	descTrimmed = prometheus.NewDesc("omnipick_cluster_trimmed_messages_total", "Messages this node trimmed from the stream.", nil, nil)
	descUpSeq   = prometheus.NewDesc("omnipick_cluster_last_shared_snapshot_seq", "Stream sequence of the last snapshot this node shared.", nil, nil)
	descUpAt    = prometheus.NewDesc("omnipick_cluster_last_shared_snapshot_timestamp_seconds", "When this node last shared a snapshot (0: not since start).", nil, nil)
	descShared  = prometheus.NewDesc("omnipick_cluster_shared_snapshots", "Snapshots in the shared bucket, as this node last counted them.", nil, nil)
	descExpiry  = prometheus.NewDesc("omnipick_cluster_expiry_records_total", "Anonymous-profile expiry records this node published.", nil, nil)
	descStale   = prometheus.NewDesc("omnipick_cluster_stale", "1 when this node found records trimmed before it applied them (it refuses writes: restart it).", nil, nil)

	// A partitioned cluster's (docs/cluster.md):
	descFailovers = prometheus.NewDesc("omnipick_cluster_failovers_total", "Partitions this node came to own after it was ready (their owner was lost).", nil, nil)
	descPending   = prometheus.NewDesc("omnipick_cluster_pending_signals", "Signal records this node derived that are not in the stream yet.", nil, nil)
	descSigPub    = prometheus.NewDesc("omnipick_cluster_signal_messages_published_total", "Signal messages this node published for the partitions it owns.", nil, nil)
	descSigLat    = prometheus.NewDesc("omnipick_cluster_signal_publish_latency_seconds_mean", "Mean time from a signal message's publish to its ack.", nil, nil)
	descSigApp    = prometheus.NewDesc("omnipick_cluster_signals_applied_total", "Signal records this node applied (first copies).", nil, nil)
	descSigDup    = prometheus.NewDesc("omnipick_cluster_signal_duplicates_total", "Signal records skipped as copies (published again, or by two owners for a moment).", nil, nil)
	descSigRej    = prometheus.NewDesc("omnipick_cluster_signals_rejected_total", "Signal records the engine refused.", nil, nil)
	descPartOwned = prometheus.NewDesc("omnipick_cluster_partition_owned", "1 for a partition this node owns, 0 for one it stands by for (partitions it does not hold are not listed).", []string{"partition"}, nil)
	descPartPend  = prometheus.NewDesc("omnipick_cluster_partition_pending_signals", "A held partition's signal records derived here and not in the stream yet.", []string{"partition"}, nil)
	descPartLag   = prometheus.NewDesc("omnipick_cluster_partition_lag_messages", "A held partition's lag: stream messages since the oldest of its events whose signals are not in the stream yet (0: none), plus this node's own lag.", []string{"partition"}, nil)
)

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descApplied, descLag, descRecords, descWrites, descPubLat, descRepub, descStalls, descSnap,
		descFirst, descLast, descLeads, descTrimSeq, descTrimAt, descTrimmed, descUpSeq, descUpAt, descShared, descExpiry, descStale,
		descFailovers, descPending, descSigPub, descSigLat, descSigApp, descSigDup, descSigRej, descPartOwned, descPartPend, descPartLag} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Stats()
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(st.Applied))
	ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(st.Lag))
	ch <- prometheus.MustNewConstMetric(descRecords, prometheus.CounterValue, float64(st.Records))
	ch <- prometheus.MustNewConstMetric(descWrites, prometheus.CounterValue, float64(st.Writes))
	ch <- prometheus.MustNewConstMetric(descPubLat, prometheus.GaugeValue, st.PublishLatency.Seconds())
	ch <- prometheus.MustNewConstMetric(descRepub, prometheus.CounterValue, float64(st.Republished))
	ch <- prometheus.MustNewConstMetric(descStalls, prometheus.CounterValue, float64(st.ConsumerRestarts))
	ch <- prometheus.MustNewConstMetric(descSnap, prometheus.GaugeValue, float64(st.SnapshotSeq))
	ch <- prometheus.MustNewConstMetric(descFirst, prometheus.GaugeValue, float64(st.StreamFirst))
	ch <- prometheus.MustNewConstMetric(descLast, prometheus.GaugeValue, float64(st.StreamLast))
	ch <- prometheus.MustNewConstMetric(descLeads, prometheus.GaugeValue, boolGauge(st.Leads))
	ch <- prometheus.MustNewConstMetric(descTrimSeq, prometheus.GaugeValue, float64(st.LastTrimFloor))
	ch <- prometheus.MustNewConstMetric(descTrimAt, prometheus.GaugeValue, unixSeconds(st.LastTrim))
	ch <- prometheus.MustNewConstMetric(descTrimmed, prometheus.CounterValue, float64(st.Trimmed))
	ch <- prometheus.MustNewConstMetric(descUpSeq, prometheus.GaugeValue, float64(st.LastUploadSeq))
	ch <- prometheus.MustNewConstMetric(descUpAt, prometheus.GaugeValue, unixSeconds(st.LastUpload))
	ch <- prometheus.MustNewConstMetric(descShared, prometheus.GaugeValue, float64(st.SharedSnapshots))
	ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.CounterValue, float64(st.Expiries))
	ch <- prometheus.MustNewConstMetric(descStale, prometheus.GaugeValue, boolGauge(st.Stale != nil))
	if !st.Partitioned {
		return
	}
	ch <- prometheus.MustNewConstMetric(descFailovers, prometheus.CounterValue, float64(st.Failovers))
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.PendingSignals))
	ch <- prometheus.MustNewConstMetric(descSigPub, prometheus.CounterValue, float64(st.Signals.Published))
	ch <- prometheus.MustNewConstMetric(descSigLat, prometheus.GaugeValue, st.Signals.PublishLatency.Seconds())
	ch <- prometheus.MustNewConstMetric(descSigApp, prometheus.CounterValue, float64(st.Signals.Applied))
	ch <- prometheus.MustNewConstMetric(descSigDup, prometheus.CounterValue, float64(st.Signals.Duplicates))
	ch <- prometheus.MustNewConstMetric(descSigRej, prometheus.CounterValue, float64(st.Signals.Rejected))
	for _, ps := range st.PartitionState {
		p := strconv.Itoa(ps.Partition)
		lag := st.Lag
		if ps.Oldest > 0 && st.StreamLast > ps.Oldest {
			lag += st.StreamLast - ps.Oldest
		}
		ch <- prometheus.MustNewConstMetric(descPartOwned, prometheus.GaugeValue, boolGauge(ps.Owned), p)
		ch <- prometheus.MustNewConstMetric(descPartPend, prometheus.GaugeValue, float64(ps.Pending), p)
		ch <- prometheus.MustNewConstMetric(descPartLag, prometheus.GaugeValue, float64(lag), p)
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
