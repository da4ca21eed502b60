package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/omnipick/omnipick/api"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// The contract test: every request that the api package's end-to-end tests
// send to a server started by startServer, and every answer, is checked
// against api/openapi.yaml, the document the server serves. A test server
// records what breaks the document and its test fails at cleanup, so a new
// test is checked without doing anything. The rules:
//
//   - the path and method must be in the document; otherwise the answer
//     must be 404 (unknown path) or 405 with Allow (unknown method), or 401
//     (no key), with an Error body;
//   - the answer's status must be documented for the operation, and its
//     content type and JSON body must match the document (streamed bodies,
//     SSE, audiences and feeds, are checked by status and content type);
//   - a request the document refuses (a parameter out of range, a body the
//     document's schema rejects) must not be answered 2xx; in a write batch,
//     every object the document refuses must be in the reply's "rejected";
//   - a request the server cannot read at all (answered before routing)
//     must get 400, 408, 413 or 431 with an Error body.
//
// The document may be less strict than the server (it cannot say "the
// product must be in the catalog"), never more lenient than it claims.
//
// The validator is kin-openapi's openapi3filter, fed through fasthttp's
// fasthttpadaptor. Against pb33f/libopenapi-validator v0.16.3 on the same
// document (GET /v1/picks, request and 10-pick answer validated, medians
// of 5 on the shared machine): 61 us and 180 allocations per exchange
// against 244 us and 428, and a dependency tree a fraction of the size
// (libopenapi took minutes to compile here); kin-openapi's OpenAPI 3.0
// support is complete, which is why the document is 3.0.3.

// contract is the loaded document, shared by every test server of the
// process: it is read-only once loaded.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	errors *openapi3.Schema // components.schemas.Error

	exercised sync.Map // "METHOD /path" of the document -> true, once a test had it answered 2xx
}

var loadContract = sync.OnceValues(func() (*contract, error) {
	// Bodies that are text, not JSON: checked as strings. The registry is
	// kin-openapi's, process-wide, hence set once here.
	for _, ct := range []string{"text/html", "text/csv", "application/rss+xml", "text/event-stream", "application/x-ndjson", "image/svg+xml"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPIYAML())
	if err != nil {
		return nil, fmt.Errorf("cannot load openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	// The servers list names the demo address; tests listen elsewhere.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("cannot route by openapi.yaml: %w", err)
	}
	errSchema := doc.Components.Schemas["Error"]
	if errSchema == nil {
		return nil, errors.New("openapi.yaml has no Error schema")
	}
	return &contract{doc: doc, router: router, errors: errSchema.Value}, nil
})

// contractCheck collects the contract faults of one test server.
type contractCheck struct {
	c      *contract
	mu     sync.Mutex
	faults []string
}

// checkContract makes srv check every request and answer against the
// document; tb fails at cleanup with what broke it. Call it before
// srv.Start and before registering srv's Stop, so that the check's cleanup
// runs once the server has stopped.
func checkContract(tb testing.TB, srv *api.Server) {
	tb.Helper()
	c, err := loadContract()
	if err != nil {
		tb.Fatal(err)
	}
	cc := &contractCheck{c: c}
	api.WrapHandlers(srv, cc.wrap, cc.wrapErr)
	tb.Cleanup(func() {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		for _, f := range cc.faults {
			tb.Errorf("contract (api/openapi.yaml): %s", f)
		}
	})
}

func (cc *contractCheck) fault(ctx *fasthttp.RequestCtx, msg string) {
	uri := string(ctx.RequestURI())
	if len(uri) > 120 {
		uri = uri[:120] + "..."
	}
	cc.mu.Lock()
	cc.faults = append(cc.faults, fmt.Sprintf("%s %s -> %d: %s", ctx.Method(), uri, ctx.Response.StatusCode(), msg))
	cc.mu.Unlock()
}

func (cc *contractCheck) wrap(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		next(ctx)
		if msg := cc.check(ctx); msg != "" {
			cc.fault(ctx, msg)
		}
	}
}

func (cc *contractCheck) wrapErr(next func(*fasthttp.RequestCtx, error)) func(*fasthttp.RequestCtx, error) {
	return func(ctx *fasthttp.RequestCtx, err error) {
		next(ctx, err)
		if msg := cc.errorAnswer(ctx, 400, 408, 413, 431); msg != "" {
			cc.fault(ctx, "unreadable request: "+msg)
		}
	}
}

// errorAnswer checks that the answer has one of the statuses and an Error
// body.
func (cc *contractCheck) errorAnswer(ctx *fasthttp.RequestCtx, statuses ...int) string {
	if st := ctx.Response.StatusCode(); !slices.Contains(statuses, st) {
		return fmt.Sprintf("status %d, want one of %v", st, statuses)
	}
	if ct := mediaType(string(ctx.Response.Header.ContentType())); ct != "application/json" {
		return fmt.Sprintf("content type %q, want an Error body in application/json", ct)
	}
	var v any
	if err := json.Unmarshal(ctx.Response.Body(), &v); err != nil {
		return fmt.Sprintf("error body is not JSON: %v", err)
	}
	if err := cc.c.errors.VisitJSON(v); err != nil {
		return fmt.Sprintf("error body does not match Error: %v", err)
	}
	return ""
}

func (cc *contractCheck) check(ctx *fasthttp.RequestCtx) string {
	status := ctx.Response.StatusCode()
	req := new(http.Request)
	if err := fasthttpadaptor.ConvertRequest(ctx, req, true); err != nil {
		return "cannot convert request: " + err.Error()
	}
	head := req.Method == http.MethodHead
	if head { // every GET answers HEAD, headers only
		req.Method = http.MethodGet
	}
	route, params, err := cc.c.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return cc.errorAnswer(ctx, 401, 404, 503)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		if msg := cc.errorAnswer(ctx, 401, 405, 503); msg != "" {
			return msg
		}
		if status == 405 && len(ctx.Response.Header.Peek("Allow")) == 0 {
			return "405 without Allow"
		}
		return ""
	case err != nil:
		return "cannot route: " + err.Error()
	}
	if status >= 200 && status < 300 && len(ctx.Request.Header.Peek(routeWalkHeader)) == 0 {
		cc.c.exercised.Store(route.Method+" "+route.Path, true)
	}

	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc, // the server's to check: 401 and 403 are documented
		ExcludeRequestBody:    true,                                  // batches are checked object by object below
		SkipSettingDefaults:   true,
		IncludeResponseStatus: true, // an undocumented status fails
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	refused := ""
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		refused = err.Error()
	}
	var items map[int]string // objects of a batch the document refuses
	// A body over the limit is refused whole (413) before its objects are
	// read; the check does not inflate what the server would not.
	if rb := route.Operation.RequestBody; rb != nil && refused == "" && status != http.StatusRequestEntityTooLarge {
		refused, items = cc.checkBatch(ctx, rb.Value)
	}
	ok := status >= 200 && status < 300
	if refused != "" && ok {
		return "the document refuses this request but the server accepted it: " + refused
	}
	if len(items) > 0 && status == 200 {
		var reply struct {
			Rejected []struct {
				Index int `json:"index"`
			} `json:"rejected"`
		}
		_ = json.Unmarshal(ctx.Response.Body(), &reply) // the response check below reports a bad body
		rejected := map[int]bool{}
		for _, r := range reply.Rejected {
			rejected[r.Index] = true
		}
		for i, why := range items {
			if !rejected[i] {
				return fmt.Sprintf("object %d: the document refuses it (%s) but the server applied it", i, why)
			}
		}
	}

	stream := ctx.Response.IsBodyStream()
	hdr := http.Header{}
	for k, v := range ctx.Response.Header.All() {
		hdr.Add(string(k), string(v))
	}
	opts.ExcludeResponseBody = stream || head
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: hdr, Options: opts}
	if !opts.ExcludeResponseBody {
		out.SetBodyBytes(append([]byte(nil), ctx.Response.Body()...))
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return err.Error()
	}
	if opts.ExcludeResponseBody { // ValidateResponse checked status and headers only
		resp := route.Operation.Responses.Status(status)
		ct := mediaType(hdr.Get("Content-Type"))
		if resp != nil && len(resp.Value.Content) > 0 && resp.Value.Content.Get(ct) == nil {
			return fmt.Sprintf("content type %q is not documented for %d", ct, status)
		}
	}
	return ""
}

// routeWalkHeader marks the route walk's requests, which reach every
// operation with a made-up id: they do not count as exercising it.
const routeWalkHeader = "X-Contract-Route-Walk"

// maxCheckedBody bounds what the check decompresses: the limit tests send
// bombs.
const maxCheckedBody = 64 << 20

// checkBatch checks a write body against the document: refused says why the
// body as a whole is refused (encoding, content type, not JSON), items which
// objects are, by position.
func (cc *contractCheck) checkBatch(ctx *fasthttp.RequestCtx, rb *openapi3.RequestBody) (refused string, items map[int]string) {
	body := ctx.Request.Body()
	var r io.Reader
	switch enc := strings.ToLower(strings.TrimSpace(string(ctx.Request.Header.ContentEncoding()))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return "corrupt gzip body", nil
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxCheckedBody))
		if err != nil {
			return "corrupt zstd body", nil
		}
		defer zr.Close()
		r = zr
	default:
		return fmt.Sprintf("Content-Encoding %q is not gzip, zstd or identity", enc), nil
	}
	if r != nil {
		b, err := io.ReadAll(io.LimitReader(r, maxCheckedBody))
		if err != nil {
			return "corrupt compressed body: " + err.Error(), nil
		}
		body = b
	}
	ct := mediaType(string(ctx.Request.Header.ContentType()))
	if ct == "" {
		ct = "application/json" // documented: no Content-Type reads as JSON
	}
	mt := rb.Content.Get(ct)
	if mt == nil {
		return fmt.Sprintf("Content-Type %q is not documented", ct), nil
	}
	item := rb.Content.Get("application/x-ndjson").Schema.Value
	items = map[int]string{}
	checkItem := func(i int, v any) {
		if err := item.VisitJSON(v); err != nil {
			items[i] = err.Error()
		}
	}
	if ct == "application/x-ndjson" {
		i := 0
		for line := range bytes.SplitSeq(body, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var v any
			if err := json.Unmarshal(line, &v); err != nil {
				items[i] = "not JSON: " + err.Error()
			} else {
				checkItem(i, v)
			}
			i++
		}
		return "", items
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return "not one JSON value: " + err.Error(), nil
	}
	if arr, ok := v.([]any); ok {
		for i, x := range arr {
			checkItem(i, x)
		}
	} else {
		checkItem(0, v)
	}
	// The JSON body's own schema (an array of objects, or one) agrees.
	if err := mt.Schema.Value.VisitJSON(v); (err != nil) != (len(items) > 0) {
		return fmt.Sprintf("the document's %s schema and its object schema disagree: %v", ct, err), nil
	}
	return "", items
}

// mediaType is a Content-Type without its parameters, lower-cased.
func mediaType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// unexercised lists the document's operations that no test had answered
// with success (the route walk reaches every one, mostly with 4xx), or nil
// when no test loaded the document.
func unexercised() []string {
	c, err := loadContract()
	if err != nil {
		return nil
	}
	var out []string
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			if _, ok := c.exercised.Load(method + " " + path); !ok {
				out = append(out, method+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestMain fails a full run of the package's tests in which a documented
// operation never succeeded: the success shape of every operation must be
// held to the document by at least one test.
func TestMain(m *testing.M) {
	code := m.Run()
	full := flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" && !testing.Short()
	if missing := unexercised(); code == 0 && full && len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "contract: no api test has these operations of api/openapi.yaml answered with success (add one, through startServer):\n\t%s\nFAIL\n", strings.Join(missing, "\n\t"))
		code = 1
	}
	os.Exit(code)
}
