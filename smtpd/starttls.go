package smtpd

// startTLS handles STARTTLS (RFC 3207).
func (ss *session) startTLS(cmd command) *reply {
	switch {
	case ss.tls != nil:
		return rep(503, "5.5.1", "TLS already active")
	case ss.srv.TLSConfig == nil:
		return rep(454, "4.7.0", "TLS not available")
	case cmd.arg != "":
		return rep(501, "5.5.4", "Syntax error (no parameters allowed)") // RFC 3207 section 4
	case ss.r.Buffered() > 0:
		// STARTTLS must end a pipelined group (RFC 2920 section 3.1). Bytes
		// already sent after it were sent in plaintext, possibly injected
		// by a man in the middle, and must never be executed as if they
		// came over TLS (CVE-2011-0411). Closing is the only safe answer.
		ss.log.Warn("plaintext pipelined after STARTTLS, closing (CVE-2011-0411 injection attempt?)",
			"octets", ss.r.Buffered())
		return &reply{code: 421, enh: "4.7.0", text: "Pipelining after STARTTLS is not allowed, closing", close: true}
	}
	ss.send(rep(220, "2.0.0", "Ready to start TLS"))
	if err := ss.flush(); err != nil {
		return errConnection
	}
	if !ss.handshake() {
		return &reply{close: true} // nothing can be said outside the failed TLS
	}
	// RFC 3207 section 4.2: discard all knowledge obtained from the client
	// before TLS; it has to EHLO again. Failed-login counts are kept: they
	// are about the client, not the channel.
	ss.reset()
	ss.helo, ss.esmtp, ss.authUser = "", false, ""
	return nil
}

// handshake runs the server side of a TLS handshake within
// CommandTimeout and, on success, moves the session onto it with fresh
// buffers: nothing read before the handshake survives it.
func (ss *session) handshake() bool {
	st, ok := ss.c.StartTLS(ss.srv.TLSConfig)
	if !ok {
		return false
	}
	ss.tls = st
	ss.tlsTrace = receivedTLS(st)
	ss.sync()
	return true
}
