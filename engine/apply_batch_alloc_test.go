//go:build !race

package engine

import (
	"fmt"
	"testing"
	"time"
)

// TestApplyBatchAllocatesNothing proves ApplyBatch allocates nothing per
// record once its pooled scratch is warm: a run of up to 1,024 events
// costs the closures of its goroutines (three per worker beyond the
// first), nothing per event.
func TestApplyBatchAllocatesNothing(t *testing.T) {
	e, now := benchWorldWith(t, 3000, 300, Options{ApplyWorkers: 2})
	recs := make([]Record, batchChunk)
	for i := range recs {
		p := i * 7 % 3000
		ev := Event{Type: []EventType{EventView, EventCartAdd, EventPurchase}[i%3], Customer: fmt.Sprint("C", i%300),
			Product: fmt.Sprintf("P%07d", p), TS: now.Add(time.Duration(i) * time.Second).UnixMilli()}
		if p%5 < 3 {
			ev.Product, ev.SKU = "", fmt.Sprintf("P%07d-M", p)
		}
		recs[i] = Record{Op: OpEvent, Event: ev}
	}
	errs := make([]error, len(recs))
	apply := func() {
		e.ApplyBatch(recs, errs)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
	}
	apply() // warm the scratch
	if n := testing.AllocsPerRun(20, apply); n > 4 {
		t.Fatalf("%v allocations per batch of %d events", n, len(recs))
	}
}
