package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
)

// TestScreenStreamsBounded: with MaxScreenStreams open, another kiosk's
// event stream is refused with 503, Retry-After and a JSON error, while
// picks.json (the page's fallback) still answers.
func TestScreenStreamsBounded(t *testing.T) {
	w := newScreenWorld(t, "")
	base := startServer(t, api.Options{Engine: w.e, MaxScreenStreams: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 2 {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/screen/store-1/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %v %v", i, resp, err)
		}
		defer resp.Body.Close()
		readEvent(t, bufio.NewReader(resp.Body))
	}
	status, h, body := request(t, base, "GET", "/screen/store-2/events", nil)
	msg, _ := errorBody(t, body)
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") != "5" || !strings.Contains(msg, "too many store screen streams") {
		t.Fatalf("a stream over the cap: %d Retry-After %q %s", status, h.Get("Retry-After"), body)
	}
	if status, _, body := request(t, base, "GET", "/screen/store-2/picks.json", nil); status != http.StatusOK {
		t.Fatalf("picks.json while streams are capped: %d %s", status, body)
	}
}

// TestScreenRecomputeCoalesced: a burst of stock writes at the store (40
// over 2 s) makes an open screen re-rank about once a second, not once per
// write, and the last write is still shown.
func TestScreenRecomputeCoalesced(t *testing.T) {
	w := newScreenWorld(t, "")
	base := startServer(t, api.Options{Engine: w.e})
	resp, err := http.Get(base + "/screen/store-1/events?k=4")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan screenJSON, 100)
	go func() {
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				close(events)
				return
			}
			if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				var ev screenJSON
				if json.Unmarshal(d, &ev) == nil {
					events <- ev
				}
			}
		}
	}()
	<-events // the current picks, at once
	first := screenCatalog[0]
	c := client{t, base}
	const writes = 40
	start := time.Now()
	for i := range writes {
		c.post("/v1/inventory", fmt.Sprintf(`{"sku":%q,"location":"store-1","quantity":%d}`, sku(first.id, first.storeSizes[0]), 1+i%3))
		time.Sleep(50 * time.Millisecond)
	}
	burst := time.Since(start)
	got := 0
	for timeout := time.After(1500 * time.Millisecond); ; {
		select {
		case _, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			got++
			continue
		case <-timeout:
		}
		break
	}
	// A leading re-rank, one a second during the burst, a trailing one.
	most := 2 + int((burst+1500*time.Millisecond)/time.Second)
	if got < 2 || got > most {
		t.Fatalf("%d stock writes over %v made the screen re-rank %d times; want 2 to %d", writes, burst.Round(time.Millisecond), got, most)
	}
	t.Logf("%d stock writes over %v: %d re-ranks", writes, burst.Round(time.Millisecond), got)
}
