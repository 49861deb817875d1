package pop3_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/pop3"
	"github.com/mailsec/mailsec/pop3d"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/store"
	"github.com/mailsec/mailsec/tlsconf"
)

// exampleServer starts a POP3S server on 127.0.0.1 with a test
// certificate for "localhost" and a user alice (password "example
// password") who has one message, and returns its address, a pool
// trusting the certificate and its stop. A real program fetches from its
// provider, whose certificate the system roots verify.
func exampleServer() (string, *x509.CertPool, func()) {
	dir, err := os.MkdirTemp("", "pop3-example-")
	if err != nil {
		panic(err)
	}
	users, err := wiretest.UserDB(filepath.Join(dir, "users"), "alice", "example password")
	if err != nil {
		panic(err)
	}
	st, err := store.New(filepath.Join(dir, "mail"))
	if err != nil {
		panic(err)
	}
	msg := "From: bob@example.net\r\nTo: alice@example.net\r\nSubject: lunch?\r\n\r\nAt noon.\r\n"
	if err := st.Deliver([]string{"alice"}, strings.NewReader(msg)); err != nil {
		panic(err)
	}
	srv := &pop3d.Server{Hostname: "pop.example.net", Users: users, Store: st,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{wiretest.Cert()}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln, pop3d.POP3S)
	return ln.Addr().String(), wiretest.Pool(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		os.RemoveAll(dir)
	}
}

// Retrieving mail over implicit TLS (POP3S, RFC 8314): log in, list the
// maildrop and read each message as it streams in.
func ExampleClient_Retr() {
	addr, roots, stop := exampleServer()
	defer stop()

	ctx := context.Background()
	c, err := pop3.Dial(ctx, addr, &pop3.Options{
		TLSMode: pop3.TLSImplicit, // the default on port 995 only
		// RootCAs and ServerName only because the server has a test certificate.
		TLS:  tlsconf.Options{RootCAs: roots, ServerName: "localhost"},
		Auth: &sasl.Credentials{Username: "alice", Password: "example password"},
	})
	if err != nil {
		fmt.Println("cannot log in:", err)
		return
	}
	defer c.Close()
	list, err := c.List(ctx)
	if err != nil {
		fmt.Println("LIST:", err)
		return
	}
	for _, m := range list {
		body, err := c.Retr(ctx, m.Num)
		if err != nil {
			fmt.Println("RETR:", err)
			return
		}
		msg, err := mail.ReadMessage(body)
		if err != nil {
			fmt.Println("not a message:", err)
			return
		}
		fmt.Printf("%d (%d octets) from %s: %s\n", m.Num, m.Size, msg.Header.Get("From"), msg.Header.Get("Subject"))
		body.Close()
	}
	if err := c.Quit(ctx); err != nil {
		fmt.Println("QUIT:", err)
	}
	// Output:
	// 1 (75 octets) from bob@example.net: lunch?
}
