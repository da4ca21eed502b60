package engine

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/omnipick/omnipick/index"
	"github.com/omnipick/omnipick/internal/binfmt"
)

// LoadSnapshotArriving is LoadSnapshot for a snapshot still being read
// into data (decompressed, say), so that loading overlaps the reading:
// arrived(n) must block until data's first n bytes are in, and return an
// error if they never will be (the input ended or failed). A version 7
// snapshot's parts start loading as soon as they are in; an older one is
// waited for whole. The caller still checks what it read (a checksum)
// before it uses the engine: a part loads before the bytes after it are
// known to be good. A nil arrived means data is all there.
func LoadSnapshotArriving(opts Options, data []byte, arrived func(n int) error) (*Engine, error) {
	if arrived == nil {
		arrived = func(int) error { return nil }
	}
	if err := arrived(min(1, len(data))); err != nil {
		return nil, err
	}
	if len(data) > 0 && data[0] >= 7 && data[0] <= engineSnapshotVersion {
		e := New(opts)
		p := &parts{data: data, pos: 1, arrived: arrived}
		if err := e.loadParts(p, data[0]); err != nil {
			return nil, err
		}
		return e, nil
	}
	if err := arrived(len(data)); err != nil {
		return nil, err
	}
	return LoadSnapshot(opts, data)
}

// parts reads a version 7 snapshot's outline: its counts and the
// length-prefixed parts, each waited for until its bytes are in.
type parts struct {
	data    []byte
	pos     int
	arrived func(n int) error
	err     error
}

// wait blocks until the first n bytes (at most all of them) are in.
func (p *parts) wait(n int) bool {
	if p.err == nil {
		if err := p.arrived(min(n, len(p.data))); err != nil {
			p.err = err
		}
	}
	return p.err == nil
}

func (p *parts) uvarint() uint64 {
	if !p.wait(p.pos + binary.MaxVarintLen64) {
		return 0
	}
	v, n := binary.Uvarint(p.data[p.pos:])
	if n <= 0 {
		p.err = badSnapshot("bad varint at byte %d", p.pos)
		return 0
	}
	p.pos += n
	return v
}

// count reads a count that the bytes left could hold, one byte an item
// at the least.
func (p *parts) count() int {
	v := p.uvarint()
	if p.err == nil && v > uint64(len(p.data)-p.pos) {
		p.err = badSnapshot("count %d at byte %d, %d bytes left", v, p.pos, len(p.data)-p.pos)
	}
	return int(v)
}

// part returns the next part, once its bytes are in.
func (p *parts) part() []byte {
	n := p.count()
	if !p.wait(p.pos + n) {
		return nil
	}
	b := p.data[p.pos : p.pos+n : p.pos+n]
	p.pos += n
	return b
}

// loadParts reads a snapshot of version 7 on (see engineSnapshotVersion),
// whose parts carry their lengths: the small ones (top lists, popularity,
// the tail) load here as they arrive; the index, the relations and each
// profile section are handed to GOMAXPROCS goroutines as soon as their
// bytes are in. At ten million customers the profile sections are most
// of a restart, and before version 7 each could only be found by decoding
// the one before it.
func (e *Engine) loadParts(p *parts, version byte) error {
	// Every product has a relation list and a popularity value, every
	// facet a top list: counts past what the bytes left could hold are
	// refused before anything is allocated for them.
	products, facets := p.count(), p.count()
	pool := startTasks(runtime.GOMAXPROCS(0))
	var idx *index.Index
	if b := p.part(); p.err == nil {
		pool.run(func() (err error) {
			idx, err = loadIndexPart(b)
			return err
		})
	}
	if b := p.part(); p.err == nil {
		e.tops = make([]topList, facets)
		p.err = whole(b, "top lists", func(r *binfmt.Reader) error { return e.loadTops(r, version, uint32(products)) })
	}
	if b := p.part(); p.err == nil {
		e.rel.grow(products)
		pool.run(func() error {
			return whole(b, "relations", func(r *binfmt.Reader) error { return e.loadRelations(r, uint32(products)) })
		})
	}
	// Popularity is small: it loads once the index is in, which is the
	// order LoadSnapshot has always kept.
	pop := p.part()
	// A section of a store with as many shards as this one lands whole in
	// one shard, so sections load side by side without waiting for each
	// other, and each shard's profiles arrive in the order they were
	// written: the same dense ids, the same state. With another shard
	// count the sections would interleave in the shards in no fixed order,
	// so they load one after another, in one task.
	n := p.count()
	e.profiles.Reserve(len(p.data)-p.pos, n)
	loadSection := func(b []byte) error {
		return whole(b, "profile section", func(r *binfmt.Reader) error {
			return e.profiles.LoadSection(r, profileVersion(version), uint32(facets), uint32(products))
		})
	}
	var later [][]byte
	for range n {
		b := p.part()
		if p.err != nil || pool.failed.Load() {
			break
		}
		if n == e.profiles.Shards() {
			pool.run(func() error { return loadSection(b) })
		} else {
			later = append(later, b)
		}
	}
	if later != nil {
		pool.run(func() error {
			for _, b := range later {
				if err := loadSection(b); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if b := p.part(); p.err == nil {
		p.err = whole(b, "tail", func(r *binfmt.Reader) error {
			if err := e.ids.loadSnapshot(r); err != nil {
				return badSnapshot("event ids: %v", err)
			}
			if err := e.loadBlend(r); err != nil {
				return err
			}
			return e.nb.loadSnapshot(r, uint32(products))
		})
	}
	if p.err == nil && p.pos != len(p.data) {
		p.err = badSnapshot("%d trailing bytes", len(p.data)-p.pos)
	}
	// A part that failed says more than what the outline read after it
	// (which stops early once a part has failed).
	if err := pool.wait(); err != nil {
		return err
	}
	if p.err != nil {
		return p.err
	}
	if idx.Products() != products || idx.Facets() != facets {
		return badSnapshot("index of %d products and %d facets, snapshot says %d and %d", idx.Products(), idx.Facets(), products, facets)
	}
	e.idx = idx
	e.syncFacets()
	e.pop.grow(products)
	return whole(pop, "popularity", func(r *binfmt.Reader) error {
		if err := e.loadPopularity(r, version, uint32(products)); err != nil {
			return err
		}
		for i := range e.applied {
			e.applied[i].Store(r.Uvarint())
		}
		return nil
	})
}

// whole runs load on a reader of part b, which it must read whole.
func whole(b []byte, what string, load func(r *binfmt.Reader) error) error {
	r := binfmt.NewReader(b)
	if err := load(r); err != nil {
		return err
	}
	if r.Err() != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadSnapshot, what, r.Err())
	}
	if r.Len() != 0 {
		return badSnapshot("%d bytes after the %s", r.Len(), what)
	}
	return nil
}

// loadIndexPart loads the index from its part, which it must fill.
func loadIndexPart(b []byte) (*index.Index, error) {
	var idx *index.Index
	err := whole(b, "index", func(r *binfmt.Reader) (err error) {
		idx, err = index.LoadSnapshot(r)
		return err
	})
	return idx, err
}

// tasks runs functions on a fixed number of goroutines, in the order they
// are handed in, and keeps the first error; after an error the tasks not
// yet started are skipped.
type tasks struct {
	ch     chan func() error
	wg     sync.WaitGroup
	failed atomic.Bool
	mu     sync.Mutex
	err    error
}

func startTasks(workers int) *tasks {
	t := &tasks{ch: make(chan func() error, 1024)}
	for range max(1, workers) {
		t.wg.Go(func() {
			for f := range t.ch {
				if t.failed.Load() {
					continue
				}
				if err := f(); err != nil && !t.failed.Swap(true) {
					t.mu.Lock()
					t.err = err
					t.mu.Unlock()
				}
			}
		})
	}
	return t
}

func (t *tasks) run(f func() error) { t.ch <- f }

// wait waits for every task handed in and returns the first error.
func (t *tasks) wait() error {
	close(t.ch)
	t.wg.Wait()
	return t.err
}

// uvarintLen is the length of v's uvarint encoding.
func uvarintLen(v uint64) int {
	return max(1, (bits.Len64(v)+6)/7)
}
