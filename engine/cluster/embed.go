package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configure a NATS server with JetStream embedded in the
// omnipick process, so a cluster needs no other binary.
type ServerOptions struct {
	Name        string // server name, unique in the cluster (the node's name)
	Host        string // client and cluster listen host; default 127.0.0.1
	ClientPort  int    // client port; 0 picks a free one
	ClusterPort int    // route port; -1: no cluster (one server)
	// Routes are nats-route://host:port of the cluster's servers (its own
	// may be among them): JetStream in a cluster needs them configured,
	// so ports are chosen before the servers start (FreePorts).
	Routes      []string
	ClusterName string // default "omnipick"
	StoreDir    string // JetStream's data folder
	Logs        bool   // let the server log to stderr
}

// ErrNotReady is returned when an embedded server does not come up.
var ErrNotReady = errors.New("the NATS server did not become ready")

// StartServer starts an embedded NATS server with JetStream and waits until
// it accepts client connections. Shut it down with Shutdown.
func StartServer(o ServerOptions) (*server.Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.ClusterName == "" {
		o.ClusterName = "omnipick"
	}
	port := o.ClientPort
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: o.Name, Host: o.Host, Port: port,
		JetStream: true, StoreDir: o.StoreDir,
		NoSigs: true, NoLog: !o.Logs,
		// The default is 2 s; an embedded cluster on a loaded machine must
		// not drop clients that are merely slow to answer pings.
		PingInterval: 5 * time.Second, MaxPingsOut: 4,
	}
	if o.ClusterPort >= 0 {
		opts.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: o.Host, Port: o.ClusterPort}
		for _, r := range o.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("bad route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot create the NATS server: %w", err)
	}
	if o.Logs {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("%w within 30s", ErrNotReady)
	}
	return s, nil
}

// FreePorts returns n TCP ports free on host right now (the system may hand
// them out again before they are used: callers on a busy machine retry).
func FreePorts(host string, n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// RouteURLs are the route addresses of servers listening on host:ports.
func RouteURLs(host string, ports []int) []string {
	urls := make([]string, len(ports))
	for i, p := range ports {
		urls[i] = "nats-route://" + net.JoinHostPort(host, strconv.Itoa(p))
	}
	return urls
}
