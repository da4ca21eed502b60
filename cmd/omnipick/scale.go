package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/omnipick/omnipick/bench/scale"
	"github.com/omnipick/omnipick/bench/world"
)

// runScale is "omnipick bench scale": build a generated world in this
// process and measure it (see bench/scale and bench/README.md).
func runScale(args []string) error {
	fs := newFlags("bench scale", "[flags]", "Builds the bench world in this process and measures memory, picks latency, restart.")
	customers := fs.Int("customers", 0, "customers (default: the bench world's 10,000,000)")
	products := fs.Int("products", 0, "products (default: the bench world's 1,000,000)")
	stores := fs.Int("stores", -1, "stores besides online (default: the bench world's 199)")
	days := fs.Int("days", 0, "days of history (default: the bench world's 60)")
	workers := fs.Int("workers", 0, "goroutines applying events (default GOMAXPROCS)")
	queries := fs.Int("queries", 200_000, "picks calls to time")
	dir := fs.String("data", "", "store folder for the snapshot and restart (default: a temporary folder, removed after)")
	restart := fs.Bool("restart", true, "snapshot, close and reopen the store, timing each")
	reuse := fs.Bool("reuse", false, "build nothing: open the existing store in -data (a world of the given counts), timing the restart and reading memory, time picks, measure over HTTP (-http), then snapshot and open it again")
	cpuProfile := fs.String("cpuprofile", "", "with -reuse: write the first restart's CPU profile to this file, the second's to this file + \".again\"")
	httpFor := fs.Duration("http", 10*time.Second, "serve the built world on a loopback port and measure picks (against the bare-handler ceiling) and event ingest over HTTP for this long each; 0 skips")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg := world.Bench()
	if *customers > 0 {
		cfg.Customers = *customers
	}
	if *products > 0 {
		cfg.Products = *products
	}
	if *stores >= 0 {
		cfg.Stores = *stores
	}
	if *days > 0 {
		cfg.Days = *days
	}
	if *reuse {
		return measureFolder(cfg, *dir, *queries, *httpFor, *cpuProfile, *asJSON)
	}
	if *cpuProfile != "" {
		return errors.New("-cpuprofile goes with -reuse")
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "omnipick-scale-")
		if err != nil {
			return fmt.Errorf("cannot make a temporary store folder: %w", err)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	rep, err := scale.Run(scale.Options{World: cfg, Dir: *dir, Workers: *workers, Queries: *queries, Restart: *restart, Log: os.Stderr,
		HTTP: scale.HTTPOptions{Duration: *httpFor}})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(rep)
	}
	return rep.WriteText(os.Stdout)
}

// measureFolder is "omnipick bench scale -reuse": measure the store in dir,
// built before for the world cfg, without building it again.
func measureFolder(cfg world.Config, dir string, queries int, httpFor time.Duration, cpuProfile string, asJSON bool) error {
	if dir == "" {
		return errors.New("-reuse needs -data, the folder of an earlier scale run")
	}
	var profiles [2]io.Writer
	if cpuProfile != "" {
		for i, name := range []string{cpuProfile, cpuProfile + ".again"} {
			f, err := os.Create(name)
			if err != nil {
				return fmt.Errorf("cannot write the CPU profile: %w", err)
			}
			defer f.Close()
			profiles[i] = f
		}
	}
	rep, err := scale.Reuse(scale.Options{World: cfg, Dir: dir, Queries: queries, Log: os.Stderr, HTTP: scale.HTTPOptions{Duration: httpFor}}, profiles)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(rep)
	}
	return rep.WriteText(os.Stdout)
}
