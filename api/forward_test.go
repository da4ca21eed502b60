package api_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// A partitioned cluster in one process: three real servers on loopback,
// each over its own engine. The test's partition rule puts actor a on
// node xxhash(a) % 3, its owner; node (owner+2) % 3 holds a stale standby
// copy of its profile (missing its last event, a purchase); the third node
// knows nothing of it. So the three would answer differently: only the
// owner's answer is right.

const clusterNodes = 3

// ownerOf is the test's partition rule.
// Actors are named "anon:ID" in the tests; Route sees the ID.
func ownerOf(actor string) int {
	id, _ := strings.CutPrefix(actor, "anon:")
	return int(xxhash.Sum64String(id) % clusterNodes)
}

type testCluster struct {
	bases   []string
	servers []*api.Server
	engines []*engine.Engine
	actors  []string // every actor with data: customers, then "anon:" ids
}

// clusterActors are the actors of the cluster tests: enough that every
// node owns some.
func clusterActors() []string {
	var a []string
	for i := range 12 {
		a = append(a, fmt.Sprintf("cust-%d", i))
	}
	for i := range 6 {
		a = append(a, fmt.Sprintf("anon:cookie-%d", i))
	}
	return a
}

// startCluster starts the nodes with Route, Owners and Owns over the test's
// partition rule; opts adjusts each node's options.
func startCluster(t *testing.T, opts func(i int, bases []string, o *api.Options)) *testCluster {
	t.Helper()
	tc := &testCluster{actors: clusterActors()}
	lns := make([]net.Listener, clusterNodes)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		tc.bases = append(tc.bases, "http://"+ln.Addr().String())
	}
	for i := range clusterNodes {
		o := api.Options{
			Listener: lns[i],
			Engine:   engine.New(engine.Options{Now: func() time.Time { return audienceNow }}),
			Route: func(actor string, _ bool) (string, error) {
				if n := ownerOf(actor); n != i {
					return tc.bases[n], nil
				}
				return "", nil
			},
			Owners: func() ([]string, error) {
				var others []string
				for n, b := range tc.bases {
					if n != i {
						others = append(others, b)
					}
				}
				return others, nil
			},
			Owns: func(actor string, _ bool) bool { return ownerOf(actor) == i },
		}
		if opts != nil {
			opts(i, tc.bases, &o)
		}
		srv, _ := startServerWith(t, o)
		tc.servers = append(tc.servers, srv)
		tc.engines = append(tc.engines, o.Engine)
	}
	for i := range clusterNodes {
		tc.load(t, i)
	}
	return tc
}

// load writes node i's data: the catalog, and the events of the actors it
// owns (all of them) or stands by for (all but the last).
func (tc *testCluster) load(t *testing.T, i int) {
	t.Helper()
	c := client{t, tc.bases[i]}
	for p := 1; p <= 6; p++ {
		c.post("/v1/products", fmt.Sprintf(`{"id":"P%d","title":"Title P%d","url":"https://shop.example/p/P%d","price":%d,"currency":"EUR","category":"women/knitwear","size_group":"women-numeric","variants":[{"sku":"P%d-8","size":"8"}]}`, p, p, p, 10+p, p))
		c.post("/v1/inventory", fmt.Sprintf(`{"sku":"P%d-8","location":"online","quantity":5}`, p))
	}
	c.post("/v1/locations", `{"id":"store-1"}`)
	for p := 1; p <= 6; p++ {
		c.post("/v1/inventory", fmt.Sprintf(`{"sku":"P%d-8","location":"store-1","quantity":2}`, p))
	}
	for k, a := range tc.actors {
		owner := ownerOf(a)
		standby := (owner + 2) % clusterNodes
		if i != owner && i != standby {
			continue
		}
		who, id := "customer", a
		if rest, ok := strings.CutPrefix(a, "anon:"); ok {
			who, id = "anonymous_id", rest
		}
		ev := func(typ, sku string, ago time.Duration) string {
			return fmt.Sprintf(`{"type":%q,%q:%q,"sku":%q,"channel":"web","ts":%q}`, typ, who, id, sku, audienceNow.Add(-ago).Format(time.RFC3339))
		}
		cart, bought := fmt.Sprintf("P%d-8", 1+k%6), fmt.Sprintf("P%d-8", 1+(k+1)%6)
		lines := []string{ev("view", cart, 5*time.Hour), ev("cart_add", cart, 4*time.Hour)}
		if i == owner {
			lines = append(lines, ev("purchase", bought, 3*time.Hour)) // the standby has not seen it
		}
		c.post("/v1/events", lines...)
	}
}

// get fetches base+path with the headers given as name, value pairs.
func get(t *testing.T, method, base, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, b
}

// tookUS varies between two answers to the same request.
var tookUS = regexp.MustCompile(`"took_us":\d+`)

func sameAnswer(b []byte) string { return string(tookUS.ReplaceAll(b, []byte(`"took_us":0`))) }

// actorQuery is the picks parameter for actor.
func actorQuery(actor string) string {
	if id, ok := strings.CutPrefix(actor, "anon:"); ok {
		return "anonymous_id=" + id
	}
	return "customer=" + actor
}

// TestForwardToOwner asks every node about every actor: each answer is
// the owner's, as asking the owner itself gives it, and differs from what
// the standby alone would say.
func TestForwardToOwner(t *testing.T) {
	tc := startCluster(t, nil)
	type ask struct {
		name, method string
		path         func(actor string) string
	}
	asks := []ask{
		{"picks", "GET", func(a string) string { return "/v1/picks?k=10&" + actorQuery(a) }},
		{"picks html", "GET", func(a string) string { return "/v1/picks?format=html&k=10&channel=email&" + actorQuery(a) }},
		{"picks head", "HEAD", func(a string) string { return "/v1/picks?" + actorQuery(a) }},
		{"customer", "GET", func(a string) string {
			if id, ok := strings.CutPrefix(a, "anon:"); ok {
				return "/v1/customers/" + id + "?anonymous=1"
			}
			return "/v1/customers/" + a
		}},
		{"explorer", "GET", func(a string) string {
			id, _ := strings.CutPrefix(a, "anon:")
			return "/explore/customer.json?location=store-1&id=" + id
		}},
	}
	for _, x := range asks {
		t.Run(x.name, func(t *testing.T) {
			for _, a := range tc.actors {
				owner := ownerOf(a)
				// Asked of the owner with the forwarded header, the answer
				// is its own (what forwarding relays).
				want, wantBody := get(t, x.method, tc.bases[owner], x.path(a), "X-Omnipick-Forwarded", "1")
				if want.StatusCode != 200 {
					t.Fatalf("%s of its owner: %d %s", a, want.StatusCode, wantBody)
				}
				standby := (owner + 2) % clusterNodes
				_, local := get(t, x.method, tc.bases[standby], x.path(a), "X-Omnipick-Forwarded", "1")
				if x.method == "GET" && sameAnswer(local) == sameAnswer(wantBody) {
					t.Fatalf("%s: the standby's stale answer equals the owner's: the test cannot tell them apart\n%s", a, local)
				}
				for n := range clusterNodes {
					got, body := get(t, x.method, tc.bases[n], x.path(a))
					if got.StatusCode != want.StatusCode || sameAnswer(body) != sameAnswer(wantBody) ||
						got.Header.Get("Content-Type") != want.Header.Get("Content-Type") {
						t.Fatalf("%s asked of node %d (owner %d): %d %v %s\nowner: %d %v %s", a, n, owner,
							got.StatusCode, got.Header, body, want.StatusCode, want.Header, wantBody)
					}
				}
			}
		})
	}
}

// TestForwardErase forwards DELETE /v1/customers/{id}: whether the
// profile existed is the owner's to say.
func TestForwardErase(t *testing.T) {
	tc := startCluster(t, nil)
	a := "cust-3"
	owner := ownerOf(a)
	asked := (owner + 1) % clusterNodes // holds no copy: it alone would say 404
	c := client{t, tc.bases[asked]}
	if st, body := c.do("DELETE", "/v1/customers/"+a, "", ""); st != 200 || !strings.Contains(string(body), `"erased":"cust-3"`) {
		t.Fatalf("erase through node %d: %d %s", asked, st, body)
	}
	if resp, body := get(t, "GET", tc.bases[owner], "/v1/customers/"+a); resp.StatusCode != 404 {
		t.Fatalf("after the erase the owner still has %s: %d %s", a, resp.StatusCode, body)
	}
}

// TestForwardOneHop: a forwarded request is answered where it lands, even
// when that node thinks another owns the actor (ownership moving): every
// node here believes the next one owns everything.
func TestForwardOneHop(t *testing.T) {
	tc := startCluster(t, func(i int, bases []string, o *api.Options) {
		o.Route = func(string, bool) (string, error) { return bases[(i+1)%clusterNodes], nil }
	})
	for i := range clusterNodes {
		next := tc.bases[(i+1)%clusterNodes]
		for _, a := range tc.actors {
			path := "/v1/picks?" + actorQuery(a)
			_, want := get(t, "GET", next, path, "X-Omnipick-Forwarded", "1")
			resp, got := get(t, "GET", tc.bases[i], path)
			if resp.StatusCode != 200 || sameAnswer(got) != sameAnswer(want) {
				t.Fatalf("%s through node %d: %d %s, want node %d's own answer %s", a, i, resp.StatusCode, got, (i+1)%clusterNodes, want)
			}
		}
	}
	// Each node forwarded every actor once and answered every forwarded
	// request itself: as many forwards out as requests asked of it.
	for i := range clusterNodes {
		_, m := get(t, "GET", tc.bases[i], "/metrics")
		want := fmt.Sprintf(`omnipick_forwarded_requests_total{endpoint="picks",outcome="ok"} %d`, len(tc.actors))
		if !strings.Contains(string(m), want) {
			t.Fatalf("node %d metrics lack %s:\n%s", i, want, grepLines(m, "forward"))
		}
		if !strings.Contains(string(m), `omnipick_forward_duration_seconds_count{endpoint="picks"} `) {
			t.Fatalf("node %d: no forward latency:\n%s", i, grepLines(m, "forward"))
		}
	}
}

// grepLines returns the lines of b holding s.
func grepLines(b []byte, s string) string {
	var out []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestForwardOwnerDown: an owner that is gone, one that does not answer,
// and no owner at all each give a 503 JSON with Retry-After within the
// forward timeout, never a hang.
func TestForwardOwnerDown(t *testing.T) {
	// A port where nothing listens any more.
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	goneURL := "http://" + gone.Addr().String()
	gone.Close()
	// A node that accepts connections and never answers (stuck).
	stuck, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stuck.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := stuck.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	stuckURL := "http://" + stuck.Addr().String()
	const timeout = 300 * time.Millisecond
	for _, tt := range []struct {
		name  string
		route func(string, bool) (string, error)
		say   string
	}{
		{"refused", func(string, bool) (string, error) { return goneURL, nil }, goneURL},
		{"stuck", func(string, bool) (string, error) { return stuckURL, nil }, stuckURL},
		{"no owner", func(string, bool) (string, error) { return "", fmt.Errorf("partition 7 has no live owner") }, "partition 7 has no live owner"},
		{"bad url", func(string, bool) (string, error) { return "10.0.0.2:7070", nil }, "10.0.0.2:7070"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := startServer(t, api.Options{Route: tt.route, ForwardTimeout: timeout})
			for _, path := range []string{"/v1/picks?customer=c1", "/v1/customers/c1", "/explore/customer.json?id=c1"} {
				start := time.Now()
				resp, body := get(t, "GET", base, path)
				took := time.Since(start)
				if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || resp.Header.Get("Content-Type") != "application/json" ||
					!strings.Contains(string(body), `"error":`) || !strings.Contains(string(body), tt.say) {
					t.Fatalf("%s: %d %v %s, want a 503 JSON naming %s", path, resp.StatusCode, resp.Header, body, tt.say)
				}
				// Connect, send and read are each bounded by the timeout;
				// a retry on a fresh connection may add one more.
				if took > 4*timeout+time.Second {
					t.Fatalf("%s: answered after %v, forward timeout %v", path, took, timeout)
				}
			}
			// Requests about no actor are answered here.
			if resp, body := get(t, "GET", base, "/v1/picks"); resp.StatusCode != 200 {
				t.Fatalf("picks for nobody: %d %s", resp.StatusCode, body)
			}
			outcome := "failed"
			if tt.name == "no owner" {
				outcome = "no_owner"
			}
			_, m := get(t, "GET", base, "/metrics")
			for _, ep := range []string{"picks", "customer", "explore"} {
				if want := fmt.Sprintf(`omnipick_forwarded_requests_total{endpoint=%q,outcome=%q} 1`, ep, outcome); !strings.Contains(string(m), want) {
					t.Fatalf("metrics lack %s:\n%s", want, grepLines(m, "forward"))
				}
			}
		})
	}
}

// TestForwardBadInput: parameters are checked by the node asked, before
// any forwarding: the 4xx names the field, whoever owns the actor.
func TestForwardBadInput(t *testing.T) {
	tc := startCluster(t, func(i int, bases []string, o *api.Options) {
		o.Route = func(string, bool) (string, error) { return bases[(i+1)%clusterNodes], nil }
	})
	long := strings.Repeat("x", 300)
	for _, tt := range []struct{ path, field string }{
		{"/v1/picks?customer=" + long, "customer"},
		{"/v1/picks?customer=c1&k=0", "k"},
		{"/v1/picks?customer=c1&location=nowhere", "location"},
		{"/v1/picks?customer=c1&anonymous_id=a", "anonymous_id"},
		{"/v1/customers/" + long, "id"},
		{"/explore/customer.json?id=", "id"},
		{"/explore/customer.json?id=c1&location=nowhere", "location"},
		{"/v1/audiences/cart_abandoners?scope=mine", "scope"},
		{"/v1/audiences/cart_abandoners?format=xml", "format"},
	} {
		resp, body := get(t, "GET", tc.bases[0], tt.path)
		if resp.StatusCode != 400 || !strings.Contains(string(body), fmt.Sprintf(`"field":%q`, tt.field)) {
			t.Fatalf("%s: %d %s, want 400 naming %s", tt.path, resp.StatusCode, body, tt.field)
		}
	}
	// Nothing was forwarded.
	_, m := get(t, "GET", tc.bases[0], "/metrics")
	if s := grepLines(m, "omnipick_forwarded_requests_total{"); s != "" {
		t.Fatalf("bad input was forwarded:\n%s", s)
	}
}

// TestAudienceAcrossOwners asks every node for the audience, in NDJSON and
// CSV, plain and compressed: every member exactly once, each with its
// owner's picks (the standbys' stale copies left out).
func TestAudienceAcrossOwners(t *testing.T) {
	tc := startCluster(t, nil)
	wantMembers := slices.Clone(tc.actors)
	slices.Sort(wantMembers)
	// The owner's own picks for each member, asked for ads as the audience.
	ownerPicks := map[string][]string{}
	for _, a := range tc.actors {
		ownerPicks[a] = products(client{t, tc.bases[ownerOf(a)]}.picks(actorQuery(a) + "&channel=ads&k=10"))
	}
	for n := range clusterNodes {
		for _, coding := range []string{"", "gzip", "zstd"} {
			resp, body := rawGet(t, tc.bases[n], "/v1/audiences/cart_abandoners", coding)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != coding {
				t.Fatalf("node %d %q: %d %v", n, coding, resp.StatusCode, resp.Header)
			}
			rows := parseNDJSON(t, decode(t, coding, body))
			if got := keys(rows); !slices.Equal(got, wantMembers) {
				t.Fatalf("node %d %q: members %v, want %v", n, coding, got, wantMembers)
			}
			for a, r := range rows {
				if !slices.Equal(r.products(), ownerPicks[a]) {
					t.Fatalf("node %d: %s picks %v, owner's %v", n, a, r.products(), ownerPicks[a])
				}
			}

			resp, body = rawGet(t, tc.bases[n], "/v1/audiences/cart_abandoners?format=csv&k=10", coding)
			if resp.StatusCode != 200 {
				t.Fatalf("node %d csv %q: %d", n, coding, resp.StatusCode)
			}
			plain := decode(t, coding, body)
			if c := bytes.Count(plain, []byte("customer,anonymous_id,products")); c != 1 {
				t.Fatalf("node %d csv %q: %d header lines:\n%s", n, coding, c, plain)
			}
			csvRows := parseCSV(t, plain) // fails on a member listed twice
			if got := keys(csvRows); !slices.Equal(got, wantMembers) {
				t.Fatalf("node %d csv %q: members %v, want %v", n, coding, got, wantMembers)
			}
			for a, p := range csvRows {
				if !slices.Equal(p, ownerPicks[a]) {
					t.Fatalf("node %d csv: %s picks %v, owner's %v", n, a, p, ownerPicks[a])
				}
			}
		}
		// scope=owned: the node's own members only.
		_, body := rawGet(t, tc.bases[n], "/v1/audiences/cart_abandoners?scope=owned", "")
		for a := range parseNDJSON(t, body) {
			if ownerOf(a) != n {
				t.Fatalf("node %d listed %s (owner %d) with scope=owned", n, a, ownerOf(a))
			}
		}
	}
}

// decode undoes a Content-Encoding.
func decode(t *testing.T, coding string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch coding {
	case "":
		return b
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", coding, err)
	}
	return out
}

// TestAudiencePeerDown: a peer that cannot answer ends the stream as
// failed (truncated), never as a short audience.
func TestAudiencePeerDown(t *testing.T) {
	tc := startCluster(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tc.servers[2].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, coding := range []string{"", "gzip"} {
		req, err := http.NewRequest("GET", tc.bases[0]+"/v1/audiences/cart_abandoners?format=csv", nil)
		if err != nil {
			t.Fatal(err)
		}
		if coding != "" {
			req.Header.Set("Accept-Encoding", coding)
		}
		// This node's rows go out before the peers are asked: the
		// status is sent, and only a truncated body can say "failed"
		// (or no answer at all, when the connection ends before the
		// status went out).
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}).Do(req)
		if err != nil {
			continue // failed before the status: not a short audience either
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err == nil {
			t.Fatalf("%q: %d, read error %v, body %q: want a truncated stream", coding, resp.StatusCode, err, body)
		}
	}
}

// TestScreenAsksOwner: a store screen on any node shows, after a scan by a
// customer another node owns, the picks that owner ranks (its profile),
// in picks.json, the page and the event stream.
func TestScreenAsksOwner(t *testing.T) {
	tc := startCluster(t, nil)
	for n := range clusterNodes {
		for _, a := range tc.actors {
			owner := ownerOf(a)
			if owner == n {
				continue
			}
			k := slices.Index(tc.actors, a)
			scanned := fmt.Sprintf("P%d", 1+(k+3)%6) // neither carted nor bought
			who, id := "customer", a
			if rest, ok := strings.CutPrefix(a, "anon:"); ok {
				who, id = "anonymous_id", rest
			}
			client{t, tc.bases[n]}.post("/v1/events", fmt.Sprintf(`{"type":"scan",%q:%q,"product":%q,"location":"store-1","channel":"store"}`, who, id, scanned))
			q := fmt.Sprintf("/v1/picks?channel=screen&k=8&location=store-1&context=%s&%s", scanned, actorQuery(a))
			_, want := get(t, "GET", tc.bases[owner], q)
			_, notHere := get(t, "GET", tc.bases[n], q, "X-Omnipick-Forwarded", "1")
			wantPicks, local := picksArray(t, want), picksArray(t, notHere)
			if wantPicks == local {
				t.Fatalf("%s: node %d's own picks equal the owner's: the test cannot tell them apart", a, n)
			}

			resp, body := get(t, "GET", tc.bases[n], "/screen/store-1/picks.json")
			if resp.StatusCode != 200 || picksArray(t, body) != wantPicks ||
				!strings.Contains(string(body), fmt.Sprintf(`"context":%q,"channel":"screen"`, scanned)) || strings.Contains(string(body), id) {
				t.Fatalf("%s scanned %s at node %d: screen %d %s\nowner's picks %s", a, scanned, n, resp.StatusCode, body, wantPicks)
			}
			// The page lists the owner's picks in their order.
			_, page := get(t, "GET", tc.bases[n], "/screen/store-1")
			if got, want := pageProducts(page), productsOf(t, want); !slices.Equal(got, want) {
				t.Fatalf("%s at node %d: page shows %v, owner picks %v", a, n, got, want)
			}
			// The stream's first event is the same.
			if ev := firstScreenEvent(t, tc.bases[n]); picksArray(t, ev) != wantPicks {
				t.Fatalf("%s at node %d: stream %s, owner's picks %s", a, n, ev, wantPicks)
			}
		}
	}
}

// picksArray is the "picks":[...] part of a picks answer.
func picksArray(t *testing.T, body []byte) string {
	t.Helper()
	_, rest, ok := strings.Cut(string(body), `"picks":`)
	if !ok {
		t.Fatalf("no picks in %s", body)
	}
	return rest
}

func productsOf(t *testing.T, body []byte) []string {
	t.Helper()
	var r struct {
		Picks []struct{ Product string } `json:"picks"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range r.Picks {
		out = append(out, p.Product)
	}
	return out
}

var pageProduct = regexp.MustCompile(`data-product="([^"]+)"`)

func pageProducts(page []byte) []string {
	var out []string
	for _, m := range pageProduct.FindAllSubmatch(page, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// firstScreenEvent reads the first picks event of the store screen's
// stream and returns its data.
func firstScreenEvent(t *testing.T, base string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/screen/store-1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			return []byte(data)
		}
	}
	t.Fatalf("no event: %v", sc.Err())
	return nil
}

// TestAudiencePeerFailsMidway: a peer that stops while its rows stream
// through another node ends that node's stream as failed (truncated).
func TestAudiencePeerFailsMidway(t *testing.T) {
	tc := startCluster(t, nil)
	// Node 2 owns many more members than the sockets between the client,
	// node 0 and node 2 buffer, so its stream is still running when it
	// stops.
	const extra = 20000
	e := tc.engines[2]
	recs := make([]engine.Record, 0, extra)
	for i := 0; len(recs) < extra; i++ {
		id := fmt.Sprintf("walker-%d", i)
		if ownerOf(id) != 2 {
			continue
		}
		recs = append(recs, engine.Record{Op: engine.OpEvent, Event: engine.Event{Type: engine.EventCartAdd, AnonymousID: id, SKU: "P2-8", Channel: "web", TS: audienceNow.Add(-2 * time.Hour).UnixMilli()}})
	}
	errs := make([]error, len(recs))
	e.ApplyBatch(recs, errs)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(tc.bases[0] + "/v1/audiences/cart_abandoners?k=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Some rows arrived; node 2 now stops (its stream is blocked on the
	// unread sockets: Stop gives up waiting, the stream ends at its next
	// batch once the client reads on).
	first := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(first, []byte("walker-")) {
		t.Fatal("node 2's rows have not started in the first 64 KiB: the test would not stop it midway")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	tc.servers[2].Stop(ctx) //nolint:errcheck // it cannot finish while the stream is blocked: that is the point
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("the stream ended cleanly after %d more bytes, without node 2's %d members", len(body), extra)
	}
	if n := bytes.Count(body, []byte("walker-")); n >= extra {
		t.Fatalf("every member of node 2 arrived (%d), yet the stream failed: %v", n, err)
	}
}

// TestOwnersNeedOwns: without Owns a node's audience rows would hold its
// standby copies as well as their owners' rows.
func TestOwnersNeedOwns(t *testing.T) {
	_, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: engine.New(engine.Options{}), Owners: func() ([]string, error) { return nil, nil }})
	if err == nil || !strings.Contains(err.Error(), "Owns") {
		t.Fatalf("New with Owners and no Owns: %v", err)
	}
}
