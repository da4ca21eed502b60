package api

import (
	"bufio"
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/internal/jsonenc"
	"github.com/valyala/fasthttp"
)

// Store screens: a kiosk page per store that shows the picks for the
// latest product scanned there, updated live.
//
//	GET /screen/{store}            the page (HTML)
//	GET /screen/{store}/events     server-sent events, one "picks" event per scan
//	GET /screen/{store}/picks.json the current picks, for clients that poll
//
// All three are reads. The key may come as ?key= because EventSource
// cannot set headers; see docs/API.md, "Store screens".

const screenPrefix = "/screen/"

// screenK is how many picks a screen shows unless ?k= says otherwise: two
// rows of four on a portrait kiosk.
const screenK = 8

// Stream timing. A stream polls the engine's last scan often enough that a
// scan shows within a second, sends a comment now and then so that proxies
// and the browser keep the connection, and ends before the server's write
// timeout would cut it mid-event: EventSource then reconnects by itself
// after screenRetry and gets the current picks at once.
//
// A scan re-ranks the screen at once. A stock or catalog write re-ranks it
// at once too, but then at most once per screenCoalesce: a bulk catalog
// import of thousands of writes costs each open screen one re-rank a
// second, not one per write (the last write is always shown, at most
// screenCoalesce late).
const (
	screenPoll        = 150 * time.Millisecond
	screenCoalesce    = time.Second
	screenHeartbeat   = 15 * time.Second
	screenRetry       = time.Second
	screenLifeSlack   = 5 * time.Second // ended this long before the write timeout
	screenRetryAfter  = "5"             // seconds, for a stream refused over MaxScreenStreams
	defaultMaxScreens = 1024
)

//go:embed screen.html
var screenHTML string

// newScreenPage parses the kiosk page. html/template escapes every value
// for its context (text, attribute, URL), so catalog data cannot inject
// markup or script.
func newScreenPage() (*template.Template, error) {
	t, err := template.New("screen").Parse(screenHTML)
	if err != nil {
		return nil, fmt.Errorf("cannot parse store screen page: %w", err)
	}
	return t, nil
}

// screenPart is what a /screen/ path asks for.
type screenPart uint8

const (
	screenPage screenPart = iota
	screenEvents
	screenPicksJSON
)

// parseScreenPath splits the part of a path after /screen/ into a store id
// and what is asked of it. ok is false for an unknown sub-path. Store ids
// that contain a slash cannot have a screen.
func parseScreenPath(rest []byte) (store []byte, part screenPart, ok bool) {
	i := bytes.IndexByte(rest, '/')
	if i < 0 {
		return rest, screenPage, true
	}
	store, sub := rest[:i], rest[i+1:]
	switch string(sub) {
	case "":
		return store, screenPage, true
	case "events":
		return store, screenEvents, true
	case "picks.json":
		return store, screenPicksJSON, true
	}
	return store, 0, false
}

func (s *Server) handleScreen(ctx *fasthttp.RequestCtx, rest []byte) {
	storeB, part, ok := parseScreenPath(rest)
	if !ok {
		writeError(ctx, fasthttp.StatusNotFound, "no such endpoint: a store screen has /screen/{store}, /screen/{store}/events and /screen/{store}/picks.json", "")
		return
	}
	if len(storeB) == 0 || len(storeB) > maxIDBytes || !utf8.Valid(storeB) {
		writeError(ctx, fasthttp.StatusBadRequest, "store must be a store id of at most 256 bytes", "store")
		return
	}
	k := screenK
	if kb := ctx.QueryArgs().Peek("k"); len(kb) > 0 {
		n, err := strconv.Atoi(b2s(kb))
		if err != nil || n < 1 || n > engine.MaxK {
			writeError(ctx, fasthttp.StatusBadRequest, "k must be a whole number from 1 to 100", "k")
			return
		}
		k = n
	}
	store := string(storeB) // a stream outlives the request's buffers
	if !s.opts.Engine.KnownLocation(store) {
		writeError(ctx, fasthttp.StatusNotFound, "unknown store: register it with POST /v1/locations or give it stock", "store")
		return
	}
	// The URL may carry a key: keep it out of caches and of the Referer
	// sent with product images.
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Referrer-Policy", "no-referrer")
	switch part {
	case screenPage:
		s.serveScreenPage(ctx, store, k)
	case screenEvents:
		s.serveScreenEvents(ctx, store, k)
	case screenPicksJSON:
		f := s.newScreenFeed(ctx, store, k)
		ctx.SetContentType("application/json")
		ctx.SetBody(f.appendJSON(nil, s.opts.Engine.LastScan(store)))
	}
}

// screenFeed computes a store screen's picks. It is owned by one request
// or stream and is not safe for concurrent use.
type screenFeed struct {
	e     *engine.Engine
	store string
	k     int
	q     engine.Query
	picks []engine.Pick

	// Cluster mode: a scan by an actor another node owns is ranked by
	// that owner (GET /v1/picks with the same query), asked with the
	// request's key auth ("" for none); its answer is in owned, valid
	// until the next pick. ownedAt is where its "channel" member starts,
	// found once by askOwner for appendJSON to splice from.
	srv     *Server
	auth    string
	owned   []byte
	ownedAt int
}

func (s *Server) newScreenFeed(ctx *fasthttp.RequestCtx, store string, k int) *screenFeed {
	f := &screenFeed{e: s.opts.Engine, store: store, k: k}
	if s.opts.Route != nil && !forwarded(ctx) {
		f.srv, f.auth = s, requestAuth(ctx)
	}
	return f
}

// pick fills f.picks for the scan: the store's bestsellers when there was
// none, else picks related to the scanned product, for the scanning
// customer when the scan named one. Every pick is in stock at the store.
// f.picks is valid until the next call. When the scan's actor is owned by
// another node, that node ranks and pick reports remote, with its answer
// (a picks response) in f.owned and f.picks empty; when the owner cannot
// be asked, the picks are ranked here without the actor's profile (a
// kiosk never goes blank).
func (f *screenFeed) pick(sc engine.Scan) (took time.Duration, remote bool) {
	start := time.Now()
	f.q.Reset()
	f.q.Channel = engine.ChannelScreen
	f.q.K = f.k
	f.q.Locations = append(f.q.Locations, f.store)
	f.q.Context = sc.Product
	f.q.Customer = sc.Customer
	f.q.AnonymousID = sc.AnonymousID
	f.picks = f.picks[:0]
	if f.srv != nil && f.askOwner() {
		return time.Since(start), true
	}
	f.picks = f.e.PicksInto(f.picks, &f.q)
	return time.Since(start), false
}

// askOwner has the owner of the query's actor rank it when that is another
// node, and reports whether it did. On failure it takes the actor out of
// the query.
func (f *screenFeed) askOwner() bool {
	s, actor := f.srv, queryActor(&f.q)
	if actor == "" {
		return false
	}
	owner, err := s.opts.Route(actor, f.q.Customer == "")
	if err == nil && owner == "" {
		return false
	}
	if err != nil {
		s.metrics.observeForward(epScreen, forwardNoOwner, 0)
	} else {
		args := fasthttp.AcquireArgs()
		args.Add("channel", f.q.Channel.String())
		args.Add("k", strconv.Itoa(f.q.K))
		args.Add("location", f.store)
		if f.q.Context != "" {
			args.Add("context", f.q.Context)
		}
		if f.q.Customer != "" {
			args.Add("customer", f.q.Customer)
		} else {
			args.Add("anonymous_id", f.q.AnonymousID)
		}
		uri := "/v1/picks?" + args.String()
		fasthttp.ReleaseArgs(args)
		f.owned, err = s.ownerPicks(f.owned[:0], epScreen, owner, uri, f.auth)
		if err == nil {
			f.ownedAt = bytes.Index(f.owned, []byte(`"channel":`))
			if f.ownedAt >= 0 {
				return true
			}
		}
		if err == nil {
			err = errors.New("owner's picks answer has no channel")
		}
	}
	s.opts.Log.Warn("store screen: cannot have the scanning actor's owner rank, showing picks without their profile", "store", f.store, "err", err)
	f.q.Customer, f.q.AnonymousID = "", ""
	return false
}

// appendJSON appends the screen's picks after scan sc to dst:
//
//	{"store":"store-1","seq":3,"context":"P100","channel":"screen","took_us":40,"picks":[...]}
//
// with picks as in GET /v1/picks. The customer is left out: a screen is
// public, and its stream reaches every device on the store network.
func (f *screenFeed) appendJSON(dst []byte, sc engine.Scan) []byte {
	took, remote := f.pick(sc)
	dst = append(dst, `{"store":`...)
	dst = jsonenc.AppendString(dst, f.store)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, sc.Seq, 10)
	if sc.Product != "" {
		dst = append(dst, `,"context":`...)
		dst = jsonenc.AppendString(dst, sc.Product)
	}
	if remote {
		// The owner's picks answer continues this object from its
		// channel on: its customer is left out as below.
		dst = append(dst, ',')
		return append(dst, f.owned[f.ownedAt:]...)
	}
	// The picks object continues this one: its opening brace becomes a
	// comma.
	at := len(dst)
	anon := engine.Query{Channel: engine.ChannelScreen}
	dst = AppendPicksJSON(dst, &anon, f.picks, took)
	dst[at] = ','
	clear(f.picks) // drop item pointers so an idle stream does not pin old catalog entries
	return dst
}

// screenPageData is what the page template shows.
type screenPageData struct {
	Store     string
	StoreName string // as registered, e.g. "Omnipick Berlin"; the id when it has none
	Seq       uint64
	Context   string
	Nonce     string
	Picks     []screenPick
}

type screenPick struct {
	Product, Title, Image, Price string
	Sizes                        []string
}

func (s *Server) serveScreenPage(ctx *fasthttp.RequestCtx, store string, k int) {
	sc := s.opts.Engine.LastScan(store)
	f := s.newScreenFeed(ctx, store, k)
	_, remote := f.pick(sc)
	name, _ := s.opts.Engine.LocationName(store)
	d := screenPageData{Store: store, StoreName: name, Seq: sc.Seq, Context: sc.Product, Picks: make([]screenPick, len(f.picks))}
	if remote {
		var err error
		if d.Picks, err = ownedScreenPicks(f.owned); err != nil {
			s.opts.Log.Error("store screen: cannot read the owner's picks", "store", store, "err", err)
			ctx.Response.Header.Set("Retry-After", forwardRetryAfter)
			writeError(ctx, fasthttp.StatusServiceUnavailable, "cannot read the picks of the scanning customer's owner node", "")
			return
		}
	}
	for i, p := range f.picks {
		it := p.Item
		sp := screenPick{Product: it.ID, Title: it.Title, Image: it.Image, Price: screenPrice(it.Price, it.Currency)}
		for j, v := range it.Variants {
			if p.SizeMask&(1<<uint(j)) != 0 && v.Size != "" {
				sp.Sizes = append(sp.Sizes, v.Size)
			}
		}
		d.Picks[i] = sp
	}
	var nonce [16]byte
	rand.Read(nonce[:]) // never fails (crypto/rand)
	d.Nonce = base64.RawStdEncoding.EncodeToString(nonce[:])
	var b bytes.Buffer
	if err := s.screenPage.Execute(&b, d); err != nil {
		s.opts.Log.Error("cannot render store screen", "store", store, "err", err)
		writeError(ctx, fasthttp.StatusInternalServerError, "cannot render the store screen", "")
		return
	}
	// Inline style and script only, each with this response's nonce;
	// images from the catalog's web servers; requests back to this
	// server only.
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'none'; img-src 'self' https: http: data:; style-src 'nonce-"+d.Nonce+"'; script-src 'nonce-"+d.Nonce+"'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(b.Bytes())
}

// screenPrice is a price as the page shows it, "49.90 EUR", in one place
// so that local picks and an owner's look alike.
func screenPrice(price float64, currency string) string {
	s := strconv.FormatFloat(price, 'f', 2, 64)
	if currency != "" {
		s += " " + currency
	}
	return s
}

// ownedScreenPicks reads an owner's picks answer (GET /v1/picks) into what
// the page shows, as serveScreenPage makes it from local picks.
func ownedScreenPicks(body []byte) ([]screenPick, error) {
	var r struct {
		Picks []struct {
			Product, Title, Image, Currency string
			Price                           float64
			Sizes                           []string
		}
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("cannot decode picks: %w", err)
	}
	out := make([]screenPick, len(r.Picks))
	for i, p := range r.Picks {
		out[i] = screenPick{Product: p.Product, Title: p.Title, Image: p.Image, Price: screenPrice(p.Price, p.Currency), Sizes: p.Sizes}
	}
	return out, nil
}

func (s *Server) serveScreenEvents(ctx *fasthttp.RequestCtx, store string, k int) {
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("X-Accel-Buffering", "no") // nginx: do not hold events back
	if ctx.IsHead() {
		return
	}
	if s.screenStreams.Add(1) > int64(s.opts.MaxScreenStreams) {
		s.screenStreams.Add(-1)
		// EventSource gives up on a 503; the page then polls picks.json.
		ctx.Response.Header.Del("X-Accel-Buffering")
		ctx.Response.Header.Set("Retry-After", screenRetryAfter)
		writeError(ctx, fasthttp.StatusServiceUnavailable, "overloaded: too many store screen streams open, retry later or poll picks.json", "")
		return
	}
	life := s.srv.WriteTimeout - screenLifeSlack
	if life <= 0 {
		life = screenLifeSlack
	}
	f := s.newScreenFeed(ctx, store, k)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.screenStreams.Add(-1)
		s.streamScreen(w, f, life)
	})
}

// streamScreen writes a screen's events until the client goes away (a
// write fails), the server stops, or life has passed. It sends the current
// picks at once, then again whenever the store's last scan changes or its
// stock or the catalog is written (LocationVersion), coalesced (see
// screenCoalesce).
func (s *Server) streamScreen(w *bufio.Writer, f *screenFeed, life time.Duration) {
	poll := time.NewTicker(screenPoll)
	defer poll.Stop()
	beat := time.NewTicker(screenHeartbeat)
	defer beat.Stop()
	end := time.NewTimer(life)
	defer end.Stop()

	var buf []byte
	buf = append(buf, "retry: "...)
	buf = strconv.AppendInt(buf, screenRetry.Milliseconds(), 10)
	buf = append(buf, "\n\n"...)
	sent := false
	var seq, ver uint64
	var verAt time.Time // when a stock or catalog write last re-ranked the screen
	for {
		// A new scan, or a stock or catalog write that may change what
		// the screen shows (an item selling out on the shelf).
		sc, v := f.e.LastScan(f.store), f.e.LocationVersion(f.store)
		scanned := !sent || sc.Seq != seq
		if !scanned && v != ver {
			if now := time.Now(); now.Sub(verAt) >= screenCoalesce {
				scanned, verAt = true, now
			}
		}
		if scanned {
			s.screenRecomputes.Add(1)
			sent, seq, ver = true, sc.Seq, v
			buf = append(buf, "event: picks\nid: "...)
			buf = strconv.AppendUint(buf, sc.Seq, 10)
			buf = append(buf, "\ndata: "...)
			buf = f.appendJSON(buf, sc) // one line: JSON strings escape newlines
			buf = append(buf, "\n\n"...)
		}
		if len(buf) > 0 {
			w.Write(buf) // a failure sticks to w and shows in Flush
			buf = buf[:0]
			if w.Flush() != nil {
				return
			}
		}
		select {
		case <-s.closing:
			return
		case <-end.C:
			return
		case <-beat.C:
			buf = append(buf, ": heartbeat\n\n"...)
		case <-poll.C:
		}
	}
}
