package api

import (
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

// maxIDBytes bounds every id a client sends.
const maxIDBytes = 256

// maxListItems bounds comma-separated parameters (location, exclude).
const maxListItems = 100

// pickRequest is the pooled state of one picks request. Its strings view
// the request's buffers: it is valid only inside the handler.
type pickRequest struct {
	q     engine.Query
	picks []engine.Pick
	out   []byte
}

// b2s views b as a string without copying. The string is valid only while
// b is unchanged: here, for the rest of the request handler.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (s *Server) handlePicks(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	pr := s.queries.Get().(*pickRequest)
	defer s.queries.Put(pr)
	pr.q.Reset()
	if field, msg := parsePickQuery(&pr.q, ctx.QueryArgs()); field != "" {
		writeError(ctx, fasthttp.StatusBadRequest, msg, field)
		return
	}
	pr.picks = s.opts.Engine.PicksInto(pr.picks[:0], &pr.q)
	took := time.Since(start)
	pr.out = AppendPicksJSON(pr.out[:0], &pr.q, pr.picks, took)
	clear(pr.picks) // drop item pointers so pooled requests do not pin old catalog entries
	ctx.SetContentType("application/json")
	ctx.SetBody(pr.out)
}

// parsePickQuery fills q from the query string. On bad input it returns
// the parameter at fault and a message.
func parsePickQuery(q *engine.Query, args *fasthttp.Args) (field, msg string) {
	id := func(name string) (string, bool) {
		b := args.Peek(name)
		if len(b) > maxIDBytes || !utf8.Valid(b) {
			return "", false
		}
		return b2s(b), true
	}
	var ok bool
	if q.Customer, ok = id("customer"); !ok {
		return "customer", "customer must be valid UTF-8 of at most 256 bytes"
	}
	if q.AnonymousID, ok = id("anonymous_id"); !ok {
		return "anonymous_id", "anonymous_id must be valid UTF-8 of at most 256 bytes"
	}
	if q.Customer != "" && q.AnonymousID != "" {
		return "anonymous_id", "give customer or anonymous_id, not both"
	}
	if ch := args.Peek("channel"); len(ch) > 0 {
		c, ok := engine.ParseChannel(b2s(ch))
		if !ok {
			return "channel", "channel must be one of ads, email, screen, web, app"
		}
		q.Channel = c
	}
	if kb := args.Peek("k"); len(kb) > 0 {
		k, err := strconv.Atoi(b2s(kb))
		if err != nil || k < 1 || k > engine.MaxK {
			return "k", "k must be a whole number from 1 to 100"
		}
		q.K = k
	}
	if q.Context, ok = id("context"); !ok {
		return "context", "context must be a product id of at most 256 bytes"
	}
	if q.Category, ok = id("category"); !ok {
		return "category", "category must be valid UTF-8 of at most 256 bytes"
	}
	var bad bool
	if q.Locations, bad = splitList(q.Locations[:0], args.Peek("location")); bad {
		return "location", "location must be at most 100 comma-separated ids of at most 256 bytes each"
	}
	if q.Exclude, bad = splitList(q.Exclude[:0], args.Peek("exclude")); bad {
		return "exclude", "exclude must be at most 100 comma-separated product ids of at most 256 bytes each"
	}
	return "", ""
}

// splitList appends the non-empty comma-separated items of b to dst.
func splitList(dst []string, b []byte) ([]string, bool) {
	if !utf8.Valid(b) {
		return dst, true
	}
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != ',' {
			i++
		}
		if item := b[:i]; len(item) > 0 {
			if len(item) > maxIDBytes || len(dst) == maxListItems {
				return dst, true
			}
			dst = append(dst, b2s(item))
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return dst, false
}

// AppendPicksJSON appends the picks response of API.md to dst. It does not
// allocate beyond growing dst.
func AppendPicksJSON(dst []byte, q *engine.Query, picks []engine.Pick, took time.Duration) []byte {
	dst = append(dst, '{')
	if q.Customer != "" {
		dst = append(dst, `"customer":`...)
		dst = appendJSONString(dst, q.Customer)
		dst = append(dst, ',')
	} else if q.AnonymousID != "" {
		dst = append(dst, `"anonymous_id":`...)
		dst = appendJSONString(dst, q.AnonymousID)
		dst = append(dst, ',')
	}
	dst = append(dst, `"channel":"`...)
	dst = append(dst, q.Channel.String()...)
	dst = append(dst, `","took_us":`...)
	dst = strconv.AppendInt(dst, took.Microseconds(), 10)
	dst = append(dst, `,"picks":[`...)
	for i := range picks {
		p := &picks[i]
		it := p.Item
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"product":`...)
		dst = appendJSONString(dst, it.ID)
		dst = append(dst, `,"title":`...)
		dst = appendJSONString(dst, it.Title)
		dst = append(dst, `,"price":`...)
		dst = strconv.AppendFloat(dst, it.Price, 'f', -1, 64)
		if it.Currency != "" {
			dst = append(dst, `,"currency":`...)
			dst = appendJSONString(dst, it.Currency)
		}
		dst = append(dst, `,"url":`...)
		dst = appendJSONString(dst, it.URL)
		dst = append(dst, `,"image":`...)
		dst = appendJSONString(dst, it.Image)
		dst = append(dst, `,"category":`...)
		dst = appendJSONString(dst, it.Category)
		if it.Brand != "" {
			dst = append(dst, `,"brand":`...)
			dst = appendJSONString(dst, it.Brand)
		}
		dst = append(dst, `,"sizes":[`...)
		n := 0
		for j, v := range it.Variants {
			if p.SizeMask&(1<<uint(j)) == 0 || v.Size == "" {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, v.Size)
			n++
		}
		dst = append(dst, `],"reason":"`...)
		dst = append(dst, p.Reason.String()...)
		dst = append(dst, `","score":`...)
		dst = strconv.AppendFloat(dst, p.Score, 'f', 4, 64)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}
