package wiretest

import (
	"bufio"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Maildrop is a small scripted POP3S server for fetch tests. Message i
// (from 1) has the UIDL "uid-i" for good; a QUIT after DELE removes
// messages as RFC 1939 section 6 says, and later sessions number the rest
// from 1 (section 8: the maildrop is fixed for a session). Lock it to
// change its fields while it runs.
type Maildrop struct {
	sync.Mutex
	// Msgs are the messages in wire form (CRLF, not dot-stuffed).
	Msgs []string
	// UIDs, when set, replace "uid-i" by message number from 1.
	UIDs []string
	// Listed, when set, replace the true LIST sizes by message number
	// from 1.
	Listed []int
	// Cut makes the server close the connection in the middle of that
	// message number.
	Cut int
	// Login, when set, is the reply to every login command (AUTH, USER,
	// PASS) instead of "+OK".
	Login string
	// Logins are the login commands received (AUTH, USER, PASS), in
	// order.
	Logins []string
	// Deleted are the message numbers, as first given, in the order QUIT
	// removed them.
	Deleted []int
	// Quits counts the sessions that ended with QUIT.
	Quits int
}

// Left returns the message numbers still in the maildrop.
func (p *Maildrop) Left() []int {
	p.Lock()
	defer p.Unlock()
	var out []int
	for i := range p.Msgs {
		if !slices.Contains(p.Deleted, i+1) {
			out = append(out, i+1)
		}
	}
	return out
}

// Start serves the maildrop over implicit TLS on a loopback port until the
// test ends, with a certificate for localhost, and returns the address and
// a PEM file trusting the certificate.
func (p *Maildrop) Start(t testing.TB) (addr, caFile string) {
	t.Helper()
	cert, _ := SelfSigned(t, "localhost")
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.session(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), caFile
}

func (p *Maildrop) session(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	out := func(s string) { w.WriteString(s + "\r\n"); w.Flush() }
	out("+OK test maildrop")
	var marked []int
	live := p.Left()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			out("-ERR empty")
			continue
		}
		n := 0
		if len(f) > 1 {
			n, _ = strconv.Atoi(f[1])
		}
		if n > len(live) {
			out("-ERR no such message")
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "CAPA":
			out("+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\nSASL PLAIN\r\n.")
		case "AUTH", "USER", "PASS":
			p.Lock()
			p.Logins = append(p.Logins, strings.TrimRight(line, "\r\n"))
			reply := p.Login
			p.Unlock()
			if reply == "" {
				reply = "+OK"
			}
			out(reply)
		case "LIST", "UIDL":
			out(p.listing(strings.ToUpper(f[0]), live) + ".")
		case "RETR":
			m := strings.ReplaceAll(p.Msgs[live[n-1]-1], "\r\n.", "\r\n..")
			p.Lock()
			cut := live[n-1] == p.Cut
			p.Unlock()
			if cut {
				w.WriteString("+OK\r\n" + m[:len(m)/2])
				w.Flush()
				return
			}
			out("+OK\r\n" + m + ".")
		case "DELE":
			marked = append(marked, live[n-1])
			out("+OK")
		case "QUIT":
			// RFC 1939 section 6: deletions happen only now.
			p.Lock()
			p.Deleted = append(p.Deleted, marked...)
			p.Quits++
			p.Unlock()
			out("+OK")
			return
		default:
			out("-ERR unknown")
		}
	}
}

// listing is the LIST or UIDL answer for the live messages.
func (p *Maildrop) listing(cmd string, live []int) string {
	var b strings.Builder
	b.WriteString("+OK\r\n")
	for i, num := range live {
		if cmd == "LIST" {
			size := len(p.Msgs[num-1])
			if p.Listed != nil {
				size = p.Listed[num-1]
			}
			fmt.Fprintf(&b, "%d %d\r\n", i+1, size)
			continue
		}
		uid := "uid-" + strconv.Itoa(num)
		if p.UIDs != nil {
			uid = p.UIDs[num-1]
		}
		fmt.Fprintf(&b, "%d %s\r\n", i+1, uid)
	}
	return b.String()
}

// NewMessages returns the contents of the files in new/ of the Maildir dir,
// in name order: what a fetch delivered and no reader has seen.
func NewMessages(t testing.TB, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(dir, "new"))
	var out []string
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		out = append(out, string(b))
	}
	return out
}
