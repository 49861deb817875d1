package srvconn

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/mailsec/mailsec"
)

// Server is what smtpd's and pop3d's servers share: the log, the host
// name, the sessions with their limits and shutdown, and the failed logins
// per client address. Init it once, before use.
type Server struct {
	Config
	// Log is the protocol log; Host the name in greetings.
	Log  *slog.Logger
	Host string
	// Fails counts failed logins per client address.
	Fails Failures

	tlsLog *slog.Logger
	track  Tracker[*Conn]
}

// Init sets the server up: logger (nil discards) gets the protocol and TLS
// facilities, hostname "" means os.Hostname() or else "localhost", and at
// most maxSessions sessions run, maxPerIP from one client.
func (s *Server) Init(logger *slog.Logger, hostname string, maxSessions, maxPerIP int, cfg Config) {
	s.Config = cfg
	s.Log = mailsec.Logger(logger, mailsec.FacilityProtocol)
	s.tlsLog = mailsec.Logger(logger, mailsec.FacilityTLS)
	s.Host = hostname
	if s.Host == "" {
		s.Host, _ = os.Hostname()
	}
	if s.Host == "" {
		s.Host = "localhost"
	}
	s.track.Init(maxSessions, maxPerIP)
}

// Closed reports whether Shutdown was called.
func (s *Server) Closed() bool { return s.track.Closed() }

// Serve accepts connections on ln until Shutdown and runs handle for each
// in its own goroutine (Tracker.Serve).
func (s *Server) Serve(ln net.Listener, handle func(net.Conn)) error {
	return s.track.Serve(ln, handle)
}

// Shutdown closes the listeners and ends the sessions: those waiting for
// a command at once, the others at their next command; when ctx ends
// first it closes their connections (Tracker.Shutdown).
func (s *Server) Shutdown(ctx context.Context) error {
	return s.track.Shutdown(ctx, func(c *Conn) { c.guard.Kick() }, func(c *Conn) { c.cancel(); c.guard.Close() })
}

// NewConn returns the Conn of a session on the accepted nc, logging with
// its session id, the client's address and the listener's name. On a
// listener of implicit TLS a connection turned away gets no reply: it
// could not be read in plaintext, and a handshake is what an overload
// should not spend CPU on.
func (s *Server) NewConn(nc net.Conn, listener string, implicitTLS bool) *Conn {
	c := &Conn{ID: NewID(), IP: HostIP(nc.RemoteAddr()), Raw: nc, Net: nc, srv: s, implicit: implicitTLS}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.Log = s.Log.With("session", c.ID, "remote", nc.RemoteAddr().String(), "listener", listener)
	return c
}

// Run runs the session c speaking p from admission to close: the limits
// of Tracker.Admit, panic recovery, the loop of commands with its error
// limit, and the replies to shutdown and timeouts.
func (s *Server) Run(c *Conn, p Protocol) {
	if why := s.track.Admit(c, c.IP); why != Admitted {
		c.command = []byte("CONNECT")
		if r := s.Replies.Admission(why); c.implicit {
			c.Log.Info("refused", "command", "CONNECT", "reason", why.String())
		} else {
			c.refused(r)
			w := bufio.NewWriterSize(deadlineWriter{c.Raw, 5 * time.Second}, 256)
			r.WriteReply(w)
			w.Flush()
		}
		c.Raw.Close()
		c.cancel()
		return
	}
	defer s.track.Release(c)
	defer c.Raw.Close()
	defer func() {
		// A bug in one session must not take down the server.
		if v := recover(); v != nil {
			c.Log.Error("session panic", "panic", v)
		}
		// The context ends before End, which may wait for work that
		// watches it (a BDAT delivery still reading chunks).
		c.cancel()
		attrs := p.End()
		c.bufs.Release()
		c.Log.Info("disconnect", attrs...)
	}()
	c.Log.Info("connect")
	c.serve(p)
}
