package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// TestCrashRecovery runs the real binary through cycles of: start `omnipick
// serve` on the same data folder, check the recovered state, let
// concurrent clients write, and SIGKILL the process at a random moment
// (0-400 ms into the writes; in one cycle of four, as soon as a snapshot
// file is being written; in another, shortly after a snapshot was
// written, so that later restarts load a snapshot and replay the log
// after it). It checks after every restart that
//
//   - the server came back and logged its recovery, with no half-written
//     snapshot left behind;
//   - every acknowledged write is there, and the state equals a reference
//     engine built in this process from the acknowledged writes plus, for
//     each client's one unacknowledged request (the kill happened during
//     it), either all of its records or none: a request is one log
//     record, all or nothing across a crash;
//   - the log holds exactly those requests: the recovered next_seq is one
//     past their count.
//
// Every client owns its customers, cookies, products and stock, so the
// final state does not depend on how the clients' requests interleaved in
// the log, and each client's records are applied to the reference in the
// client's order. The store logs a request's records as one batch record
// (all or nothing), so an unacknowledged request must be wholly present or
// wholly absent; the test finds how much of it the server holds by
// applying the request's records to the reference one at a time until the
// client's observable state (profiles, and the stock seen through picks)
// matches the server's, and fails on anything but all or none (a torn
// request).
// Requests are generated so that every record changes that observable
// state and no prefix repeats an earlier one, so exactly one prefix can
// match.
//
// OMNIPICK_CRASH_CYCLES=N runs N cycles (default 20, about 15 s; a cycle
// takes about 1 s once the state has grown), for example
//
//	OMNIPICK_CRASH_CYCLES=2000 go test -run TestCrashRecovery -timeout 0 -v ./cmd/omnipick
//
// and OMNIPICK_CRASH_SEED fixes the request generator's seed (the kill
// timing stays random, so the requests still differ once a kill lands
// elsewhere).
func TestCrashRecovery(t *testing.T) {
	bin := omnipickBinary(t)
	cycles := 20
	if s := os.Getenv("OMNIPICK_CRASH_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("OMNIPICK_CRASH_CYCLES=%q: want a positive number", s)
		}
		cycles = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("OMNIPICK_CRASH_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("OMNIPICK_CRASH_SEED=%q: want a number", s)
		}
		seed = n
	}
	t.Logf("%d cycles, generator seed %d (set OMNIPICK_CRASH_SEED=%d to reuse it; kill timing stays random)", cycles, seed, seed)

	root := t.TempDir()
	w := newCrashWorld(t, bin, root, seed)
	start := time.Now()
	for cycle := range cycles {
		p := w.start(cycle)
		if cycle == 0 {
			w.writeCatalog(p)
		} else {
			w.verify(p, cycle-1)
		}
		w.writeAndKill(p, cycle)
		if t.Failed() {
			return
		}
	}
	p := w.start(cycles)
	w.verify(p, cycles-1)
	w.verifyAllCookies(p)
	p.signal(syscall.SIGTERM)
	if st := p.wait(30 * time.Second); st.ExitCode() != 0 {
		t.Fatalf("clean stop after the last cycle: %v\n%s", st, p.logTail())
	}
	s := w.stats
	t.Logf("%d cycles in %v: %d acknowledged requests (%d records) all present; %d unacknowledged requests (the kills hit them): "+
		"%d wholly present, %d absent, %d partly present (a torn batch); of their records %d present, %d absent; "+
		"%d kills left a half-written snapshot, %d restarts loaded a snapshot, %d cut a torn log tail; %d records in the log at the end",
		cycles, time.Since(start).Round(time.Millisecond), s.ackedReqs, s.ackedRecs, s.unknownAll+s.unknownNone+s.tornRequests,
		s.unknownAll, s.unknownNone, s.tornRequests, s.unknownPresent, s.unknownAbsent,
		s.snapshotKills, s.snapshotLoads, s.tornTails, w.records)
}

const (
	crashClients   = 4
	crashProducts  = 12 // per client
	crashCustomers = 6  // per client
)

var crashChannels = []string{"web", "app", "ads", "email", "screen"}

type crashStats struct {
	ackedReqs, ackedRecs          int
	unknownAll, unknownNone       int // unacknowledged requests found wholly present, wholly absent
	tornRequests                  int // unacknowledged requests found partly present
	unknownPresent, unknownAbsent int // records of unacknowledged requests
	snapshotKills                 int // kills that left a snapshot .tmp file behind
	snapshotLoads                 int // restarts that loaded a snapshot
	tornTails                     int // restarts that cut a torn log tail
}

// crashWorld is the test's side: the reference engine and the clients.
type crashWorld struct {
	t       *testing.T
	bin     string
	data    string
	logs    string
	rng     *rand.Rand // kill timing
	ref     *engine.Engine
	records uint64 // records applied to ref: the log must hold as many
	clients []*crashClient
	stats   crashStats
	prevLog string // the killed process's log, for failure messages
	tr      *http.Transport
	http    *http.Client
}

func newCrashWorld(t *testing.T, bin, root string, seed uint64) *crashWorld {
	w := &crashWorld{
		t: t, bin: bin, data: filepath.Join(root, "data"), logs: filepath.Join(root, "logs"),
		rng: rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano()))),
		ref: engine.New(engine.Options{Now: time.Now}), // the server's options: engine.Options{}
	}
	if err := os.MkdirAll(w.logs, 0o755); err != nil {
		t.Fatal(err)
	}
	// Events are stamped from 25 days ago on, one second apart per client:
	// unique times make every event visible in a profile, and within the
	// cart's 30-day TTL.
	base := time.Now().Add(-25 * 24 * time.Hour).Unix()
	for c := range crashClients {
		w.clients = append(w.clients, newCrashClient(c, seed, base))
	}
	return w
}

// start starts the server for a cycle with a fresh HTTP client.
func (w *crashWorld) start(cycle int) *proc {
	w.t.Helper()
	if w.tr != nil {
		w.tr.CloseIdleConnections()
	}
	w.tr = &http.Transport{MaxIdleConnsPerHost: 2 * crashClients, DisableCompression: true}
	w.http = &http.Client{Transport: w.tr, Timeout: 20 * time.Second}
	p, err := startServeErr(w.t, w.bin, w.data, filepath.Join(w.logs, fmt.Sprintf("cycle-%04d.log", cycle)), "-snapshot-every", "200ms")
	if err != nil {
		w.fatalf(p, "cycle %d: the server did not come back: %v", cycle, err)
	}
	if _, tmps := snapshotFiles(w.t, w.data); len(tmps) > 0 {
		w.fatalf(p, "half-written snapshots %v are still there after recovery", tmps)
	}
	return p
}

func (w *crashWorld) fatalf(p *proc, format string, args ...any) {
	w.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if w.prevLog != "" {
		b, _ := os.ReadFile(w.prevLog)
		msg += "\n--- the killed process's log " + w.prevLog + "\n" + string(b)
	}
	w.t.Fatalf("%s\n%s", msg, p.logTail())
}

// writeCatalog writes the stores, products and initial stock, acknowledged
// before any kill, and applies them to the reference.
func (w *crashWorld) writeCatalog(p *proc) {
	w.t.Helper()
	var locs, prods, inv []string
	for _, c := range w.clients {
		locs = append(locs, fmt.Sprintf(`{"id":%q,"name":"Crash store %d","lat":52.5,"lon":13.4}`, c.store, c.id))
		for j, pr := range c.products {
			prods = append(prods, pr.json)
			for k, sku := range pr.skus {
				if (j+k)%3 != 0 {
					inv = append(inv, fmt.Sprintf(`{"sku":%q,"location":"online","quantity":%d}`, sku, 1+(j+k)%5))
					c.model.stock[stockKey{sku, "online"}] = true
				}
				if (j+k)%2 == 0 {
					inv = append(inv, fmt.Sprintf(`{"sku":%q,"location":%q,"quantity":2}`, sku, c.store))
					c.model.stock[stockKey{sku, c.store}] = true
				}
			}
		}
	}
	var dec api.Decoder
	for _, b := range []struct {
		op    engine.Op
		path  string
		lines []string
	}{{engine.OpLocation, "/v1/locations", locs}, {engine.OpProduct, "/v1/products", prods}, {engine.OpInventory, "/v1/inventory", inv}} {
		mustPost(w.t, w.http, p.base+b.path, b.lines...)
		recs, rejects, err := dec.Decode(b.op, []byte(strings.Join(b.lines, "\n")), true, time.Now().UnixMilli(), nil, nil)
		if err != nil || len(rejects) > 0 {
			w.t.Fatalf("decoding the catalog: %v %v", err, rejects)
		}
		w.apply(recs)
	}
}

func (w *crashWorld) apply(recs []engine.Record) {
	w.t.Helper()
	w.applyRecords(recs)
	w.records++ // a request is one log record (a batch record when it holds several)
}

// applyRecords applies records to the reference.
func (w *crashWorld) applyRecords(recs []engine.Record) {
	w.t.Helper()
	for i := range recs {
		r := recs[i]
		if err := w.ref.Apply(&r); err != nil {
			w.t.Fatalf("the reference rejects %+v: %v", r, err)
		}
	}
}

// writeAndKill runs the clients against p and kills p mid-way.
func (w *crashWorld) writeAndKill(p *proc, cycle int) {
	w.t.Helper()
	var wg sync.WaitGroup
	for _, c := range w.clients {
		c.acked, c.unknown, c.touched = c.acked[:0], nil, map[string]bool{}
		wg.Go(func() { c.run(w.t, w.http, p.base) })
	}
	switch cycle % 4 {
	case 1:
		// Kill soon after a snapshot, so that later restarts load one and
		// replay the log after it. The store checks once a second whether
		// a snapshot is due; with -snapshot-every 200ms and writes it is.
		before, _ := snapshotFiles(w.t, w.data)
		w.pollSnapshots(2500*time.Millisecond, func(snaps, _ []string) bool {
			return slices.ContainsFunc(snaps, func(s string) bool { return !slices.Contains(before, s) })
		})
		time.Sleep(time.Duration(w.rng.Int64N(int64(150 * time.Millisecond))))
	case 3:
		// Kill while a snapshot is being written.
		w.pollSnapshots(1600*time.Millisecond, func(_, tmps []string) bool { return len(tmps) > 0 })
	default:
		time.Sleep(time.Duration(w.rng.Int64N(int64(400 * time.Millisecond))))
	}
	if p.exited() {
		w.fatalf(p, "the server exited before it was killed: %v", p.state)
	}
	p.signal(syscall.SIGKILL)
	st := p.wait(10 * time.Second)
	if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		w.fatalf(p, "the server ended with %v, not by the SIGKILL", st)
	}
	wg.Wait()
	if _, tmps := snapshotFiles(w.t, w.data); len(tmps) > 0 {
		w.stats.snapshotKills++
	}
	w.prevLog = p.logPath
}

// pollSnapshots watches the snapshot folder until done says so or timeout
// passes.
func (w *crashWorld) pollSnapshots(timeout time.Duration, done func(snaps, tmps []string) bool) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if done(snapshotFiles(w.t, w.data)) {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// verify checks the restarted server p against the writes of cycle.
func (w *crashWorld) verify(p *proc, cycle int) {
	w.t.Helper()
	rec := p.recovery()
	if rec.rejected != 0 {
		w.fatalf(p, "recovery rejected %d records; the test writes none the engine rejects", rec.rejected)
	}
	if rec.snapshot != "" {
		w.stats.snapshotLoads++
	}
	if strings.Contains(p.log(), "torn tail") {
		w.stats.tornTails++
	}
	var all []string
	for _, c := range w.clients {
		for _, r := range c.acked { // the client's model has them already
			w.apply(r.recs)
			w.stats.ackedReqs++
			w.stats.ackedRecs += len(r.recs)
		}
		if c.unknown == nil {
			w.fatalf(p, "cycle %d: client %d has no unacknowledged request: it should have written until the kill", cycle, c.id)
		}
		ids := c.ids()
		server := fetchState(w.t, w.http, p.base, ids, c.queries(false))
		u := c.unknown
		k := 0
		for {
			ref := refState(w.t, w.ref, ids, c.queries(false))
			if server.sig() == ref.sig() {
				break
			}
			if k == len(u.recs) {
				w.fatalf(p, "cycle %d, client %d: the server's state matches no prefix of the unacknowledged request (%s, %d records, failed with %s): "+
					"acknowledged writes were lost, or records survived out of order\n%s\n--- request:\n%s",
					cycle, c.id, u.path, len(u.recs), u.failure, diffStates(server, ref, false), u.body)
			}
			w.applyRecords(u.recs[k : k+1])
			k++
		}
		c.model.applyAll(u.recs[:k], c.skuProduct)
		w.stats.unknownPresent += k
		w.stats.unknownAbsent += len(u.recs) - k
		switch k {
		case 0:
			w.stats.unknownNone++
		case len(u.recs):
			w.stats.unknownAll++
			w.records++
		default:
			w.stats.tornRequests++
			w.fatalf(p, "cycle %d, client %d: %d of the %d records of an unacknowledged request survived the kill: a batch must be all or nothing\n--- request:\n%s",
				cycle, c.id, k, len(u.recs), u.body)
		}
		all = append(all, ids...)
	}
	if rec.nextSeq != w.records+1 {
		w.fatalf(p, "cycle %d: the log continues at record %d, but the acknowledged writes and the present unacknowledged ones are %d records: the log holds records the state does not show",
			cycle, rec.nextSeq, w.records)
	}
	// Now the whole state, with scores, weights and personal picks.
	var queries []pickQuery
	for _, c := range w.clients {
		queries = append(queries, c.queries(true)...)
	}
	queries = append(queries, pickQuery{channel: "web", locations: []string{"online"}})
	server := fetchState(w.t, w.http, p.base, all, queries)
	ref := refState(w.t, w.ref, all, queries)
	if d := diffStates(server, ref, true); d != "" {
		w.fatalf(p, "cycle %d: the state differs from the reference:\n%s", cycle, d)
	}
}

// verifyAllCookies compares every cookie the clients ever used (at most
// 3,000 of them, a random sample beyond).
func (w *crashWorld) verifyAllCookies(p *proc) {
	w.t.Helper()
	var ids []string
	for _, c := range w.clients {
		ids = append(ids, c.allCookies...)
	}
	if len(ids) > 3000 {
		w.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		ids = ids[:3000]
	}
	if d := diffStates(fetchState(w.t, w.http, p.base, ids, nil), refState(w.t, w.ref, ids, nil), true); d != "" {
		w.fatalf(p, "cookies differ from the reference:\n%s", d)
	}
}

// crashProduct is one product of a client's catalog.
type crashProduct struct {
	id   string
	skus []string
	json string
}

type stockKey struct{ sku, loc string }

type cartKey struct{ product, sku string }

// actorModel is what a client tracks of one customer or cookie: enough to
// generate returns and cart removals that change something.
type actorModel struct {
	bought map[string]string // product -> SKU of the last purchase
	cart   map[cartKey]bool
}

// crashModel is a client's view of its part of the state, from the records
// the server holds. It only drives the request generator.
type crashModel struct {
	actors map[string]*actorModel // customers and open cookies
	open   []string               // cookies not identified yet, oldest first
	stock  map[stockKey]bool      // in stock
}

func newCrashModel() *crashModel {
	return &crashModel{actors: map[string]*actorModel{}, stock: map[stockKey]bool{}}
}

func (m *crashModel) clone() *crashModel {
	c := &crashModel{actors: make(map[string]*actorModel, len(m.actors)), open: slices.Clone(m.open), stock: maps.Clone(m.stock)}
	for id, a := range m.actors {
		c.actors[id] = &actorModel{bought: maps.Clone(a.bought), cart: maps.Clone(a.cart)}
	}
	return c
}

func (m *crashModel) actor(id string, cookie bool) *actorModel {
	a := m.actors[id]
	if a == nil {
		a = &actorModel{bought: map[string]string{}, cart: map[cartKey]bool{}}
		m.actors[id] = a
		if cookie {
			m.open = append(m.open, id)
		}
	}
	return a
}

// apply mirrors the engine's effect of r on what the model tracks.
func (m *crashModel) apply(r *engine.Record, skuProduct map[string]string) {
	switch r.Op {
	case engine.OpEvent:
		ev := &r.Event
		a := m.actor(ev.Customer+ev.AnonymousID, ev.AnonymousID != "")
		p := ev.Product
		if p == "" {
			p = skuProduct[ev.SKU]
		}
		switch ev.Type {
		case engine.EventCartAdd:
			a.cart[cartKey{p, ev.SKU}] = true
		case engine.EventCartRemove:
			delete(a.cart, cartKey{p, ev.SKU})
		case engine.EventPurchase:
			a.bought[p] = ev.SKU
			for k := range a.cart {
				if k.product == p {
					delete(a.cart, k)
				}
			}
		case engine.EventReturn:
			delete(a.bought, p)
		}
	case engine.OpIdentify:
		x := m.actor(r.Identify.Customer, false)
		if k := m.actors[r.Identify.AnonymousID]; k != nil {
			for line := range k.cart {
				if _, ok := x.bought[line.product]; !ok {
					x.cart[line] = true
				}
			}
		}
		delete(m.actors, r.Identify.AnonymousID)
		m.open = slices.DeleteFunc(m.open, func(id string) bool { return id == r.Identify.AnonymousID })
	case engine.OpInventory:
		m.stock[stockKey{r.Inventory.SKU, r.Inventory.Location}] = r.Inventory.Quantity > 0
	}
}

func (m *crashModel) applyAll(recs []engine.Record, skuProduct map[string]string) {
	for i := range recs {
		m.apply(&recs[i], skuProduct)
	}
}

// crashRequest is one write a client sent.
type crashRequest struct {
	path    string
	body    string
	recs    []engine.Record
	failure string // why it is not acknowledged
}

// crashClient writes to its own slice of the world: customers
// cr<id>-cu<n>, cookies cr<id>-ck<n>, products cr<id>-p<n> in category
// crash<id>, and stock at online and its store.
type crashClient struct {
	id         int
	rng        *rand.Rand
	store      string
	products   []crashProduct
	skus       []string
	skuProduct map[string]string
	model      *crashModel
	ts         int64 // the next event's time, unix seconds; never reused
	cookies    int   // cookies made so far; never reused
	allCookies []string

	// Of the current cycle.
	acked   []crashRequest
	unknown *crashRequest
	touched map[string]bool // cookies the cycle's requests name
	dec     api.Decoder
}

func newCrashClient(id int, seed uint64, base int64) *crashClient {
	c := &crashClient{
		id: id, rng: rand.New(rand.NewPCG(seed, uint64(id))), store: fmt.Sprintf("store-c%d", id),
		skuProduct: map[string]string{}, model: newCrashModel(), ts: base,
	}
	leaves := []string{"tops", "bottoms", "hats"}
	for j := range crashProducts {
		pid := fmt.Sprintf("cr%d-p%d", id, j)
		pr := crashProduct{id: pid}
		var variants []string
		sizeGroup := ""
		if j%3 == 2 {
			pr.skus = []string{pid + "-OS"}
			variants = []string{fmt.Sprintf(`{"sku":%q}`, pid+"-OS")}
		} else {
			sizeGroup = `,"size_group":"crash-letter"`
			for _, s := range []string{"S", "M", "L"} {
				pr.skus = append(pr.skus, pid+"-"+s)
				variants = append(variants, fmt.Sprintf(`{"sku":%q,"size":%q}`, pid+"-"+s, s))
			}
		}
		pr.json = fmt.Sprintf(`{"id":%q,"title":"Crash product %d/%d","url":"https://shop.example/p/%s","image":"https://shop.example/i/%s.jpg",`+
			`"price":%d.5,"currency":"EUR","category":"crash%d/%s","brand":"brand%d","tags":["crash","t%d"]%s,"variants":[%s]}`,
			pid, id, j, pid, pid, 10+j, id, leaves[j%3], id, j%4, sizeGroup, strings.Join(variants, ","))
		for _, s := range pr.skus {
			c.skuProduct[s] = pid
			c.skus = append(c.skus, s)
		}
		c.products = append(c.products, pr)
	}
	return c
}

// ids returns the customers and the cookies this cycle named.
func (c *crashClient) ids() []string {
	var ids []string
	for i := range crashCustomers {
		ids = append(ids, c.customer(i))
	}
	for id := range c.touched {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (c *crashClient) customer(i int) string { return fmt.Sprintf("cr%d-cu%d", c.id, i) }

// queries returns the client's picks questions: non-personal picks in its
// category at each of its locations show its stock; with personal, also
// each customer's picks.
func (c *crashClient) queries(personal bool) []pickQuery {
	qs := []pickQuery{
		{channel: "web", locations: []string{"online"}, category: fmt.Sprintf("crash%d", c.id)},
		{channel: "web", locations: []string{c.store}, category: fmt.Sprintf("crash%d", c.id)},
	}
	if personal {
		for i := range crashCustomers {
			q := pickQuery{customer: c.customer(i), channel: crashChannels[i%len(crashChannels)], locations: []string{"online", c.store}}
			if i%2 == 1 {
				q.context = c.products[i].id
			}
			qs = append(qs, q)
		}
	}
	return qs
}

// run writes requests until one is not acknowledged (the kill).
func (c *crashClient) run(t *testing.T, hc *http.Client, base string) {
	for {
		m := c.model.clone()
		r := c.next(m)
		recs, rejects, err := c.dec.Decode(r.op, []byte(r.body), true, time.Now().UnixMilli(), nil, nil)
		if err != nil || len(rejects) > 0 || len(recs) != r.n {
			t.Errorf("client %d: the test's own request does not decode: %v %v\n%s", c.id, err, rejects, r.body)
			return
		}
		req := crashRequest{path: r.path, body: r.body, recs: recs}
		status, wr, err := post(hc, base+r.path, []byte(r.body))
		if err == nil && status == http.StatusOK && wr.Applied == len(recs) && len(wr.Rejected) == 0 {
			c.acked = append(c.acked, req)
			c.model = m
			continue
		}
		if err == nil && status/100 == 2 {
			t.Errorf("client %d: %s answered %d with %+v; want every record applied", c.id, r.path, status, wr)
		}
		req.failure = fmt.Sprintf("status %d, error %v", status, err)
		c.unknown = &req
		return
	}
}

type generated struct {
	op   engine.Op
	path string
	body string
	n    int
}

// next generates a request and applies it to m, a copy of the model that
// becomes the model once the request is acknowledged.
func (c *crashClient) next(m *crashModel) generated {
	var lines []string
	var recs []engine.Record
	add := func(line string, r engine.Record) {
		lines = append(lines, line)
		recs = append(recs, r)
		m.apply(&r, c.skuProduct)
	}
	g := generated{op: engine.OpEvent, path: "/v1/events"}
	switch x := c.rng.IntN(100); {
	case x < 25:
		g.op, g.path = engine.OpInventory, "/v1/inventory"
		// Each record flips one SKU at one location in or out of stock, so
		// each is visible, and none is undone within the request.
		seen := map[stockKey]bool{}
		for range 1 + c.rng.IntN(4) {
			k := stockKey{c.skus[c.rng.IntN(len(c.skus))], c.store}
			if c.rng.IntN(2) == 0 {
				k.loc = "online"
			}
			if seen[k] {
				continue
			}
			seen[k] = true
			q := 0
			if !m.stock[k] {
				q = 1 + c.rng.IntN(20)
			}
			add(fmt.Sprintf(`{"sku":%q,"location":%q,"quantity":%d}`, k.sku, k.loc, q),
				engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: k.sku, Location: k.loc, Quantity: int64(q)}})
		}
	case x < 33:
		g.op, g.path = engine.OpIdentify, "/v1/identify"
		// Each record merges a cookie never merged before: a new link.
		for range 1 + c.rng.IntN(2) {
			ck := c.cookie(m, 0)
			cu := c.customer(c.rng.IntN(crashCustomers))
			add(fmt.Sprintf(`{"anonymous_id":%q,"customer":%q}`, ck, cu),
				engine.Record{Op: engine.OpIdentify, Identify: engine.Identify{AnonymousID: ck, Customer: cu}})
		}
	default:
		// Every event carries a time no other event of this client has, so
		// each is visible in a profile; removals (returns, cart removes)
		// only take what the request did not itself add or take, so no
		// prefix of the request repeats the state of a shorter one.
		touched := map[string]bool{}
		for range 1 + c.rng.IntN(6) {
			ev := engine.Event{TS: c.ts * 1000, Channel: "web"}
			c.ts++
			var actor *actorModel
			if c.rng.IntN(4) == 0 {
				ev.AnonymousID = c.cookie(m, 3)
				actor = m.actors[ev.AnonymousID]
			} else {
				ev.Customer = c.customer(c.rng.IntN(crashCustomers))
				actor = m.actors[ev.Customer]
			}
			who := ev.Customer + ev.AnonymousID
			pr := c.products[c.rng.IntN(len(c.products))]
			sku := pr.skus[c.rng.IntN(len(pr.skus))]
			ev.Type, ev.Product = engine.EventView, pr.id
			cartLines := 0
			if actor != nil {
				cartLines = len(actor.cart)
			}
			r := c.rng.IntN(100)
			switch {
			case ev.AnonymousID != "":
				if r < 50 && cartLines < 4 {
					ev.Type, ev.Product, ev.SKU = engine.EventCartAdd, "", sku
				}
			case r < 30:
				ev.Type = []engine.EventType{engine.EventView, engine.EventView, engine.EventScan, engine.EventEmailClick, engine.EventAdClick}[c.rng.IntN(5)]
				if ev.Type == engine.EventScan {
					ev.Channel, ev.Location = "store", c.store
				}
			case r < 55:
				if cartLines < 8 {
					ev.Type, ev.Product, ev.SKU = engine.EventCartAdd, "", sku
				}
			case r < 75:
				ev.Type, ev.Product, ev.SKU = engine.EventPurchase, "", sku
				ev.Order, ev.Price = fmt.Sprintf("O%d", ev.TS), 10.5
			case r < 87:
				if actor != nil {
					var cands []string
					for p := range actor.bought {
						if !touched[who+"|"+p] {
							cands = append(cands, p)
						}
					}
					if len(cands) > 0 {
						slices.Sort(cands)
						p := cands[c.rng.IntN(len(cands))]
						ev.Type, ev.Product = engine.EventReturn, p
						if c.rng.IntN(2) == 0 {
							ev.Product, ev.SKU = "", actor.bought[p]
						}
					}
				}
			default:
				if actor != nil {
					var cands []cartKey
					for k := range actor.cart {
						if !touched[who+"|"+k.product] {
							cands = append(cands, k)
						}
					}
					if len(cands) > 0 {
						slices.SortFunc(cands, func(a, b cartKey) int { return strings.Compare(a.product+a.sku, b.product+b.sku) })
						k := cands[c.rng.IntN(len(cands))]
						ev.Type, ev.Product, ev.SKU = engine.EventCartRemove, "", k.sku
					}
				}
			}
			p := ev.Product
			if p == "" {
				p = c.skuProduct[ev.SKU]
			}
			touched[who+"|"+p] = true
			b, _ := json.Marshal(eventLine{Type: ev.Type.String(), Customer: ev.Customer, AnonymousID: ev.AnonymousID, Product: ev.Product,
				SKU: ev.SKU, Channel: ev.Channel, Location: ev.Location, Order: ev.Order, Price: ev.Price, TS: ev.TS})
			add(string(b), engine.Record{Op: engine.OpEvent, Event: ev})
		}
	}
	for i := range recs {
		r := &recs[i]
		if r.Op == engine.OpEvent && r.Event.AnonymousID != "" {
			c.touched[r.Event.AnonymousID] = true
		}
		if r.Op == engine.OpIdentify {
			c.touched[r.Identify.AnonymousID] = true
		}
	}
	g.body = strings.Join(lines, "\n") + "\n"
	g.n = len(lines)
	return g
}

// cookie returns an open cookie of m, or a new one when fewer than open
// are open (always when open is 0).
func (c *crashClient) cookie(m *crashModel, open int) string {
	if len(m.open) > 0 && (len(m.open) >= open || c.rng.IntN(2) == 0) {
		return m.open[c.rng.IntN(len(m.open))]
	}
	id := fmt.Sprintf("cr%d-ck%d", c.id, c.cookies)
	c.cookies++
	c.allCookies = append(c.allCookies, id)
	return id
}

type eventLine struct {
	Type        string  `json:"type"`
	Customer    string  `json:"customer,omitempty"`
	AnonymousID string  `json:"anonymous_id,omitempty"`
	Product     string  `json:"product,omitempty"`
	SKU         string  `json:"sku,omitempty"`
	Channel     string  `json:"channel,omitempty"`
	Location    string  `json:"location,omitempty"`
	Order       string  `json:"order,omitempty"`
	Price       float64 `json:"price,omitempty"`
	TS          int64   `json:"ts"`
}

// pickQuery is a picks question asked of the server and of the reference.
type pickQuery struct {
	customer  string
	channel   string
	locations []string
	category  string
	context   string
}

func (q pickQuery) String() string {
	return fmt.Sprintf("picks{customer=%s channel=%s location=%s category=%s context=%s}", q.customer, q.channel, strings.Join(q.locations, ","), q.category, q.context)
}

func (q pickQuery) url(base string) string {
	v := url.Values{"k": {"100"}, "channel": {q.channel}, "location": {strings.Join(q.locations, ",")}}
	for k, s := range map[string]string{"customer": q.customer, "category": q.category, "context": q.context} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return base + "/v1/picks?" + v.Encode()
}

func (q pickQuery) engineQuery() engine.Query {
	ch, _ := engine.ParseChannel(q.channel)
	return engine.Query{Customer: q.customer, Channel: ch, K: 100, Locations: q.locations, Category: q.category, Context: q.context}
}

// The GET /v1/customers/{id} and GET /v1/picks bodies, as far as compared.
type (
	profileDoc struct {
		ID         string      `json:"id"`
		Anonymous  bool        `json:"anonymous"`
		MergedInto string      `json:"merged_into"`
		Affinities []facetDoc  `json:"affinities"`
		Sizes      []sizeDoc   `json:"sizes"`
		Purchases  []itemAtDoc `json:"purchases"`
		Cart       []cartDoc   `json:"cart"`
		Views      []itemAtDoc `json:"views"`
		LinkedIDs  []string    `json:"linked_ids"`
	}
	facetDoc struct {
		Facet  string  `json:"facet"`
		Weight float64 `json:"weight"`
	}
	sizeDoc struct {
		SizeGroup string    `json:"size_group"`
		Size      string    `json:"size"`
		At        time.Time `json:"at"`
		Source    string    `json:"source"`
		Current   bool      `json:"current"`
	}
	itemAtDoc struct {
		Product string    `json:"product"`
		At      time.Time `json:"at"`
	}
	cartDoc struct {
		Product string    `json:"product"`
		SKU     string    `json:"sku"`
		At      time.Time `json:"at"`
	}
	picksDoc struct {
		Picks []pickDoc `json:"picks"`
	}
	pickDoc struct {
		Product string   `json:"product"`
		Sizes   []string `json:"sizes"`
		Reason  string   `json:"reason"`
		Score   float64  `json:"score"`
	}
)

// sig is the profile without its float weights: what must match exactly.
func (d *profileDoc) sig() string {
	if d == nil {
		return "no profile"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "anonymous=%v merged_into=%q linked_ids=%v\n", d.Anonymous, d.MergedInto, d.LinkedIDs)
	b.WriteString("  sizes:")
	for _, s := range d.Sizes {
		fmt.Fprintf(&b, " %s/%s@%d(%s,current=%v)", s.SizeGroup, s.Size, s.At.Unix(), s.Source, s.Current)
	}
	b.WriteString("\n  purchases:")
	for _, p := range d.Purchases {
		fmt.Fprintf(&b, " %s@%d", p.Product, p.At.Unix())
	}
	b.WriteString("\n  cart:")
	for _, c := range d.Cart {
		fmt.Fprintf(&b, " %s/%s@%d", c.Product, c.SKU, c.At.Unix())
	}
	b.WriteString("\n  views:")
	for _, v := range d.Views {
		fmt.Fprintf(&b, " %s@%d", v.Product, v.At.Unix())
	}
	var facets []string
	for _, f := range d.Affinities {
		facets = append(facets, f.Facet)
	}
	slices.Sort(facets)
	fmt.Fprintf(&b, "\n  facets: %v", facets)
	return b.String()
}

// sig is the picks without scores, by product: what must match exactly.
// (The order follows the scores, which move a little with the clock.)
func (d *picksDoc) sig() string {
	var ps []string
	for _, p := range d.Picks {
		ps = append(ps, fmt.Sprintf("%s%v:%s", p.Product, p.Sizes, p.Reason))
	}
	slices.Sort(ps)
	return strings.Join(ps, " ")
}

// state is the observable state of some profiles and picks questions.
type state struct {
	ids      []string
	profiles map[string]*profileDoc
	queries  []pickQuery
	picks    map[string]*picksDoc // by query
}

func (s *state) sig() string {
	var b strings.Builder
	for _, id := range s.ids {
		fmt.Fprintf(&b, "%s: %s\n", id, s.profiles[id].sig())
	}
	for _, q := range s.queries {
		fmt.Fprintf(&b, "%v: %s\n", q, s.picks[q.String()].sig())
	}
	return b.String()
}

func isCookie(id string) bool { return strings.Contains(id, "-ck") }

// fetchState asks the server.
func fetchState(t *testing.T, hc *http.Client, base string, ids []string, queries []pickQuery) *state {
	t.Helper()
	s := &state{ids: ids, profiles: map[string]*profileDoc{}, queries: queries, picks: map[string]*picksDoc{}}
	for _, id := range ids {
		u := base + "/v1/customers/" + url.PathEscape(id)
		if isCookie(id) {
			u += "?anonymous=1"
		}
		var d profileDoc
		status, err := getJSON(hc, u, &d)
		switch {
		case err != nil || (status != http.StatusOK && status != http.StatusNotFound):
			t.Fatalf("GET %s: status %d, %v", u, status, err)
		case status == http.StatusOK:
			s.profiles[id] = &d
		}
	}
	for _, q := range queries {
		var d picksDoc
		if status, err := getJSON(hc, q.url(base), &d); err != nil || status != http.StatusOK {
			t.Fatalf("GET %s: status %d, %v", q.url(base), status, err)
		}
		s.picks[q.String()] = &d
	}
	return s
}

// refState asks the reference engine the same, through the API's own
// mapping where it is exported (picks) and the handler's where not.
func refState(t *testing.T, e *engine.Engine, ids []string, queries []pickQuery) *state {
	t.Helper()
	s := &state{ids: ids, profiles: map[string]*profileDoc{}, queries: queries, picks: map[string]*picksDoc{}}
	for _, id := range ids {
		anon := isCookie(id)
		v, ok := e.Profile(id, anon)
		if !ok && !anon {
			v, ok = e.Profile(id, true)
		}
		if !ok {
			continue
		}
		d := &profileDoc{ID: v.ID, Anonymous: v.Anonymous, MergedInto: v.MergedInto, LinkedIDs: v.Links}
		for _, a := range v.Affinities {
			d.Affinities = append(d.Affinities, facetDoc{a.Facet, a.Weight})
		}
		for _, z := range v.Sizes {
			src := "cart"
			if z.Purchase {
				src = "purchase"
			}
			d.Sizes = append(d.Sizes, sizeDoc{z.SizeGroup, z.Size, z.At, src, z.Current})
		}
		for _, p := range v.Purchases {
			d.Purchases = append(d.Purchases, itemAtDoc{p.Product, p.At})
		}
		for _, c := range v.Cart {
			d.Cart = append(d.Cart, cartDoc{c.Product, c.SKU, c.At})
		}
		for _, p := range v.Views {
			d.Views = append(d.Views, itemAtDoc{p.Product, p.At})
		}
		if d.LinkedIDs == nil {
			d.LinkedIDs = []string{}
		}
		s.profiles[id] = d
	}
	for _, q := range queries {
		eq := q.engineQuery()
		b := api.AppendPicksJSON(nil, &eq, e.PicksInto(nil, &eq), 0)
		var d picksDoc
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("reference picks %s: %v", b, err)
		}
		s.picks[q.String()] = &d
	}
	return s
}

// diffStates describes how server and ref differ; with floats, affinity
// weights and pick scores are compared too, within what the clock moving
// between the two questions and the API's rounding explain.
func diffStates(server, ref *state, floats bool) string {
	var b strings.Builder
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-3*math.Max(1, math.Abs(b)) }
	for _, id := range server.ids {
		sp, rp := server.profiles[id], ref.profiles[id]
		if ss, rs := sp.sig(), rp.sig(); ss != rs {
			fmt.Fprintf(&b, "%s:\n  server:    %s\n  reference: %s\n", id, ss, rs)
			continue
		}
		if !floats || sp == nil {
			continue
		}
		rw := map[string]float64{}
		for _, f := range rp.Affinities {
			rw[f.Facet] = f.Weight
		}
		for _, f := range sp.Affinities {
			if !near(f.Weight, rw[f.Facet]) {
				fmt.Fprintf(&b, "%s: affinity %s: server %.4f, reference %.6f\n", id, f.Facet, f.Weight, rw[f.Facet])
			}
		}
	}
	for _, q := range server.queries {
		sp, rp := server.picks[q.String()], ref.picks[q.String()]
		if ss, rs := sp.sig(), rp.sig(); ss != rs {
			fmt.Fprintf(&b, "%v:\n  server:    %s\n  reference: %s\n", q, ss, rs)
			continue
		}
		if !floats {
			continue
		}
		rs := map[string]float64{}
		for _, p := range rp.Picks {
			rs[p.Product] = p.Score
		}
		for i, p := range sp.Picks {
			if !near(p.Score, rs[p.Product]) {
				fmt.Fprintf(&b, "%v: %s: server score %.4f, reference %.6f\n", q, p.Product, p.Score, rs[p.Product])
			}
			if i > 0 && p.Score > sp.Picks[i-1].Score+1e-3 {
				fmt.Fprintf(&b, "%v: the server's picks are not best first at %d\n", q, i)
			}
		}
	}
	return b.String()
}
