package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/omnipick/omnipick/bench/scale"
	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/store"
)

// benchWorld returns the bench world, resized where the counts are set.
func benchWorld(name string, customers, products int) (world.Config, error) {
	if name != "bench" {
		return world.Config{}, fmt.Errorf("unknown world %q: want bench", name)
	}
	cfg := world.Bench()
	if customers > 0 {
		cfg.Customers = customers
	}
	if products > 0 {
		cfg.Products = products
	}
	return cfg, cfg.Validate()
}

// loadWorld builds a generated world into an empty store for load tests:
// straight into the engine (a log of hundreds of millions of records would
// only slow the setup), then a snapshot makes it durable, so a restart
// reads it back instead of building it again.
func loadWorld(st *store.Store, info store.RecoveryInfo, name string, customers, products int, log *slog.Logger) error {
	cfg, err := benchWorld(name, customers, products)
	if err != nil {
		return err
	}
	if info.Snapshot != "" || info.NextSeq != 1 {
		log.Info("data folder holds state: world not built again")
		return nil
	}
	log.Info("building the world in memory", "products", cfg.Products, "customers", cfg.Customers, "locations", cfg.Stores+1)
	b, err := scale.Build(st.Engine(), cfg, 0, os.Stderr)
	if err != nil {
		return fmt.Errorf("cannot build the %s world: %w", name, err)
	}
	log.Info("world built", "records", b.Records, "rejected", b.Rejected, "catalog", b.CatalogTook.Round(time.Millisecond), "events", b.EventsTook.Round(time.Millisecond), "engine", st.Engine().String())
	snap, err := st.Snapshot()
	if err != nil {
		return fmt.Errorf("cannot snapshot the world: %w", err)
	}
	log.Info("world snapshotted", "bytes", snap.FileBytes, "took", snap.Took.Round(time.Millisecond))
	return nil
}

// runWorld is "omnipick bench world": generate a world and write it as
// NDJSON (zstd with -zstd), or only count it (-out ""), timing the
// generator.
func runWorld(args []string) error {
	fs := newFlags("bench world", "[flags]", "Generates the bench world: times it, or writes it as NDJSON (zstd).")
	out := fs.String("out", "", "folder for the NDJSON files (locations, products, inventory, events); empty: generate and count only")
	zst := fs.Bool("zstd", true, "compress the files with zstd (.ndjson.zst)")
	customers := fs.Int("customers", 0, "customers (default: the bench world's 10,000,000)")
	products := fs.Int("products", 0, "products (default: the bench world's 1,000,000)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := benchWorld("bench", *customers, *products)
	if err != nil {
		return err
	}
	start := time.Now()
	if *out != "" {
		if err := world.WriteNDJSON(*out, cfg, *zst); err != nil {
			return err
		}
		fmt.Printf("world (%d products, %d customers, %d locations) written to %s in %v\n", cfg.Products, cfg.Customers, cfg.Stores+1, *out, time.Since(start).Round(time.Millisecond))
		return nil
	}
	n := 0
	if err := world.Generate(cfg, func(*engine.Record) error { n++; return nil }); err != nil {
		return err
	}
	d := time.Since(start)
	fmt.Printf("world (%d products, %d customers, %d locations): %d records generated in %v (%.0f records/s)\n",
		cfg.Products, cfg.Customers, cfg.Stores+1, n, d.Round(time.Millisecond), float64(n)/d.Seconds())
	return nil
}
