package engine

import (
	"strings"
	"sync"
)

// Scan is the latest product scanned at one location, as store screens
// show it: the screen's picks relate to it (and to the customer, when the
// scan named one).
type Scan struct {
	Product     string
	Customer    string // the scanning customer, if the event named one
	AnonymousID string
	TS          int64  // unix milliseconds of the scan event
	Seq         uint64 // grows with every scan at the location; 0: none yet
}

// scans keeps the latest scan per location. It is live state for screens,
// rebuilt by replaying the log's scan events and deliberately left out of
// snapshots: after a restart from a snapshot a screen shows its store's
// bestsellers until the next scan.
type scans struct {
	mu      sync.Mutex
	seq     uint64
	latest  map[string]Scan   // by location id
	stock   map[string]uint64 // by location id: stock writes there
	catalog uint64            // catalog writes
}

// stockChanged counts a stock write at loc, for LocationVersion.
func (s *scans) stockChanged(loc string) {
	s.mu.Lock()
	if s.stock == nil {
		s.stock = make(map[string]uint64)
	}
	s.stock[loc]++
	s.mu.Unlock()
}

func (s *scans) catalogChanged() {
	s.mu.Lock()
	s.catalog++
	s.mu.Unlock()
}

func (s *scans) record(loc string, sc Scan) {
	s.mu.Lock()
	if s.latest == nil {
		s.latest = make(map[string]Scan)
	}
	s.seq++
	sc.Seq = s.seq
	s.latest[loc] = sc
	s.mu.Unlock()
}

// LocationVersion grows whenever what a location's screen shows may have
// changed besides a scan: a stock write at the location, or any catalog
// write (a retired product, a new price). A screen re-asks for its picks
// when it moves. Like the scans, it is live state, not in snapshots.
func (e *Engine) LocationVersion(location string) uint64 {
	e.scans.mu.Lock()
	defer e.scans.mu.Unlock()
	return e.scans.stock[location] + e.scans.catalog
}

// LastScan returns the latest scan at a location; Seq is 0 when there was
// none. A screen polls it cheaply and refreshes its picks when Seq changes.
func (e *Engine) LastScan(location string) Scan {
	e.scans.mu.Lock()
	defer e.scans.mu.Unlock()
	return e.scans.latest[location]
}

// KnownLocation reports whether a location id has been registered (by a
// location record) or has held stock, so that a store screen can tell an
// unknown store from one that has nothing to show yet.
func (e *Engine) KnownLocation(id string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	_, ok := e.idx.LookupLocation(id)
	return ok
}

// AppendLocationIDs appends the id of every known location (registered or
// named by inventory), "online" first, in the order they became known.
// The strings are copies: they stay valid after the call.
func (e *Engine) AppendLocationIDs(dst []string) []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for d := range e.idx.Locations() {
		dst = append(dst, strings.Clone(e.idx.LocationName(uint32(d))))
	}
	return dst
}

// LocationName returns the name a location was registered with (POST
// /v1/locations), or its id when it has none; ok is false for an unknown
// location.
func (e *Engine) LocationName(id string) (name string, ok bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	d, ok := e.idx.LookupLocation(id)
	if !ok {
		return "", false
	}
	if n := e.idx.LocationDisplayName(d); n != "" {
		return n, true
	}
	return id, true
}
