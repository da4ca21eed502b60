//go:build !race

package load

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestRequestsDoNotAllocate proves that building a request of any kind,
// and sending it, allocates nothing once the buffers have grown.
func TestRequestsDoNotAllocate(t *testing.T) {
	addr, stop, err := StartCeiling("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	w := testWorld()
	cust, prod := newPopularity(w.Customers, 0.8, 1), newPopularity(w.Products, 0.8, 2)
	base := "http://" + addr
	b := newBuilder(base, w, DefaultMix(), &cust, &prod, 10, 1, 0)
	for k := range NumKinds {
		if a := testing.AllocsPerRun(100, func() {
			if k == Events {
				b.eventsBody()
			} else {
				b.picksURI(k)
			}
		}); a != 0 {
			t.Errorf("building a %s request allocates %v times", k, a)
		}
	}

	hc := &fasthttp.HostClient{Addr: addr, MaxConns: 1, ReadTimeout: time.Second, WriteTimeout: time.Second}
	rec := &recorder{errs: map[string]uint64{}}
	wk := newWorker(hc, base, "key", b, rec)
	step := func() {
		k := b.next()
		start := time.Now()
		err := wk.send(k)
		wk.record(k, time.Since(start), err)
	}
	for range 100 {
		step() // grow the buffers
	}
	if a := testing.AllocsPerRun(1000, step); a != 0 {
		t.Errorf("a request allocates %v times", a)
	}
	if len(rec.errs) != 0 {
		t.Errorf("transport errors: %v", rec.errs)
	}
}
