package tlsrpt

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
)

// rfcExample is the example report of RFC 8460 (section 4.5), with the
// additional-information URI, which the RFC wraps across lines, on one.
const rfcExample = `{
  "organization-name": "Company-X",
  "date-range": {
    "start-datetime": "2016-04-01T00:00:00Z",
    "end-datetime": "2016-04-01T23:59:59Z"
  },
  "contact-info": "sts-reporting@company-x.example",
  "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
  "policies": [{
    "policy": {
      "policy-type": "sts",
      "policy-string": ["version: STSv1","mode: testing",
            "mx: *.mail.company-y.example","max_age: 86400"],
      "policy-domain": "company-y.example",
      "mx-host": ["*.mail.company-y.example"]
    },
    "summary": {
      "total-successful-session-count": 5326,
      "total-failure-session-count": 303
    },
    "failure-details": [{
      "result-type": "certificate-expired",
      "sending-mta-ip": "2001:db8:abcd:0012::1",
      "receiving-mx-hostname": "mx1.mail.company-y.example",
      "failed-session-count": 100
    }, {
      "result-type": "starttls-not-supported",
      "sending-mta-ip": "2001:db8:abcd:0013::1",
      "receiving-mx-hostname": "mx2.mail.company-y.example",
      "receiving-ip": "203.0.113.56",
      "failed-session-count": 200,
      "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"
    }, {
      "result-type": "validation-failure",
      "sending-mta-ip": "198.51.100.62",
      "receiving-ip": "203.0.113.58",
      "receiving-mx-hostname": "mx-backup.mail.company-y.example",
      "failed-session-count": 3,
      "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
    }]
  }]
}`

func TestRFCExample(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(rfcExample))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		t.Fatal(err)
	}
	p := r.Policies[0]
	if r.OrganizationName != "Company-X" || r.ContactInfo != "sts-reporting@company-x.example" ||
		r.ReportID != "5065427c-23d3-47ca-b6e0-946ea0e8c4be" ||
		!r.DateRange.Start.Equal(time.Date(2016, 4, 1, 0, 0, 0, 0, time.UTC)) ||
		!r.DateRange.End.Equal(time.Date(2016, 4, 1, 23, 59, 59, 0, time.UTC)) ||
		p.Policy.Type != PolicySTS || len(p.Policy.Strings) != 4 || p.Policy.Domain != "company-y.example" ||
		len(p.Policy.MXHost) != 1 || p.Summary != (Summary{5326, 303}) || len(p.FailureDetails) != 3 {
		t.Fatalf("%+v", r)
	}
	want := FailureDetail{Failure{Result: ValidationFailure, SendingMTAIP: "198.51.100.62", ReceivingIP: "203.0.113.58",
		ReceivingMXHostname: "mx-backup.mail.company-y.example", FailureReasonCode: "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"}, 3}
	if p.FailureDetails[2] != want || p.FailureDetails[1].AdditionalInfoURI == "" || p.FailureDetails[1].Result != StartTLSNotSupported {
		t.Errorf("%+v", p.FailureDetails)
	}

	// And back: the same members, and nothing more.
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	json.Unmarshal([]byte(rfcExample), &a)
	json.Unmarshal(out, &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip:\n%s", out)
	}
}

var (
	sts = Policy{Type: PolicySTS, Domain: "Example.TEST.", Strings: []string{"version: STSv1", "mode: enforce", "mx: mx.example.test", "max_age: 86400"},
		MXHost: []string{"mx.example.test"}}
	tlsa    = Policy{Type: PolicyTLSA, Domain: "example.test", Strings: []string{"_25._tcp.mx.example.test. IN TLSA 3 1 1 0123"}, MXHost: []string{"mx.example.test"}}
	expired = Failure{Result: CertificateExpired, SendingMTAIP: "192.0.2.1", ReceivingMXHostname: "mx.example.test", ReceivingIP: "192.0.2.25"}
	noTLS   = Failure{Result: StartTLSNotSupported, SendingMTAIP: "192.0.2.1", ReceivingMXHostname: "mx.example.test", ReceivingMXHelo: "mx"}
)

// clock is a settable time for the Store.
type clock struct{ t atomic.Pointer[time.Time] }

func (c *clock) set(t time.Time) { c.t.Store(&t) }
func (c *clock) now() time.Time  { return *c.t.Load() }

func newStore(t *testing.T, dir string, at time.Time) (*Store, *clock) {
	c := &clock{}
	c.set(at)
	s := &Store{Dir: dir, Now: c.now}
	t.Cleanup(func() { s.Close() })
	return s, c
}

func TestConcurrentCounts(t *testing.T) {
	day := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	s, _ := newStore(t, t.TempDir(), day)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 100 {
				switch i % 4 {
				case 0, 1:
					s.Success(sts)
				case 2:
					s.Failure(sts, expired)
				case 3:
					s.Failure(tlsa, noTLS)
				}
			}
		})
	}
	wg.Wait()
	s.Success(Policy{Type: PolicyNone, Domain: "other.test"})

	r, err := s.Report("example.test", day.Add(5*time.Hour), "mailsec", "tlsrpt@relay.test", "id-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Policies) != 2 {
		t.Fatalf("%d policies: %+v", len(r.Policies), r.Policies)
	}
	got := map[PolicyType]PolicyReport{}
	for _, p := range r.Policies {
		got[p.Policy.Type] = p
	}
	if p := got[PolicySTS]; p.Summary != (Summary{400, 200}) || len(p.FailureDetails) != 1 ||
		p.FailureDetails[0] != (FailureDetail{expired, 200}) || p.Policy.Domain != "example.test" {
		t.Errorf("sts: %+v", p)
	}
	if p := got[PolicyTLSA]; p.Summary != (Summary{0, 200}) || len(p.FailureDetails) != 1 || p.FailureDetails[0] != (FailureDetail{noTLS, 200}) {
		t.Errorf("tlsa: %+v", p)
	}
	if r.DateRange.Start != time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC) || r.DateRange.End != time.Date(2026, 12, 3, 23, 59, 59, 0, time.UTC) ||
		r.OrganizationName != "mailsec" || r.ContactInfo != "tlsrpt@relay.test" || r.ReportID != "id-1" {
		t.Errorf("metadata %+v", r)
	}

	// A changed policy text is another policy.
	changed := sts
	changed.Strings = []string{"version: STSv1", "mode: testing", "mx: mx.example.test", "max_age: 86400"}
	s.Success(changed)
	if r, _ := s.Report("example.test", day, "", "", ""); len(r.Policies) != 3 {
		t.Errorf("changed policy merged: %+v", r.Policies)
	}

	// The JSON uses the RFC's names.
	out, _ := json.Marshal(r)
	for _, name := range []string{`"organization-name"`, `"policy-type":"sts"`, `"total-successful-session-count":400`,
		`"failed-session-count":200`, `"receiving-mx-helo":"mx"`, `"start-datetime":"2026-12-03T00:00:00Z"`} {
		if !bytes.Contains(out, []byte(name)) {
			t.Errorf("no %s in %s", name, out)
		}
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	day1 := time.Date(2026, 12, 3, 23, 0, 0, 0, time.UTC)
	s, c := newStore(t, dir, day1)
	s.Success(sts)
	s.Failure(sts, expired)
	c.set(day1.Add(2 * time.Hour)) // the next UTC day
	s.Success(sts)
	s.Success(sts)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"2026-12-03.json", "2026-12-04.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}

	// A new Store continues from the files, and keeps the days apart.
	s2, _ := newStore(t, dir, day1.Add(3*time.Hour))
	s2.Failure(sts, expired)
	for _, c := range []struct {
		at   time.Time
		want Summary
	}{{day1, Summary{1, 1}}, {day1.Add(3 * time.Hour), Summary{2, 1}}} {
		r, err := s2.Report("example.test", c.at, "", "", "")
		if err != nil || len(r.Policies) != 1 || r.Policies[0].Summary != c.want {
			t.Errorf("%s: %+v, %v", c.at, r, err)
		}
	}
	if err := s2.Flush(); err != nil {
		t.Fatal(err)
	}
	s3, _ := newStore(t, dir, day1)
	if r, err := s3.Report("example.test", day1.Add(3*time.Hour), "", "", ""); err != nil || r.Policies[0].Summary != (Summary{2, 1}) {
		t.Errorf("after flush: %+v, %v", r, err)
	}
	if r, err := s3.Report("example.test", day1.Add(48*time.Hour), "", "", ""); err != nil || len(r.Policies) != 0 {
		t.Errorf("day without data: %+v, %v", r, err)
	}
}

func TestBackgroundFlush(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the flush delay")
	}
	dir := t.TempDir()
	s, _ := newStore(t, dir, time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	s.Success(tlsa)
	path := filepath.Join(dir, "2026-12-03.json")
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("written at once: %v", err)
	}
	deadline := time.Now().Add(flushDelay + 5*time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("not written within %v", flushDelay)
}

func TestCorruptFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "2026-12-03.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := newStore(t, dir, time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	s.Success(sts)
	if err := s.Flush(); !errors.Is(err, mailsec.Data) {
		t.Errorf("flush: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "{not json" {
		t.Errorf("corrupt file overwritten: %q", data)
	}
	if _, err := s.Report("example.test", time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), "", "", ""); !errors.Is(err, mailsec.Data) {
		t.Errorf("report: %v", err)
	}
}
