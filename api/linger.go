package api

import (
	"io"
	"net"
	"sync"
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

// lingerListener wraps the connections it accepts in lingerConns and keeps
// track of those that have not sent a byte yet.
type lingerListener struct {
	net.Listener
	fresh *freshConns
}

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &lingerConn{Conn: c, fresh: l.fresh}
	l.fresh.add(lc)
	return lc, nil
}

// freshConns tracks connections that have not sent a byte yet. fasthttp
// counts an accepted connection as busy until its first request is read,
// so on shutdown it would wait for such a connection until the read
// timeout; Stop closes them instead: no request of theirs was started.
type freshConns struct {
	mu     sync.Mutex
	conns  map[*lingerConn]struct{}
	closed bool // set by closeAll: connections accepted later close at once
}

func newFreshConns() *freshConns { return &freshConns{conns: make(map[*lingerConn]struct{})} }

func (f *freshConns) add(c *lingerConn) {
	f.mu.Lock()
	closed := f.closed
	if !closed {
		f.conns[c] = struct{}{}
	}
	f.mu.Unlock()
	if closed {
		c.Conn.Close()
	}
}

func (f *freshConns) remove(c *lingerConn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// closeAll closes every connection that has not sent a byte, now and from
// now on.
func (f *freshConns) closeAll() {
	f.mu.Lock()
	f.closed = true
	conns := f.conns
	f.conns = map[*lingerConn]struct{}{}
	f.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

// lingerConn is a connection that, once marked, lingers on Close.
type lingerConn struct {
	net.Conn
	linger atomic.Bool
	used   atomic.Bool // has read a byte
	fresh  *freshConns
}

func (c *lingerConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.used.Load() {
		c.used.Store(true)
		c.fresh.remove(c)
	}
	return n, err
}

// lingerOnClose marks c, a connection accepted by a lingerListener, to
// linger when it closes. It does nothing to other connections.
func lingerOnClose(c net.Conn) {
	if lc, ok := c.(*lingerConn); ok {
		lc.linger.Store(true)
	}
}

func (c *lingerConn) Close() error {
	if !c.used.Load() {
		c.fresh.remove(c)
	}
	if c.linger.Load() {
		if tc, ok := c.Conn.(interface{ CloseWrite() error }); ok && tc.CloseWrite() == nil {
			if c.Conn.SetReadDeadline(time.Now().Add(lingerTime)) == nil {
				io.CopyN(io.Discard, c.Conn, lingerBytes) //nolint:errcheck // draining: any end will do
			}
		}
	}
	return c.Conn.Close()
}
