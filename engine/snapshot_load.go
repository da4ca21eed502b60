package engine

import (
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/omnipick/omnipick/engine/profile"
	"github.com/omnipick/omnipick/index"
	"github.com/omnipick/omnipick/internal/binfmt"
)

// loadParts reads a snapshot of version 7 on, whose big parts (the index,
// the relations, each profile section) are length-prefixed: it reads the
// small parts in order, then loads the big ones on GOMAXPROCS goroutines.
// At ten million customers the profile sections are most of a restart,
// and before version 7 they could only be found by decoding the one
// before.
func (e *Engine) loadParts(r *binfmt.Reader, version byte) error {
	// Every product has a relation list and a popularity value, every
	// facet a top list: a count past what the bytes left could hold is
	// refused before anything is allocated for it.
	products, facets := r.Count(math.MaxInt32), r.Count(math.MaxInt32)
	idxPart := r.Part()
	e.tops = make([]topList, facets)
	if err := e.loadTops(r, version, uint32(products)); err != nil {
		return err
	}
	relPart := r.Part()
	if r.Err() != nil || products > len(relPart) {
		return badSnapshot("%d products in %d bytes of relations (%v)", products, len(relPart), r.Err())
	}
	e.rel.grow(products)
	e.pop.grow(products)
	if err := e.loadPopularity(r, version, uint32(products)); err != nil {
		return err
	}
	for i := range e.applied {
		e.applied[i].Store(r.Uvarint())
	}
	sections := make([][]byte, r.Count(math.MaxInt32))
	total := 0
	for i := range sections {
		sections[i] = r.Part()
		total += len(sections[i])
	}
	if err := e.ids.loadSnapshot(r); err != nil {
		return badSnapshot("event ids: %v", err)
	}
	if err := e.loadBlend(r); err != nil {
		return err
	}
	if err := e.nb.loadSnapshot(r, uint32(products)); err != nil {
		return err
	}
	if r.Err() != nil {
		return fmt.Errorf("%w: %w", ErrBadSnapshot, r.Err())
	}
	if r.Len() != 0 {
		return badSnapshot("%d trailing bytes", r.Len())
	}

	// The parts. A section of a store with as many shards as this one
	// lands whole in one shard, so sections load side by side without
	// waiting for each other, and each shard's profiles arrive in the
	// order they were written: the same dense ids, the same state. With
	// another shard count the sections would interleave in the shards in
	// no fixed order, so they load one after another, in one task.
	e.profiles.Reserve(total)
	var idx *index.Index
	tasks := []func() error{
		func() (err error) {
			idx, err = loadIndexPart(idxPart)
			return err
		},
		func() error { return e.loadRelationsPart(relPart, uint32(products)) },
	}
	loadSection := func(b []byte) error {
		sr := binfmt.NewReader(b)
		if err := e.profiles.LoadSection(sr, min(version, profile.Version), uint32(facets), uint32(products)); err != nil {
			return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
		if sr.Len() != 0 {
			return badSnapshot("%d bytes after a profile section", sr.Len())
		}
		return nil
	}
	if len(sections) == e.profiles.Shards() {
		for _, b := range sections {
			tasks = append(tasks, func() error { return loadSection(b) })
		}
	} else {
		tasks = append(tasks, func() error {
			for _, b := range sections {
				if err := loadSection(b); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := runTasks(tasks, runtime.GOMAXPROCS(0)); err != nil {
		return err
	}
	if idx.Products() != products || idx.Facets() != facets {
		return badSnapshot("index of %d products and %d facets, snapshot says %d and %d", idx.Products(), idx.Facets(), products, facets)
	}
	e.idx = idx
	e.syncFacets()
	return nil
}

// loadIndexPart loads the index from its part, which it must fill.
func loadIndexPart(b []byte) (*index.Index, error) {
	r := binfmt.NewReader(b)
	idx, err := index.LoadSnapshot(r)
	if err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, badSnapshot("%d bytes after the index", r.Len())
	}
	return idx, nil
}

// loadRelationsPart loads the relations from their part, which they must
// fill.
func (e *Engine) loadRelationsPart(b []byte, products uint32) error {
	r := binfmt.NewReader(b)
	if err := e.loadRelations(r, products); err != nil {
		return err
	}
	if r.Err() != nil {
		return fmt.Errorf("%w: relations: %w", ErrBadSnapshot, r.Err())
	}
	if r.Len() != 0 {
		return badSnapshot("%d bytes after the relations", r.Len())
	}
	return nil
}

// runTasks runs the tasks on up to workers goroutines, in order of their
// index (the biggest first is the caller's choice), and returns the first
// error any returned; after an error no new task starts.
func runTasks(tasks []func() error, workers int) error {
	var (
		next   atomic.Int64
		failed atomic.Bool
		mu     sync.Mutex
		errs   []error
		wg     sync.WaitGroup
	)
	for range max(1, min(workers, len(tasks))) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(tasks) {
					return
				}
				if err := tasks[i](); err != nil {
					failed.Store(true)
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// uvarintLen is the length of v's uvarint encoding.
func uvarintLen(v uint64) int {
	return max(1, (bits.Len64(v)+6)/7)
}
