package dsn

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mailsec/mailsec"
)

var t0 = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

const plainOriginal = "From: alice@example.org\r\nTo: bob@example.com\r\nSubject: hi\r\n" +
	"Message-ID: <abc@example.org>\r\n\r\nhello\r\n"

func bounce() *Report {
	return &Report{
		ReportingMTA: "relay.example.org",
		To:           "alice@example.org",
		EnvID:        "QQ+2B1",
		Arrival:      t0,
		Recipients: []Recipient{{
			Final:       "bob@example.com",
			Original:    "rfc822;bob+2Bx@example.com",
			Action:      Failed,
			Status:      "5.1.1",
			RemoteMTA:   "mx.example.com",
			Diagnostic:  "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
			LastAttempt: t0.Add(time.Minute),
		}, {
			Final:          "carol@example.net",
			Action:         Delayed,
			Status:         "4.4.1",
			LastAttempt:    t0.Add(time.Minute),
			WillRetryUntil: t0.Add(120 * time.Hour),
		}},
		MessageID: "<n1@relay.example.org>",
		Date:      t0.Add(2 * time.Minute),
	}
}

type part struct {
	h    textproto.MIMEHeader
	body []byte
}

// write runs Write and checks what every notice must be: CRLF line ends
// only, no line over 998 octets, no NUL, a parseable multipart/report.
func write(t *testing.T, r *Report, original string) (*mail.Message, []part, []byte) {
	t.Helper()
	var out bytes.Buffer
	if err := Write(&out, r, strings.NewReader(original), int64(len(original))); err != nil {
		t.Fatal(err)
	}
	raw := out.Bytes()
	checkLines(t, raw)
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, part{p.Header, b})
	}
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	return m, parts, raw
}

func checkLines(t *testing.T, raw []byte) {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Error("notice does not end with CRLF")
	}
	if bytes.IndexByte(raw, 0) >= 0 {
		t.Error("notice has a NUL")
	}
	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Errorf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) > 998 {
			t.Errorf("line %d is %d octets", i+1, len(line))
		}
	}
}

// fieldGroups splits a delivery-status body into its groups of fields
// (RFC 3464 section 2.1), as name/value pairs in order.
func fieldGroups(t *testing.T, body []byte) [][][2]string {
	t.Helper()
	var groups [][][2]string
	for _, g := range strings.Split(strings.TrimSuffix(string(body), "\r\n"), "\r\n\r\n") {
		var fields [][2]string
		for _, line := range strings.Split(g, "\r\n") {
			if line[0] == ' ' {
				fields[len(fields)-1][1] += line // unfold, RFC 5322 section 2.2.3
				continue
			}
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("not a field: %q", line)
			}
			fields = append(fields, [2]string{name, strings.TrimSpace(value)})
		}
		groups = append(groups, fields)
	}
	return groups
}

func TestDeliveryStatusGolden(t *testing.T) {
	_, parts, _ := write(t, bounce(), plainOriginal)
	want := "Original-Envelope-Id: QQ+1\r\n" +
		"Reporting-MTA: dns; relay.example.org\r\n" +
		"Arrival-Date: Wed, 04 Mar 2026 10:00:00 +0000\r\n" +
		"\r\n" +
		"Original-Recipient: rfc822; bob+x@example.com\r\n" +
		"Final-Recipient: rfc822; bob@example.com\r\n" +
		"Action: failed\r\n" +
		"Status: 5.1.1\r\n" +
		"Remote-MTA: dns; mx.example.com\r\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: Recipient address\r\n" +
		" rejected: User unknown in virtual mailbox table\r\n" +
		"Last-Attempt-Date: Wed, 04 Mar 2026 10:01:00 +0000\r\n" +
		"\r\n" +
		"Final-Recipient: rfc822; carol@example.net\r\n" +
		"Action: delayed\r\n" +
		"Status: 4.4.1\r\n" +
		"Last-Attempt-Date: Wed, 04 Mar 2026 10:01:00 +0000\r\n" +
		"Will-Retry-Until: Mon, 09 Mar 2026 10:00:00 +0000\r\n"
	if got := string(parts[1].body); got != want {
		t.Errorf("delivery-status part:\n%s\nwant:\n%s", got, want)
	}
	if ct := parts[1].h.Get("Content-Type"); ct != "message/delivery-status" {
		t.Errorf("Content-Type %q", ct)
	}
}

// TestRFC3464Example rebuilds the DSN of RFC 3464 section 10.1 and checks
// that it has the same fields in the same order, with the same values but
// for spacing.
func TestRFC3464Example(t *testing.T) {
	const example = "Reporting-MTA: dns; cs.utk.edu\r\n" +
		"\r\n" +
		"Original-Recipient: rfc822;louisl@larry.slip.umd.edu\r\n" +
		"Final-Recipient: rfc822;louisl@larry.slip.umd.edu\r\n" +
		"Action: failed\r\n" +
		"Status: 4.0.0\r\n" +
		"Diagnostic-Code: smtp; 426 connection timed out\r\n" +
		"Last-Attempt-Date: Thu, 7 Jul 1994 17:15:49 -0400\r\n"
	last, _ := mail.ParseDate("Thu, 7 Jul 1994 17:15:49 -0400")
	r := &Report{
		ReportingMTA: "cs.utk.edu",
		To:           "owner-info-mime@cs.utk.edu",
		Recipients: []Recipient{{
			Original:    "rfc822;louisl@larry.slip.umd.edu",
			Final:       "louisl@larry.slip.umd.edu",
			Action:      Failed,
			Status:      "4.0.0",
			Diagnostic:  "426 connection timed out",
			LastAttempt: last,
		}},
	}
	_, parts, _ := write(t, r, plainOriginal)
	got, want := fieldGroups(t, parts[1].body), fieldGroups(t, []byte(example))
	if len(got) != len(want) {
		t.Fatalf("%d groups, want %d", len(got), len(want))
	}
	squash := func(s string) string { return strings.ReplaceAll(s, " ", "") }
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("group %d: %v, want %v", i, got[i], want[i])
		}
		for j, f := range want[i] {
			g := got[i][j]
			if g[0] != f[0] {
				t.Errorf("group %d field %d is %s, want %s", i, j, g[0], f[0])
			}
			if strings.HasSuffix(f[0], "-Date") {
				gd, err1 := mail.ParseDate(g[1])
				wd, err2 := mail.ParseDate(f[1])
				if err1 != nil || err2 != nil || !gd.Equal(wd) {
					t.Errorf("%s: %q, want %q", f[0], g[1], f[1])
				}
			} else if squash(g[1]) != squash(f[1]) {
				t.Errorf("%s: %q, want %q", f[0], g[1], f[1])
			}
		}
	}
}

func TestHeader(t *testing.T) {
	m, parts, _ := write(t, bounce(), plainOriginal)
	for name, want := range map[string]string{
		"From":           `"Mail Delivery System" <MAILER-DAEMON@relay.example.org>`,
		"To":             "<alice@example.org>",
		"Subject":        "Undelivered Mail Returned to Sender",
		"Message-Id":     "<n1@relay.example.org>",
		"In-Reply-To":    "<abc@example.org>",
		"References":     "<abc@example.org>",
		"Auto-Submitted": "auto-replied",
		"Mime-Version":   "1.0",
	} {
		if got := m.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if d, err := m.Header.Date(); err != nil || !d.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("Date: %v %v", d, err)
	}
	if _, err := m.Header.AddressList("From"); err != nil {
		t.Errorf("From: %v", err)
	}
	if _, err := m.Header.AddressList("To"); err != nil {
		t.Errorf("To: %v", err)
	}
	if ct := parts[0].h.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("part 1 Content-Type %q", ct)
	}
	text := string(parts[0].body)
	for _, s := range []string{"bob@example.com", "mx.example.com", "User unknown", "will not be tried again",
		"carol@example.net", "keep", "trying until Mon, 09 Mar 2026 10:00:00 +0000", "Your message is attached"} {
		if !strings.Contains(strings.ReplaceAll(text, "\r\n    ", " "), s) {
			t.Errorf("explanation lacks %q:\n%s", s, text)
		}
	}
	if ct := parts[2].h.Get("Content-Type"); ct != "message/rfc822" {
		t.Errorf("part 3 Content-Type %q", ct)
	}
	if string(parts[2].body) != plainOriginal {
		t.Errorf("returned original %q", parts[2].body)
	}
}

func TestDefaults(t *testing.T) {
	r := bounce()
	r.MessageID, r.Date = "", time.Time{}
	r.Recipients = r.Recipients[1:]
	before := time.Now().Add(-time.Second)
	m, _, _ := write(t, r, "Subject: no id\r\n\r\nx\r\n")
	if got := m.Header.Get("Subject"); got != "Delayed Mail (still being retried)" {
		t.Errorf("Subject %q", got)
	}
	if got := m.Header.Get("From"); got != `"Mail Delivery System" <MAILER-DAEMON@relay.example.org>` {
		t.Errorf("From %q", got)
	}
	id := m.Header.Get("Message-Id")
	if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@relay.example.org>") || len(id) < 30 {
		t.Errorf("Message-ID %q", id)
	}
	if d, err := m.Header.Date(); err != nil || d.Before(before) || d.After(time.Now().Add(time.Second)) {
		t.Errorf("Date %v %v", d, err)
	}
	if m.Header.Get("In-Reply-To") != "" || m.Header.Get("References") != "" {
		t.Error("In-Reply-To without an original Message-ID")
	}
	m2, _, _ := write(t, r, "Subject: no id\r\n\r\nx\r\n")
	if m2.Header.Get("Message-Id") == id {
		t.Error("the same Message-ID twice")
	}

	r.Recipients[0].Action = Delivered
	r.Recipients[0].Status = "2.0.0"
	if m, _, _ = write(t, r, plainOriginal); m.Header.Get("Subject") != "Successful Mail Delivery Report" {
		t.Errorf("Subject %q", m.Header.Get("Subject"))
	}
}

func TestReturn(t *testing.T) {
	body := strings.Repeat("line of the body\r\n", 100)
	orig := plainOriginal + body
	hdr := plainOriginal[:strings.Index(plainOriginal, "\r\n\r\n")+2]
	for _, tc := range []struct {
		name      string
		headers   bool
		max       int64
		ctype     string
		want      string
		textHints string
	}{
		{"full", false, 0, "message/rfc822", orig, "Your message is attached"},
		{"hdrs", true, 0, "text/rfc822-headers", hdr, "The header of your message is attached"},
		{"too big", false, int64(len(orig) - 1), "text/rfc822-headers", hdr, "more than the"},
		{"exactly max", false, int64(len(orig)), "message/rfc822", orig, "Your message is attached"},
		{"header cut", false, 50, "text/rfc822-headers", "From: alice@example.org\r\nTo: bob@example.com\r\n", "only its first part"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bounce()
			r.Headers, r.MaxReturn = tc.headers, tc.max
			_, parts, _ := write(t, r, orig)
			if ct := parts[2].h.Get("Content-Type"); ct != tc.ctype {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if string(parts[2].body) != tc.want {
				t.Errorf("returned %q, want %q", parts[2].body, tc.want)
			}
			if !strings.Contains(strings.ReplaceAll(string(parts[0].body), "\r\n", " "), tc.textHints) {
				t.Errorf("explanation lacks %q:\n%s", tc.textHints, parts[0].body)
			}
		})
	}
}

func TestOriginalLongerThanSize(t *testing.T) {
	// The original's size decides between message/rfc822 and headers
	// only; one that runs on past it must not be copied on past it.
	var out countWriter
	long := io.MultiReader(strings.NewReader(plainOriginal), strings.NewReader(strings.Repeat("x\r\n", 2<<20)))
	err := Write(&out, bounce(), long, int64(len(plainOriginal)))
	if err == nil || !strings.Contains(err.Error(), "longer than its size") {
		t.Errorf("err = %v", err)
	}
	if out.n > 64<<10 {
		t.Errorf("%d octets written", out.n)
	}
}

// TestStreams checks that a large original goes through without being
// read whole before the notice is written: the reader fails if it gets
// ahead of the writer by more than a few buffers.
func TestStreams(t *testing.T) {
	const n = 8 << 20
	var out countWriter
	src := &paced{out: &out, left: n}
	head := "Subject: big\r\n\r\n"
	err := Write(&out, bounce(), io.MultiReader(strings.NewReader(head), src), int64(len(head))+n)
	if err != nil {
		t.Fatal(err)
	}
	if src.err != "" {
		t.Fatal(src.err)
	}
	if out.n < n {
		t.Errorf("wrote %d octets", out.n)
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

type paced struct {
	out  *countWriter
	read int64
	left int64
	err  string
}

func (p *paced) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if p.read-p.out.n > 1<<20 {
		p.err = "the original was read far ahead of the output"
	}
	n := min(int64(len(b)), p.left)
	for i := range b[:n] {
		b[i] = 'a'
		if i%100 == 99 {
			b[i] = '\n'
		}
	}
	p.left -= n
	p.read += n
	return int(n), nil
}

func TestHostile(t *testing.T) {
	bigHeader := "X-Big: " + strings.Repeat("h", 3000) + "\r\n"
	for i := 0; i < 200; i++ {
		bigHeader += "X-Many: " + strings.Repeat("v ", 30) + "\r\n"
	}
	orig := "From: x@example.org\r\nMessage-ID: <m1@example.org>\r\n" + bigHeader +
		"Subject: bare\nBcc: smuggled@example.org\r\n" +
		"\r\n" +
		"--=_boundary\r\n--=_boundary--\r\n--\r\n" +
		strings.Repeat("x", 5000) + "\r\n" +
		"bare lf\nbare cr\rNUL\x00here\r\n" +
		"no final newline"
	r := bounce()
	r.Recipients[0].Diagnostic = "550 x\r\nBcc: evil@example.org\x00\x1b]52;c;Zm9v\x07\x1b[2J" + strings.Repeat("y", 2000) + " \xff\xfe é"
	r.Recipients[0].RemoteMTA = "mx.example.com\r\nX-Injected: 1"
	r.Recipients[0].Final = "bob@example.com\r\nX-Injected: 2"
	r.To = "alice@example.org>\r\nBcc: evil@example.org"
	r.ReportingMTA = "relay.example.org\r\nX-Injected: 3"
	m, parts, raw := write(t, r, orig)

	for _, name := range []string{"Bcc", "X-Injected"} {
		if v := m.Header.Get(name); v != "" {
			t.Errorf("notice header has %s: %q", name, v)
		}
	}
	// Only the returned original may keep the control octets it had;
	// everything generated must have none.
	generated := raw[:bytes.Index(raw, []byte("Content-Description: Original message"))]
	for i, c := range generated {
		if (c < ' ' && c != '\r' && c != '\n') || c == 0x7f {
			t.Fatalf("control octet %#x at %d in the generated parts", c, i)
		}
	}
	if !isASCII(string(generated)) {
		t.Error("8-bit octets in a 7-bit notice")
	}
	// The explanation is quoted-printable here (it has an é), so look at
	// it decoded too.
	text := string(parts[0].body)
	if !utf8.ValidString(text) || strings.ContainsFunc(text, func(r rune) bool {
		return r != '\r' && r != '\n' && !unicode.IsPrint(r)
	}) {
		t.Errorf("explanation has control characters: %q", text)
	}
	if !strings.Contains(text, "é") {
		t.Errorf("explanation lost the é: %q", text)
	}
	for _, g := range fieldGroups(t, parts[1].body) {
		for _, f := range g {
			if strings.HasPrefix(f[0], "X-") || f[0] == "Bcc" {
				t.Errorf("injected status field %q", f)
			}
			if f[0] == "Diagnostic-Code" && !strings.Contains(f[1], "Bcc: evil@example.org") {
				t.Errorf("Diagnostic-Code lost its text: %q", f[1])
			}
		}
	}
	if got := m.Header.Get("In-Reply-To"); got != "<m1@example.org>" {
		t.Errorf("In-Reply-To %q", got)
	}

	// The original comes back whole as a message that parses, with its
	// lines made CRLF, long lines broken and the NUL replaced.
	if ct := parts[2].h.Get("Content-Type"); ct != "message/rfc822" {
		t.Fatalf("Content-Type %q", ct)
	}
	om, err := mail.ReadMessage(bytes.NewReader(parts[2].body))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ReplaceAll(om.Header.Get("X-Big"), " ", ""); got != strings.Repeat("h", 3000) {
		t.Errorf("X-Big is %d octets", len(got))
	}
	if got := len(om.Header["X-Many"]); got != 200 {
		t.Errorf("%d X-Many fields", got)
	}
	b, _ := io.ReadAll(om.Body)
	wantBody := "--=_boundary\r\n--=_boundary--\r\n--\r\n" +
		strings.Repeat("x", 998) + "\r\n" + strings.Repeat("x", 998) + "\r\n" + strings.Repeat("x", 998) + "\r\n" +
		strings.Repeat("x", 998) + "\r\n" + strings.Repeat("x", 998) + "\r\n" + strings.Repeat("x", 10) + "\r\n" +
		"bare lf\r\nbare cr\r\nNUL?here\r\nno final newline\r\n"
	if string(b) != wantBody {
		t.Errorf("returned body:\n%q\nwant\n%q", b, wantBody)
	}
}

func TestUTF8(t *testing.T) {
	orig := "From: jörg@bücher.example\r\nSubject: grüße\r\n\r\nhallo ü\r\n"
	for _, global := range []bool{false, true} {
		r := bounce()
		r.UTF8 = global
		r.To = "jörg@bücher.example"
		r.Recipients[0].Final = "andré@exemple.fr"
		r.Recipients[0].Original = "utf-8;andr\\x{E9}@exemple.fr"
		m, parts, raw := write(t, r, orig)
		g := fieldGroups(t, parts[1].body)[1]
		if !strings.Contains(string(parts[0].body), "andré@exemple.fr") {
			t.Errorf("UTF8=%v: explanation lacks the address:\n%s", global, parts[0].body)
		}
		if !global {
			if !isASCII(string(raw)) {
				t.Error("UTF8=false: 8-bit octets in the notice")
			}
			if ct := parts[1].h.Get("Content-Type"); ct != "message/delivery-status" {
				t.Errorf("Content-Type %q", ct)
			}
			if g[1][1] != `utf-8; andr\x{E9}@exemple.fr` {
				t.Errorf("Final-Recipient %q", g[1][1])
			}
			if ct := parts[2].h.Get("Content-Type"); ct != "message/rfc822" {
				t.Errorf("Content-Type %q", ct)
			}
			continue
		}
		if got := m.Header.Get("To"); got != "<jörg@bücher.example>" {
			t.Errorf("To %q", got)
		}
		if ct := parts[1].h.Get("Content-Type"); ct != "message/global-delivery-status" {
			t.Errorf("Content-Type %q", ct)
		}
		if g[0][1] != `utf-8; andr\x{E9}@exemple.fr` || g[1][1] != "utf-8; andré@exemple.fr" {
			t.Errorf("recipient fields %q", g)
		}
		if ct := parts[2].h.Get("Content-Type"); ct != "message/global" || string(parts[2].body) != orig {
			t.Errorf("returned %q as %q", parts[2].body, ct)
		}
	}
}

func TestEightBitOriginal(t *testing.T) {
	orig := "Subject: caf\xc3\xa9\r\n\r\ncaf\xc3\xa9\r\n"
	r := bounce()
	_, parts, _ := write(t, r, orig)
	if got := string(parts[2].body); got != "Subject: caf??\r\n\r\ncaf??\r\n" {
		t.Errorf("7-bit: returned %q", got)
	}
	r.EightBit = true
	m, parts, _ := write(t, r, orig)
	if got := string(parts[2].body); got != orig {
		t.Errorf("8-bit: returned %q", got)
	}
	if m.Header.Get("Content-Transfer-Encoding") != "8bit" || parts[2].h.Get("Content-Transfer-Encoding") != "8bit" {
		t.Error("8-bit original not labelled 8bit")
	}
}

func TestInvalidReport(t *testing.T) {
	for name, edit := range map[string]func(*Report){
		"no reporting MTA": func(r *Report) { r.ReportingMTA = "" },
		"null sender":      func(r *Report) { r.To = "" },
		"no recipients":    func(r *Report) { r.Recipients = nil },
		"no final":         func(r *Report) { r.Recipients[0].Final = "" },
		"no status":        func(r *Report) { r.Recipients[0].Status = "" },
		"bad status":       func(r *Report) { r.Recipients[0].Status = "5.1.1\r\nX: y" },
		"bad class":        func(r *Report) { r.Recipients[0].Status = "3.1.1" },
		"bad action":       func(r *Report) { r.Recipients[0].Action = "bounced" },
	} {
		r := bounce()
		edit(r)
		var out bytes.Buffer
		if err := Write(&out, r, strings.NewReader(plainOriginal), int64(len(plainOriginal))); err == nil {
			t.Errorf("%s: no error", name)
		}
		if out.Len() != 0 {
			t.Errorf("%s: wrote %d octets", name, out.Len())
		}
	}
}

func TestStatusFromReply(t *testing.T) {
	for _, tc := range []struct {
		code     int
		enhanced string
		want     string
	}{
		{550, "5.1.1", "5.1.1"},
		{550, "", "5.0.0"},
		{550, "4.1.1", "5.0.0"},
		{451, "4.7.1", "4.7.1"},
		{421, "5.7.1", "4.0.0"},
		{452, "4.2.2x", "4.0.0"},
		{554, "5.1234.1", "5.0.0"},
		{250, "2.1.5", "2.1.5"},
		{354, "", ""},
		{0, "5.1.1", ""},
		{600, "5.1.1", ""},
	} {
		if got := StatusFromReply(tc.code, tc.enhanced); got != tc.want {
			t.Errorf("StatusFromReply(%d, %q) = %q, want %q", tc.code, tc.enhanced, got, tc.want)
		}
	}
}

func TestWrapLongWord(t *testing.T) {
	var b bytes.Buffer
	fold(&b, "Diagnostic-Code:", "smtp; "+strings.Repeat("é", 1500))
	checkLines(t, b.Bytes())
	tp := textproto.NewReader(bufio.NewReader(io.MultiReader(&b, strings.NewReader("\r\n"))))
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ReplaceAll(h.Get("Diagnostic-Code"), " ", ""); got != "smtp;"+strings.Repeat("é", 1500) {
		t.Errorf("unfolded to %d octets", len(got))
	}
}

// A reply received in cleartext is marked in the readable part, where a
// person might act on it, and kept as it was in Diagnostic-Code.
func TestCleartextDiagnosticMarked(t *testing.T) {
	r := bounce()
	r.Recipients = r.Recipients[:1]
	r.Recipients[0].Diagnostic = "554 5.7.1 call +1-555-0100 to unblock"
	r.Recipients[0].DiagnosticChannel = mailsec.ChannelCleartext
	_, parts, _ := write(t, r, plainOriginal)
	text := strings.Join(strings.Fields(string(parts[0].body)), " ")
	if !strings.Contains(text, "call +1-555-0100 to unblock "+mailsec.ChannelCleartext.Mark()) {
		t.Errorf("readable part does not mark the cleartext reply:\n%s", parts[0].body)
	}
	if fields := string(parts[1].body); strings.Contains(fields, "unverified") || !strings.Contains(fields, "Diagnostic-Code: smtp; 554 5.7.1 call +1-555-0100 to unblock") {
		t.Errorf("delivery-status part:\n%s", fields)
	}
	r.Recipients[0].DiagnosticChannel = mailsec.ChannelVerified
	if _, parts, _ = write(t, r, plainOriginal); strings.Contains(string(parts[0].body), "unverified") {
		t.Errorf("verified reply marked:\n%s", parts[0].body)
	}
}
