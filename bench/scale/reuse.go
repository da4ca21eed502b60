package scale

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/omnipick/omnipick/bench/load"
	"github.com/omnipick/omnipick/engine/store"
	"github.com/omnipick/omnipick/internal/cputime"
)

// RestartReport holds the figures of one Reuse: an existing data folder
// opened, measured, snapshotted and opened again.
type RestartReport struct {
	Dir      string
	Products int
	SKUs     int
	Profiles int
	// ProfileBytes is the profiles' encodings, once open (engine.Stats).
	ProfileBytes int64

	Open  Restart // the folder as it was given
	Again Restart // after this binary wrote its own snapshot

	Picks          map[string]load.Latency // by kind, and "all"
	PicksN         int
	AllocsPerCall  float64
	GCsDuringPicks uint32

	SnapshotTook  time.Duration
	SnapshotBytes int64 // on disk
	SnapshotRaw   int64

	HTTP *HTTPReport // nil unless Options.HTTP.Duration > 0
}

// Restart is what one opening of the store cost.
type Restart struct {
	Snapshot string        // the snapshot file loaded
	Replayed int           // log records applied after it
	Took     time.Duration // store.Open, snapshot and log
	CPU      time.Duration // the process's CPU time during store.Open
	HeapLive uint64        // live heap after a GC, once open
	RSS      uint64        // resident set once open, the recovery buffer returned to the OS
	PeakRSS  uint64        // the process's high-water mark so far (VmHWM)
}

// Reuse measures an existing data folder without building anything: it
// opens the store in opts.Dir (timing the restart and reading the memory
// once the recovery buffer is returned to the OS, as serve does), times
// picks as Run does (opts.World must be the world the folder holds, for
// the ids the calls draw), then snapshots, closes and opens the folder
// again, so the second opening reads this binary's snapshot encoding.
// The folder changes as any store's does: a new snapshot, the oldest
// pruned. The openings' CPU profiles go to profiles[0] and profiles[1]
// where they are not nil.
func Reuse(opts Options, profiles [2]io.Writer) (*RestartReport, error) {
	opts.setDefaults()
	if _, err := os.Stat(opts.Dir); err != nil {
		return nil, fmt.Errorf("cannot measure the data folder: %w", err)
	}
	rep := &RestartReport{Dir: opts.Dir}
	st, err := reopen(opts, &rep.Open, profiles[0])
	if err != nil {
		return nil, err
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	s := st.Engine().Stats()
	rep.Products, rep.SKUs, rep.Profiles, rep.ProfileBytes = s.Products, s.SKUs, s.Profiles, s.ProfileBytes
	fmt.Fprintf(opts.Log, "opened %s in %v: %d profiles; heap %d MiB, RSS %d MiB (peak %d MiB)\n",
		opts.Dir, rep.Open.Took.Round(time.Millisecond), rep.Profiles, rep.Open.HeapLive>>20, rep.Open.RSS>>20, rep.Open.PeakRSS>>20)

	var run Report
	measurePicks(st.Engine(), opts, &run)
	rep.Picks, rep.PicksN, rep.AllocsPerCall, rep.GCsDuringPicks = run.Picks, run.PicksN, run.AllocsPerCall, run.GCsDuringPicks
	if opts.HTTP.Duration > 0 {
		if err := measureHTTP(st, opts, &run); err != nil {
			return nil, err
		}
		rep.HTTP = run.HTTP
	}
	profilesBefore := st.Engine().Stats().Profiles // the HTTP run's events may have added some

	info, err := st.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("cannot snapshot: %w", err)
	}
	rep.SnapshotTook, rep.SnapshotBytes, rep.SnapshotRaw = info.Took, info.FileBytes, info.RawBytes
	fmt.Fprintf(opts.Log, "snapshot: %d MiB raw, %d MiB on disk, %v\n", info.RawBytes>>20, info.FileBytes>>20, info.Took.Round(time.Millisecond))
	err = st.Close()
	st = nil
	if err != nil {
		return nil, fmt.Errorf("cannot close the store: %w", err)
	}
	if st, err = reopen(opts, &rep.Again, profiles[1]); err != nil {
		return nil, err
	}
	if got := st.Engine().Stats().Profiles; got != profilesBefore {
		return nil, fmt.Errorf("reopened with %d profiles, had %d", got, profilesBefore)
	}
	if rep.Again.Snapshot != info.Path {
		return nil, fmt.Errorf("reopened from %q, not the snapshot just written (%q)", rep.Again.Snapshot, info.Path)
	}
	return rep, nil
}

// reopen opens the store in opts.Dir and fills r.
func reopen(opts Options, r *Restart, cpuProfile io.Writer) (*store.Store, error) {
	debug.FreeOSMemory() // a full collection, and the freed memory back to the OS
	if cpuProfile != nil {
		if err := pprof.StartCPUProfile(cpuProfile); err != nil {
			return nil, fmt.Errorf("cannot profile: %w", err)
		}
	}
	start := time.Now()
	cpu0, _ := cputime.Process() // 0 where there is no clock: CPU then reads 0
	st, info, err := store.Open(store.Options{Dir: opts.Dir, Engine: opts.Engine, NoBackground: true})
	cpu1, _ := cputime.Process()
	r.Took, r.CPU = time.Since(start), cpu1-cpu0
	if cpuProfile != nil {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open the store in %s: %w", opts.Dir, err)
	}
	if info.Snapshot == "" {
		st.Close()
		return nil, errors.New("the data folder holds no snapshot")
	}
	r.Snapshot, r.Replayed = info.Snapshot, info.Replayed
	// As serve does: the recovery buffer is garbage now, and goes back to
	// the OS rather than stay in the heap's high-water mark.
	debug.FreeOSMemory()
	r.HeapLive = liveHeap()
	r.RSS = rss()
	r.PeakRSS = procStatus("VmHWM:")
	return st, nil
}

// WriteText writes the report as lines for bench/README.
func (r *RestartReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "folder: %s; %d products, %d SKUs, %d profiles (%.0f bytes each encoded); GOMAXPROCS %d\n",
		r.Dir, r.Products, r.SKUs, r.Profiles, per(uint64(r.ProfileBytes), r.Profiles), runtime.GOMAXPROCS(0))
	for _, x := range []struct {
		name string
		r    Restart
	}{{"restart", r.Open}, {"restart again", r.Again}} {
		fmt.Fprintf(&b, "%s: %v (CPU %v) from %s (%d log records replayed); live heap %d MiB, RSS %d MiB, peak RSS %d MiB\n",
			x.name, x.r.Took.Round(time.Millisecond), x.r.CPU.Round(time.Millisecond), x.r.Snapshot[strings.LastIndexByte(x.r.Snapshot, '/')+1:], x.r.Replayed,
			x.r.HeapLive>>20, x.r.RSS>>20, x.r.PeakRSS>>20)
	}
	fmt.Fprintf(&b, "snapshot between them: %d MiB raw, %d MiB on disk, %v\n", r.SnapshotRaw>>20, r.SnapshotBytes>>20, r.SnapshotTook.Round(time.Millisecond))
	fmt.Fprintf(&b, "picks in-process, one goroutine, %d calls, %.2f allocs/call, %d GCs:\n", r.PicksN, r.AllocsPerCall, r.GCsDuringPicks)
	writePicks(&b, r.Picks)
	if r.HTTP != nil {
		r.HTTP.writeText(&b)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// procStatus reads a size field of /proc/self/status ("VmRSS:"); 0
// where there is none.
func procStatus(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
