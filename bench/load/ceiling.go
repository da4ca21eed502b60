package load

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// CeilingBodySize is the size of the ceiling server's answer: about what a
// short picks answer weighs.
const CeilingBodySize = 300

// ceilingBody is a picks-shaped JSON answer padded to CeilingBodySize bytes.
var ceilingBody = func() []byte {
	const head = `{"customer":"C0001","channel":"ads","took_us":0,"picks":[{"product":"P00001","title":"Ceiling",` +
		`"price":1,"url":"https://shop.example/p/P00001","image":"https://shop.example/i/P00001.jpg","sizes":["M"],"reason":"popular"}],"pad":"`
	const tail = `"}`
	return []byte(head + strings.Repeat("x", CeilingBodySize-len(head)-len(tail)) + tail)
}()

// StartCeiling starts the ceiling server on addr ("127.0.0.1:0" picks a
// free port): a fasthttp server that answers every request, whatever its
// method, path or body, with 200 and the same 300-byte JSON body. It does
// no work, so a load run against it measures the client, the network stack
// and the CPUs the client shares: the most any server could get from this
// client. It returns the address it listens on and a function that stops
// it and waits for it to finish (calling it again does nothing).
func StartCeiling(addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("cannot listen on %q: %w", addr, err)
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.SetContentType("application/json")
			ctx.Response.SetBodyRaw(ceilingBody)
		},
		Name:         "omnipick-ceiling",
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		IdleTimeout:  time.Minute,
		// Shut down promptly even with idle keep-alive connections open.
		CloseOnShutdown: true,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns nil after Shutdown; a listener error ends it the same way
	}()
	stop := sync.OnceFunc(func() {
		_ = srv.Shutdown() // only fails if Serve never ran; done still closes
		<-done
	})
	return ln.Addr().String(), stop, nil
}
