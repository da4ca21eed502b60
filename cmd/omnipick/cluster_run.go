package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/omnipick/omnipick/engine/cluster"
)

// runCluster starts N real node processes on this machine, clustered over
// embedded NATS servers on loopback: for trying the cluster, not for
// production (where each node runs `omnipick serve -nats-...` on its own
// machine). It stops them all on SIGTERM or SIGINT.
func runCluster(args []string) error {
	fs := newFlags("cluster", "-nodes N [flags]", "Starts N omnipick serve processes on this machine, clustered over embedded NATS\nservers on loopback (HTTP on consecutive ports from -addr, data in DIR/n1..nN), prints\ntheir addresses and stops them all on SIGTERM or Ctrl-C. For trying the cluster:\nin production each node runs omnipick serve -nats-... on its own machine (docs/cluster.md).")
	nodes := fs.Int("nodes", 3, "node processes to start")
	addr := fs.String("addr", "127.0.0.1:7071", "HTTP address of node 1; node i listens on the port after node i-1's")
	dataDir := fs.String("data", "./data-cluster", "data folder; node i keeps its state in DIR/n<i>")
	replicas := fs.Int("replicas", 0, "stream replicas; default 3, or 1 with fewer than 3 nodes")
	standbys := fs.Int("standbys", 1, "holders of each partition beyond its owner (the nodes n1..nN are the members); -1: every node holds every partition")
	demo := fs.Bool("demo", false, "node 1 loads the built-in demo world into a new cluster")
	extra := fs.String("serve-flags", "", "more flags for every node's serve, space-separated")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *nodes < 1 || *nodes > 64 {
		return fmt.Errorf("-nodes %d: want 1..64: %w", *nodes, errBadFlag)
	}
	host, port, err := splitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if *replicas == 0 {
		*replicas = min(3, *nodes)
		if *replicas == 2 {
			*replicas = 1 // two replicas have no majority once one is lost
		}
	}
	ports, err := cluster.FreePorts(host, 2**nodes)
	if err != nil {
		return err
	}
	routes := make([]string, *nodes)
	for i := range routes {
		routes[i] = fmt.Sprintf("%s:%d", host, ports[*nodes+i])
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this binary: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	members := make([]string, *nodes)
	for i := range members {
		members[i] = fmt.Sprintf("n%d", i+1)
	}
	procs := make([]*exec.Cmd, *nodes)
	var wg sync.WaitGroup
	for i := range *nodes {
		name := fmt.Sprintf("n%d", i+1)
		dir := filepath.Join(*dataDir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("cannot create %q: %w", dir, err)
		}
		logf, err := os.OpenFile(filepath.Join(dir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("cannot open the node's log: %w", err)
		}
		httpAddr := fmt.Sprintf("%s:%d", host, port+i)
		a := []string{"serve", "-addr", httpAddr, "-data", dir, "-node", name,
			"-nats-listen", fmt.Sprintf("%s:%d", host, ports[i]), "-replicas", strconv.Itoa(*replicas)}
		if *nodes > 1 { // one server runs JetStream alone, without routes
			a = append(a, "-nats-cluster", routes[i], "-nats-routes", strings.Join(routes, ","))
		}
		if *standbys >= 0 {
			a = append(a, "-members", strings.Join(members, ","), "-standbys", strconv.Itoa(*standbys))
		}
		if *demo && i == 0 {
			a = append(a, "-demo")
		}
		// The nodes share this machine: each takes its share of serve's
		// default memory limit (a -memory-limit-percent in -serve-flags
		// comes later and wins).
		a = append(a, "-memory-limit-percent", strconv.Itoa(max(1, defaultMemoryLimitPercent / *nodes)))
		a = append(a, strings.Fields(*extra)...)
		cmd := exec.Command(self, a...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			signalAll(procs, syscall.SIGTERM)
			return fmt.Errorf("cannot start node %s: %w", name, err)
		}
		procs[i] = cmd
		fmt.Printf("node %s http://%s pid %d nats nats://%s:%d log %s\n", name, httpAddr, cmd.Process.Pid, host, ports[i], logf.Name())
		wg.Go(func() {
			err := cmd.Wait()
			logf.Close()
			if ctx.Err() == nil {
				fmt.Printf("node %s exited: %v\n", name, err)
			}
		})
	}
	go func() {
		if err := waitHealthy(ctx, host, port, *nodes); err == nil {
			fmt.Printf("cluster ready: %d nodes\n", *nodes)
		}
	}()
	<-ctx.Done()
	fmt.Println("stopping the nodes")
	signalAll(procs, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		signalAll(procs, syscall.SIGKILL)
		<-done
	}
	return nil
}

func signalAll(procs []*exec.Cmd, sig syscall.Signal) {
	for _, p := range procs {
		if p != nil && p.Process != nil {
			p.Process.Signal(sig)
		}
	}
}

// waitHealthy polls every node's /healthz until all answer 200.
func waitHealthy(ctx context.Context, host string, port, nodes int) error {
	c := &http.Client{Timeout: 2 * time.Second}
	for i := 0; i < nodes; {
		resp, err := c.Get(fmt.Sprintf("http://%s:%d/healthz", host, port+i))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				i++
				continue
			}
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
