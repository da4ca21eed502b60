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
	node, err := cluster.Open(ctx, cluster.Options{
		URL: url, Name: name, Dir: filepath.Join(o.dataDir, "cluster"), Engine: o.engine, Log: o.log,
		Replicas: *cf.replicas, Partitions: *cf.partitions,
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
	srv, err := api.New(api.Options{
		Addr: o.addr, Listener: ln, Engine: node.Engine(), Writer: node, Log: o.log,
		MaxBodyBytes: o.maxBody, MaxInFlight: o.maxInFlight,
		WriteKeys: o.writeKeys, ReadKeys: o.readKeys, Metrics: metrics,
		Health: func() []byte { return nodeHealth(node) },
	})
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
// holds. Every node applies every partition today (docs/cluster.md), so it
// serves them all and owns none alone.
func nodeHealth(n *cluster.Node) []byte {
	st := n.Stats()
	held := make([]int, st.Partitions)
	for i := range held {
		held[i] = i
	}
	b, _ := json.Marshal(map[string]any{
		"status": "ok", "node": st.Node, "pid": os.Getpid(), "partitions": st.Partitions,
		"serves": held, "owned": held, "standby": []int{},
		"applied_seq": st.Applied, "stream_last_seq": st.StreamLast, "lag": st.Lag, "nats_connected": st.Connected,
	})
	return b
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
)

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descApplied, descLag, descRecords, descWrites, descPubLat, descRepub, descStalls, descSnap} {
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
}
