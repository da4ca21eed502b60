package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/omnipick/omnipick/bench/load"
	"github.com/omnipick/omnipick/bench/world"
)

const benchUsage = `usage:
  omnipick bench load [flags]      load-test a running service (see omnipick bench load -h)
  omnipick bench ceiling [-addr A] serve a fixed 300-byte JSON answer to every request, until interrupted
  omnipick bench scale [flags]     build the bench world in this process and measure memory, picks latency, restart
  omnipick bench world [flags]     generate the bench world: time it, or write it as NDJSON (zstd)
`

// runBench dispatches "omnipick bench <tool>".
func runBench(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, "omnipick bench: missing tool: load, ceiling, scale or world\n\n"+benchUsage)
		return errUsage
	}
	switch args[0] {
	case "load":
		return runLoad(args[1:])
	case "ceiling":
		return runCeiling(args[1:])
	case "scale":
		return runScale(args[1:])
	case "world":
		return runWorld(args[1:])
	case "help", "-h", "-help", "--help":
		if args[0] == "help" && len(args) > 1 {
			return runBench(append([]string{args[1]}, "-h"))
		}
		fmt.Print(benchUsage)
		return flag.ErrHelp
	}
	fmt.Fprintf(os.Stderr, "omnipick bench: unknown tool %q\n\n%s", args[0], benchUsage)
	return errUsage
}

func runLoad(args []string) error {
	fs := newFlags("bench load", "[flags]", "Load-tests a running service (see bench/README.md).")
	target := fs.String("target", "http://127.0.0.1:7070", "base URL of the service")
	key := fs.String("key", "", "API key, sent as a bearer token (needs write scope for events); default $OMNIPICK_WRITE_KEY")
	worldName := fs.String("world", "bench", "id space of the target's data: bench (bench/world.Bench) or demo (make run)")
	customers := fs.Int("customers", 0, "customer count C1..Cn; 0: the world's (ids zero-padded as bench/world does)")
	products := fs.Int("products", 0, "product count P1..Pn; 0: the world's")
	stores := fs.Int("stores", -1, "store count; -1: the world's")
	conns := fs.Int("conns", 4, "connections (closed loop: requests in flight)")
	rate := fs.Float64("rate", 0, "requests/s over all connections: > 0 runs the open loop (latency from the scheduled send)")
	duration := fs.Duration("duration", 10*time.Second, "measured time after warm-up (0: bounded by -requests only)")
	requests := fs.Int("requests", 0, "measured requests to send (0: bounded by -duration only)")
	warmup := fs.Duration("warmup", 2*time.Second, "time at the start whose requests are not counted")
	drain := fs.Duration("drain", 5*time.Second, "open loop: how long after the end requests due before it are still sent")
	timeout := fs.Duration("timeout", 5*time.Second, "per-request timeout")
	mix := fs.String("mix", "picks=0.9,events=0.1", "request mix: picks= or ads=, email=, screen=, screen_known=, web=; and events=")
	batch := fs.Int("batch", 10, "events per POST /v1/events")
	zipf := fs.Float64("zipf", 0.8, "popularity skew of customers and products: rank r drawn ~ (r+1)^-zipf; 0 is uniform")
	seed := fs.Uint64("seed", 1, "random seed (same seed, same requests)")
	ceiling := fs.Bool("ceiling", false, "then run the same closed loop against a ceiling server and print the target's share of it")
	ceilingTarget := fs.String("ceiling-target", "", "base URL of a ceiling server (omnipick bench ceiling) to use instead of one in this process")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *key == "" {
		*key = os.Getenv("OMNIPICK_WRITE_KEY")
	}

	var cfg world.Config
	switch *worldName {
	case "bench":
		cfg = world.Bench()
	case "demo":
		cfg = world.Demo()
	default:
		return fmt.Errorf("unknown world %q: want bench or demo", *worldName)
	}
	if *customers > 0 {
		cfg.Customers = *customers
	}
	if *products > 0 {
		cfg.Products = *products
	}
	if *stores >= 0 {
		cfg.Stores = *stores
	}
	w, err := load.WorldOf(cfg)
	if err != nil {
		return err
	}
	m, err := load.ParseMix(*mix)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s, err := load.Run(ctx, load.Options{
		Target:        *target,
		Key:           *key,
		Conns:         *conns,
		Rate:          *rate,
		Duration:      *duration,
		Requests:      *requests,
		Warmup:        *warmup,
		Drain:         *drain,
		Timeout:       *timeout,
		Mix:           m,
		World:         w,
		Zipf:          *zipf,
		Batch:         *batch,
		Seed:          *seed,
		Ceiling:       *ceiling,
		CeilingTarget: *ceilingTarget,
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(s)
	}
	return s.WriteText(os.Stdout)
}

func runCeiling(args []string) error {
	fs := newFlags("bench ceiling", "[-addr A]", "Serves a fixed 300-byte JSON answer to every request, until interrupted.")
	addr := fs.String("addr", "127.0.0.1:7071", "listen address")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	a, stop, err := load.StartCeiling(*addr)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(os.Stderr, "ceiling server on http://%s: a fixed %d-byte JSON answer to every request; ^C stops it\n", a, load.CeilingBodySize)
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	<-ctx.Done()
	return nil
}

// printJSON prints a report as indented JSON on stdout.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
