package pop3d

// stls handles STLS (RFC 2595 section 4).
func (ss *session) stls(cmd command) *reply {
	switch {
	case ss.tls != nil:
		// RFC 2595 section 4 allows STLS only once; a second one inside
		// TLS is refused rather than nesting handshakes.
		return errReply("", "TLS already active")
	case len(cmd.args) != 0:
		return errSyntax
	case ss.c.R.Buffered() > 0:
		// Bytes sent after STLS were sent in plaintext, possibly injected
		// by a man in the middle, and must never be executed as if they
		// came over TLS (CVE-2011-0411 class). Closing is the only safe
		// answer.
		ss.c.Log.Warn("plaintext pipelined after STLS, closing (injection attempt?)", "octets", ss.c.R.Buffered())
		return closeReply("", "Pipelining after STLS is not allowed, closing")
	}
	ss.send(okReply("Begin TLS negotiation"))
	if err := ss.c.W.Flush(); err != nil {
		return &reply{close: true}
	}
	if !ss.handshake() {
		return &reply{close: true} // nothing can be said outside the failed TLS
	}
	// RFC 2595 section 4: the client discards what it learned before TLS,
	// and so does the server: a USER given in plaintext does not count.
	// Failed-login counts are kept: they are about the client, not the
	// channel.
	ss.user = ""
	return nil
}

// handshake runs the server side of a TLS handshake within IdleTimeout
// and, on success, moves the session onto it with fresh buffers: nothing
// read before the handshake survives it.
func (ss *session) handshake() bool {
	st, ok := ss.c.StartTLS(ss.srv.TLSConfig)
	if !ok {
		return false
	}
	ss.tls = st
	return true
}
