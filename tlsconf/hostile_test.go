package tlsconf_test

import (
	"context"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/tlsconf"
	"golang.org/x/crypto/ocsp"
)

// Hostile revocation sources: answers too big, too slow, or about another
// certificate. Each must end in a bounded time with a bounded read and
// count as "no status" (soft by default, an error when strict).

// endless writes filler until the client goes away, counting the bytes.
func endless(sent *atomic.Int64, pause time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("\x30", 64<<10))
		if pause > 0 {
			chunk = chunk[:1]
		}
		for {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil || r.Context().Err() != nil || sent.Load() > 1<<30 {
				return
			}
			if pause > 0 {
				w.(http.Flusher).Flush()
				time.Sleep(pause)
			}
		}
	}
}

func TestHostileRevocationSources(t *testing.T) {
	p := newPKI(t)
	var sent atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/huge-ocsp", endless(&sent, 0))
	mux.HandleFunc("/huge-crl", endless(&sent, 0))
	mux.HandleFunc("/drip", endless(&sent, 100*time.Millisecond))
	mux.HandleFunc("/other-cert", func(w http.ResponseWriter, r *http.Request) {
		// A valid response, signed by the right responder, about another
		// serial: it says nothing about the certificate asked for.
		now := time.Now()
		w.Write(p.ocspResponse(p.inter, ocsp.Response{Status: ocsp.Good, SerialNumber: big.NewInt(424242),
			ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, false))
	})
	hostile := httptest.NewServer(mux)
	t.Cleanup(hostile.Close)
	u := func(path string) []string { return []string{hostile.URL + path} }

	cases := []struct {
		name      string
		ocsp, crl []string
		wantErr   string // under strict checking
	}{
		{"OCSP answer of unbounded size", u("/huge-ocsp"), nil, "exceeds 65536 bytes"},
		{"CRL of unbounded size", nil, u("/huge-crl"), "exceeds 16777216 bytes"},
		{"OCSP answer dripping a byte at a time", u("/drip"), nil, "cannot be reached"},
		{"OCSP response for another certificate", u("/other-cert"), nil, "cannot be determined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cert := p.leaf(p.inter, tc.ocsp, tc.crl)
			addr := tlsServer(t, cert, nil)
			for _, strict := range []bool{false, true} {
				rev := tlsconf.Revocation{Mode: tlsconf.RevocationLeaf, Cache: tlsconf.NewRevocationCache(4)}
				if strict {
					rev.FailNoInfo, rev.FailOffline = true, true
				}
				sent.Store(0)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				start := time.Now()
				facts, err := handshake(ctx, t, addr, tlsconf.Options{RootCAs: p.roots, Revocation: rev})
				cancel()
				if d := time.Since(start); d > 3*time.Second {
					t.Fatalf("took %v", d)
				}
				if n := sent.Load(); n > 64<<20 {
					t.Fatalf("the server got %d bytes out before the client stopped", n)
				}
				if !strict {
					if err != nil {
						t.Fatalf("soft mode: %v", err)
					}
					if st := facts.Revocation[0].Status; st == tlsconf.StatusGood || st == tlsconf.StatusRevoked {
						t.Fatalf("status %s from a hostile source", st)
					}
					continue
				}
				if !errors.Is(err, mailsec.TLSCertificate) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("strict: error %v, want TLSCertificate with %q", err, tc.wantErr)
				}
			}
		})
	}
}
