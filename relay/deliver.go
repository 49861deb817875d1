package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/dane"
	"github.com/mailsec/mailsec/dial"
	"github.com/mailsec/mailsec/dsn"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/smtp"
	"github.com/mailsec/mailsec/tlsrpt"
)

// maxTries bounds the addresses tried per destination and attempt, as
// Postfix's smtp_mx_address_limit does: a domain publishing fifty MX
// hosts must not hold a worker for fifty connect timeouts.
const maxTries = 10

// result is one recipient's outcome of an attempt.
type result struct {
	status  queue.Status
	outcome *queue.Outcome
	fail    *failure // nil when delivered
	// notice is the success notice a recipient who asked for one
	// (NOTIFY=SUCCESS) gets from this relay (RFC 3464 section 2.3.3):
	// "relayed" after a hand-over to a server without DSN, which will not
	// report (RFC 3461 section 5.2.2), "delivered" after a final delivery
	// here; "" when the next hop took the request over.
	notice dsn.Action
}

// deliverTo hands the message to one destination for the recipients idx,
// trying its hosts in order (RFC 5321 section 5.1: the next MX after a
// connection failure, a refused greeting or, for policies that demand it,
// a TLS failure), and returns every recipient's result.
func (r *Relay) deliverTo(ctx context.Context, e *queue.Entry, d *destination, idx []int) map[int]result {
	release, err := r.o.Limiter.Acquire(ctx, d.key, r.o.Concurrency)
	if err != nil {
		return allFailed(idx, newFailure("4.4.5", err, "waiting for a connection slot to %s", d.key), nil)
	}
	defer release()
	if res := r.tryKept(ctx, e, d, idx); res != nil {
		return res
	}
	var last *failure
	var lastOutcome *queue.Outcome
	tries := 0
	for i := range d.hosts {
		t := &d.hosts[i]
		if t.hp.skip != nil {
			last, lastOutcome = t.hp.skip, &queue.Outcome{Host: t.name, TLS: &queue.TLSRecord{Policy: t.hp.level}}
			continue
		}
		if len(t.addrs) == 0 {
			last = newFailure("4.4.4", t.err, "cannot find the address of %s", t.name)
			lastOutcome = &queue.Outcome{Host: t.name}
			continue
		}
		for _, a := range t.addrs {
			if tries == maxTries {
				break
			}
			tries++
			res, f, o := r.tryHost(ctx, e, d, t, a, idx)
			if res != nil {
				return res
			}
			last, lastOutcome = f, o
		}
	}
	if last == nil {
		last = newFailure("4.4.4", nil, "no server of %s could be tried", d.key)
	}
	return allFailed(idx, last, lastOutcome)
}

// tryHost delivers over a new session to addr. It returns the
// recipients' results once a server took the transaction, or the failure
// that sends the relay to the next host.
func (r *Relay) tryHost(ctx context.Context, e *queue.Entry, d *destination, t *target, addr netip.Addr, idx []int) (map[int]result, *failure, *queue.Outcome) {
	s, f, o := r.open(ctx, d, t, addr)
	if f != nil {
		return nil, f, o
	}
	s.key = d.reuseKey()
	res, _ := r.transact(ctx, e, s, idx)
	r.keep(s)
	return res, nil, nil
}

// tryKept delivers over a session kept from an earlier message to the
// same destination, if there is one. It returns nil when there is none or
// when the server had closed it meanwhile (no reply was read, so nothing
// can have been accepted).
func (r *Relay) tryKept(ctx context.Context, e *queue.Entry, d *destination, idx []int) map[int]result {
	for {
		s := r.conns.get(d.reuseKey())
		if s == nil {
			return nil
		}
		if e.RequireTLS && !s.verified {
			r.conns.put(s)
			return nil
		}
		res, stale := r.transact(ctx, e, s, idx)
		if stale {
			s.c.Close()
			continue
		}
		r.keep(s)
		return res
	}
}

// keep puts a session that can carry another message back for reuse.
func (r *Relay) keep(s *session) {
	s.uses++
	if s.c.Err() == nil {
		r.conns.put(s)
		return
	}
	s.c.Close()
}

// reuseKey names the sessions a destination's messages may share: the
// same destination under the same policy.
func (d *destination) reuseKey() string { return d.key + "|" + d.policy.String() }

// session is an open SMTP client with what the record says about it.
type session struct {
	c    *smtp.Client
	key  string
	host string
	addr string
	tls  *queue.TLSRecord
	uses int
	idle time.Time // when it was put back for reuse
	// verified says the server was authenticated (for REQUIRETLS).
	verified bool
}

// open connects to one address with the destination's policy; under May a
// failed TLS handshake is followed by one more try in plain text with the
// same host, and never elsewhere.
func (r *Relay) open(ctx context.Context, d *destination, t *target, addr netip.Addr) (*session, *failure, *queue.Outcome) {
	hostport := net.JoinHostPort(addr.String(), strconv.Itoa(d.port))
	hp := &t.hp
	s, f := r.dial(ctx, d, hp, hp.base, t.name, hostport)
	if f != nil && hp.base == May && hp.dane == nil && tlsFailed(f.err) {
		r.log.Warn("TLS failed, retrying the same host in plain text as policy may allows",
			"host", t.name, "addr", hostport, "err", f.err)
		s, f = r.dial(ctx, d, hp, None, t.name, hostport)
		if s != nil {
			s.tls = &queue.TLSRecord{Policy: hp.level, Verdict: "handshake-failed"}
		}
	}
	if f != nil {
		rec := &queue.TLSRecord{Policy: hp.level}
		return nil, f, &queue.Outcome{Host: t.name, Addr: hostport, TLS: rec}
	}
	return s, nil, nil
}

// dial makes one session: TCP, greeting, EHLO, STARTTLS per policy p (the
// host's, or None for may's plain retry), AUTH for a smarthost, and tells
// TLS reporting how it went.
func (r *Relay) dial(ctx context.Context, d *destination, hp *hostPolicy, p Policy, name, hostport string) (*session, *failure) {
	opts := &smtp.Options{
		TLSMode:        p.mode(d.port),
		TLS:            p.tlsOptions(name, r.o.RootCAs),
		Auth:           d.auth,
		LocalName:      r.o.Hostname,
		Dialer:         r.dialer(),
		CommandTimeout: r.o.CommandTimeout,
		Logger:         r.o.Logger,
	}
	if hp.dane != nil && p != None {
		opts.TLS.VerifyPeer = dane.VerifyConnection(hp.dane, hp.names)
	}
	c, err := smtp.Dial(ctx, hostport, opts)
	if err != nil {
		f := connectFailure(err, name, hp.level)
		if rt := reportResult(err, hp); rt != "" {
			r.reportFailure(hp.report, tlsrpt.Failure{Result: rt, ReceivingMXHostname: name, ReceivingIP: hostOf(hostport)})
		}
		return nil, f
	}
	rec := &queue.TLSRecord{Policy: hp.level}
	st := c.TLS()
	if st != nil {
		rec.Version = tls.VersionName(st.Version)
		rec.CipherSuite = tls.CipherSuiteName(st.CipherSuite)
		switch {
		case hp.dane != nil:
			rec.Verdict = "dane-matched"
		case p == Verify:
			rec.Verdict = "verified"
		default:
			rec.Verdict = verdict(st, name, r.o.RootCAs)
		}
		if hp.report.Type != "" {
			r.reportSuccess(hp.report)
		}
	}
	return &session{c: c, host: name, addr: hostport, tls: rec, verified: st != nil && hp.verified}, nil
}

// reportResult names a session failure in TLS reporting's terms (RFC 8460
// section 4.3), "" when it was not about TLS.
func reportResult(err error, hp *hostPolicy) tlsrpt.ResultType {
	switch mailsec.CodeOf(err) {
	case mailsec.StartTLSUnavailable:
		return tlsrpt.StartTLSNotSupported
	case mailsec.TLSCertName:
		return tlsrpt.CertificateHostMismatch
	case mailsec.TLSCertificate:
		var inv x509.CertificateInvalidError
		switch {
		case hp.dane != nil:
			return tlsrpt.ValidationFailure
		case errors.As(err, &inv) && inv.Reason == x509.Expired:
			return tlsrpt.CertificateExpired
		}
		return tlsrpt.CertificateNotTrusted
	case mailsec.TLS, mailsec.TLSProtocol:
		return tlsrpt.ValidationFailure
	}
	return ""
}

// hostOf is the host part of host:port.
func hostOf(hostport string) string {
	h, _, _ := net.SplitHostPort(hostport)
	return h
}

func (r *Relay) dialer() dial.Dialer {
	if r.o.Dialer != nil {
		return r.o.Dialer
	}
	return &net.Dialer{Timeout: r.o.ConnectTimeout}
}

// tlsFailed reports whether a session failed in its TLS negotiation: the
// STARTTLS command refused or the handshake broken.
func tlsFailed(err error) bool {
	switch mailsec.CodeOf(err) {
	case mailsec.TLS, mailsec.TLSProtocol, mailsec.TLSCertificate, mailsec.TLSCertName:
		return true
	}
	var me *mailsec.Error
	return errors.As(err, &me) && me.Op == "STARTTLS"
}

// connectFailure classes a session that could not be set up; all such
// failures are temporary, since another host or a later try may succeed.
func connectFailure(err error, name, p string) *failure {
	switch code := mailsec.CodeOf(err); {
	case code == mailsec.StartTLSUnavailable:
		// RFC 5248's X.7.10, "Encryption Needed".
		return newFailure("4.7.10", err, "TLS is required (policy %s) but %s does not offer STARTTLS", p, name)
	case tlsFailed(err):
		return newFailure("4.7.5", err, "TLS with %s failed (policy %s): %v", name, p, err)
	case code == mailsec.Timeout:
		// Not the client's hint about implicit TLS: an MX that is silent
		// is slow or broken, whatever its port.
		return newFailure("4.4.1", err, "%s did not answer in time", name)
	}
	if rep := mailsec.ReplyOf(err); rep != nil {
		f := replyFailure(rep, err, "the server "+name+" refused the session")
		f.status = "4" + f.status[1:]
		return f
	}
	return newFailure("4.4.1", err, "cannot reach %s: %v", name, err)
}

// transact runs one mail transaction for the recipients idx on s. stale
// reports a session that failed before the server answered anything,
// which a reused session does when the server dropped it while idle.
func (r *Relay) transact(ctx context.Context, e *queue.Entry, s *session, idx []int) (map[int]result, bool) {
	body, err := r.o.Queue.Body(ctx, e.ID)
	if err != nil {
		return allFailed(idx, newFailure("4.3.0", err, "cannot read the queued message"), s.outcome()), false
	}
	defer body.Close()
	to := make([]string, len(idx))
	for i, k := range idx {
		to[i] = e.Recipients[k].Addr
	}
	if e.RequireTLS {
		if ok, _ := s.c.Extension("REQUIRETLS"); !ok {
			// RFC 8689 section 4.2.1: the next hop must keep the
			// requirement; section 5's code for one that cannot.
			return allFailed(idx, newFailure("5.7.30", nil, "REQUIRETLS: %s does not offer REQUIRETLS, so it would not keep the requirement", s.host), s.outcome()), false
		}
	}
	mo := dsnOptions(e, idx)
	mo.Size, mo.AllowPartial, mo.RequireTLS = e.Size, true, e.RequireTLS
	if e.Body == "8BITMIME" {
		mo.Body = smtp.Body8BitMIME
	}
	res, err := s.c.Send(ctx, e.From, to, body, mo)
	out := make(map[int]result, len(idx))
	if err == nil || (res != nil && (res.Reply != nil || len(res.Recipients) > 0)) {
		dsnOffered, _ := s.c.Extension("DSN")
		for i, k := range idx {
			rs := r.recipientResult(res, i, err, s)
			if rs.status == queue.Delivered && !dsnOffered {
				rs.notice = dsn.Relayed
			}
			out[k] = rs
		}
		return out, false
	}
	if rep := mailsec.ReplyOf(err); rep != nil {
		// MAIL FROM refused: it holds for every recipient.
		return allFailed(idx, replyFailure(rep, err, "the server refused the sender"), s.outcome()), false
	}
	switch mailsec.CodeOf(err) {
	case mailsec.Data:
		status := "5.3.4" // too big for the server, or a line too long
		var me *mailsec.Error
		if errors.As(err, &me) && me.Op == "address" {
			// The recipients were checked before the transaction
			// (attempt sets a bad one aside), so the address is the
			// sender's: RFC 3463's bad sender's mailbox address syntax.
			status = "5.1.7"
		}
		return allFailed(idx, newFailure(status, err, "%v", err), s.outcome()), false
	case mailsec.Unsupported:
		// The server lacks 8BITMIME or SMTPUTF8 for this message
		// (REQUIRETLS was checked above).
		status := "5.6.3"
		if ok, _ := s.c.Extension("SMTPUTF8"); !ok && !isASCII(e.From, to) {
			status = "5.6.7" // RFC 6531 section 3.5
		}
		return allFailed(idx, newFailure(status, err, "%v", err), s.outcome()), false
	}
	// The connection broke. If it did so after the end of data the
	// message may have arrived; delivering it again is the lesser evil
	// (RFC 5321 section 6.1 on duplicates).
	return allFailed(idx, newFailure("4.4.2", err, "the session with %s broke: %v", s.host, err), s.outcome()), true
}

// dsnOptions are the DSN parameters the submitter gave, to be passed on
// with the message (RFC 3461 section 5.2.1: a relay to a server offering
// DSN relays them): RET and ENVID, and each recipient's NOTIFY and ORCPT.
// To a server without DSN they are left out, and the relay gives the
// notices itself.
func dsnOptions(e *queue.Entry, idx []int) *smtp.MailOptions {
	mo := &smtp.MailOptions{DSNIfOffered: true}
	// The queue keeps ENVID as it was received, in xtext; Send encodes
	// it again. One that would not pass RFC 3461 section 4.4 once decoded
	// (a control character) is not passed on, rather than holding up the
	// message.
	if id := dsn.XtextDecode(e.EnvID); !strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		mo.EnvID = id
	}
	if ret, err := smtp.ParseDSNReturn(e.Ret); err == nil {
		mo.Ret = ret
	}
	for _, k := range idx {
		rc := e.Recipients[k]
		ro := smtp.RcptOptions{ORcpt: rc.ORcpt}
		if rc.Notify != "" {
			ro.Notify, _ = smtp.ParseNotify(rc.Notify)
		}
		if ro.Check() != nil {
			// Checked when the message was received; a value that
			// fails now must not hold up the delivery, only its
			// parameters.
			ro = smtp.RcptOptions{}
		}
		if ro != (smtp.RcptOptions{}) {
			if mo.Recipients == nil {
				mo.Recipients = map[string]smtp.RcptOptions{}
			}
			mo.Recipients[rc.Addr] = ro
		}
	}
	return mo
}

// recipientResult is recipient i's result of a transaction that reached
// the RCPT stage: its RCPT reply when refused, else the final reply.
func (r *Relay) recipientResult(res *smtp.Result, i int, err error, s *session) result {
	o := s.outcome()
	var rep *mailsec.Reply
	if i < len(res.Recipients) && !res.Recipients[i].OK {
		rep = res.Recipients[i].Reply
	} else {
		rep = res.Reply
	}
	if rep == nil {
		// Accepted at RCPT, but the transaction ended before a final
		// reply (a broken connection): not known to be delivered.
		f := newFailure("4.4.2", err, "no final reply from %s: %v", s.host, err)
		return result{status: queue.Pending, outcome: withFailure(o, f), fail: f}
	}
	o.Reply = rep
	if rep.Code == 250 || rep.Code == 251 {
		return result{status: queue.Delivered, outcome: o}
	}
	f := replyFailure(rep, err, "the server "+s.host+" refused the recipient")
	o = withFailure(o, f)
	if f.permanent() {
		return result{status: queue.Failed, outcome: o, fail: f}
	}
	return result{status: queue.Pending, outcome: o, fail: f}
}

// outcome is a fresh Outcome naming the session's server and TLS.
func (s *session) outcome() *queue.Outcome {
	tlsCopy := *s.tls
	return &queue.Outcome{Time: time.Now(), Host: s.host, Addr: s.addr, TLS: &tlsCopy}
}

// withFailure fills o with f's reply, code and detail.
func withFailure(o *queue.Outcome, f *failure) *queue.Outcome {
	if o == nil {
		o = &queue.Outcome{}
	}
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	o.Reply = f.reply
	if c := mailsec.CodeOf(f.err); c != 0 {
		o.Code = c.String()
	}
	o.Detail = f.detail
	return o
}

// allFailed gives every recipient of idx the same failure.
func allFailed(idx []int, f *failure, base *queue.Outcome) map[int]result {
	out := make(map[int]result, len(idx))
	st := queue.Pending
	if f.permanent() {
		st = queue.Failed
	}
	for _, k := range idx {
		var o queue.Outcome
		if base != nil {
			o = *base
		}
		out[k] = result{status: st, outcome: withFailure(&o, f), fail: f}
	}
	return out
}

// isASCII reports whether the sender and every recipient are ASCII.
func isASCII(from string, to []string) bool {
	for _, a := range append([]string{from}, to...) {
		for i := 0; i < len(a); i++ {
			if a[i] >= 0x80 {
				return false
			}
		}
	}
	return true
}
