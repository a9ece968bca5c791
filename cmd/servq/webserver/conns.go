package webserver

import (
	"container/list"
	"net"
	"net/http"
	"sync"
)

// connLimiter bounds the connections the server holds open, so that a
// flood of connections cannot take the file descriptors the collectors and
// the state store need.
//
// At the limit it sheds rather than blocks: it closes the connection that
// has waited longest for a request (an idle keep-alive connection, or a
// new one that has sent nothing yet) to make room, and when every
// connection is busy inside a request it closes the new one at once.
// Blocking in Accept (as golang.org/x/net/netutil.LimitListener does)
// would leave a scrape queued in the kernel's backlog behind thousands of
// idle keep-alive connections that only the idle timeout frees: the scrape
// would time out instead of being served. Connections in a request are
// never closed by the limiter; the read and write timeouts bound them.
type connLimiter struct {
	max int

	mu      sync.Mutex
	open    int
	waiting *list.List // of *limitedConn waiting for a request, oldest first
	evicted uint64
	refused uint64
}

func newConnLimiter(max int) *connLimiter {
	return &connLimiter{max: max, waiting: list.New()}
}

// listener wraps l so that its connections count against the limit.
func (cl *connLimiter) listener(l net.Listener) net.Listener {
	return &limitListener{Listener: l, cl: cl}
}

type limitListener struct {
	net.Listener
	cl *connLimiter
}

type limitedConn struct {
	net.Conn
	cl       *connLimiter
	elem     *list.Element // in cl.waiting while it waits for a request; guarded by cl.mu
	released bool          // guarded by cl.mu
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := l.cl.admit(c); lc != nil {
			return lc, nil
		}
	}
}

// admit counts c in, closing the longest-waiting connection to make room
// if the limit is reached; it closes c and returns nil when every
// connection is busy.
func (cl *connLimiter) admit(c net.Conn) *limitedConn {
	cl.mu.Lock()
	var victim *limitedConn
	if cl.open >= cl.max {
		front := cl.waiting.Front()
		if front == nil {
			cl.refused++
			cl.mu.Unlock()
			c.Close()
			return nil
		}
		victim = front.Value.(*limitedConn)
		cl.releaseLocked(victim)
		cl.evicted++
	}
	lc := &limitedConn{Conn: c, cl: cl}
	cl.open++
	// A new connection waits for its first request like an idle one.
	lc.elem = cl.waiting.PushBack(lc)
	cl.mu.Unlock()
	if victim != nil {
		// The server's goroutine for it sees the error and cleans up; its
		// Close through limitedConn finds the slot already released.
		victim.Conn.Close()
	}
	return lc
}

func (cl *connLimiter) releaseLocked(c *limitedConn) {
	if c.released {
		return
	}
	c.released = true
	cl.open--
	if c.elem != nil {
		cl.waiting.Remove(c.elem)
		c.elem = nil
	}
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.cl.mu.Lock()
	c.cl.releaseLocked(c)
	c.cl.mu.Unlock()
	return err
}

// connState is the http.Server's ConnState hook: it moves connections in
// and out of the waiting list as they start and finish requests.
func (cl *connLimiter) connState(c net.Conn, st http.ConnState) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		c = nc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if lc.released {
		return
	}
	switch st {
	case http.StateActive:
		if lc.elem != nil {
			cl.waiting.Remove(lc.elem)
			lc.elem = nil
		}
	case http.StateIdle:
		if lc.elem == nil {
			lc.elem = cl.waiting.PushBack(lc)
		}
	case http.StateHijacked:
		// The handler owns it now; it still counts until it is closed.
		if lc.elem != nil {
			cl.waiting.Remove(lc.elem)
			lc.elem = nil
		}
	case http.StateClosed:
		cl.releaseLocked(lc)
	}
}

// counts returns the open connections and how many were closed to make
// room or refused.
func (cl *connLimiter) counts() (open int, evicted, refused uint64) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.open, cl.evicted, cl.refused
}
