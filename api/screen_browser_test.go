package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/omnipick/omnipick/api"
)

// chromiumPath returns the Chromium binary, or skips the test when there is
// none and OMNIPICK_REQUIRE_CHROMIUM is unset (CI sets it, so CI never
// skips silently).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("OMNIPICK_REQUIRE_CHROMIUM") != "" {
		t.Fatal("chromium is not on PATH and OMNIPICK_REQUIRE_CHROMIUM is set: install it with 'apt-get install -y --no-install-recommends chromium'")
	}
	t.Skip("chromium is not installed: the kiosk page is not tested in a browser (apt-get install chromium, or set OMNIPICK_REQUIRE_CHROMIUM=1 to make this a failure)")
	return ""
}

// imageServer serves a coloured SVG per product on loopback, so that the
// page loads real images and the test reaches no other host.
func imageServer(t *testing.T) string {
	t.Helper()
	colours := []string{"#b5523b", "#3b7bb5", "#5f9e4f", "#9e7b4f", "#7b4f9e", "#4f9e96"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), ".svg")
		c := colours[len(id)%len(colours)]
		if id != "" {
			c = colours[int(id[len(id)-1])%len(colours)]
		}
		w.Header().Set("Content-Type", "image/svg+xml")
		fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="300" height="400"><rect width="300" height="400" fill="%s"/>`+
			`<text x="150" y="210" font-family="sans-serif" font-size="48" fill="#fff" text-anchor="middle">%s</text></svg>`, c, html.EscapeString(id))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestScreenKioskInChromium loads the kiosk page in headless Chromium,
// scans a product at the store over HTTP, and waits for the page to show
// what goes with it, as a shopper at the kiosk would see it.
func TestScreenKioskInChromium(t *testing.T) {
	exe := chromiumPath(t)
	start := time.Now()
	w := newScreenWorld(t, imageServer(t))
	base := startServer(t, api.Options{Engine: w.e, WriteKeys: []string{writeKey1}, ReadKeys: []string{readKey1}})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 1000),
	)...)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()

	// Script errors and CSP violations fail the test: they would leave a
	// kiosk frozen on its first picks.
	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(tab)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()

	shown := func() []string { t.Helper(); return shownPicks(t, tab) }
	// The read key travels in the query string: EventSource cannot send it
	// in a header.
	if err := chromedp.Do(tab,
		chromedp.Navigate(base+"/screen/store-1?k=4&key="+readKey1),
		chromedp.WaitReady(`body[data-mode="live"]`), // the event stream is open
	); err != nil {
		t.Fatalf("loading the kiosk page: %v", err)
	}
	before := shown()
	if len(before) != 4 || !slices.Equal(before[:2], []string{"HAT1", "LG1"}) {
		t.Fatalf("before any scan the kiosk shows %v, want the store's bestsellers HAT1, LG1, ...", before)
	}

	// A shopper scans the merino sweater at the kiosk.
	scanned := time.Now()
	status, _, body := request(t, base, "POST", "/v1/events",
		[]byte(`{"type":"scan","product":"SW1","anonymous_id":"kiosk-walkin","location":"store-1","channel":"store"}`),
		"Authorization: Bearer "+writeKey1)
	if status != 200 {
		t.Fatalf("posting the scan: %d %s", status, body)
	}
	var after []string
	for deadline := scanned.Add(3 * time.Second); ; {
		after = shown()
		if len(after) >= 2 && sameSet(after[:2], []string{"SW2", "SW3"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("3 s after the scan of SW1 the kiosk shows %v (before: %v), want the sweaters SW2 and SW3 first", after, before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the kiosk showed the scan's picks %v after %v", after, time.Since(scanned).Round(time.Millisecond))
	if slices.Contains(after, "SW1") || slices.Contains(after, "SW4") {
		t.Fatalf("the kiosk shows the scanned or an out-of-store product: %v", after)
	}
	for _, id := range after {
		if _, ok := w.inStore[id]; !ok {
			t.Fatalf("the kiosk shows %s, which store-1 does not have: %v", id, after)
		}
	}

	// Every card shows its image, title and price. The cards are read once
	// every image has loaded and decoded (or failed to): the page sets
	// their src as the event arrives, and reading naturalWidth before the
	// load event fires would report an image the browser is still
	// fetching as missing. decode() settles on load or on error, so a
	// broken image still fails the test, and the 30 s context bounds the
	// wait.
	cards, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`Promise.all(Array.from(document.querySelectorAll("#picks .pick img"),
		img => img.decode().catch(() => null))).then(() => Array.from(document.querySelectorAll("#picks .pick"), li => {
		const img = li.querySelector("img");
		return [img && img.complete && img.naturalWidth > 0 ? "img" : "no-img",
			li.querySelector(".title").textContent, li.querySelector(".price").textContent].join("|");
	}))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cards {
		if !strings.HasPrefix(c, "img|") || !strings.HasSuffix(c, "|49.50 EUR") {
			t.Errorf("a card is missing its image, title or price: %q", c)
		}
	}

	png1, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(png1))
	if err != nil || img.Bounds().Dx() == 0 || img.Bounds().Dy() == 0 {
		t.Fatalf("the screenshot is not a valid non-empty PNG (%d bytes): %v", len(png1), err)
	}
	paths := []string{filepath.Join(t.TempDir(), "kiosk.png")}
	if p := os.Getenv("OMNIPICK_SCREENSHOT"); p != "" {
		paths = append(paths, p)
	}
	for _, p := range paths {
		if err := os.WriteFile(p, png1, 0o644); err != nil {
			t.Fatalf("cannot save the screenshot: %v", err)
		}
	}
	t.Logf("screenshot %dx%d saved to %v", img.Bounds().Dx(), img.Bounds().Dy(), paths)

	// Without EventSource the page polls picks.json.
	polling, cancelPolling := chromedp.NewContext(tab) // a second tab
	defer cancelPolling()
	if err := chromedp.Do(polling,
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: "delete window.EventSource;"})
			return err
		}),
		chromedp.Navigate(base+"/screen/store-1?k=4&key="+readKey1),
		chromedp.WaitReady(`body[data-mode="polling"]`),
	); err != nil {
		t.Fatalf("loading the kiosk page without EventSource: %v", err)
	}
	scanned = time.Now()
	request(t, base, "POST", "/v1/events",
		[]byte(`{"type":"scan","product":"HAT1","anonymous_id":"kiosk-walkin","location":"store-1","channel":"store"}`),
		"X-API-Key: "+writeKey1)
	_, _, body = request(t, base, "GET", "/screen/store-1/picks.json?k=4", nil, "X-API-Key: "+readKey1)
	var want screenJSON
	if err := json.Unmarshal(body, &want); err != nil || want.Context != "HAT1" {
		t.Fatalf("picks.json after the scan of HAT1: %s", body)
	}
	for deadline := scanned.Add(3 * time.Second); ; {
		after = shownPicks(t, polling)
		if slices.Equal(after, products(want.Picks)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("3 s after the scan of HAT1 the polling kiosk shows %v, want %v", after, products(want.Picks))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the polling kiosk showed the scan's picks %v after %v; the test took %v", after, time.Since(scanned).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(problems, "\n"))
	}
}

// shownPicks returns the product ids that the kiosk page in tab shows, in
// order.
func shownPicks(t *testing.T, tab context.Context) []string {
	t.Helper()
	ids, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#picks [data-product]"), e => e.dataset.product)`))
	if err != nil {
		t.Fatalf("reading the shown picks: %v", err)
	}
	return ids
}
