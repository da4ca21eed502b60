package api

import (
	"errors"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/store"
	"github.com/omnipick/omnipick/internal/jsonenc"
	"github.com/valyala/fasthttp"
)

// handleErase serves DELETE /v1/customers/{id}: it forgets the customer
// (or, with ?anonymous=1, the anonymous id) through one log record. The
// next request no longer sees it; the data folder holds it no more once
// the store has compacted (at once with POST /v1/admin/compact, or within
// the store's EraseCompactAfter).
func (s *Server) handleErase(ctx *fasthttp.RequestCtx, idb []byte) {
	if len(idb) == 0 || len(idb) > maxIDBytes || !utf8.Valid(idb) {
		writeError(ctx, fasthttp.StatusBadRequest, "id must be valid UTF-8 of at most 256 bytes", "id")
		return
	}
	// The answer says whether the profile existed, which only its owner
	// knows: the owner takes the erase (through the same shared log).
	anon := string(ctx.QueryArgs().Peek("anonymous")) == "1"
	if s.forward(ctx, epCustomer, b2s(idb), anon) {
		return
	}
	id := string(idb)
	rec := []engine.Record{{Op: engine.OpErase}}
	if anon {
		rec[0].Erase.AnonymousID = id
	} else {
		rec[0].Erase.Customer = id
	}
	errs := []error{nil}
	if err := s.opts.Writer.Write(rec, errs); err != nil {
		s.writeFailed(ctx, engine.OpErase, err)
		return
	}
	s.metrics.countApplied(engine.OpErase, rec, errs)
	if errors.Is(errs[0], engine.ErrUnknownActor) {
		writeError(ctx, fasthttp.StatusNotFound, "no profile for this id (an anonymous id needs ?anonymous=1)", "id")
		return
	}
	if errs[0] != nil {
		field, reason := clientError(errs[0])
		writeError(ctx, fasthttp.StatusBadRequest, reason, field)
		return
	}
	b := append([]byte(nil), `{"erased":`...)
	b = jsonenc.AppendString(b, id)
	b = append(b, `,"anonymous":`...)
	b = strconv.AppendBool(b, anon)
	b = append(b, '}')
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// handleCompact serves POST /v1/admin/compact: a forced snapshot and log
// compaction, answered once done.
func (s *Server) handleCompact(ctx *fasthttp.RequestCtx) {
	if s.opts.CompactJSON != nil {
		b, err := s.opts.CompactJSON()
		if err != nil {
			s.compactFailed(ctx, err)
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBody(b)
		return
	}
	if s.opts.Compact == nil {
		writeError(ctx, fasthttp.StatusNotFound, "this server has no data folder to compact", "")
		return
	}
	start := time.Now()
	ci, err := s.opts.Compact()
	if err != nil {
		s.compactFailed(ctx, err)
		return
	}
	b := append([]byte(nil), `{"snapshot":`...)
	b = jsonenc.AppendString(b, ci.Snapshot.Path)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, ci.Snapshot.Seq, 10)
	b = append(b, `,"removed_snapshots":`...)
	b = strconv.AppendInt(b, int64(ci.RemovedSnapshots), 10)
	b = append(b, `,"removed_wal_segments":`...)
	b = strconv.AppendInt(b, int64(ci.Snapshot.RemovedWAL), 10)
	b = append(b, `,"took_ms":`...)
	b = strconv.AppendInt(b, time.Since(start).Milliseconds(), 10)
	b = append(b, '}')
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func (s *Server) compactFailed(ctx *fasthttp.RequestCtx, err error) {
	s.opts.Log.Error("compaction failed", "err", err)
	ctx.Response.Header.Set("Retry-After", "5")
	writeError(ctx, fasthttp.StatusServiceUnavailable, "cannot compact: "+err.Error(), "")
}

// compactFunc is Options.Compact's type: store.(*Store).Compact.
type compactFunc = func() (store.CompactInfo, error)
