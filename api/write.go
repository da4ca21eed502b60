package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/internal/jsonenc"
	"github.com/valyala/fasthttp"
)

// writeBatch is the pooled state of one write request.
type writeBatch struct {
	recs    []engine.Record
	rejects []Reject
	errs    []error
	body    bytes.Buffer // decompressed body
	out     []byte
	gz      *gzip.Reader
	zs      *zstd.Decoder
}

// errBodyTooLarge is returned when a compressed body inflates past the limit.
var errBodyTooLarge = errors.New("body too large")

// errUnsupportedEncoding is returned for a Content-Encoding other than
// gzip, zstd or identity.
var errUnsupportedEncoding = errors.New("unsupported Content-Encoding: use gzip, zstd or none")

func (s *Server) handleWrite(ctx *fasthttp.RequestCtx, op engine.Op) {
	wb := s.batches.Get().(*writeBatch)
	defer s.putBatch(wb)

	body, err := s.requestBody(ctx, wb)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			writeError(ctx, fasthttp.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes once decompressed", s.opts.MaxBodyBytes), "body")
			return
		}
		if errors.Is(err, errUnsupportedEncoding) {
			// RFC 9110 section 15.5.16: 415, and say what is accepted.
			ctx.Response.Header.Set("Accept-Encoding", "gzip, zstd")
			writeError(ctx, fasthttp.StatusUnsupportedMediaType, err.Error(), "Content-Encoding")
			return
		}
		writeError(ctx, fasthttp.StatusBadRequest, err.Error(), "body")
		return
	}
	ndjson := bytes.Contains(ctx.Request.Header.ContentType(), []byte("ndjson"))
	d := s.decoders.Get().(*Decoder)
	wb.recs, wb.rejects, err = d.Decode(op, body, ndjson, s.opts.Now().UnixMilli(), wb.recs[:0], wb.rejects[:0])
	s.decoders.Put(d)
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, err.Error(), "body")
		return
	}

	wb.errs = wb.errs[:0]
	for range wb.recs {
		wb.errs = append(wb.errs, nil)
	}
	if len(wb.recs) > 0 {
		if err := s.opts.Writer.Write(wb.recs, wb.errs); err != nil {
			s.writeFailed(ctx, op, err)
			return
		}
	}
	applied, dups := s.mergeRejects(wb)
	s.metrics.countApplied(op, wb.recs, wb.errs)

	if slices.ContainsFunc(wb.errs, func(err error) bool { return errors.Is(err, engine.ErrProfilesFull) }) {
		// Records for new actors met the profile cap with only customers
		// left to drop: 503, with what was applied and what was not (their
		// event_ids make the retry safe).
		wb.out = append(appendError(wb.out[:0], "profile limit reached (-max-profiles) and only known customers are left: records for new actors were refused, retry later", "", false), ',')
		mark := len(wb.out)
		wb.out = AppendWriteReplyJSON(wb.out, applied, dups, wb.rejects)
		wb.out = append(wb.out[:mark], wb.out[mark+1:]...)
		ctx.Response.Header.Set("Retry-After", "60")
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	} else if applied == 0 && dups == 0 && len(wb.rejects) > 0 {
		first := wb.rejects[0]
		// {"error":..., "field":..., "applied":0, "rejected":[...]}: the
		// rejects object's fields follow the error's, without its brace.
		wb.out = append(appendError(wb.out[:0], first.Reason, first.Field, false), ',')
		mark := len(wb.out)
		wb.out = AppendRejectsJSON(wb.out, 0, wb.rejects)
		wb.out = append(wb.out[:mark], wb.out[mark+1:]...)
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
	} else {
		wb.out = AppendWriteReplyJSON(wb.out[:0], applied, dups, wb.rejects)
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(wb.out)
}

// writeFailed answers a write the Writer refused: nothing of it was
// applied.
func (s *Server) writeFailed(ctx *fasthttp.RequestCtx, op engine.Op, err error) {
	if errors.Is(err, engine.ErrOverloaded) {
		ctx.Response.Header.Set("Retry-After", "1")
		writeError(ctx, fasthttp.StatusServiceUnavailable, "overloaded: too many writes queued, retry later", "")
		return
	}
	// The log failed (a full disk, an I/O error) and heals by itself, or
	// snapshots lack space. Reads go on; the client retries the same batch.
	s.opts.Log.Error("write failed", "op", op.String(), "err", err)
	ctx.Response.Header.Set("Retry-After", "5")
	writeError(ctx, fasthttp.StatusServiceUnavailable, "cannot store the write, nothing of it was applied: "+err.Error(), "")
}

// mergeRejects adds the engine's verdicts to the decoder's rejects, with
// each record's position in the body, and returns how many were applied
// and how many were duplicates (an event_id applied before: acknowledged,
// not applied again, not a rejection).
func (s *Server) mergeRejects(wb *writeBatch) (applied, dups int) {
	pos, ri := 0, 0
	decodeRejects := len(wb.rejects)
	for i := range wb.recs {
		// The i-th record sits at the i-th position not taken by a decode reject.
		for ri < decodeRejects && wb.rejects[ri].Index == pos {
			ri++
			pos++
		}
		if err := wb.errs[i]; errors.Is(err, engine.ErrDuplicate) {
			dups++
		} else if err != nil {
			field, reason := clientError(err)
			wb.rejects = append(wb.rejects, Reject{Index: pos, Field: field, Reason: reason})
		} else {
			applied++
		}
		pos++
	}
	if len(wb.rejects) > decodeRejects {
		sortRejects(wb.rejects)
	}
	return applied, dups
}

func sortRejects(r []Reject) {
	for i := 1; i < len(r); i++ {
		for j := i; j > 0 && r[j].Index < r[j-1].Index; j-- {
			r[j], r[j-1] = r[j-1], r[j]
		}
	}
}

// clientError returns the field at fault and the reason a client sees for
// an error of the engine: an *engine.FieldError names the field, and its
// Err's text is written for the client (engine and index sentinels of bad
// input carry no package prefix). Any other error is shown as it is.
func clientError(err error) (field, reason string) {
	var fe *engine.FieldError
	if errors.As(err, &fe) {
		return fe.Field, fe.Err.Error()
	}
	return "", err.Error()
}

// requestBody returns the request body, decompressed per Content-Encoding
// and capped at MaxBodyBytes after decompression.
func (s *Server) requestBody(ctx *fasthttp.RequestCtx, wb *writeBatch) ([]byte, error) {
	enc := ctx.Request.Header.ContentEncoding()
	raw := ctx.Request.Body()
	var r io.Reader
	switch {
	case len(enc) == 0 || bytes.EqualFold(enc, []byte("identity")):
		return raw, nil
	case bytes.EqualFold(enc, []byte("gzip")) || bytes.EqualFold(enc, []byte("x-gzip")):
		if wb.gz == nil {
			wb.gz = new(gzip.Reader)
		}
		if err := wb.gz.Reset(bytes.NewReader(raw)); err != nil {
			return nil, fmt.Errorf("cannot read gzip body: %w", err)
		}
		r = wb.gz
	case bytes.EqualFold(enc, []byte("zstd")):
		if wb.zs == nil {
			zs, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(s.opts.MaxBodyBytes)+1))
			if err != nil {
				return nil, fmt.Errorf("cannot start zstd decoder: %w", err)
			}
			wb.zs = zs
		}
		if err := wb.zs.Reset(bytes.NewReader(raw)); err != nil {
			return nil, fmt.Errorf("cannot read zstd body: %w", err)
		}
		r = wb.zs
	default:
		return nil, errUnsupportedEncoding
	}
	wb.body.Reset()
	n, err := wb.body.ReadFrom(io.LimitReader(r, int64(s.opts.MaxBodyBytes)+1))
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return nil, errBodyTooLarge
		}
		return nil, fmt.Errorf("cannot decompress %s body: %w", enc, err)
	}
	if n > int64(s.opts.MaxBodyBytes) {
		return nil, errBodyTooLarge
	}
	return wb.body.Bytes(), nil
}

func (s *Server) putBatch(wb *writeBatch) {
	clear(wb.recs) // let the engine own the strings, not the pool
	if wb.body.Cap() > 4<<20 {
		wb.body = bytes.Buffer{} // do not pin a huge buffer in the pool
	}
	s.batches.Put(wb)
}

// AppendRejectsJSON appends the reply to a write to dst and returns the
// extended buffer:
//
//	{"applied":N,"rejected":[{"index":i,"field":"...","reason":"..."}]}
//
// "rejected" is always present, empty when nothing was rejected.
func AppendRejectsJSON(dst []byte, applied int, rejects []Reject) []byte {
	return AppendWriteReplyJSON(dst, applied, 0, rejects)
}

// AppendWriteReplyJSON appends a write's reply to dst:
// {"applied":N,"duplicates":D,"rejected":[...]}, "duplicates" only when
// some records repeated an event_id already applied.
func AppendWriteReplyJSON(dst []byte, applied, duplicates int, rejects []Reject) []byte {
	dst = append(dst, `{"applied":`...)
	dst = strconv.AppendInt(dst, int64(applied), 10)
	if duplicates > 0 {
		dst = append(dst, `,"duplicates":`...)
		dst = strconv.AppendInt(dst, int64(duplicates), 10)
	}
	dst = append(dst, `,"rejected":[`...)
	for i := range rejects {
		r := &rejects[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"index":`...)
		dst = strconv.AppendInt(dst, int64(r.Index), 10)
		dst = append(dst, `,"field":`...)
		dst = jsonenc.AppendString(dst, r.Field)
		dst = append(dst, `,"reason":`...)
		dst = jsonenc.AppendString(dst, r.Reason)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}
