package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mailsec/mailsec/bench/sink"
)

// idleResult is a server's memory with and without idle sessions.
type idleResult struct {
	before, after int64 // RSS of the server process, octets
}

// idleSessions opens n sessions to s, each doing EHLO, STARTTLS and the
// TLS handshake and then going quiet, and reads the RSS of the server
// process (pid) before and once they are all open. The sessions are
// closed when it returns.
func idleSessions(s *sink.Sink, pid, n int) (idleResult, error) {
	res := idleResult{before: rssBytes(pid)}
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := openIdle(s)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("session %d: %v", i+1, err)
				}
				conns[i] = c
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	// Let the servers finish whatever the handshakes left to do.
	time.Sleep(2 * time.Second)
	res.after = rssBytes(pid)
	return res, nil
}

// openIdle runs one session up to the end of the TLS handshake.
func openIdle(s *sink.Sink) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", s.Addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	step := func(cmd, code string) error {
		if cmd != "" {
			if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
				return err
			}
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(line, code) {
				return fmt.Errorf("%s: %q", cmd, line)
			}
			if len(line) > 3 && line[3] == ' ' {
				return nil
			}
		}
	}
	for _, st := range [][2]string{{"", "220"}, {"EHLO client.example.org", "250"}, {"STARTTLS", "220"}} {
		if err := step(st[0], st[1]); err != nil {
			c.Close()
			return nil, err
		}
	}
	tc := tls.Client(c, s.TLSConfig())
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}
