package wire

import "github.com/mailsec/mailsec"

// The client and the server move in lock step: RFC 5321 section 4.1.1 (and
// RFC 2920 section 3.1 for a pipelined group) and RFC 1939 section 3 give
// exactly one reply per command, and the greeting before the first. Octets
// that arrive while no reply is awaited answer nothing the client asked;
// read as the answer to the next command they would make a refused RCPT
// look accepted or an injected go-ahead pass for the server's (the "NO
// STARTTLS" study, USENIX Security 2021). So they end the session.

// Answered records that the reply to one command (or the greeting) is
// complete. When no other reply is awaited, anything already read behind
// it breaks the protocol: the error is a Protocol one, for the caller to
// Fail the session with. Only the buffer is looked at here: the socket is
// peeked once, by the next Send (or StartTLS before its handshake), just
// before anything goes out that a surplus could be read as answering, so
// a plain-text command costs one peek, not two.
func (s *Session) Answered(op string) error {
	if s.pending > 0 {
		s.pending--
	}
	if s.pending > 0 {
		return nil
	}
	if n := s.R.Buffered(); n > 0 {
		return surplus(op, n)
	}
	return nil
}

// unsolicited refuses octets received while no reply is awaited: those in
// the buffer, and in plain text those already waiting in the socket, which
// came in a later segment. Under TLS the socket may legitimately hold
// records that carry no application data (session tickets, RFC 8446
// section 4.6.1), so only the decrypted octets count there; a man in the
// middle cannot write those.
func (s *Session) unsolicited(op string) error {
	n := s.R.Buffered()
	if n == 0 && s.TLS == nil {
		n = s.peek.arrived()
	}
	if n == 0 {
		return nil
	}
	return surplus(op, n)
}

// surplus is the Protocol error for n octets that answer no command.
func surplus(op string, n int) error {
	return mailsec.Errorf(mailsec.Protocol, op, nil,
		"the server sent %d octets that answer no command (one reply per command: RFC 5321 section 4.1.1, RFC 1939 section 3); the session is out of step, or under a response injection, and was dropped", n)
}
