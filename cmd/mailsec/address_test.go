package main

import (
	"strings"
	"testing"
)

// Addresses as people type them: an addr-spec, an angle-addr, a name-addr
// (RFC 5322 section 3.4), the addr-spec kept as typed.
func TestParseMailboxForms(t *testing.T) {
	for in, want := range map[string]nameAddr{
		"alice@example.com":                    {addr: "alice@example.com"},
		" <alice@example.com> ":                {addr: "alice@example.com"},
		"Alice <alice@example.com>":            {name: "Alice", addr: "alice@example.com"},
		`"Liddell, Alice" <alice@example.com>`: {name: "Liddell, Alice", addr: "alice@example.com"},
		`"A \"Al\" L" <alice@example.com>`:     {name: `A "Al" L`, addr: "alice@example.com"},
		`Bob <"bob smith"@example.com>`:        {name: "Bob", addr: `"bob smith"@example.com`},
		"=?utf-8?q?Al=C3=AFce?= <a@b.test>":    {name: "Alïce", addr: "a@b.test"},
		"Δοκιμή <δοκιμή@παράδειγμα.δοκιμή>":    {name: "Δοκιμή", addr: "δοκιμή@παράδειγμα.δοκιμή"},
		"<root@[IPv6:::1]>":                    {addr: "root@[IPv6:::1]"},
	} {
		got, err := parseMailbox("--from", in)
		if err != nil || got != want {
			t.Errorf("parseMailbox(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

// Each refusal says which flag, which address and which character, a space
// shown as ' ' and a control character escaped.
func TestParseMailboxRefusals(t *testing.T) {
	for in, want := range map[string]string{
		"alice smith@example.com":         `--to: invalid address "alice smith@example.com": character ' ' not allowed in an unquoted local part`,
		"Alice <alice smith@example.com>": `--to: invalid address "alice smith@example.com": character ' ' not allowed in an unquoted local part`,
		"Alice <>":                        `--to: invalid address "Alice <>": empty`,
		"alice@example.com>":              `--to: invalid address "alice@example.com>": '>' without '<'`,
		"Alice\r\nBcc: x <a@b.test>":      `--to: invalid address "Alice\r\nBcc: x <a@b.test>": character ':' in the display name needs the name in double quotes`,
		"\"Al\r\nX\" <a@b.test>":          `--to: invalid address "\"Al\r\nX\" <a@b.test>": control character '\r' in the display name`,
		"A@B <a@b.test>":                  `--to: invalid address "A@B <a@b.test>": character '@' in the display name needs the name in double quotes`,
		"alice\x00@example.com":           `--to: invalid address "alice\x00@example.com": control character '\x00'`,
	} {
		_, err := parseMailbox("--to", in)
		if err == nil || err.Error() != want {
			t.Errorf("parseMailbox(%q) = %v\nwant %s", in, err, want)
		}
	}
}

// The display name goes into the From field of a composed message, quoted
// or encoded as it needs.
func TestNameAddrHeader(t *testing.T) {
	for m, want := range map[nameAddr]string{
		{addr: "a@b.test"}:                     "a@b.test",
		{name: "Alice", addr: "a@b.test"}:      "Alice <a@b.test>",
		{name: "A. Liddell", addr: "a@b.test"}: `"A. Liddell" <a@b.test>`,
		{name: `say "hi"`, addr: "a@b.test"}:   `"say \"hi\"" <a@b.test>`,
		{name: "Alïce", addr: "a@b.test"}:      "=?utf-8?q?Al=C3=AFce?= <a@b.test>",
	} {
		if got := m.header(); got != want {
			t.Errorf("%+v: header %q, want %q", m, got, want)
		}
	}
}

// The command refuses a bad address before connecting: the server here
// does not exist, so a connection attempt would exit 75, not 65.
func TestSendRefusesTypedAddressBeforeConnecting(t *testing.T) {
	_, code := runCLI(t, "send", "--server", "127.0.0.1:1", "--from", "Alice <alice@example.com>",
		"--to", "bob smith@example.com")
	if code != exitData {
		t.Errorf("exit %d, want %d", code, exitData)
	}
}

// -t takes a quoted local part from the header with its quotes.
func TestHeaderRecipientsKeepQuotedLocalPart(t *testing.T) {
	msg := "From: a@x.test\r\nTo: Bob <\"bob smith\"@x.test>, c@x.test\r\n\r\nbody\r\n"
	rcpts, f, err := headerRecipients(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := strings.Join(rcpts, " "); got != `"bob smith"@x.test c@x.test` {
		t.Errorf("recipients %q", got)
	}
}
