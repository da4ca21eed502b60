package api

import (
	"bufio"
	"encoding/csv"
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/index"
	"github.com/valyala/fasthttp"
)

// GET /v1/feeds/products streams the catalog as a product feed for ad
// platforms: one row per SKU of every active product, with availability
// live from the stock at the asked locations. See docs/API.md, "Product
// feeds".
//
// A feed is written after the handler returns, by fasthttp's body stream
// goroutine: the engine is read one chunk of products at a time
// (engine.AppendCatalog), so memory stays flat whatever the catalog's size
// and no lock is held while the client reads.

// maxFeeds bounds the feeds streamed at once. A compressed feed of a large
// catalog keeps a core busy for seconds; more at once would slow picks
// down for what is a batch job of ad platforms. Over it: 503 + Retry-After.
const maxFeeds = 4

// feedBufSize is the buffer between the feed's encoder and the compressor
// or connection.
const feedBufSize = 64 << 10

// feedFormat is a feed's layout.
type feedFormat uint8

const (
	feedGoogle feedFormat = iota + 1 // Google Merchant Center RSS 2.0
	feedMeta                         // Meta (Facebook) catalog CSV
)

// feeds is the Server's feed state. The zero value is ready.
type feeds struct {
	active  atomic.Int32 // feeds being streamed, bounded by maxFeeds
	writers sync.Pool    // *feedWriter
}

// feedAttributes are the product attributes the feeds carry, as Google
// (g:KEY) and Meta (a column) both name them: Merchant Center requires
// color, gender and age_group of apparel in its main markets.
var feedAttributes = []string{"color", "gender", "age_group", "material", "pattern", "google_product_category"}

// metaHeader is the Meta catalog's column list: the fixed columns, then
// feedAttributes.
var metaHeader = append([]string{"id", "item_group_id", "title", "description", "availability", "condition", "price", "link", "image_link", "brand", "size"}, feedAttributes...)

func (s *Server) handleFeed(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	var format feedFormat
	switch string(args.Peek("format")) {
	case "google":
		format = feedGoogle
	case "meta":
		format = feedMeta
	default:
		writeError(ctx, fasthttp.StatusBadRequest, `format must be "google" (Merchant Center RSS) or "meta" (catalog CSV)`, "format")
		return
	}
	names, bad := splitList(nil, args.Peek("location"))
	if bad {
		writeError(ctx, fasthttp.StatusBadRequest, "location must be at most 100 comma-separated ids of at most 256 bytes each", "location")
		return
	}
	if refuseUnknownLocation(ctx, s.opts.Engine, names) {
		return
	}
	locs, err := s.opts.Engine.ResolveLocations(nil, names)
	if err != nil { // a location removed since the check
		_, reason := clientError(err)
		writeError(ctx, fasthttp.StatusBadRequest, reason+": register it with POST /v1/locations or send inventory for it", "location")
		return
	}
	if n := s.feeds.active.Add(1); n > maxFeeds {
		s.feeds.active.Add(-1)
		ctx.Response.Header.Set("Retry-After", "5")
		writeError(ctx, fasthttp.StatusServiceUnavailable, fmt.Sprintf("overloaded: %d feeds are being streamed, retry later", maxFeeds), "")
		return
	}
	coding := negotiateCoding(ctx.Request.Header.Peek("Accept-Encoding"))
	if format == feedGoogle {
		ctx.SetContentType("application/rss+xml; charset=utf-8")
	} else {
		ctx.SetContentType("text/csv; charset=utf-8")
	}
	ctx.Response.Header.Set("Vary", "Accept-Encoding")
	if coding != codingIdentity {
		ctx.Response.Header.Set("Content-Encoding", codingNames[coding])
	}
	if ctx.IsHead() {
		s.feeds.active.Add(-1)
		return
	}

	fw, _ := s.feeds.writers.Get().(*feedWriter)
	if fw == nil {
		fw = new(feedWriter)
	}
	// Everything the stream needs is copied out of the request now: the
	// stream outlives the handler, and the request's buffers with it.
	fw.e, fw.format, fw.coding, fw.locs = s.opts.Engine, format, coding, locs
	if err := fw.prepare(); err != nil {
		s.feeds.active.Add(-1)
		fw.release()
		s.feeds.writers.Put(fw)
		s.opts.Log.Error("cannot start feed", "err", err)
		writeError(ctx, fasthttp.StatusInternalServerError, err.Error(), "")
		return
	}
	fw.self = string(ctx.URI().FullURI())
	fw.origin = strings.TrimSuffix(absoluteURL(ctx, "/"), "/")
	fw.where = "online"
	if len(names) > 0 {
		fw.where = strings.Join(names, ", ")
	}
	// fasthttp's WriteTimeout bounds the whole response, which a large
	// feed to a slow client may outlast: each chunk written renews it, so
	// it bounds a stall instead. The connection stays this request's until
	// the stream ends.
	conn, timeout := ctx.Conn(), s.srv.WriteTimeout
	if conn != nil && timeout > 0 {
		fw.progress = func() { _ = conn.SetWriteDeadline(time.Now().Add(timeout)) }
	}
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.feeds.active.Add(-1)
		rows, err := fw.writeTo(w)
		if err != nil {
			// The client went away or stalled: nothing to answer.
			s.opts.Log.Debug("feed stopped", "rows", rows, "err", err)
		}
		fw.release()
		s.feeds.writers.Put(fw)
	})
}

// feedWriter writes one feed. It is pooled by the Server; its fields from
// e to progress are set per feed, the rest is reusable scratch.
type feedWriter struct {
	e        *engine.Engine
	format   feedFormat
	coding   contentCoding
	locs     []uint32
	self     string // the feed's own URL: the channel link when no item has one
	origin   string // scheme and host of this server: links relative to it are made absolute
	where    string // the asked locations, for the channel description
	progress func() // called after every chunk; may be nil

	chunk []engine.CatalogItem
	out   *bufio.Writer
	gz    *gzip.Writer
	zs    *zstd.Encoder
	csv   *csv.Writer // writes into out
	rec   []string    // one CSV record
	esc   []byte      // a value to escape
	desc  []byte      // the current product's description
	price []byte      // the current product's price
}

// prepare makes the compressor fw.coding needs. It runs in the handler,
// so that a failure is a 500 rather than an empty feed, which a platform
// would read as "every product gone".
func (fw *feedWriter) prepare() error {
	switch {
	case fw.coding == codingGzip && fw.gz == nil:
		// Level 5: within a few percent of the default's size, and
		// faster; a feed is rebuilt for every fetch.
		gz, err := gzip.NewWriterLevel(io.Discard, 5)
		if err != nil {
			return fmt.Errorf("cannot start gzip encoder: %w", err)
		}
		fw.gz = gz
	case fw.coding == codingZstd && fw.zs == nil:
		// One goroutine and a 1 MiB window: a feed is one of several
		// streams sharing the machine with picks.
		zs, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
		if err != nil {
			return fmt.Errorf("cannot start zstd encoder: %w", err)
		}
		fw.zs = zs
	}
	return nil
}

// writeTo writes the whole feed to w, compressed per fw.coding (prepare
// must have succeeded), and returns how many rows (SKUs) it wrote. An
// error means w failed: the client has gone.
func (fw *feedWriter) writeTo(w io.Writer) (rows int, err error) {
	dst := w
	switch fw.coding {
	case codingGzip:
		fw.gz.Reset(w)
		dst = fw.gz
	case codingZstd:
		fw.zs.Reset(w)
		dst = fw.zs
	}
	if fw.out == nil {
		fw.out = bufio.NewWriterSize(dst, feedBufSize)
		fw.csv = csv.NewWriter(fw.out) // bufio.Writer large enough: csv writes straight into it
	}
	fw.out.Reset(dst)

	var from uint32
	var more bool
	// The first chunk comes before the header: the channel link is taken
	// from it.
	fw.chunk, from, more = fw.e.AppendCatalog(fw.chunk[:0], 0, engine.CatalogChunk, fw.locs)
	fw.header()
	for {
		for i := range fw.chunk {
			rows += fw.item(&fw.chunk[i])
		}
		if fw.format == feedMeta {
			fw.csv.Flush()
		}
		if err := fw.out.Flush(); err != nil {
			return rows, fmt.Errorf("cannot write feed: %w", err)
		}
		if fw.progress != nil {
			fw.progress()
		}
		if !more {
			break
		}
		fw.chunk, from, more = fw.e.AppendCatalog(fw.chunk[:0], from, engine.CatalogChunk, fw.locs)
	}
	if fw.format == feedGoogle {
		fw.out.WriteString("</channel>\n</rss>\n")
	}
	if err := fw.out.Flush(); err != nil {
		return rows, fmt.Errorf("cannot write feed: %w", err)
	}
	switch fw.coding {
	case codingGzip:
		err = fw.gz.Close()
	case codingZstd:
		err = fw.zs.Close()
	}
	if err != nil {
		return rows, fmt.Errorf("cannot finish %s feed: %w", codingNames[fw.coding], err)
	}
	return rows, nil
}

// release drops what pins catalog entries, the engine or the connection,
// before fw goes back to the pool.
func (fw *feedWriter) release() {
	clear(fw.chunk)
	fw.chunk = fw.chunk[:0]
	fw.e, fw.locs, fw.progress = nil, nil, nil
	if fw.out != nil {
		fw.out.Reset(io.Discard)
	}
	if fw.gz != nil {
		fw.gz.Reset(io.Discard)
	}
	if fw.zs != nil {
		fw.zs.Reset(io.Discard)
	}
}

// header writes what precedes the rows. The Google channel's link is the
// shop: the origin of the first product URL, else the feed itself.
func (fw *feedWriter) header() {
	if fw.format == feedMeta {
		_ = fw.csv.Write(metaHeader)
		return
	}
	link := fw.self
	for i := range fw.chunk {
		if u, err := url.Parse(fw.chunk[i].Item.URL); err == nil && u.Scheme != "" && u.Host != "" {
			link = u.Scheme + "://" + u.Host + "/"
			break
		}
	}
	fw.out.WriteString(xml.Header)
	fw.out.WriteString(`<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">` + "\n<channel>\n<title>Product feed</title>\n<link>")
	fw.escape(link)
	fw.out.WriteString("</link>\n<description>")
	fw.escape("Active products, one item per SKU, with availability at " + fw.where)
	fw.out.WriteString("</description>\n")
}

// item writes the rows of one product, one per variant, and returns how
// many.
func (fw *feedWriter) item(c *engine.CatalogItem) int {
	it := c.Item
	title := it.Title
	if title == "" {
		title = it.ID // both formats require a title
	}
	fw.desc = appendDescription(fw.desc[:0], title, it.Brand, it.Category)
	fw.price = strconv.AppendFloat(fw.price[:0], it.Price, 'f', 2, 64)
	if it.Currency != "" {
		fw.price = append(append(fw.price, ' '), it.Currency...)
	}
	for i, v := range it.Variants {
		inStock := c.InStock&(1<<uint(i)) != 0
		if fw.format == feedMeta {
			fw.metaRow(it, &v, title, inStock)
		} else {
			fw.googleItem(it, &v, title, inStock)
		}
	}
	return len(it.Variants)
}

func (fw *feedWriter) googleItem(it *index.Item, v *index.Variant, title string, inStock bool) {
	o := fw.out
	o.WriteString("<item>\n")
	fw.elem("id", v.SKU)
	fw.elem("item_group_id", it.ID)
	fw.elem("title", title)
	fw.elemBytes("description", fw.desc)
	fw.link("link", it.URL)
	fw.link("image_link", it.Image)
	fw.elemBytes("price", fw.price)
	if inStock {
		o.WriteString("<g:availability>in_stock</g:availability>\n")
	} else {
		o.WriteString("<g:availability>out_of_stock</g:availability>\n")
	}
	o.WriteString("<g:condition>new</g:condition>\n")
	if it.Brand != "" {
		fw.elem("brand", it.Brand)
	}
	if v.Size != "" {
		fw.elem("size", v.Size)
	}
	for _, k := range feedAttributes {
		if v := it.Attr(k); v != "" {
			fw.elem(k, v)
		}
	}
	if it.Category != "" {
		o.WriteString("<g:product_type>")
		fw.esc = appendCategoryPath(fw.esc[:0], it.Category)
		writeXMLText(o, fw.esc)
		o.WriteString("</g:product_type>\n")
	}
	o.WriteString("</item>\n")
}

func (fw *feedWriter) metaRow(it *index.Item, v *index.Variant, title string, inStock bool) {
	avail := "out of stock" // Meta's spelling
	if inStock {
		avail = "in stock"
	}
	// The description and price view fw's scratch buffers: csv.Write
	// copies them out before they change.
	fw.rec = append(fw.rec[:0], v.SKU, it.ID, title, b2s(fw.desc), avail, "new", b2s(fw.price), fw.absolute(it.URL), fw.absolute(it.Image), it.Brand, v.Size)
	for _, k := range feedAttributes {
		fw.rec = append(fw.rec, it.Attr(k))
	}
	_ = fw.csv.Write(fw.rec)
}

// absolute makes a link relative to this server (a generated picture,
// "/img/P1.svg") absolute: platforms fetch feeds from elsewhere.
func (fw *feedWriter) absolute(link string) string {
	if strings.HasPrefix(link, "/") && !strings.HasPrefix(link, "//") {
		return fw.origin + link
	}
	return link
}

// link writes a link element, made absolute.
func (fw *feedWriter) link(name, value string) {
	if strings.HasPrefix(value, "/") && !strings.HasPrefix(value, "//") {
		fw.esc = append(append(fw.esc[:0], fw.origin...), value...)
		fw.elemBytes(name, fw.esc)
		return
	}
	fw.elem(name, value)
}

// elem writes <g:name>value</g:name> with value escaped.
func (fw *feedWriter) elem(name, value string) {
	fw.esc = append(fw.esc[:0], value...)
	fw.elemBytes(name, fw.esc)
}

func (fw *feedWriter) elemBytes(name string, value []byte) {
	o := fw.out
	o.WriteString("<g:")
	o.WriteString(name)
	o.WriteByte('>')
	writeXMLText(o, value)
	o.WriteString("</g:")
	o.WriteString(name)
	o.WriteString(">\n")
}

// escape writes s as XML character data.
func (fw *feedWriter) escape(s string) {
	fw.esc = append(fw.esc[:0], s...)
	writeXMLText(fw.out, fw.esc)
}

// writeXMLText writes b as XML character data. xml.EscapeText does the
// escaping; it also replaces what XML cannot carry (control characters,
// invalid UTF-8) with U+FFFD, so the feed always parses. Text with nothing
// to escape (most ids, URLs and prices), and the plain ASCII start of
// other text, is copied as is: EscapeText decodes every rune and was half
// the cost of a feed.
func writeXMLText(o *bufio.Writer, b []byte) {
	for i, c := range b {
		if c < ' ' || c > '~' || c == '&' || c == '<' || c == '>' || c == '"' || c == '\'' {
			o.Write(b[:i]) // ASCII: b[i:] starts on a rune boundary
			_ = xml.EscapeText(o, b[i:])
			return
		}
	}
	o.Write(b)
}

// appendDescription appends a product description built from what the
// catalog knows, since it has no description field: "Merino sweater by
// Nordic, in women > knitwear > sweaters". Never empty when title is not.
func appendDescription(dst []byte, title, brand, category string) []byte {
	dst = append(dst, title...)
	if brand != "" {
		dst = append(append(dst, " by "...), brand...)
	}
	if category != "" {
		dst = appendCategoryPath(append(dst, ", in "...), category)
	}
	return dst
}

// appendCategoryPath appends a category path with " > " between its
// segments, as Google's product_type wants it.
func appendCategoryPath(dst []byte, category string) []byte {
	for i := 0; i < len(category); i++ {
		if category[i] == '/' {
			dst = append(dst, " > "...)
		} else {
			dst = append(dst, category[i])
		}
	}
	return dst
}
