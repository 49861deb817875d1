package main

import (
	"net"
	"strings"
	"testing"
)

// silentPort accepts connections and says nothing, as a port that expects
// implicit TLS does to a plain-text client.
func silentPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for len(conns) > 0 {
			(<-conns).Close()
		}
	})
	return ln.Addr().String()
}

// A silent port gets the implicit-TLS hint on stderr after 3 s, while the
// wait goes on to --timeout (exit 75 then).
func TestSilentPortHintsAtImplicitTLS(t *testing.T) {
	t.Setenv("MAILSEC_PASSWORD", "pw")
	for _, args := range [][]string{
		{"send", "--from", "a@example.test", "--to", "b@example.test", "--subject", "s", "--body", "b"},
		{"fetch", "--user", "carol", "--maildir", "MAILDIR"},
		{"probe", "--pop3"},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			for i, a := range args {
				if a == "MAILDIR" {
					args[i] = t.TempDir()
				}
			}
			_, stderr, code := runMain(t, append(args, "--server", silentPort(t), "--tls", "starttls", "--timeout", "3500ms")...)
			want := "mailsec: no greeting after 3s: if this port speaks implicit TLS (465, 995, 2465, 2995) use --tls implicit\n"
			if code != exitTempFail || !strings.Contains(stderr, want) {
				t.Errorf("exit %d, stderr:\n%s", code, stderr)
			}
			if strings.Count(stderr, "no greeting after") != 1 {
				t.Errorf("the hint is not given once:\n%s", stderr)
			}
		})
	}
}
