package api

import (
	"io"
	"net"
	"sync/atomic"
	"time"
)

// When fasthttp refuses a request it could not read (a body over
// MaxBodyBytes, a malformed header), it answers and closes the connection
// while the client may still be sending. Closing a socket with unread
// input makes the kernel send a reset, and a reset can destroy the answer
// before the client reads it: the client then sees "connection reset"
// instead of our 413. So such a connection lingers before it closes: it
// sends FIN (the answer is complete) and reads and discards what the
// client still sends, for a bounded time and number of bytes, as net/http
// does in closeWriteAndWait.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 256 << 20
)

// lingerListener wraps the connections it accepts in lingerConns.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

// lingerConn is a connection that, once marked, lingers on Close.
type lingerConn struct {
	net.Conn
	linger atomic.Bool
}

// lingerOnClose marks c, a connection accepted by a lingerListener, to
// linger when it closes. It does nothing to other connections.
func lingerOnClose(c net.Conn) {
	if lc, ok := c.(*lingerConn); ok {
		lc.linger.Store(true)
	}
}

func (c *lingerConn) Close() error {
	if c.linger.Load() {
		if tc, ok := c.Conn.(interface{ CloseWrite() error }); ok && tc.CloseWrite() == nil {
			if c.Conn.SetReadDeadline(time.Now().Add(lingerTime)) == nil {
				io.CopyN(io.Discard, c.Conn, lingerBytes) //nolint:errcheck // draining: any end will do
			}
		}
	}
	return c.Conn.Close()
}
