package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/store"
	"github.com/omnipick/omnipick/engine/wal"
	"github.com/omnipick/omnipick/internal/demo"
)

func runServe(args []string) error {
	fs := newFlags("serve", "[flags]", "Runs the HTTP service on -addr with its state in -data (a write-ahead log and\nsnapshots). -demo loads the built-in demo world into an empty data folder.")
	addr := fs.String("addr", "127.0.0.1:7070", "listen address; any address but loopback needs -write-key and -read-key")
	writeKeys := fs.String("write-key", "", "API keys that allow writes and reads, comma-separated (several for rotation); default $OMNIPICK_WRITE_KEY. Prefer the environment: flags show in ps")
	readKeys := fs.String("read-key", "", "API keys that allow reads only (picks, customer profiles), comma-separated; default $OMNIPICK_READ_KEY")
	dataDir := fs.String("data", "./data", "data folder: write-ahead log and snapshots")
	demo := fs.Bool("demo", false, "load the built-in demo world when the data folder is empty, its history shifted to end now")
	reseed := fs.Bool("demo-reseed", false, "with -demo: delete what the data folder holds (its log and snapshots) and load the demo world afresh")
	worldName := fs.String("world", "", "'bench': build the generated bench world (1M products, 10M customers, 200 locations) in memory when the data folder is empty, then snapshot it; for load tests (see bench/README.md)")
	worldCustomers := fs.Int("world-customers", 0, "with -world: customers instead of the bench world's")
	worldProducts := fs.Int("world-products", 0, "with -world: products instead of the bench world's")
	fsync := fs.String("fsync", "always", "when a write is acknowledged: 'always' (once fsynced: survives power loss) or 'interval:100ms' (once written to the OS: survives a crash of omnipick, a power loss may lose the last interval)")
	snapEvery := fs.Duration("snapshot-every", 10*time.Minute, "take a snapshot this often when there were writes")
	snapBytes := fs.Int64("snapshot-bytes", 256<<20, "or once the log grew this much since the last snapshot")
	maxBody := fs.Int("max-body", 32<<20, "request body limit in bytes, after decompression")
	maxInFlight := fs.Int("max-in-flight", 4096, "requests handled at once before new ones get 503 with Retry-After (/healthz and /metrics exempt)")
	eventIDWindow := fs.Duration("event-id-window", 7*24*time.Hour, "a write repeating the event_id of one applied this long ago or less is acknowledged as a duplicate and not applied again")
	maxEventIDs := fs.Int("max-event-ids", 2_000_000, "event ids kept for -event-id-window (about 55 bytes each); past it the oldest go early")
	eraseCompact := fs.Duration("erasure-compact-after", 10*time.Minute, "after DELETE /v1/customers/{id}, compact the data folder (a snapshot, then drop older snapshots and the log it covers) within this long, so that no file holds the id; POST /v1/admin/compact does it at once")
	anonTTL := fs.Duration("anonymous-ttl", 30*24*time.Hour, "anonymous profiles (cookies, devices) unused this long are dropped, by a log record written every -expire-every; customers never are; 0: never")
	expireEvery := fs.Duration("expire-every", time.Hour, "how often anonymous profiles past -anonymous-ttl are dropped")
	maxProfiles := fs.Int("max-profiles", 0, "profiles held at most (0: no limit); at the limit the least recently active anonymous profiles go first (omnipick_profiles_removed_total{reason=\"evicted\"}), customers never, and writes for new actors get 503 only when nothing can go")
	maxScreens := fs.Int("max-screen-streams", 1024, "store screen event streams open at once before new ones get 503 with Retry-After (kiosk pages then poll)")
	maxQueued := fs.Int64("max-queued-bytes", 64<<20, "log bytes queued for disk before writes get 503")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of text")
	freqCap := fs.String("frequency-cap", "3/48h", "an item shown COUNT times within WINDOW, on any channel, ranks below unshown ones: COUNT/WINDOW, then CHANNEL=COUNT/WINDOW overrides, e.g. '3/48h,email=5/7d'")
	repurchase := fs.String("repurchase", "", "category prefixes whose bought items may be recommended again after a window, e.g. 'beauty/=30d,grocery/=7d' (others never, unless returned)")
	memLimitPct := fs.Int("memory-limit-percent", defaultMemoryLimitPercent, "set the Go runtime's soft memory limit to this share of the memory the process may use (the machine's, or its cgroup's limit if lower), so that it collects harder rather than grow past it; 0: none. GOMEMLIMIT, when set, wins")
	adminAddr := fs.String("admin-addr", "", "serve net/http/pprof on this loopback address (e.g. 127.0.0.1:6060); off when empty")
	cf := addClusterFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if *logJSON {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	log := slog.New(h)
	if err := setMemoryLimit(*memLimitPct, os.Getenv("GOMEMLIMIT"), os.DirFS("/"), log); err != nil {
		return err
	}
	syncMode, interval, err := parseFsync(*fsync)
	if err != nil {
		return err
	}
	engineOpts := engine.Options{EventIDWindow: *eventIDWindow, MaxEventIDs: *maxEventIDs, MaxProfiles: *maxProfiles}
	if err := parseFrequencyCaps(*freqCap, &engineOpts); err != nil {
		return err
	}
	if engineOpts.RepurchaseWindows, err = parseRepurchase(*repurchase); err != nil {
		return err
	}
	if *adminAddr != "" {
		if err := checkAdminAddr(*adminAddr); err != nil {
			return err // before the store is opened: nothing to undo
		}
	}
	wk, rk := splitKeys(*writeKeys, os.Getenv("OMNIPICK_WRITE_KEY")), splitKeys(*readKeys, os.Getenv("OMNIPICK_READ_KEY"))
	if err := api.CheckAccess(*addr, wk, rk); err != nil {
		return err // before the data folder is created or locked
	}

	if cf.enabled() {
		return serveCluster(cf, clusterServe{addr: *addr, dataDir: *dataDir, engine: engineOpts, log: log,
			writeKeys: wk, readKeys: rk,
			maxBody: *maxBody, maxInFlight: *maxInFlight, demo: *demo,
			snapEvery: *snapEvery, anonTTL: ttlOption(*anonTTL), expireEvery: *expireEvery, eraseCompact: *eraseCompact})
	}

	// The metrics exist before the store, whose log reports fsyncs to them.
	metrics := api.NewMetrics()

	storeOpts := store.Options{
		Dir: *dataDir, Engine: engineOpts, Log: log,
		Sync: syncMode, SyncInterval: interval, MaxBufferedBytes: *maxQueued,
		SnapshotEvery: *snapEvery, SnapshotBytes: *snapBytes, EraseCompactAfter: *eraseCompact,
		AnonymousTTL: ttlOption(*anonTTL), ExpireEvery: *expireEvery,
		OnWALSync: metrics.ObserveWALSync,
	}
	if *reseed && !*demo {
		return errors.New("-demo-reseed goes with -demo")
	}
	st, info, err := store.Open(storeOpts)
	if err != nil {
		return err
	}
	if *reseed && !(info.Snapshot == "" && info.NextSeq == 1) {
		// Opened first, so the folder is known to be a data folder (and,
		// once opened, not another server's).
		if st, info, err = wipeAndReopen(st, storeOpts, log); err != nil {
			return err
		}
	}
	// Recovery decompressed the snapshot into a buffer as large as the
	// state, now garbage: hand it back to the OS rather than keep it in
	// the heap's high-water mark.
	debug.FreeOSMemory()
	if err := populate(st, info, *worldName, *worldCustomers, *worldProducts, *demo, *dataDir, log); err != nil {
		st.Close()
		return err
	}
	srv, err := api.New(api.Options{
		Addr: *addr, Engine: st.Engine(), Writer: st, Log: log,
		MaxBodyBytes: *maxBody, MaxInFlight: *maxInFlight, MaxScreenStreams: *maxScreens,
		WriteKeys: wk,
		ReadKeys:  rk,
		Metrics:   metrics, StoreStats: st.Stats, Compact: st.Compact,
	})
	if err != nil {
		st.Close()
		return err
	}
	// The admin listener starts before the API: once the API answers, a
	// client (or a test) may count on profiles being served too.
	var admin *adminServer
	if *adminAddr != "" {
		if admin, err = startAdmin(*adminAddr, log); err != nil {
			st.Close()
			return err
		}
	}
	if err := srv.Start(); err != nil {
		st.Close()
		return errors.Join(err, admin.Stop())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return shutdown(admin, srv, st, log)
}

// populate builds the bench world (worldName "bench") or seeds the demo
// into st, as -world and -demo ask.
func populate(st *store.Store, info store.RecoveryInfo, worldName string, worldCustomers, worldProducts int, withDemo bool, dataDir string, log *slog.Logger) error {
	if worldName != "" {
		if err := loadWorld(st, info, worldName, worldCustomers, worldProducts, log); err != nil {
			return err
		}
	}
	if withDemo {
		return seedDemo(st, info, dataDir, log)
	}
	return nil
}

// shutdown stops what runServe started, in reverse order.
func shutdown(admin *adminServer, srv *api.Server, st *store.Store, log *slog.Logger) error {
	// Stop in reverse order: no new requests, in-flight ones finish, then
	// the store fsyncs, snapshots and closes its log.
	log.Info("shutting down")
	// Longer than the server's 30s read timeout, so a request still being
	// read when the signal came can finish (connections that never sent a
	// byte are closed at once by Stop).
	sctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
	defer cancel()
	err := errors.Join(admin.Stop(), srv.Stop(sctx))
	if cerr := st.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// seedDemo loads the built-in demo world into an empty data folder, its
// history shifted to end now. A folder that holds state keeps it; when that
// state is a demo gone stale (older than demo.FreshFor), the log says so
// and names the flag that seeds it afresh.
func seedDemo(st *store.Store, info store.RecoveryInfo, dataDir string, log *slog.Logger) error {
	now := time.Now()
	if info.Snapshot == "" && info.NextSeq == 1 {
		start := time.Now()
		n, err := demo.Load(st, now)
		if err != nil {
			return fmt.Errorf("cannot load the demo world: %w", err)
		}
		log.Info("demo world loaded, its history ending now", "records", n, "took", time.Since(start).Round(time.Millisecond), "engine", st.Engine().String())
		return nil
	}
	age, ok := demo.Age(st.Engine(), now)
	if ok && age > demo.FreshFor {
		log.Warn(fmt.Sprintf("the demo world in %s was seeded %d days ago: its popularity has decayed and its carts have aged out, so picks and audiences will not match the README; "+
			"restart with -demo -demo-reseed to delete this folder's state and seed the demo afresh", dataDir, int(age.Hours()/24)),
			"data", dataDir, "age", age.Round(time.Hour))
		return nil
	}
	log.Info("data folder holds state: demo world not loaded again (-demo-reseed seeds it afresh)", "data", dataDir)
	return nil
}

// wipeAndReopen closes st, deletes the log and snapshots of its data
// folder (nothing else in it) and opens it again, empty.
func wipeAndReopen(st *store.Store, opts store.Options, log *slog.Logger) (*store.Store, store.RecoveryInfo, error) {
	if err := st.Close(); err != nil {
		return nil, store.RecoveryInfo{}, err
	}
	for _, sub := range []string{"wal", "snapshots"} {
		if err := os.RemoveAll(filepath.Join(opts.Dir, sub)); err != nil {
			return nil, store.RecoveryInfo{}, fmt.Errorf("-demo-reseed: %w", err)
		}
	}
	log.Warn("-demo-reseed: deleted the data folder's log and snapshots", "data", opts.Dir)
	return store.Open(opts)
}

// ttlOption maps -anonymous-ttl to store.Options.AnonymousTTL: 0 (never)
// is negative there, where 0 takes the default.
func ttlOption(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// splitKeys returns the comma-separated keys of a key flag or, when the
// flag is empty, of its environment variable; spaces around keys and empty
// items are dropped.
func splitKeys(flagValue, envValue string) []string {
	v := flagValue
	if v == "" {
		v = envValue
	}
	var keys []string
	for k := range strings.SplitSeq(v, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// parseFsync reads the -fsync flag.
func parseFsync(s string) (wal.SyncMode, time.Duration, error) {
	if s == "always" {
		return wal.SyncAlways, 0, nil
	}
	if rest, ok := strings.CutPrefix(s, "interval:"); ok {
		d, err := time.ParseDuration(rest)
		if err == nil && d > 0 {
			return wal.SyncInterval, d, nil
		}
	}
	return 0, 0, fmt.Errorf("-fsync %q: want 'always' or 'interval:<duration>', e.g. interval:100ms", s)
}
