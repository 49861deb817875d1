package sasl

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/mailsec/mailsec"
)

var allMechanisms = []string{Plain, Login, CRAMMD5, XOAuth2, OAuthBearer,
	SCRAMSHA1, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA256Plus, NTLM}

var fullCred = Credentials{Username: "tim", Password: "tanstaaftanstaaf", Token: "tok"}

func TestNewClientNames(t *testing.T) {
	for _, mech := range allMechanisms {
		c, err := NewClient(strings.ToLower(mech), fullCred)
		if err != nil {
			t.Fatalf("NewClient(%q): %v", strings.ToLower(mech), err)
		}
		if c.Name() != mech {
			t.Errorf("Name() = %q, want %q", c.Name(), mech)
		}
	}
	_, err := NewClient("GSSAPI", fullCred)
	wantCode(t, err, mailsec.AuthUnavailable)
}

func TestNewClientConfig(t *testing.T) {
	cases := []struct {
		mech string
		cred Credentials
	}{
		{Plain, Credentials{Username: "u"}},
		{Plain, Credentials{Username: "u", Password: "p\x00w"}},
		{Plain, Credentials{Username: "u", Password: "pw", Authzid: "a\x00b"}},
		{Login, Credentials{Password: "pw"}},
		{CRAMMD5, Credentials{Username: "u"}},
		{SCRAMSHA256, Credentials{Username: "u"}},
		{SCRAMSHA256, Credentials{Username: "u", Password: "\u0007bell"}}, // SASLprep prohibits it
		{NTLM, Credentials{Username: "u"}},
		{XOAuth2, Credentials{Username: "u"}},
		{XOAuth2, Credentials{Username: "u\x01auth=x", Token: "t"}},
		{OAuthBearer, Credentials{Username: "u"}},
		{OAuthBearer, Credentials{Token: "t\r\nQUIT"}},
	}
	for _, tc := range cases {
		_, err := NewClient(tc.mech, tc.cred)
		if err == nil {
			t.Errorf("NewClient(%s, %+v) accepted bad credentials", tc.mech, tc.cred)
			continue
		}
		wantCode(t, err, mailsec.Config)
	}
}

func TestNeedsTLS(t *testing.T) {
	for _, mech := range allMechanisms {
		want := strings.HasSuffix(mech, "-PLUS")
		if got := NeedsTLS(strings.ToLower(mech)); got != want {
			t.Errorf("NeedsTLS(%s) = %v", mech, got)
		}
	}
}

// Off TLS every mechanism refuses before producing a byte, with a detail
// that tells the user how to override; AllowPlaintext lifts it for all but
// the -PLUS mechanisms, which cannot bind to a channel that is not there.
func TestRefusalOffTLS(t *testing.T) {
	for _, mech := range allMechanisms {
		c, err := NewClient(mech, fullCred)
		if err != nil {
			t.Fatal(err)
		}
		ir, err := c.Start(ConnState{Host: "mail.example.org", Port: 25})
		if err == nil {
			t.Errorf("%s started off TLS, initial response %q", mech, ir)
			continue
		}
		wantCode(t, err, mailsec.AuthUnavailable)
		if !NeedsTLS(mech) && !strings.Contains(err.Error(), "refusing to send credentials for "+mech+" without TLS; allow plaintext auth explicitly") {
			t.Errorf("%s refusal lacks the override hint: %v", mech, err)
		}

		c, _ = NewClient(mech, fullCred)
		_, err = c.Start(ConnState{AllowPlaintext: true})
		if NeedsTLS(mech) {
			wantCode(t, err, mailsec.AuthUnavailable)
		} else if err != nil {
			t.Errorf("%s with AllowPlaintext: %v", mech, err)
		}
	}
}

// RFC 4616 section 4 examples.
func TestPlainClient(t *testing.T) {
	c, _ := NewClient(Plain, Credentials{Username: "tim", Password: "tanstaaftanstaaf"})
	ir, err := c.Start(overTLS())
	if err != nil || string(ir) != "\x00tim\x00tanstaaftanstaaf" {
		t.Fatalf("Start = %q, %v", ir, err)
	}
	c, _ = NewClient(Plain, Credentials{Authzid: "Ursel", Username: "Kurt", Password: "xipj3plmq"})
	ir, _ = c.Start(overTLS())
	if string(ir) != "Ursel\x00Kurt\x00xipj3plmq" {
		t.Fatalf("Start = %q", ir)
	}
	// A server that did not get the initial response asks with an empty
	// challenge; a second challenge is a protocol error.
	if r, err := c.Next([]byte{}); err != nil || !bytes.Equal(r, ir) {
		t.Fatalf("Next(empty) = %q, %v", r, err)
	}
	_, err = c.Next([]byte{})
	wantCode(t, err, mailsec.Protocol)
}

// LOGIN answers by position whatever the prompts say, and a third
// challenge is a protocol error.
func TestLoginClientIgnoresPromptText(t *testing.T) {
	prompts := [][2]string{
		{"Username:", "Password:"},
		{"VXNlcm5hbWU6", "UGFzc3dvcmQ6"}, // the prompts left base64-encoded
		{"Password:", "Username:"},       // swapped: position wins
		{"", ""},
		{"Benutzername:", "Kennwort:"},
	}
	for _, p := range prompts {
		c, _ := NewClient(Login, Credentials{Username: "alice", Password: "s3cret"})
		ir, err := c.Start(overTLS())
		if err != nil || ir != nil {
			t.Fatalf("Start = %q, %v; LOGIN has no initial response", ir, err)
		}
		u, err := c.Next([]byte(p[0]))
		if err != nil || string(u) != "alice" {
			t.Fatalf("prompt %q: got %q, %v", p[0], u, err)
		}
		pw, err := c.Next([]byte(p[1]))
		if err != nil || string(pw) != "s3cret" {
			t.Fatalf("prompt %q: got %q, %v", p[1], pw, err)
		}
		_, err = c.Next([]byte("Again:"))
		wantCode(t, err, mailsec.Protocol)
	}
}

// RFC 2195 section 2 example.
func TestCRAMMD5RFC2195(t *testing.T) {
	c, _ := NewClient(CRAMMD5, Credentials{Username: "tim", Password: "tanstaaftanstaaf"})
	if ir, err := c.Start(overTLS()); err != nil || ir != nil {
		t.Fatalf("Start = %q, %v", ir, err)
	}
	r, err := c.Next([]byte("<1896.697170952@postoffice.reston.mci.net>"))
	if err != nil || string(r) != "tim b913a602c7eda7a495b4e6e7334d3890" {
		t.Fatalf("Next = %q, %v", r, err)
	}
	_, err = c.Next([]byte("<again@x>"))
	wantCode(t, err, mailsec.Protocol)

	c, _ = NewClient(CRAMMD5, Credentials{Username: "tim", Password: "tanstaaftanstaaf"})
	_, _ = c.Start(overTLS())
	_, err = c.Next(nil)
	wantCode(t, err, mailsec.Protocol)
}

func TestXOAuth2(t *testing.T) {
	c, _ := NewClient(XOAuth2, Credentials{Username: "someuser@example.com", Token: "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"})
	ir, err := c.Start(overTLS())
	// The example of Google's XOAUTH2 documentation.
	want := "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
	if err != nil || string(ir) != want {
		t.Fatalf("Start = %q, %v", ir, err)
	}
	if d := c.(ErrorDetailer).ErrorDetail(); d != "" {
		t.Fatalf("ErrorDetail before any challenge = %q", d)
	}
	status := `{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`
	r, err := c.Next([]byte(status))
	if err != nil || r == nil || len(r) != 0 {
		t.Fatalf("Next(error) = %q (nil %v), %v; want an empty response", r, r == nil, err)
	}
	if d := c.(ErrorDetailer).ErrorDetail(); d != status {
		t.Fatalf("ErrorDetail = %q", d)
	}
	_, err = c.Next([]byte(status))
	wantCode(t, err, mailsec.Protocol)
}

// RFC 7628 section 4.1 example, then the error flow of section 4.3.
func TestOAuthBearer(t *testing.T) {
	c, _ := NewClient(OAuthBearer, Credentials{Username: "user@example.com", Token: "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="})
	cs := ConnState{TLS: fakeTLS12(), Host: "server.example.com", Port: 143}
	ir, err := c.Start(cs)
	want := "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
	if err != nil || string(ir) != want {
		t.Fatalf("Start = %q, %v\nwant %q", ir, err, want)
	}
	status := `{"status":"invalid_token","scope":"example_scope","openid-configuration":"https://example.com/.well-known/openid-configuration"}`
	r, err := c.Next([]byte(status))
	if err != nil || string(r) != "\x01" {
		t.Fatalf("Next(error) = %q, %v; want %%x01", r, err)
	}
	if d := c.(ErrorDetailer).ErrorDetail(); d != status {
		t.Fatalf("ErrorDetail = %q", d)
	}

	// saslname encoding of the authzid, and no host or port when unknown.
	c, _ = NewClient(OAuthBearer, Credentials{Username: "a,b=c", Token: "t"})
	ir, _ = c.Start(ConnState{TLS: fakeTLS12()})
	if string(ir) != "n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01" {
		t.Fatalf("Start = %q", ir)
	}
	c, _ = NewClient(OAuthBearer, Credentials{Token: "t"})
	_, err = c.Start(ConnState{TLS: fakeTLS12(), Host: "evil\x01auth=Bearer x"})
	wantCode(t, err, mailsec.Config)
}

// ntlmChallenge builds a CHALLENGE message ([MS-NLMP] 2.2.1.2) as a
// server would send it, with the target info go-ntlmssp needs for NTLMv2.
func ntlmChallenge(serverChallenge [8]byte) []byte {
	var av bytes.Buffer
	putAV := func(id uint16, v []byte) {
		binary.Write(&av, binary.LittleEndian, id)
		binary.Write(&av, binary.LittleEndian, uint16(len(v)))
		av.Write(v)
	}
	putAV(2, utf16le("CORP"))              // MsvAvNbDomainName
	putAV(7, make([]byte, 8))              // MsvAvTimestamp
	putAV(0, nil)                          // MsvAvEOL
	const flags = 1 | 1<<9 | 1<<19 | 1<<23 // UNICODE, NTLM, EXTENDED_SESSIONSECURITY, TARGET_INFO
	var m bytes.Buffer
	m.WriteString("NTLMSSP\x00")
	binary.Write(&m, binary.LittleEndian, uint32(2))
	binary.Write(&m, binary.LittleEndian, [2]uint16{0, 0}) // TargetName: empty
	binary.Write(&m, binary.LittleEndian, uint32(48))
	binary.Write(&m, binary.LittleEndian, uint32(flags))
	m.Write(serverChallenge[:])
	m.Write(make([]byte, 8))
	binary.Write(&m, binary.LittleEndian, [2]uint16{uint16(av.Len()), uint16(av.Len())})
	binary.Write(&m, binary.LittleEndian, uint32(48))
	m.Write(av.Bytes())
	return m.Bytes()
}

func utf16le(s string) []byte {
	var b bytes.Buffer
	for _, u := range utf16.Encode([]rune(s)) {
		binary.Write(&b, binary.LittleEndian, u)
	}
	return b.Bytes()
}

// field reads an NTLM security buffer (length, max length, offset) at off.
func field(t *testing.T, msg []byte, off int) []byte {
	t.Helper()
	l := int(binary.LittleEndian.Uint16(msg[off:]))
	o := int(binary.LittleEndian.Uint32(msg[off+4:]))
	if o+l > len(msg) {
		t.Fatalf("field at %d points past the message", off)
	}
	return msg[o : o+l]
}

func TestNTLM(t *testing.T) {
	c, _ := NewClient(NTLM, Credentials{Username: "alice", Password: "Passw0rd", Domain: "CORP"})
	neg, err := c.Start(overTLS())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(neg, []byte("NTLMSSP\x00")) || binary.LittleEndian.Uint32(neg[8:]) != 1 {
		t.Fatalf("Start did not return a NEGOTIATE message: % x", neg)
	}
	challenge := ntlmChallenge([8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	auth, err := c.Next(challenge)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(auth, []byte("NTLMSSP\x00")) || binary.LittleEndian.Uint32(auth[8:]) != 3 {
		t.Fatalf("Next did not return an AUTHENTICATE message: % x", auth)
	}
	// [MS-NLMP] 2.2.1.3: LM, NT responses, domain, user, workstation.
	if d := field(t, auth, 28); !bytes.Equal(d, utf16le("CORP")) {
		t.Errorf("domain = % x", d)
	}
	if u := field(t, auth, 36); !bytes.Equal(u, utf16le("alice")) {
		t.Errorf("user = % x", u)
	}
	// An NTLMv2 response is NTProofStr (16 bytes) followed by a blob that
	// carries the server's target info ([MS-NLMP] 2.2.2.8, 3.3.2).
	nt := field(t, auth, 20)
	if len(nt) <= 16 || !bytes.Contains(nt[16:], utf16le("CORP")) {
		t.Errorf("NT response is not NTLMv2: % x", nt)
	}
	_, err = c.Next(challenge)
	wantCode(t, err, mailsec.Protocol)

	c, _ = NewClient(NTLM, Credentials{Username: "alice", Password: "Passw0rd"})
	_, _ = c.Start(overTLS())
	_, err = c.Next([]byte("NTLMSSP\x00garbage"))
	wantCode(t, err, mailsec.Protocol)
}
