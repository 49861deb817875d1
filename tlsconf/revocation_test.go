package tlsconf_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/tlsconf"
)

// revCase is one handshake against a leaf of the test PKI.
type revCase struct {
	name string
	// setup issues the server's certificate and, when the server staples,
	// the response it sends.
	setup func(p *testPKI) (tls.Certificate, []byte)
	rev   tlsconf.Revocation
	// wantErr are substrings of the TLSCertificate error expected; none
	// means the handshake succeeds.
	wantErr []string
	// want are the statuses expected, leaf first, when the handshake
	// succeeds.
	want []tlsconf.RevocationStatus
	// wantSource is the source expected for the leaf's status.
	wantSource string
}

var (
	strictNRC  = tlsconf.Revocation{FailNoInfo: true}
	strictRO   = tlsconf.Revocation{FailOffline: true}
	strictBoth = tlsconf.Revocation{FailNoInfo: true, FailOffline: true, ExcludeRoot: true}
	good       = tlsconf.StatusGood
	noInfo     = tlsconf.StatusNoInfo
	offline    = tlsconf.StatusOffline
	skipped    = tlsconf.StatusNotChecked
)

func (p *testPKI) url(path string) []string { return []string{p.srv.URL + path} }

func plain(c tls.Certificate) (tls.Certificate, []byte) { return c, nil }

// The sources: stapled response, OCSP responder, CRL, in that order, and
// every way each can fail.
var sourceCases = []revCase{
	{name: "ocsp good", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, p.url("/ocsp/good"), nil))
	}, want: []tlsconf.RevocationStatus{good, good, noInfo}, wantSource: tlsconf.SourceOCSP},
	{name: "ocsp revoked", setup: func(p *testPKI) (tls.Certificate, []byte) {
		c := p.leaf(p.inter, p.url("/ocsp/good"), nil)
		p.revoke(c.Leaf, 1)
		return plain(c)
	}, wantErr: []string{`"CN=localhost"`, "is revoked according to the OCSP responder http://127.0.0.1:", "/ocsp/good", "revoked on 20", "keyCompromise (1)"}},
	{name: "ocsp unknown", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.unknownLeaf(p.url("/ocsp/good"), nil))
	}, want: []tlsconf.RevocationStatus{noInfo, good, noInfo}},
	{name: "ocsp unknown strict", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.unknownLeaf(p.url("/ocsp/good"), nil))
	}, rev: strictNRC, wantErr: []string{"cannot be determined", "does not know the certificate"}},
	{name: "responder down", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, []string{p.down + "/ocsp"}, nil))
	}, want: []tlsconf.RevocationStatus{offline, good, noInfo}},
	{name: "responder down strict", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, []string{p.down + "/ocsp"}, nil))
	}, rev: strictRO, wantErr: []string{"cannot be reached", "unreachable"}},
	{name: "responder slow", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, p.url("/ocsp/slow"), nil))
	}, want: []tlsconf.RevocationStatus{offline, good, noInfo}},
	{name: "responder slow strict", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, p.url("/ocsp/slow"), nil))
	}, rev: strictRO, wantErr: []string{"cannot be reached", "no answer before the deadline"}},
	{name: "responder try later", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, p.url("/ocsp/trylater"), nil))
	}, want: []tlsconf.RevocationStatus{offline, good, noInfo}},
	{name: "stale response", setup: func(p *testPKI) (tls.Certificate, []byte) {
		c := p.leaf(p.inter, p.url("/ocsp/stale"), nil)
		p.revoke(c.Leaf, 1)
		return plain(c)
	}, want: []tlsconf.RevocationStatus{noInfo, good, noInfo}},
	{name: "stale response strict", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, p.url("/ocsp/stale"), nil))
	}, rev: strictNRC, wantErr: []string{"cannot be determined", "stale: its nextUpdate"}},
	{name: "response signed by the wrong key", setup: func(p *testPKI) (tls.Certificate, []byte) {
		c := p.leaf(p.inter, p.url("/ocsp/wrongkey"), nil)
		p.revoke(c.Leaf, 1)
		return plain(c)
	}, want: []tlsconf.RevocationStatus{noInfo, good, noInfo}},
	{name: "response signed by the wrong key strict", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, p.url("/ocsp/wrongkey"), nil))
	}, rev: strictNRC, wantErr: []string{"cannot be determined", `"CN=Rogue Responder" is not signed by the issuer`}},
	{name: "crl good", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, nil, []string{p.crlURL(p.inter, "")}))
	}, want: []tlsconf.RevocationStatus{good, good, noInfo}, wantSource: tlsconf.SourceCRL},
	{name: "crl with the serial", setup: func(p *testPKI) (tls.Certificate, []byte) {
		c := p.leaf(p.inter, nil, []string{p.crlURL(p.inter, "")})
		p.revoke(c.Leaf, 4)
		return plain(c)
	}, wantErr: []string{"is revoked according to the CRL at http://127.0.0.1:", "superseded (4)"}},
	{name: "responder down then crl with the serial", setup: func(p *testPKI) (tls.Certificate, []byte) {
		c := p.leaf(p.inter, []string{p.down + "/ocsp"}, []string{p.crlURL(p.inter, "")})
		p.revoke(c.Leaf, 1)
		return plain(c)
	}, wantErr: []string{"is revoked according to the CRL at"}},
	{name: "stale crl", setup: func(p *testPKI) (tls.Certificate, []byte) {
		c := p.leaf(p.inter, nil, []string{p.crlURL(p.inter, "/stale")})
		p.revoke(c.Leaf, 1)
		return plain(c)
	}, want: []tlsconf.RevocationStatus{noInfo, good, noInfo}},
	{name: "crl of another issuer", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, nil, []string{p.crlURL(p.root, "")}))
	}, rev: strictNRC, wantErr: []string{"not by the certificate's issuer"}},
	{name: "stapled good", setup: func(p *testPKI) (tls.Certificate, []byte) {
		c := p.leaf(p.inter, []string{p.down + "/ocsp"}, nil)
		return c, p.staple(c.Leaf)
	}, rev: strictRO, want: []tlsconf.RevocationStatus{good, good, noInfo}, wantSource: tlsconf.SourceStapled},
	{name: "stapled revoked", setup: func(p *testPKI) (tls.Certificate, []byte) {
		c := p.leaf(p.inter, []string{p.down + "/ocsp"}, nil)
		p.revoke(c.Leaf, 1)
		return c, p.staple(c.Leaf)
	}, wantErr: []string{"is revoked according to the OCSP response stapled by the server", "keyCompromise (1)"}},
	{name: "stapled garbage falls back to the responder", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return p.leaf(p.inter, p.url("/ocsp/good"), nil), []byte("not an OCSP response")
	}, want: []tlsconf.RevocationStatus{good, good, noInfo}, wantSource: tlsconf.SourceOCSP},
	{name: "no revocation source", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, nil, nil))
	}, want: []tlsconf.RevocationStatus{noInfo, good, noInfo}},
	{name: "https responder is not followed", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, []string{"https://127.0.0.1:1/ocsp"}, nil))
	}, rev: strictNRC, wantErr: []string{"not an http URL"}},
}

// Seed 002's SSLInfo revocation options, each row with its outcome:
// SSLRevocationCheckAll (Mode chain, the default), SSLRevocationCheckEnd
// (Mode leaf), SSLRevocationExcludeRoot, SSLRevocationIgnoreNRC (true by
// default: FailNoInfo false) and SSLRevocationIgnoreRO (true by default:
// FailOffline false).
var optionCases = []revCase{
	{name: "CheckAll: revoked intermediate", setup: func(p *testPKI) (tls.Certificate, []byte) {
		in := p.newInter(p.root)
		p.revoke(in.cert, 2)
		return plain(p.leaf(in, p.url("/ocsp/good"), nil))
	}, wantErr: []string{`"CN=Test Intermediate"`, "is revoked according to the OCSP responder", "cACompromise (2)"}},
	{name: "CheckEnd: revoked intermediate not checked", setup: func(p *testPKI) (tls.Certificate, []byte) {
		in := p.newInter(p.root)
		p.revoke(in.cert, 2)
		return plain(p.leaf(in, p.url("/ocsp/good"), nil))
	}, rev: tlsconf.Revocation{Mode: tlsconf.RevocationLeaf, FailNoInfo: true, FailOffline: true},
		want: []tlsconf.RevocationStatus{good, skipped, skipped}},
	{name: "CheckEnd: revoked leaf", setup: func(p *testPKI) (tls.Certificate, []byte) {
		c := p.leaf(p.inter, p.url("/ocsp/good"), nil)
		p.revoke(c.Leaf, 1)
		return plain(c)
	}, rev: tlsconf.Revocation{Mode: tlsconf.RevocationLeaf}, wantErr: []string{"is revoked"}},
	{name: "CheckAll with the root, IgnoreNRC off: the root has no source", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, p.url("/ocsp/good"), nil))
	}, rev: strictNRC, wantErr: []string{`"CN=Test Root"`, "cannot be determined", "names no OCSP responder and no CRL"}},
	{name: "ExcludeRoot, IgnoreNRC off", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, p.url("/ocsp/good"), nil))
	}, rev: tlsconf.Revocation{ExcludeRoot: true, FailNoInfo: true},
		want: []tlsconf.RevocationStatus{good, good, skipped}},
	{name: "IgnoreNRC on (default): no source anywhere", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.root, nil, nil))
	}, want: []tlsconf.RevocationStatus{noInfo, noInfo}},
	{name: "IgnoreNRC off: no source for the leaf", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, nil, nil))
	}, rev: tlsconf.Revocation{ExcludeRoot: true, FailNoInfo: true}, wantErr: []string{`"CN=localhost"`, "cannot be determined"}},
	{name: "IgnoreRO on (default): responder down", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, []string{p.down + "/ocsp"}, nil))
	}, rev: tlsconf.Revocation{ExcludeRoot: true}, want: []tlsconf.RevocationStatus{offline, good, skipped}},
	{name: "IgnoreRO off: responder down", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, []string{p.down + "/ocsp"}, nil))
	}, rev: tlsconf.Revocation{ExcludeRoot: true, FailOffline: true}, wantErr: []string{"cannot be reached"}},
	{name: "IgnoreNRC off does not fail an offline responder", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, []string{p.down + "/ocsp"}, nil))
	}, rev: tlsconf.Revocation{ExcludeRoot: true, FailNoInfo: true}, want: []tlsconf.RevocationStatus{offline, good, skipped}},
	{name: "IgnoreRO off does not fail a missing source", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, nil, nil))
	}, rev: tlsconf.Revocation{FailOffline: true}, want: []tlsconf.RevocationStatus{noInfo, good, noInfo}},
	{name: "both strict, root excluded, all good", setup: func(p *testPKI) (tls.Certificate, []byte) {
		return plain(p.leaf(p.inter, p.url("/ocsp/good"), nil))
	}, rev: strictBoth, want: []tlsconf.RevocationStatus{good, good, skipped}},
	{name: "off: revoked leaf accepted", setup: func(p *testPKI) (tls.Certificate, []byte) {
		c := p.leaf(p.inter, p.url("/ocsp/good"), nil)
		p.revoke(c.Leaf, 1)
		return plain(c)
	}, rev: tlsconf.Revocation{Mode: tlsconf.RevocationOff}},
}

// unknownLeaf issues a leaf the responder has no record of.
func (p *testPKI) unknownLeaf(ocspURLs, crlURLs []string) tls.Certificate {
	c := p.leaf(p.inter, ocspURLs, crlURLs)
	p.mu.Lock()
	delete(p.issuers, c.Leaf.SerialNumber.Text(16))
	p.mu.Unlock()
	return c
}

func TestRevocationSources(t *testing.T) { runRevCases(t, sourceCases) }

func TestRevocationOptions(t *testing.T) { runRevCases(t, optionCases) }

func runRevCases(t *testing.T, cases []revCase) {
	p := newPKI(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cert, staple := tc.setup(p)
			addr := tlsServer(t, cert, staple)
			rev := tc.rev
			rev.Cache = tlsconf.NewRevocationCache(16)
			// The deadline is what ends the slow responder's fetch; it
			// is far enough off for every other row.
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			facts, err := handshake(ctx, t, addr, tlsconf.Options{RootCAs: p.roots, Revocation: rev})
			if len(tc.wantErr) > 0 {
				if !errors.Is(err, mailsec.TLSCertificate) {
					t.Fatalf("err = %v, want a TLSCertificate error", err)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if len(facts.Revocation) != len(tc.want) {
				t.Fatalf("revocation facts = %+v, want statuses %v", facts.Revocation, tc.want)
			}
			for i, w := range tc.want {
				if got := facts.Revocation[i]; got.Status != w {
					t.Errorf("cert %d (%s): status %s (tried %q), want %s", i, got.Subject, got.Status, got.Tried, w)
				}
			}
			if tc.wantSource != "" && facts.Revocation[0].Source != tc.wantSource {
				t.Errorf("leaf source %q, want %q", facts.Revocation[0].Source, tc.wantSource)
			}
		})
	}
}

// The cache answers the second handshake without asking the responder.
func TestRevocationCache(t *testing.T) {
	p := newPKI(t)
	addr := tlsServer(t, p.leaf(p.inter, p.url("/ocsp/good"), nil), nil)
	opts := tlsconf.Options{RootCAs: p.roots, Revocation: tlsconf.Revocation{Cache: tlsconf.NewRevocationCache(16)}}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	first, err := handshake(ctx, t, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	hits := p.ocspHits.Load()
	if hits != 2 || first.Revocation[0].Cached {
		t.Fatalf("first handshake: %d responder hits, cached %v; want 2 (leaf and intermediate), false", hits, first.Revocation[0].Cached)
	}
	second, err := handshake(ctx, t, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.ocspHits.Load() != hits || !second.Revocation[0].Cached || second.Revocation[0].Status != tlsconf.StatusGood {
		t.Errorf("second handshake: %d responder hits, leaf %+v; want %d hits and a cached good", p.ocspHits.Load(), second.Revocation[0], hits)
	}
	if n := opts.Revocation.Cache.Len(); n != 2 {
		t.Errorf("cache holds %d statuses, want 2", n)
	}
}

// Without chain verification there is no issuer to check a response
// against, so nothing is checked.
func TestRevocationNeedsVerifiedChain(t *testing.T) {
	p := newPKI(t)
	c := p.leaf(p.inter, p.url("/ocsp/good"), nil)
	p.revoke(c.Leaf, 1)
	addr := tlsServer(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	facts, err := handshake(ctx, t, addr, tlsconf.Options{NoServerCertificateValidation: true})
	if err != nil || len(facts.Revocation) != 0 || p.ocspHits.Load() != 0 {
		t.Errorf("err %v, facts %+v, %d responder hits; want success and no check", err, facts.Revocation, p.ocspHits.Load())
	}
}

func TestParseRevocationMode(t *testing.T) {
	for s, want := range map[string]tlsconf.RevocationMode{"": tlsconf.RevocationChain, "chain": tlsconf.RevocationChain,
		"LEAF": tlsconf.RevocationLeaf, "off": tlsconf.RevocationOff} {
		if got, err := tlsconf.ParseRevocationMode(s); err != nil || got != want {
			t.Errorf("ParseRevocationMode(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := tlsconf.ParseRevocationMode("all"); !errors.Is(err, mailsec.Config) {
		t.Errorf("ParseRevocationMode(all) = %v, want a Config error", err)
	}
}

// viaDialer records the addresses it was asked for, then dials them.
type viaDialer struct {
	mu    sync.Mutex
	addrs []string
}

func (d *viaDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

// Revocation.Dialer carries every fetch (the mail connection's proxy, in
// the CLI), so a user behind a proxy does not reach the responder
// directly.
func TestRevocationFetchesUseDialer(t *testing.T) {
	p := newPKI(t)
	addr := tlsServer(t, p.leaf(p.inter, p.url("/ocsp/good"), nil), nil)
	d := &viaDialer{}
	opts := tlsconf.Options{RootCAs: p.roots, Revocation: tlsconf.Revocation{Cache: tlsconf.NewRevocationCache(16), Dialer: d}}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	f, err := handshake(ctx, t, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	if f.Revocation[0].Status != tlsconf.StatusGood {
		t.Fatalf("leaf %+v, want good", f.Revocation[0])
	}
	responder := strings.TrimPrefix(p.srv.URL, "http://")
	if hits := p.ocspHits.Load(); len(d.addrs) != int(hits) || hits == 0 || d.addrs[0] != responder {
		t.Fatalf("the dialer saw %q for %d responder requests, want every one to %s", d.addrs, hits, responder)
	}
}
