package tlsconf

import (
	"bytes"
	"context"
	"crypto/x509"
	"net/http"
	"time"
)

// crlQuery fetches the CRL at url and looks for cert in it (RFC 5280
// section 6.3). Only complete CRLs that the issuer signs itself are
// understood: indirect and delta CRLs give no status.
func crlQuery(ctx context.Context, hc *http.Client, url string, cert, issuer *x509.Certificate) answer {
	der, err := fetch(ctx, hc, url, "", nil, maxCRL)
	if err != nil {
		return fetchAnswer(err)
	}
	return crlAnswer(der, cert, issuer, time.Now())
}

func crlAnswer(der []byte, cert, issuer *x509.Certificate, now time.Time) answer {
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return noInfo("unusable CRL: %v", err)
	}
	// RFC 5280 section 6.3.3 (b), (f): a complete CRL names and is signed
	// by the certificate's issuer.
	if !bytes.Equal(rl.RawIssuer, issuer.RawSubject) {
		return noInfo("the CRL is issued by %q, not by the certificate's issuer", rl.Issuer)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		return noInfo("the CRL is not signed by the issuer: %v", err)
	}
	// RFC 5280 section 6.3.3 (a): a CRL past its nextUpdate is no use.
	if why := fresh(rl.ThisUpdate, rl.NextUpdate, now); why != "" {
		return noInfo("unusable CRL: %s", why)
	}
	for _, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return definitive(true, rl.ThisUpdate, rl.NextUpdate, e.RevocationTime, e.ReasonCode)
		}
	}
	return definitive(false, rl.ThisUpdate, rl.NextUpdate, time.Time{}, 0)
}
