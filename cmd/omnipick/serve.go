package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:7070", "listen address")
	dataDir := fs.String("data", "./data", "data folder: write-ahead log and snapshots")
	demo := fs.Bool("demo", false, "load the demo world (see -demo-dir) into an empty data folder")
	demoDir := fs.String("demo-dir", "testdata/demo", "folder of the demo world's NDJSON files")
	maxBody := fs.Int("max-body", 32<<20, "request body limit in bytes, after decompression")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if *logJSON {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	log := slog.New(h)

	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return fmt.Errorf("cannot create data folder: %w", err)
	}
	e := engine.New(engine.Options{})
	var w api.Writer = directWriter{e}
	if *demo {
		start := time.Now()
		n, err := loadDemo(*demoDir, w)
		if err != nil {
			return fmt.Errorf("cannot load demo world: %w", err)
		}
		log.Info("demo world loaded", "records", n, "took", time.Since(start).Round(time.Millisecond), "engine", e.String(), "dir", filepath.Clean(*demoDir))
	}
	srv, err := api.New(api.Options{Addr: *addr, Engine: e, Writer: w, Log: log, MaxBodyBytes: *maxBody})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Stop(sctx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// directWriter applies writes straight to the engine.
type directWriter struct{ e *engine.Engine }

func (d directWriter) Write(recs []engine.Record, errs []error) error {
	for i := range recs {
		errs[i] = d.e.Apply(&recs[i])
	}
	return nil
}
