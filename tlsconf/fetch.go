package tlsconf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Size limits of what a revocation source may send: an OCSP response is a
// few KiB; the CRLs of the largest public CAs run to some MiB.
const (
	maxOCSPResponse = 64 << 10
	maxCRL          = 16 << 20
)

// maxFetch bounds one fetch even when the connect deadline is far off.
const maxFetch = 5 * time.Second

// revocationHTTP goes only where a certificate points: no proxy from the
// environment, no redirects (a redirect would lead to a place the
// certificate does not name).
var revocationHTTP = &http.Client{
	Transport: &http.Transport{
		DialContext:            (&net.Dialer{}).DialContext,
		MaxResponseHeaderBytes: 16 << 10,
		MaxIdleConns:           8,
		IdleConnTimeout:        30 * time.Second,
		DisableCompression:     true,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// httpClient is revocationHTTP, or the same rules over d. A client made
// for one check keeps no idle connections: it is dropped after it.
func httpClient(d Dialer) *http.Client {
	if d == nil {
		return revocationHTTP
	}
	t := revocationHTTP.Transport.(*http.Transport).Clone()
	t.DialContext = d.DialContext
	t.DisableKeepAlives = true
	return &http.Client{Transport: t, CheckRedirect: revocationHTTP.CheckRedirect}
}

// fetchError is a fetch that failed; offline says the source could not be
// reached or is overloaded, as opposed to answering something unusable.
type fetchError struct {
	offline bool
	msg     string
}

func (e *fetchError) Error() string { return e.msg }

// fetchContext gives one fetch at most half of the time left before the
// connect deadline, so that a responder that hangs leaves the handshake
// time to finish when a missing status is allowed.
func fetchContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := maxFetch
	if dl, ok := ctx.Deadline(); ok {
		if half := time.Until(dl) / 2; half < d {
			d = half
		}
	}
	return context.WithTimeout(ctx, d)
}

// fetch GETs rawURL, or POSTs body to it when body is set, and returns at
// most limit bytes of a 200 answer. Only http URLs are followed: RFC 5280
// section 4.2.1.13 and RFC 6960 appendix A.1 define these sources over HTTP,
// and an https source would need a revocation check of its own.
func fetch(ctx context.Context, hc *http.Client, rawURL, contentType string, body []byte, limit int64) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, &fetchError{msg: "not an http URL, not followed"}
	}
	ctx, cancel := fetchContext(ctx)
	defer cancel()
	method := http.MethodGet
	var rd io.Reader
	if body != nil {
		method, rd = http.MethodPost, bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, &fetchError{msg: err.Error()}
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		msg := "unreachable"
		if errors.Is(err, context.DeadlineExceeded) {
			msg = "no answer before the deadline"
		}
		return nil, &fetchError{offline: true, msg: msg + ": " + err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &fetchError{offline: resp.StatusCode >= 500, msg: "HTTP status " + resp.Status}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	switch {
	case err != nil:
		return nil, &fetchError{offline: true, msg: "reading the answer: " + err.Error()}
	case int64(len(data)) > limit:
		return nil, &fetchError{msg: fmt.Sprintf("the answer exceeds %d bytes", limit)}
	}
	return data, nil
}

// fetchAnswer turns a failed fetch into an answer.
func fetchAnswer(err error) answer {
	var fe *fetchError
	if errors.As(err, &fe) && fe.offline {
		return answer{status: StatusOffline, note: fe.msg}
	}
	return noInfo("%v", err)
}
