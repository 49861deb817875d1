package smtpd_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/smtp"
	"github.com/mailsec/mailsec/smtpd"
	"github.com/mailsec/mailsec/store"
	"github.com/mailsec/mailsec/tlsconf"
	"github.com/mailsec/mailsec/userdb"
)

// A server for the domain example.net that takes mail for its user ops
// into a Maildir, on an MX listener that requires STARTTLS, and a client
// sending it one message. The certificate is a test one for "localhost";
// a real server has one for its host name.
func ExampleServer() {
	dir, err := os.MkdirTemp("", "smtpd-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	users, err := userdb.Open(filepath.Join(dir, "users"), nil)
	if err != nil {
		panic(err)
	}
	if err := users.Add("ops", "example password"); err != nil {
		panic(err)
	}
	st, err := store.New(filepath.Join(dir, "mail"))
	if err != nil {
		panic(err)
	}
	srv := &smtpd.Server{
		Hostname:  "mx.example.net",
		Domains:   []string{"example.net"},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{wiretest.Cert()}},
		Users:     users,
		Backend:   smtpd.Maildir{Store: st},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln, smtpd.MX, smtpd.TLSRequire)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	ctx := context.Background()
	opts := &smtp.Options{TLS: tlsconf.Options{RootCAs: wiretest.Pool(), ServerName: "localhost"}}
	msg := "From: alerts@example.com\r\nTo: ops@example.net\r\nSubject: backup done\r\n\r\nAll good.\r\n"
	if _, err := smtp.SendMail(ctx, ln.Addr().String(), opts, "alerts@example.com",
		[]string{"ops@example.net"}, strings.NewReader(msg)); err != nil {
		fmt.Println("not sent:", err)
	}
	_, err = smtp.SendMail(ctx, ln.Addr().String(), opts, "alerts@example.com",
		[]string{"nobody@example.net"}, strings.NewReader(msg))
	fmt.Println("for nobody:", err)

	stored, err := st.List("ops")
	if err != nil {
		panic(err)
	}
	fmt.Println("messages for ops:", len(stored))
	for _, m := range stored {
		b, err := os.ReadFile(m.Path)
		if err != nil {
			panic(err)
		}
		// The server adds its Received field (RFC 5321 section 4.4) above
		// the message, which is kept as it was sent.
		fmt.Println("trace added:", strings.Contains(string(b), "Received: from "), "message intact:", strings.HasSuffix(string(b), msg))
	}
	// Output:
	// for nobody: RCPT TO:<nobody@example.net>: the SMTP server reported an error: server said 550 5.1.1 User unknown
	// messages for ops: 1
	// trace added: true message intact: true
}
