package tlsconf

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/crypto/ocsp"
)

// ocspQuery asks the responder at url about cert (RFC 6960, POST as in
// appendix A.1).
func ocspQuery(ctx context.Context, hc *http.Client, url string, cert, issuer *x509.Certificate) answer {
	req, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		return noInfo("cannot build the request: %v", err)
	}
	der, err := fetch(ctx, hc, url, "application/ocsp-request", req, maxOCSPResponse)
	if err != nil {
		return fetchAnswer(err)
	}
	return ocspAnswer(der, cert, issuer, time.Now())
}

// ocspAnswer verifies a response, fetched or stapled, and reads the status
// of cert from it.
func ocspAnswer(der []byte, cert, issuer *x509.Certificate, now time.Time) answer {
	resp, err := parseOCSP(der, cert, issuer, now)
	if err != nil {
		var re ocsp.ResponseError
		if errors.As(err, &re) && re.Status == ocsp.TryLater {
			return answer{status: StatusOffline, note: "the responder asks to try later"}
		}
		return noInfo("unusable response: %v", err)
	}
	if why := fresh(resp.ThisUpdate, resp.NextUpdate, now); why != "" {
		return noInfo("unusable response: %s", why)
	}
	switch resp.Status {
	case ocsp.Good:
		return definitive(false, resp.ThisUpdate, resp.NextUpdate, time.Time{}, 0)
	case ocsp.Revoked:
		return definitive(true, resp.ThisUpdate, resp.NextUpdate, resp.RevokedAt, resp.RevocationReason)
	}
	return noInfo("the responder does not know the certificate")
}

// parseOCSP checks who signed the response (RFC 6960 section 4.2.2.2): the
// issuer itself, or a responder certificate the issuer signed for that
// purpose (id-kp-OCSPSigning) and that is valid now. x/crypto's own check
// rejects the first case when the issuer's certificate rides along, and
// does not look at the delegate's key usage or validity, so it is done
// here.
func parseOCSP(der []byte, cert, issuer *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	// Without an issuer, x/crypto checks only that the response is signed
	// by the certificate embedded in it, if any.
	resp, err := ocsp.ParseResponseForCert(der, cert, nil)
	if err != nil {
		return nil, err
	}
	signer := resp.Certificate
	switch {
	case signer == nil:
		if err := resp.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("not signed by the issuer: %w", err)
		}
	case bytes.Equal(signer.Raw, issuer.Raw):
	default:
		if err := signer.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("the responder certificate %q is not signed by the issuer: %w", signer.Subject, err)
		}
		if !hasOCSPSigning(signer) {
			return nil, fmt.Errorf("the responder certificate %q is not authorised for OCSP signing", signer.Subject)
		}
		if now.Before(signer.NotBefore) || now.After(signer.NotAfter) {
			return nil, fmt.Errorf("the responder certificate %q is expired or not yet valid", signer.Subject)
		}
	}
	return resp, nil
}

func hasOCSPSigning(c *x509.Certificate) bool {
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageOCSPSigning {
			return true
		}
	}
	return false
}
