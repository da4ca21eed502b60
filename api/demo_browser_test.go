package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/internal/demo"
)

// The kiosk and the explorer in headless Chromium on the demo world, with
// the pictures the server draws itself: every picture loads, the kiosk's
// cards fit landscape and portrait screens, the explorer shows a
// customer's profile, picks with their score parts and caps, a product's
// relations, stock and popularity, and its live panel counts requests.
// OMNIPICK_SCREENSHOTS=DIR keeps the screenshots (docs/img holds the
// README's).

// demoServer serves the demo world, its history ending now, with keys.
func demoServer(t *testing.T) (string, *engine.Engine) {
	t.Helper()
	e := engine.New(engine.Options{})
	if _, err := demo.Load(directWriter{e}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return startServer(t, api.Options{Engine: e, WriteKeys: []string{writeKey1}, ReadKeys: []string{readKey1}}), e
}

type directWriter struct{ e *engine.Engine }

func (d directWriter) Write(recs []engine.Record, errs []error) error {
	for i := range recs {
		errs[i] = d.e.Apply(&recs[i])
	}
	return nil
}

// browser is one headless Chromium; problems collects script errors and
// CSP violations of every tab.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
	)...)
	t.Cleanup(cancelAlloc)
	b := &browser{}
	var cancelBrowser context.CancelFunc
	b.ctx, cancelBrowser = chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	return b
}

// tab opens a tab with a viewport of w x h whose console is watched.
func (b *browser) tab(t *testing.T, w, h int64) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	messages := chromedp.Console(tab)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") || m.Type == chromedp.ConsoleError {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	}()
	opts := []chromedp.EmulateViewportOption{}
	if h > w {
		opts = append(opts, chromedp.EmulatePortrait)
	}
	if err := chromedp.Do(tab, chromedp.EmulateViewport(w, h, opts...)); err != nil {
		t.Fatal(err)
	}
	return tab
}

func (b *browser) check(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		t.Fatalf("the pages reported errors:\n%s", strings.Join(b.problems, "\n"))
	}
}

// waitImages waits until every <img> of the page has loaded, and fails the
// test when one is broken (loaded with no pixels) or still loading after
// 10 s: the page would show an empty box.
func waitImages(t *testing.T, tab context.Context, min int) {
	t.Helper()
	var last []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		states, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`Array.from(document.images, i => (i.complete ? (i.naturalWidth > 0 ? "ok" : "broken") : "loading") + " " + i.src)`))
		if err != nil {
			t.Fatal(err)
		}
		last = states
		loading, broken := 0, []string{}
		for _, s := range states {
			switch {
			case strings.HasPrefix(s, "loading"):
				loading++
			case strings.HasPrefix(s, "broken"):
				broken = append(broken, s)
			}
		}
		if len(broken) > 0 {
			t.Fatalf("broken pictures: %v", broken)
		}
		if loading == 0 && len(states) >= min {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s, pictures %v (want at least %d, all loaded)", last, min)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot captures the viewport, checks it is a PNG of the viewport's
// size, and keeps it as name in $OMNIPICK_SCREENSHOTS when set.
func screenshot(t *testing.T, tab context.Context, name string, w, h int) {
	t.Helper()
	b, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() != w || img.Bounds().Dy() != h {
		t.Fatalf("screenshot %s: %v, want a %dx%d PNG", name, err, w, h)
	}
	if dir := os.Getenv("OMNIPICK_SCREENSHOTS"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %s", filepath.Join(dir, name))
	}
}

func TestKioskFitsScreensInChromium(t *testing.T) {
	base, e := demoServer(t)
	br := newBrowser(t)
	// A known shopper scans something on the Berlin store's shelves.
	shelf := e.PicksInto(nil, &engine.Query{Channel: engine.ChannelScreen, Locations: []string{"store-berlin-1"}, K: 1})
	if len(shelf) == 0 {
		t.Fatal("nothing in stock at store-berlin-1")
	}
	scan := fmt.Sprintf(`{"type":"scan","customer":"C0250","product":%q,"location":"store-berlin-1","channel":"store"}`, shelf[0].Item.ID)
	if st, _, b := request(t, base, "POST", "/v1/events", []byte(scan), "X-API-Key: "+writeKey1); st != 200 {
		t.Fatalf("scan: %d %s", st, b)
	}
	for _, sz := range []struct{ w, h int }{{1280, 800}, {1080, 1920}} {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			tab := br.tab(t, int64(sz.w), int64(sz.h))
			if err := chromedp.Do(tab,
				chromedp.Navigate(base+"/screen/store-berlin-1?key="+readKey1),
				chromedp.WaitReady(`body[data-mode="live"]`),
			); err != nil {
				t.Fatal(err)
			}
			waitImages(t, tab, 8)
			type layout struct {
				Store          string
				Heading        string
				Cards          [][4]float64 // left, top, right, bottom
				ViewW, ViewH   float64
				ScrollH        float64
				TitlesOverflow int
			}
			got, err := chromedp.Run(tab, chromedp.Evaluate[layout](`({
				Store: document.getElementById("store").textContent.trim(),
				Heading: document.getElementById("heading").textContent,
				Cards: Array.from(document.querySelectorAll("#picks .pick"), c => { const r = c.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }),
				ViewW: innerWidth, ViewH: innerHeight,
				ScrollH: document.scrollingElement.scrollHeight,
				TitlesOverflow: Array.from(document.querySelectorAll("#picks .pick img"), i => i.getBoundingClientRect().height < 60 ? 1 : 0).reduce((a, b) => a + b, 0),
			})`))
			if err != nil {
				t.Fatal(err)
			}
			if got.Store != "Omnipick Berlin" {
				t.Errorf("the kiosk header shows %q, want the store's name Omnipick Berlin", got.Store)
			}
			if got.Heading != "Goes well with your scan" {
				t.Errorf("heading %q after a scan", got.Heading)
			}
			if len(got.Cards) != 8 {
				t.Fatalf("%d cards, want 8", len(got.Cards))
			}
			for i, c := range got.Cards {
				if c[0] < 0 || c[1] < 0 || c[2] > got.ViewW+0.5 || c[3] > got.ViewH+0.5 {
					t.Errorf("card %d at %v is cut by the %vx%v screen", i, c, got.ViewW, got.ViewH)
				}
			}
			if got.ScrollH > got.ViewH+0.5 {
				t.Errorf("the page scrolls: %v high on a %v screen", got.ScrollH, got.ViewH)
			}
			if got.TitlesOverflow > 0 {
				t.Errorf("%d pictures are squeezed under 60 px high", got.TitlesOverflow)
			}
			screenshot(t, tab, fmt.Sprintf("kiosk-%dx%d.png", sz.w, sz.h), sz.w, sz.h)
		})
	}
	br.check(t)
}

func TestExplorerInChromium(t *testing.T) {
	base, e := demoServer(t)
	// The explorer is a read: no key, no page.
	if st, _, _ := request(t, base, "GET", "/explore", nil); st != 401 {
		t.Fatalf("GET /explore without a key: %d, want 401", st)
	}
	if st, _, _ := request(t, base, "GET", "/explore/stats.json?key="+readKey1, nil); st != 401 {
		t.Fatalf("GET /explore/stats.json with the key in the URL: %d, want 401 (only the page takes ?key=)", st)
	}
	// Some traffic for the live panel and the frequency caps: the ads
	// platform shows C0250 her picks three times.
	for range 3 {
		if st, _, b := request(t, base, "GET", "/v1/picks?customer=C0250&channel=ads&k=4&record=1", nil, "X-API-Key: "+readKey1); st != 200 {
			t.Fatalf("%d %s", st, b)
		}
	}
	br := newBrowser(t)
	tab := br.tab(t, 1440, 1000)
	stop := make(chan struct{})
	var traffic sync.WaitGroup
	traffic.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				// Not request: FailNow belongs to the test's goroutine.
				req, _ := http.NewRequest("GET", base+"/v1/picks?customer=C0024&channel=web&k=8", nil)
				req.Header.Set("X-API-Key", readKey1)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
	})
	defer func() { close(stop); traffic.Wait() }()

	if err := chromedp.Do(tab,
		chromedp.Navigate(base+"/explore?key="+readKey1+"#customer=C0250"),
		chromedp.WaitReady(`body[data-view="customer"][data-ready="1"]`),
	); err != nil {
		t.Fatal(err)
	}
	// Two reads of the metrics make a rate: wait for the second.
	for deadline := time.Now().Add(10 * time.Second); ; {
		n, err := chromedp.Run(tab, chromedp.Evaluate[int](`Number(document.getElementById("live").dataset.samples)`))
		if err != nil {
			t.Fatal(err)
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live panel took %d samples in 10 s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitImages(t, tab, 20)
	type customerView struct {
		Columns map[string][]string // channel -> "product reason parts"
		Cards   []string
		Capped  int
		Rate    string
		P50     string
	}
	cv, err := chromedp.Run(tab, chromedp.Evaluate[customerView](`({
		Columns: Object.fromEntries(Array.from(document.querySelectorAll(".chan"), c => [c.dataset.channel,
			Array.from(c.querySelectorAll(".pick"), p => p.dataset.product + " " + p.querySelector(".badge").textContent + " " + p.querySelector(".parts").textContent)])),
		Cards: Array.from(document.querySelectorAll(".card h3"), h => h.textContent),
		Capped: document.querySelectorAll(".badge.capped").length,
		Rate: document.getElementById("rate").textContent,
		P50: document.getElementById("p50").textContent,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"ads", "email", "web", "app", "screen"} {
		col := cv.Columns[ch]
		if len(col) == 0 {
			t.Errorf("the %s column shows no picks", ch)
		}
		for _, p := range col {
			if !strings.Contains(p, "prior ") || !strings.Contains(p, "popularity ") {
				t.Errorf("%s pick %q lacks its score parts", ch, p)
			}
		}
	}
	for _, c := range []string{"Sizes", "Cart", "Purchases", "Affinities", "Linked ids"} {
		if !strings.Contains(strings.Join(cv.Cards, "|"), c) {
			t.Errorf("the profile lacks its %s card: %v", c, cv.Cards)
		}
	}
	if cv.Capped == 0 {
		t.Error("three ads impressions of the same picks show no frequency cap in force")
	}
	if cv.Rate == "–" || cv.Rate == "0" || cv.P50 == "–" {
		t.Errorf("the live panel shows rate %q, p50 %q while picks are being requested", cv.Rate, cv.P50)
	}
	screenshot(t, tab, "explorer-customer.png", 1440, 1000)

	// A product: the one her ads lead with.
	first := strings.Fields(cv.Columns["ads"][0])[0]
	if err := chromedp.Do(tab,
		chromedp.Evaluate[chromedp.Void](`location.hash = "#product=`+first+`"`),
		chromedp.WaitReady(`body[data-view="product"][data-ready="1"]`),
	); err != nil {
		t.Fatal(err)
	}
	waitImages(t, tab, 2)
	type productView struct {
		Heading   string
		Related   int
		StockRows int
		Rank      string
	}
	pv, err := chromedp.Run(tab, chromedp.Evaluate[productView](`({
		Heading: document.querySelector("main h2").textContent,
		Related: document.querySelectorAll(".rel img").length,
		StockRows: document.querySelectorAll("table tr").length - 1,
		Rank: Array.from(document.querySelectorAll(".kv dt")).find(d => d.textContent === "rank").nextSibling.textContent,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	it, _ := e.Product(first)
	stock, _ := e.Stock(first)
	locs := map[string]bool{}
	for _, s := range stock {
		locs[s.Location] = true
	}
	if !strings.Contains(pv.Heading, first) || pv.Related == 0 || pv.StockRows != len(locs) || !strings.Contains(pv.Rank, "overall") {
		t.Errorf("product view of %s (%s): %+v; want related items, %d stock rows, a rank", first, it.Title, pv, len(locs))
	}
	screenshot(t, tab, "explorer-product.png", 1440, 1000)
	br.check(t)
}

// TestExplorerJSON checks the explorer's answers directly: an unknown
// customer is not an error but gets non-personal picks; a product's stock
// adds up to the engine's; bad ids are 4xx naming the field.
func TestExplorerJSON(t *testing.T) {
	base, _ := demoServer(t)
	key := "X-API-Key: " + readKey1
	st, _, b := request(t, base, "GET", "/explore/customer.json?id=nobody-at-all", nil, key)
	var c struct {
		Known    bool
		Channels []struct {
			Channel string
			Picks   []struct{ Product, Reason string }
		}
	}
	if err := json.Unmarshal(b, &c); st != 200 || err != nil || c.Known || len(c.Channels) != 5 {
		t.Fatalf("unknown customer: %d %s", st, b)
	}
	for _, ch := range c.Channels {
		for _, p := range ch.Picks {
			if p.Reason != "popular" {
				t.Errorf("an unknown customer's %s pick %s has reason %s", ch.Channel, p.Product, p.Reason)
			}
		}
	}
	for _, tc := range []struct {
		path   string
		status int
		field  string
	}{
		{"/explore/customer.json", 400, "id"},
		{"/explore/customer.json?id=C0001&location=store-nowhere", 400, "location"},
		{"/explore/product.json?id=NOPE", 404, "id"},
		{"/explore/nothing", 404, ""},
	} {
		st, _, b := request(t, base, "GET", tc.path, nil, key)
		var e struct{ Error, Field string }
		if json.Unmarshal(b, &e); st != tc.status || e.Field != tc.field || e.Error == "" {
			t.Errorf("GET %s: %d %s, want %d naming %q", tc.path, st, b, tc.status, tc.field)
		}
	}
}
