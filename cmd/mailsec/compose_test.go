package main

import (
	"bytes"
	b64 "encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// headerRecipients is editMessage as -t alone runs it: the addresses of
// To, Cc and Bcc, and the message without its Bcc fields.
func headerRecipients(msg io.Reader) ([]string, *os.File, error) {
	facts, f, err := editMessage(msg, headerEdit{readRcpts: true})
	return facts.rcpts, f, err
}

func TestHeaderRecipientsDropsBcc(t *testing.T) {
	msg := "From: a@x.test\r\nTo: B <b@x.test>,\r\n c@x.test\r\nBcc: hidden@x.test,\r\n\tsecret@x.test\r\nSubject: s\r\n\r\nBcc: body@x.test\r\n"
	rcpts, f, err := headerRecipients(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, _ := io.ReadAll(f)
	if got := strings.Join(rcpts, " "); got != "b@x.test c@x.test hidden@x.test secret@x.test" {
		t.Errorf("recipients %q", got)
	}
	want := "From: a@x.test\r\nTo: B <b@x.test>,\r\n c@x.test\r\nSubject: s\r\n\r\nBcc: body@x.test\r\n"
	if string(out) != want {
		t.Errorf("message\n%q\nwant\n%q", out, want)
	}
}

func TestComposeParsesBack(t *testing.T) {
	dir := t.TempDir()
	att := filepath.Join(dir, "data.bin")
	payload := bytes.Repeat([]byte{0, 1, 2, 0xff}, 5000)
	os.WriteFile(att, payload, 0o600)
	f, err := compose(composeSpec{from: nameAddr{addr: "a@x.test"}, to: []nameAddr{{addr: "b@x.test"}}, subject: "Grüße", body: "hé\nline", attach: []string{att}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	if subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); subj != "Grüße" {
		t.Errorf("subject %q", subj)
	}
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	mr := multipart.NewReader(m.Body, params["boundary"])
	text, _ := mr.NextPart()
	if b, _ := io.ReadAll(text); string(b) != "hé\r\nline" {
		t.Errorf("text %q", b)
	}
	part, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	// multipart decodes quoted-printable by itself, not base64.
	dec, err := io.ReadAll(b64.NewDecoder(b64.StdEncoding, part))
	if err != nil || !bytes.Equal(dec, payload) || part.FileName() != "data.bin" {
		t.Errorf("attachment differs (err %v, name %q)", err, part.FileName())
	}
}
