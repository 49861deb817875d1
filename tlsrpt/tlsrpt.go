// Package tlsrpt is the sending side of SMTP TLS Reporting (RFC 8460): it
// counts, per UTC day and policy, the outbound sessions whose TLS
// succeeded or failed, and renders the aggregate report of RFC 8460
// section 4 for a policy domain.
//
// Sending the report (discovering the _smtp._tls record, mailing or
// posting the gzipped JSON, section 3) is not done here.
package tlsrpt

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/store"
)

// PolicyType is the policy-type of a report (RFC 8460 section 4.4).
type PolicyType string

// The policy types of RFC 8460 section 4.4.
const (
	PolicySTS  PolicyType = "sts"             // an MTA-STS policy (RFC 8461)
	PolicyTLSA PolicyType = "tlsa"            // DANE TLSA records (RFC 7672)
	PolicyNone PolicyType = "no-policy-found" // neither: opportunistic TLS
)

// ResultType is the result-type of a failure (RFC 8460 section 4.3).
type ResultType string

// The result types of RFC 8460 section 4.3.
const (
	// Negotiation failures, section 4.3.1.
	StartTLSNotSupported    ResultType = "starttls-not-supported"
	CertificateHostMismatch ResultType = "certificate-host-mismatch"
	CertificateExpired      ResultType = "certificate-expired"
	CertificateNotTrusted   ResultType = "certificate-not-trusted"
	ValidationFailure       ResultType = "validation-failure"

	// DANE policy failures, section 4.3.2.1.
	TLSAInvalid   ResultType = "tlsa-invalid"
	DNSSECInvalid ResultType = "dnssec-invalid"
	DANERequired  ResultType = "dane-required"

	// MTA-STS policy failures, section 4.3.2.2.
	STSPolicyFetchError ResultType = "sts-policy-fetch-error"
	STSPolicyInvalid    ResultType = "sts-policy-invalid"
	STSWebPKIInvalid    ResultType = "sts-webpki-invalid"
)

// Policy is the policy a session was held to, as the report's "policy"
// object (RFC 8460 section 4.4) shows it.
type Policy struct {
	// Type is what kind of policy applied.
	Type PolicyType `json:"policy-type"`
	// Strings are the policy as published: the lines of the MTA-STS
	// policy, or the TLSA records in presentation form, one per entry.
	Strings []string `json:"policy-string,omitempty"`
	// Domain is the policy domain: the recipient domain for MTA-STS and
	// "no-policy-found", the TLSA base domain for DANE.
	Domain string `json:"policy-domain"`
	// MXHost are the MX host patterns of an MTA-STS policy, or the MX
	// host of a TLSA policy.
	MXHost []string `json:"mx-host,omitempty"`
}

// Failure describes one failed session, with the fields of a report's
// failure-details entry (RFC 8460 section 4.4) but its count.
type Failure struct {
	Result              ResultType `json:"result-type"`
	SendingMTAIP        string     `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname string     `json:"receiving-mx-hostname,omitempty"`
	ReceivingMXHelo     string     `json:"receiving-mx-helo,omitempty"`
	ReceivingIP         string     `json:"receiving-ip,omitempty"`
	// AdditionalInfoURI points to more about the failure; the report
	// calls it additional-information.
	AdditionalInfoURI string `json:"additional-information,omitempty"`
	// FailureReasonCode is free text, for instance the TLS library's
	// error name.
	FailureReasonCode string `json:"failure-reason-code,omitempty"`
}

// Recorder takes the outcome of every outbound session for which TLS was
// attempted or required. The relay calls one of the methods per session
// (RFC 8460 section 4.1 counts sessions, not messages).
type Recorder interface {
	Success(p Policy)
	Failure(p Policy, f Failure)
}

// Report is an aggregate report, RFC 8460 section 4.4, ready for
// encoding/json.
type Report struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []PolicyReport `json:"policies"`
}

// DateRange is the period a report covers; RFC 8460 section 4.1 makes it
// a whole UTC day.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyReport is one entry of a report's policies.
type PolicyReport struct {
	Policy         Policy          `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

// Summary counts the sessions held to one policy.
type Summary struct {
	TotalSuccessful int64 `json:"total-successful-session-count"`
	TotalFailure    int64 `json:"total-failure-session-count"`
}

// FailureDetail is a Failure with the number of sessions that failed so.
type FailureDetail struct {
	Failure
	FailedSessionCount int64 `json:"failed-session-count"`
}

// flushDelay is how long recorded outcomes may stay in memory only: a
// busy relay records thousands of sessions a minute, and rewriting the
// day's file for each would cost more than the delivery.
const flushDelay = 5 * time.Second

// Store is a Recorder that keeps the counts in Dir, one JSON file per UTC
// day (Dir/2026-12-03.json), so that they survive restarts until the
// day's reports are sent. Sessions are aggregated by policy (domain, type,
// and a hash of its strings and MX hosts) and, for failures, by the whole
// Failure.
//
// Files are replaced atomically (a temporary file renamed over the old
// one), at most flushDelay after an outcome is recorded, and on Flush and
// Close. A Store is safe for concurrent use; its zero value with Dir set
// is ready. Two Stores must not share a Dir at the same time: each
// would overwrite the other's counts.
type Store struct {
	// Dir holds the day files; it is created if missing.
	Dir string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	days   map[string]*day // by "2006-01-02"
	timer  *time.Timer     // the pending flush, if any
	closed bool
	err    error // the last failed background flush
}

// day is the content of one day file.
type day struct {
	Date    string   `json:"date"`
	Entries []*entry `json:"entries"`
	dirty   bool
}

type entry struct {
	Key       string         `json:"key"`
	Policy    Policy         `json:"policy"`
	Successes int64          `json:"successes"`
	Failures  []*failureSeen `json:"failures,omitempty"`
}

type failureSeen struct {
	Failure Failure `json:"failure"`
	Count   int64   `json:"count"`
}

// Success records a session whose TLS negotiation and policy checks
// succeeded.
func (s *Store) Success(p Policy) { s.record(p, nil) }

// Failure records a session that failed as f describes.
func (s *Store) Failure(p Policy, f Failure) { s.record(p, &f) }

func (s *Store) record(p Policy, f *Failure) {
	p.Domain = normalize(p.Domain)
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.day(s.now().UTC().Format(time.DateOnly))
	if err != nil {
		// The Recorder interface cannot return it: the relay must not
		// fail a delivery for a report. Flush and Close return it.
		s.err = err
		return
	}
	e := d.entry(p)
	if f == nil {
		e.Successes++
	} else {
		i := slices.IndexFunc(e.Failures, func(x *failureSeen) bool { return x.Failure == *f })
		if i < 0 {
			e.Failures = append(e.Failures, &failureSeen{Failure: *f})
			i = len(e.Failures) - 1
		}
		e.Failures[i].Count++
	}
	d.dirty = true
	if s.timer == nil && !s.closed {
		s.timer = time.AfterFunc(flushDelay, s.backgroundFlush)
	}
}

func (s *Store) backgroundFlush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer = nil
	if err := s.flushLocked(); err != nil {
		s.err = err
	}
}

// Flush writes the outcomes recorded so far. It returns the error of a
// failed write, including one of an earlier background write.
func (s *Store) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	err := errors.Join(s.err, s.flushLocked())
	s.err = nil
	return err
}

// Close flushes and stops the background writes. Outcomes recorded after
// Close are written only by an explicit Flush.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return s.Flush()
}

// flushLocked writes the dirty days. It runs under the lock so that two
// flushes cannot rename older content over newer; the files are small.
func (s *Store) flushLocked() error {
	today := s.now().UTC().Format(time.DateOnly)
	var errs []error
	for date, d := range s.days {
		if d.dirty {
			if err := s.write(d); err != nil {
				errs = append(errs, err)
				continue
			}
			d.dirty = false
		}
		if date != today {
			// Past days no longer change; Report reads them from disk.
			delete(s.days, date)
		}
	}
	return errors.Join(errs...)
}

func (s *Store) write(d *day) error {
	data, err := json.Marshal(d)
	if err != nil {
		return mailsec.Errorf(mailsec.Data, "tlsrpt", err, "cannot encode the TLS counts of %s", d.Date)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return mailsec.Errorf(mailsec.Config, "tlsrpt", err, "cannot create %s", s.Dir)
	}
	if err := store.WriteFile(s.path(d.Date), data); err != nil {
		return mailsec.Errorf(mailsec.Config, "tlsrpt", err, "cannot write the TLS counts of %s", d.Date)
	}
	return nil
}

func (s *Store) path(date string) string { return filepath.Join(s.Dir, date+".json") }

// day returns the counts of date, loading them from disk the first time
// so that a restarted relay continues the day's counts.
func (s *Store) day(date string) (*day, error) {
	if d, ok := s.days[date]; ok {
		return d, nil
	}
	d, err := s.load(date)
	if err != nil {
		return nil, err
	}
	if s.days == nil {
		s.days = map[string]*day{}
	}
	s.days[date] = d
	return d, nil
}

func (s *Store) load(date string) (*day, error) {
	data, err := os.ReadFile(s.path(date))
	if errors.Is(err, os.ErrNotExist) {
		return &day{Date: date}, nil
	}
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "tlsrpt", err, "cannot read the TLS counts of %s", date)
	}
	d := &day{}
	if err := json.Unmarshal(data, d); err != nil || d.Date != date {
		// Refusing, rather than starting afresh, keeps the file from
		// being overwritten, so that it can still be looked at.
		return nil, mailsec.Errorf(mailsec.Data, "tlsrpt", err, "%s does not hold the TLS counts of %s", s.path(date), date)
	}
	return d, nil
}

// entry returns the entry of p, adding it if needed.
func (d *day) entry(p Policy) *entry {
	key := policyKey(p)
	for _, e := range d.Entries {
		if e.Key == key {
			return e
		}
	}
	e := &entry{Key: key, Policy: p}
	d.Entries = append(d.Entries, e)
	return e
}

// policyKey identifies a policy: a report has one entry per distinct
// policy (RFC 8460 section 4.4), and a changed MTA-STS policy or TLSA
// RRset is another policy even for the same domain.
func policyKey(p Policy) string {
	h := sha256.New()
	for _, list := range [][]string{p.Strings, p.MXHost} {
		for _, v := range list {
			// Length-prefixed, so that no two lists hash alike.
			fmt.Fprintf(h, "%d:%s", len(v), v)
		}
		h.Write([]byte{0})
	}
	return string(p.Type) + " " + p.Domain + " " + hex.EncodeToString(h.Sum(nil))
}

// Report builds the report of domain for the UTC day that contains day,
// with the given report metadata (RFC 8460 section 4.4). It includes what
// is recorded but not yet written. A day without sessions for domain
// gives a report with no policies, which the caller should not send.
func (s *Store) Report(domain string, day time.Time, org, contact, reportID string) (*Report, error) {
	domain = normalize(domain)
	u := day.UTC()
	start := time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
	date := start.Format(time.DateOnly)
	s.mu.Lock()
	d, ok := s.days[date]
	var err error
	if !ok {
		// Not cached: past days are read without being kept.
		d, err = s.load(date)
	}
	var entries []entry
	if err == nil {
		for _, e := range d.Entries {
			if e.Policy.Domain == domain {
				c := *e
				c.Failures = slices.Clone(e.Failures)
				for i, f := range c.Failures {
					fc := *f
					c.Failures[i] = &fc
				}
				entries = append(entries, c)
			}
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}

	r := &Report{
		OrganizationName: org,
		// RFC 8460 section 4.4's example ends the day at 23:59:59Z.
		DateRange:   DateRange{Start: start, End: start.Add(24*time.Hour - time.Second)},
		ContactInfo: contact,
		ReportID:    reportID,
		Policies:    []PolicyReport{},
	}
	// A stable order makes reports comparable from run to run.
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.Key, b.Key) })
	for _, e := range entries {
		pr := PolicyReport{Policy: e.Policy, Summary: Summary{TotalSuccessful: e.Successes}}
		for _, f := range e.Failures {
			pr.Summary.TotalFailure += f.Count
			pr.FailureDetails = append(pr.FailureDetails, FailureDetail{Failure: f.Failure, FailedSessionCount: f.Count})
		}
		slices.SortFunc(pr.FailureDetails, func(a, b FailureDetail) int {
			return cmp.Or(
				cmp.Compare(b.FailedSessionCount, a.FailedSessionCount), // the worst first
				strings.Compare(string(a.Result), string(b.Result)),
				strings.Compare(a.ReceivingMXHostname, b.ReceivingMXHostname),
				strings.Compare(a.ReceivingIP, b.ReceivingIP),
				strings.Compare(a.SendingMTAIP, b.SendingMTAIP),
				strings.Compare(a.ReceivingMXHelo, b.ReceivingMXHelo),
				strings.Compare(a.FailureReasonCode, b.FailureReasonCode),
				strings.Compare(a.AdditionalInfoURI, b.AdditionalInfoURI),
			)
		})
		r.Policies = append(r.Policies, pr)
	}
	return r, nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// normalize makes domains compare as DNS does (RFC 4343): the relay may
// see "Example.TEST." and "example.test" for the same policy domain.
func normalize(domain string) string { return strings.ToLower(strings.TrimSuffix(domain, ".")) }
