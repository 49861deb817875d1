package smtp

import (
	"net"

	"github.com/mailsec/mailsec"
)

// LoginProxy is CSMail/SSL's SMTPProxyInfo (docs/requirements.md): an SMTP proxy that relays the
// session to a server it picks from the login name. CSMail names the
// handler but not its wire convention; mailsec uses the one of the POP3
// proxies CSMail pairs it with, which routing SMTP proxies (nginx's
// mail proxy with an auth service, for one) can follow:
//
//   - the client connects to Addr, not to the server given to Dial, and
//     runs the whole session with the proxy: TLS (implicit on port 465,
//     else STARTTLS as Options.TLSMode says) is checked against the
//     proxy's name (or Options.TLS.ServerName), because the proxy ends it;
//   - it authenticates as "user@realhost", realhost being the host given
//     to Dial, with ":port" added when the real port differs from the
//     proxy's own (a proxy on 587 relays to 587 unless told otherwise);
//   - everything else is ordinary SMTP with the proxy.
//
// So the proxy sees the messages and the password: use it only when it is
// trusted, as with any SMTP relay. To keep TLS end to end with the real
// server through an untrusted hop, use a dial.Proxy (SOCKS or HTTP CONNECT)
// as Options.Dialer instead. Options.Auth is required, since the login
// carries the real host, and Options.Security must be nil, since its
// drivers' credentials cannot be rewritten.
type LoginProxy struct {
	// Addr is the proxy's host:port.
	Addr string
}

// route points a Dial at the proxy: it returns the proxy's address and sets
// o.Auth to a copy whose user names the real server.
func (lp *LoginProxy) route(addr string, o *Options) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", mailsec.Errorf(mailsec.Config, "SMTP proxy", err, "server address %q is not host:port", addr)
	}
	_, pport, err := net.SplitHostPort(lp.Addr)
	if err != nil {
		return "", mailsec.Errorf(mailsec.Config, "SMTP proxy", err, "proxy address %q is not host:port", lp.Addr)
	}
	if o.Auth == nil || o.Auth.Username == "" {
		return "", mailsec.Errorf(mailsec.Config, "SMTP proxy", nil, "an SMTP proxy needs credentials: the login user@realhost names the real server")
	}
	if o.Security != nil {
		return "", mailsec.Errorf(mailsec.Config, "SMTP proxy", nil, "an SMTP proxy cannot rewrite the login of a caller-built security context")
	}
	real := host
	if port != pport {
		real = net.JoinHostPort(host, port)
	}
	cred := *o.Auth
	cred.Username += "@" + real
	o.Auth = &cred
	mailsec.Logger(o.Logger, mailsec.FacilityProxy).Info("SMTP proxy: logging in to the proxy as user@realhost",
		"proxy", lp.Addr, "server", real)
	if o.Transcript != nil {
		_, _ = o.Transcript.Write([]byte("=== SMTP proxy " + lp.Addr + " for " + real + "\n"))
	}
	return lp.Addr, nil
}
