package smtp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/security"
	"github.com/mailsec/mailsec/smtp"
	"github.com/mailsec/mailsec/smtpd"
	"github.com/mailsec/mailsec/tlsconf"
)

// printer is a server Backend that prints what each message is. Its
// RelayRule takes recipients of any domain from loopback clients.
type printer struct{ smtpd.RelayRule }

func (*printer) Deliver(_ context.Context, env *smtpd.Envelope, msg io.Reader) error {
	m, err := mail.ReadMessage(msg)
	if err != nil {
		return err
	}
	fmt.Printf("server got %s -> %v: %s\n", env.From, env.To, m.Header.Get("Subject"))
	_, err = io.Copy(io.Discard, m.Body)
	return err
}

// exampleServer starts an SMTP server on 127.0.0.1 with STARTTLS and a
// test certificate for "localhost", taking mail for anyone from loopback,
// and returns its address, a pool trusting the certificate and its stop.
// A real program sends to its provider, whose certificate the system
// roots verify without any of this.
func exampleServer() (string, *x509.CertPool, func()) {
	srv := &smtpd.Server{Hostname: "mx.example.net", Domains: []string{"mx.example.net"},
		Backend:   &printer{smtpd.RelayRule{Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{wiretest.Cert()}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln, smtpd.MX, smtpd.TLSRequire)
	return ln.Addr().String(), wiretest.Pool(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
}

// An application's notification mail: one call, with STARTTLS mandatory
// (implicit TLS on port 465) and the certificate verified.
func ExampleSendMail() {
	addr, roots, stop := exampleServer()
	defer stop()

	msg := strings.NewReader("From: alerts@example.com\r\nTo: ops@example.net\r\n" +
		"Subject: disk almost full\r\n\r\n/var is 93% full.\r\n")
	// RootCAs and ServerName only because the server has a test certificate.
	opts := &smtp.Options{TLS: tlsconf.Options{RootCAs: roots, ServerName: "localhost"}}
	res, err := smtp.SendMail(context.Background(), addr, opts, "alerts@example.com", []string{"ops@example.net"}, msg)
	if err != nil {
		fmt.Println("not sent:", err)
		return
	}
	fmt.Println("accepted with", res.Reply.Code)
	// Output:
	// server got alerts@example.com -> [ops@example.net]: disk almost full
	// accepted with 250
}

// A security context composes the session's protections, each mandatory
// or optional, and reports what each did: here STARTTLS, which must
// succeed before anything else is sent.
func Example_securityContext() {
	addr, roots, stop := exampleServer()
	defer stop()

	ctx := context.Background()
	sc := &security.Context{}
	sc.Add(security.NewStartTLS(), security.Mandatory)
	c, err := smtp.Dial(ctx, addr, &smtp.Options{Security: sc,
		TLS: tlsconf.Options{RootCAs: roots, ServerName: "localhost"}})
	if err != nil {
		fmt.Println("not secured:", err)
		return
	}
	fmt.Println("under TLS:", c.TLS() != nil)
	_, err = c.Send(ctx, "alerts@example.com", []string{"ops@example.net"},
		strings.NewReader("Subject: hello\r\n\r\nhi\r\n"), &smtp.MailOptions{Notify: smtp.NotifyFailure | smtp.NotifyDelay})
	if err != nil {
		fmt.Println("not sent:", err)
	}
	c.Quit(ctx)
	for _, r := range sc.Reports() {
		fmt.Println(r.Name, r.Status)
	}
	// Output:
	// under TLS: true
	// server got alerts@example.com -> [ops@example.net]: hello
	// STARTTLS closed
}
