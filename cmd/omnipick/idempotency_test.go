package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// TestIdempotentRetries runs the real binary as a retrying client sees
// it. Each cycle posts a batch with event ids (events, an identify, an
// exclusion) and SIGKILLs the server, in one cycle of two after the
// acknowledgement, in the other while the batch is in flight (crash mid-
// batch: the client cannot know whether it was applied); then it restarts
// the server and posts the same batch again, as the client retries: the
// retry is acknowledged with every record applied once in all (applied +
// duplicates = the batch), and the state equals a reference engine fed
// every batch exactly once. A third post of the same batch is all
// duplicates.
func TestIdempotentRetries(t *testing.T) {
	bin := omnipickBinary(t)
	root := t.TempDir()
	data := filepath.Join(root, "data")
	hc := &http.Client{Timeout: 20 * time.Second}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	ref := engine.New(engine.Options{Now: time.Now})
	var dec api.Decoder
	feed := func(op engine.Op, lines []string) {
		recs, rejects, err := dec.Decode(op, []byte(strings.Join(lines, "\n")), true, time.Now().UnixMilli(), nil, nil)
		if err != nil || len(rejects) > 0 {
			t.Fatalf("decode: %v %v", err, rejects)
		}
		for i := range recs {
			if err := ref.Apply(&recs[i]); err != nil {
				t.Fatalf("the reference: %v", err)
			}
		}
	}
	const products = 30
	var catalog []string
	for i := range products {
		catalog = append(catalog, fmt.Sprintf(`{"id":"I%02d","title":"Item %d","category":"cat/c%d","brand":"b%d","variants":[{"sku":"I%02d"}]}`, i, i, i%4, i%3, i))
	}
	base := time.Now().Add(-48 * time.Hour).UnixMilli()
	var ids []string
	var inFlight, afterAck, retryApplied, retryDups int
	const cycles = 6
	for cycle := range cycles {
		p := startServe(t, bin, data, filepath.Join(root, fmt.Sprintf("cycle-%d.log", cycle)), "-snapshot-every", "300ms")
		if cycle == 0 {
			mustPost(t, hc, p.base+"/v1/products", catalog...)
			feed(engine.OpProduct, catalog)
		}
		c := fmt.Sprintf("idem-%d", cycle)
		ck := fmt.Sprintf("idem-ck-%d", cycle)
		ids = append(ids, c)
		var events []string
		for i := range 2000 {
			actor := fmt.Sprintf(`"anonymous_id":%q`, ck)
			if i%2 == 0 {
				actor = fmt.Sprintf(`"customer":%q`, c)
			}
			typ := []string{"view", "cart_add", "purchase", "view"}[i%4]
			events = append(events, fmt.Sprintf(`{"event_id":"%s-e%d","type":%q,%s,"product":"I%02d","channel":"web","ts":%d}`,
				c, i, typ, actor, (i*7+cycle)%products, base+int64(cycle*1000+i)*1000))
		}
		identify := []string{fmt.Sprintf(`{"event_id":"%s-id","anonymous_id":%q,"customer":%q}`, c, ck, c)}
		exclusion := []string{fmt.Sprintf(`{"event_id":"%s-x","customer":%q,"product":"I%02d","until":%d}`, c, c, cycle, time.Now().Add(time.Hour).UnixMilli())}
		posts := []struct {
			path  string
			op    engine.Op
			lines []string
		}{{"/v1/events", engine.OpEvent, events}, {"/v1/identify", engine.OpIdentify, identify}, {"/v1/exclusions", engine.OpExclusion, exclusion}}

		killDuring := cycle%2 == 1
		if killDuring {
			// The identify and exclusion first, acknowledged; the events
			// in flight when the kill comes.
			for _, b := range posts[1:] {
				mustPost(t, hc, p.base+b.path, b.lines...)
			}
			var wg sync.WaitGroup
			wg.Go(func() { post(hc, p.base+"/v1/events", []byte(strings.Join(events, "\n"))) })
			// Early or late in the request: the batch is then absent, or
			// applied with the reply lost.
			time.Sleep(time.Duration(rng.IntN(10)+cycle/2*rng.IntN(60)) * time.Millisecond)
			p.signal(syscall.SIGKILL)
			wg.Wait()
			inFlight++
		} else {
			for _, b := range posts {
				mustPost(t, hc, p.base+b.path, b.lines...)
			}
			p.signal(syscall.SIGKILL)
			afterAck++
		}
		p.wait(10 * time.Second)

		// The client retries everything with the same ids.
		p = startServe(t, bin, data, filepath.Join(root, fmt.Sprintf("cycle-%d-retry.log", cycle)), "-snapshot-every", "300ms")
		for _, b := range posts {
			status, wr, err := post(hc, p.base+b.path, []byte(strings.Join(b.lines, "\n")))
			if err != nil || status != http.StatusOK || wr.Applied+wr.Duplicates != len(b.lines) || len(wr.Rejected) > 0 {
				t.Fatalf("cycle %d: retry of %s: %d %+v %v", cycle, b.path, status, wr, err)
			}
			if !killDuring && wr.Duplicates != len(b.lines) {
				t.Fatalf("cycle %d: the retry of an acknowledged %s applied %d records again", cycle, b.path, wr.Applied)
			}
			retryApplied += wr.Applied
			retryDups += wr.Duplicates
			status, wr, err = post(hc, p.base+b.path, []byte(strings.Join(b.lines, "\n")))
			if err != nil || status != http.StatusOK || wr.Duplicates != len(b.lines) || wr.Applied != 0 {
				t.Fatalf("cycle %d: a second retry of %s: %d %+v %v", cycle, b.path, status, wr, err)
			}
		}
		// The reference, in the order the server first applied them.
		order := posts
		if killDuring {
			order = append(posts[1:3:3], posts[0])
		}
		for _, b := range order {
			feed(b.op, b.lines)
		}
		server := fetchState(t, hc, p.base, ids, nil)
		want := refState(t, ref, ids, nil)
		if d := diffStates(server, want, true); d != "" {
			t.Fatalf("cycle %d: after the retries the state is not every batch applied once:\n%s", cycle, d)
		}
		p.signal(syscall.SIGTERM)
		if st := p.wait(30 * time.Second); st.ExitCode() != 0 {
			t.Fatalf("clean stop: %v\n%s", st, p.logTail())
		}
	}
	t.Logf("%d cycles (%d killed after the acknowledgement, %d with the batch in flight): retries applied %d records and acknowledged %d as duplicates; every batch applied exactly once",
		cycles, afterAck, inFlight, retryApplied, retryDups)
}
