package smtpd

import (
	"crypto/tls"
	"net"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/srvconn"
)

// received builds the Received header RFC 5321 section 4.4 requires a
// server to prepend, with the protocol names of RFC 3848 (ESMTP, ESMTPS,
// ESMTPA, ESMTPSA) and RFC 6531 section 3.7.3 (UTF8SMTP...), and, as RFC
// 8314 section 4.3 asks, a record of the TLS version and cipher used.
func (ss *session) received(env *Envelope) string {
	proto := "SMTP"
	if ss.esmtp {
		proto = "ESMTP"
		if env.UTF8 {
			proto = "UTF8SMTP"
		}
		if ss.tls != nil {
			proto += "S"
		}
		if ss.authUser != "" {
			proto += "A"
		}
	}
	var b strings.Builder
	b.Grow(256)
	b.WriteString("Received: from ")
	b.WriteString(ss.helo)
	b.WriteString(" (")
	b.WriteString(ss.literal)
	b.WriteString(")\r\n")
	b.WriteString(ss.tlsTrace)
	b.WriteString("\tby ")
	b.WriteString(ss.srv.host)
	b.WriteString(" (mailsec) with ")
	b.WriteString(proto)
	b.WriteString(" id ")
	b.WriteString(ss.id)
	// "for" only with a single recipient: listing several would disclose
	// Bcc recipients to each other (RFC 5321 section 7.2).
	if len(env.To) == 1 {
		b.WriteString("\r\n\tfor <")
		b.WriteString(env.To[0])
		b.WriteString(">")
	}
	b.WriteString(";\r\n\t")
	b.WriteString(time.Now().Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return b.String()
}

// receivedTLS is the line of the Received header that records the TLS
// version and cipher, made once per handshake (tls.CipherSuiteName builds
// the whole suite list on every call).
func receivedTLS(st *tls.ConnectionState) string {
	return "\t(using " + srvconn.TLSVersion(st.Version) + " with cipher " + tls.CipherSuiteName(st.CipherSuite) + ")\r\n"
}

// addressLiteral renders an IP as RFC 5321 section 4.1.3 address literal.
func addressLiteral(ip string) string {
	if p := net.ParseIP(ip); p != nil && p.To4() == nil {
		return "[IPv6:" + ip + "]"
	}
	return "[" + ip + "]"
}
